//! The `entitywatch` command line: parses flags, sets up logging and hands over to the library.
//! Nothing here decides anything about rules, suppliers or alerts.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use tracing::info;

use entitywatch::alerts::RetryPolicy;
use entitywatch::bus::{InProcessBus, JsonLinesPublisher, KafkaProducer, Publisher};
use entitywatch::config::{parse_duration, redact_url, GlobalArgs, LogFormat, Settings};
use entitywatch::events::SourceDocument;
use entitywatch::federal_register::amendment::{parse_rule, ParseLimits};
use entitywatch::federal_register::client::{ClientConfig, FederalRegisterClient};
use entitywatch::federal_register::watcher::{Watcher, WatcherConfig};
use entitywatch::http::{HttpServer, Readiness};
use entitywatch::store::Store;
use entitywatch::worker::Worker;

/// Tells you, within minutes, when one of your suppliers lands on the US Entity List.
///
/// entitywatch polls the Federal Register for Bureau of Industry and Security rules that amend
/// the Entity List (15 CFR part 744, Supplement No. 4), parses each rule into added, revised and
/// removed entries, and publishes one change event per entry.
///
/// Every flag can also be set by the environment variable shown beside it, or in a TOML file
/// given with --config. Precedence: flag > environment > file > default.
#[derive(Debug, Parser)]
#[command(name = "entitywatch", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse a rule's Federal Register full-text XML and print its entity changes as JSON lines.
    ///
    /// One object per change on stdout (action, entity_key, name, aliases, addresses, country,
    /// country_name, license_requirement, license_policy, federal_register_citation, source).
    /// Parser warnings go to the log on stderr. Exits non-zero if the file is unreadable.
    Parse(ParseArgs),
    /// Poll the Federal Register and publish Entity List changes.
    ///
    /// Searches BIS final rules for part 744 since the checkpoint, fetches each new rule's
    /// full-text XML, and publishes its events (entity changes, then one document event).
    /// A rule is checkpointed only after its events are written, so a restart neither misses
    /// nor repeats one. Public-inspection filings are reported as early-warning events.
    Watch(WatchArgs),
    /// Run the whole service: watcher, workers and alert sinks in one process.
    ///
    /// With no --kafka-brokers it uses the embedded in-process bus, kept in the same store
    /// as everything else (the SQLite file by default), so nothing is lost across restarts.
    /// Alerts go to the alert topic, and to Slack and a signed webhook when configured.
    Run(RunArgs),
    /// Run only the worker: consume change events (and supplier upserts on Kafka), screen,
    /// store decisions and send alerts. Start several on Kafka: they share the partitions as
    /// the consumer group `entitywatch-workers`. Without Kafka it consumes the embedded bus of
    /// the store, for a watcher publishing into the same store.
    Work(WorkArgs),
    /// Offline demo: replays bundled Entity List rules through the whole pipeline against a
    /// sample supplier master and prints the alerts. Needs no network and no services.
    Demo(DemoArgs),
    /// Record a review decision: `--dismiss` suppresses alerts for a (supplier, entry) pair
    /// until the entry is revised.
    Review(ReviewArgs),
    /// List the dead-letter topic, or deliver its alerts again once a sink is fixed.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
    /// Manage the supplier records screened against the Entity List.
    #[command(subcommand)]
    Suppliers(SuppliersCommand),
    /// Manage the stored Entity List snapshot.
    #[command(subcommand)]
    List(ListCommand),
    /// Score name pairs from a CSV file (columns name1,name2) and print
    /// name1,name2,score,is_match as CSV, one row per input row, in order.
    Match(MatchArgs),
    /// Screen one name against the stored Entity List snapshot and print the best entries
    /// with scores and explanations.
    Screen(ScreenArgs),
    /// Print precision, recall and F1 of the matcher on a labelled pairs CSV
    /// (name1,name2,is_match[,category]) at the default threshold.
    Evaluate(EvaluateArgs),
}

#[derive(Debug, Args)]
struct SinkArgs {
    /// Slack incoming-webhook URL to post alerts to (a secret: never logged).
    #[arg(
        long,
        env = "ENTITYWATCH_SLACK_WEBHOOK_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    slack_webhook_url: Option<String>,
    /// Generic webhook URL to POST signed alert JSON to (a secret: never logged).
    #[arg(
        long,
        env = "ENTITYWATCH_WEBHOOK_URL",
        value_name = "URL",
        requires = "webhook_secret",
        hide_env_values = true
    )]
    webhook_url: Option<String>,
    /// HMAC-SHA256 key for the X-Entitywatch-Signature header of generic webhooks.
    #[arg(
        long,
        env = "ENTITYWATCH_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    webhook_secret: Option<String>,
    /// Delivery attempts per alert and sink, the first included; then the alert is
    /// dead-lettered with the last reason.
    #[arg(long, env = "ENTITYWATCH_ALERT_MAX_ATTEMPTS", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    alert_max_attempts: u32,
    /// How long one delivery attempt may take before it counts as failed and is retried.
    #[arg(long, env = "ENTITYWATCH_ALERT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    alert_timeout: Duration,
    /// First wait between attempts; each next one doubles (with jitter).
    #[arg(long, env = "ENTITYWATCH_ALERT_MIN_BACKOFF", default_value = "500ms", value_parser = parse_duration)]
    alert_min_backoff: Duration,
    /// Longest wait between attempts, also for a receiver's Retry-After.
    #[arg(long, env = "ENTITYWATCH_ALERT_MAX_BACKOFF", default_value = "60s", value_parser = parse_duration)]
    alert_max_backoff: Duration,
    /// How long a worker's claim on an alert it is delivering lasts unless renewed (it renews
    /// every third of it). Another worker of the group handed the same event waits on the claim
    /// instead of sending too; if the holder died, the alert is sent again once this ran out.
    #[arg(long, env = "ENTITYWATCH_ALERT_CLAIM_LEASE", default_value = "30s", value_parser = parse_duration)]
    alert_claim_lease: Duration,
}

impl SinkArgs {
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.alert_max_attempts,
            min_backoff: self.alert_min_backoff,
            max_backoff: self.alert_max_backoff.max(self.alert_min_backoff),
            timeout: self.alert_timeout,
        }
    }

    /// The delivery settings of a Kafka worker: retries and the claim lease.
    fn configure_delivery(&self, config: &mut entitywatch::kafka_pipeline::KafkaPipelineConfig) {
        config.retry = self.retry_policy();
        config.claim_lease = self.alert_claim_lease;
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Time between Federal Register polls, e.g. 60s, 5m.
    #[arg(long, env = "ENTITYWATCH_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    interval: Duration,
    /// Search from this publication date (YYYY-MM-DD) on the first poll (backfill).
    #[arg(long, value_name = "DATE")]
    since: Option<NaiveDate>,
    /// Do not poll public-inspection filings.
    #[arg(long)]
    no_public_inspection: bool,
    #[command(flatten)]
    readiness: ReadinessArgs,
    #[command(flatten)]
    sinks: SinkArgs,
}

#[derive(Debug, Args)]
struct ReadinessArgs {
    /// /readyz fails when the last successful Federal Register poll is older than this
    /// (counted from start until the first poll succeeds).
    #[arg(long, env = "ENTITYWATCH_READY_MAX_POLL_AGE", default_value = "30m", value_parser = parse_duration)]
    ready_max_poll_age: Duration,
}

#[derive(Debug, Args)]
struct WorkArgs {
    #[command(flatten)]
    sinks: SinkArgs,
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[command(flatten)]
    sinks: SinkArgs,
    /// Keep the demo's SQLite database at this path instead of a temporary file.
    #[arg(long, value_name = "FILE")]
    keep: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ReviewArgs {
    /// The supplier's id.
    supplier_id: String,
    /// The entry's key, as in alerts (e.g. CN/dahua-technology).
    entry_key: String,
    /// Dismiss the pair: no alert for it until the entry's next revision.
    #[arg(long, required = true)]
    dismiss: bool,
    /// Why (kept with the decision for the audit trail).
    #[arg(long)]
    reason: String,
}

#[derive(Debug, Subcommand)]
enum DeadLettersCommand {
    /// Print every dead letter: when, why, and what (an alert or a message that could not be
    /// handled). Reads the embedded store, or the Kafka dead-letter topic with --kafka-brokers
    /// (without joining a group or committing anything).
    List(DeadLettersListArgs),
    /// Deliver the dead-lettered alerts again, to every configured sink that has not accepted
    /// them yet (the delivery ledger decides, so running it twice sends nothing twice). An
    /// alert that fails again is dead-lettered again with the new reason. Messages that are
    /// not alerts are left alone: fix their producer.
    Redrive(DeadLettersRedriveArgs),
}

#[derive(Debug, Args)]
struct DeadLettersListArgs {
    /// One JSON object per dead letter instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DeadLettersRedriveArgs {
    #[command(flatten)]
    sinks: SinkArgs,
}

#[derive(Debug, Subcommand)]
enum SuppliersCommand {
    /// Upsert supplier records by id from a CSV file.
    ///
    /// Required columns: id, name. Optional: aliases (separated by ; or |), country (ISO-2 or
    /// name), address; any other column is kept as a reference field. Every bad row is reported
    /// with its line number and reason; every good row is stored.
    Import(SuppliersImportArgs),
    /// Write the stored supplier records as CSV to stdout (or --output).
    Export(SuppliersExportArgs),
}

#[derive(Debug, Args)]
struct SuppliersImportArgs {
    /// The CSV file.
    file: PathBuf,
    /// Longest accepted field, in bytes; longer fields reject their row.
    #[arg(long, default_value_t = 64 * 1024)]
    max_field_bytes: usize,
    /// Exit non-zero if any row was rejected (for scripted imports).
    #[arg(long)]
    strict: bool,
    /// Do not screen the imported suppliers against the stored Entity List snapshot.
    #[arg(long)]
    no_screen: bool,
    #[command(flatten)]
    sinks: SinkArgs,
}

#[derive(Debug, Args)]
struct SuppliersExportArgs {
    /// Write to this file instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ListCommand {
    /// Replace the Entity List snapshot from a trade.gov Consolidated Screening List file
    /// (CSV in its 2019 or 2022/2025 layout, JSON with results[] or entries[], optionally gzip).
    ///
    /// Entries of the imported lists missing from the file are marked removed.
    Import(ListImportArgs),
}

#[derive(Debug, Args)]
struct ListImportArgs {
    /// The screening list file.
    file: PathBuf,
    /// Which lists to keep: EL (default), SDN, DPL, MEU, UVL, ..., comma-separated, or `all`.
    #[arg(long, default_value = "EL")]
    source: String,
}

#[derive(Debug, Args)]
struct MatchArgs {
    /// CSV file with name1,name2 columns (other columns are ignored).
    #[arg(long)]
    pairs: PathBuf,
}

#[derive(Debug, Args)]
struct ScreenArgs {
    /// The name to screen.
    name: String,
    /// The supplier's country (ISO-2 or name), supporting evidence only.
    #[arg(long)]
    country: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// How many entries to show at most.
    #[arg(long, default_value_t = 10)]
    limit: usize,
}

#[derive(Debug, Args)]
struct EvaluateArgs {
    /// Labelled pairs CSV.
    #[arg(long)]
    pairs: PathBuf,
}

#[derive(Debug, Args)]
struct ParseArgs {
    /// The rule's full-text XML (as served at the document's full_text_xml_url).
    file: PathBuf,
    /// The document number to attribute changes to, if the XML carries no FRDOC line.
    #[arg(long)]
    document_number: Option<String>,
    /// Also print the document-level event (amendatory text, warnings) as the last line.
    #[arg(long)]
    with_document_event: bool,
}

#[derive(Debug, Args)]
struct WatchArgs {
    /// Time between polls, e.g. 60s, 5m.
    #[arg(long, env = "ENTITYWATCH_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    interval: Duration,
    /// Search from this publication date (YYYY-MM-DD) to backfill; documents already
    /// processed are still skipped. Without it: the checkpoint, or 30 days back on a first run.
    #[arg(long, value_name = "DATE")]
    since: Option<NaiveDate>,
    /// Poll once and exit (non-zero if the poll failed).
    #[arg(long)]
    once: bool,
    /// Append JSON-lines events to this file instead of stdout (or, with --kafka-brokers,
    /// instead of the Kafka change topic).
    #[arg(long, env = "ENTITYWATCH_OUTPUT", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Do not poll public-inspection filings.
    #[arg(long)]
    no_public_inspection: bool,
    #[command(flatten)]
    readiness: ReadinessArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::resolve(&cli.global, std::env::vars()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("entitywatch: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("entitywatch: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("entitywatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr: stdout carries events and results that users pipe elsewhere.
    // Colour codes only for a person at a terminal: in a file, a pipe or a container log
    // they would be noise around every field.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command, settings: Settings) -> Result<()> {
    match command {
        Command::Parse(args) => parse(args, &settings),
        Command::Watch(args) => watch(args, &settings).await,
        Command::Run(args) => run_service(args, &settings).await,
        Command::Review(args) => review(args, &settings).await,
        Command::Demo(args) => demo(args, &settings).await,
        Command::Work(args) => work(args, &settings).await,
        Command::DeadLetters(DeadLettersCommand::List(args)) => {
            dead_letters_list(args, &settings).await
        }
        Command::DeadLetters(DeadLettersCommand::Redrive(args)) => {
            dead_letters_redrive(args, &settings).await
        }
        Command::Suppliers(SuppliersCommand::Import(args)) => {
            suppliers_import(args, &settings).await
        }
        Command::Suppliers(SuppliersCommand::Export(args)) => {
            suppliers_export(args, &settings).await
        }
        Command::List(ListCommand::Import(args)) => list_import(args, &settings).await,
        Command::Match(args) => match_pairs(args),
        Command::Screen(args) => screen(args, &settings).await,
        Command::Evaluate(args) => evaluate(args),
    }
}

fn parse(args: ParseArgs, settings: &Settings) -> Result<()> {
    let xml = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let source = args
        .document_number
        .as_deref()
        .map(SourceDocument::from_number);
    let limits = ParseLimits {
        max_bytes: settings.max_document_bytes,
    };
    let rule = parse_rule(&xml, source, &limits)
        .with_context(|| format!("cannot parse {}", args.file.display()))?;
    for w in &rule.warnings {
        tracing::warn!(document = %rule.source.document_number, "{w}");
    }
    let written = (|| -> std::io::Result<()> {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for change in &rule.changes {
            serde_json::to_writer(&mut out, change)?;
            out.write_all(b"\n")?;
        }
        if args.with_document_event {
            let doc = rule.document_event(entitywatch::events::DocumentStage::Published);
            serde_json::to_writer(&mut out, &doc)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    })();
    match written {
        // `entitywatch parse x.xml | head` closes the pipe early; that is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        other => other.context("writing to stdout")?,
    }
    info!(
        document = %rule.source.document_number,
        changes = rule.changes.len(),
        warnings = rule.warnings.len(),
        "parsed"
    );
    Ok(())
}

async fn watch(args: WatchArgs, settings: &Settings) -> Result<()> {
    if args.interval.is_zero() {
        bail!("--interval must be greater than zero");
    }
    let store = Store::connect(&settings.database_url)
        .await
        .with_context(|| format!("opening store {}", redact_url(&settings.database_url)))?;
    let client = FederalRegisterClient::new(ClientConfig {
        base_url: settings.federal_register_url.clone(),
        max_document_bytes: settings.max_document_bytes,
        timeout: settings.federal_register_timeout,
        ..ClientConfig::default()
    })
    .context("building the Federal Register client")?;
    let mut kafka_producer = None;
    let publisher: Arc<dyn Publisher> = match (&args.output, &settings.kafka_brokers) {
        (Some(path), _) => Arc::new(
            JsonLinesPublisher::file(path.clone())
                .await
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        (None, Some(_)) => {
            use entitywatch::bus::KafkaPublisher;
            let config = entitywatch::kafka_pipeline::KafkaPipelineConfig::from_settings(settings)?;
            config
                .ensure_topics()
                .await
                .context("creating the Kafka topics")?;
            let producer = KafkaProducer::new(&config.settings)?;
            kafka_producer = Some(producer.clone());
            info!(brokers = %config.settings.brokers, topic = %config.topics.entity_changes, "publishing to Kafka");
            Arc::new(KafkaPublisher::from_producer(
                producer,
                config.topics.entity_changes.clone(),
            ))
        }
        (None, None) => Arc::new(JsonLinesPublisher::stdout()),
    };
    let config = WatcherConfig {
        parse_limits: ParseLimits {
            max_bytes: settings.max_document_bytes,
        },
        public_inspection: !args.no_public_inspection,
        ..WatcherConfig::default()
    };
    let watcher = Watcher::new(client, store.clone(), publisher, config);
    info!(
        federal_register = %settings.federal_register_url,
        store = %redact_url(&settings.database_url),
        "watcher starting"
    );
    if args.once {
        let report = watcher.poll_once(args.since).await?;
        info!(?report, "single poll done");
    } else {
        let shutdown = Shutdown::listen();
        let http = HttpEndpoint::start(
            settings,
            readiness(
                &store,
                kafka_producer.clone(),
                Some(args.readiness.ready_max_poll_age),
            ),
        )
        .await?;
        watcher
            .run(args.interval, args.since, shutdown.requested())
            .await;
        http.stop().await;
    }
    if let Some(producer) = kafka_producer {
        producer
            .flush(Duration::from_secs(10))
            .await
            .context("flushing the Kafka producer")?;
    }
    store.close().await;
    info!("watcher stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM (what Kubernetes sends before killing a pod).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// How long a long-running command may take to stop after SIGTERM: finish the event in hand,
/// commit, flush. Kubernetes' default grace period is 30 s; the manifests give 45 s.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(30);

/// Fans one SIGTERM/SIGINT out to every part of a long-running command, and bounds stopping:
/// past [`SHUTDOWN_BOUND`], or on a second signal, the process exits at once with status 1.
/// Exiting there is still safe (nothing is committed ahead of its effects); it only means
/// some work will be redone by the next start.
#[derive(Clone)]
struct Shutdown {
    requested: tokio::sync::watch::Receiver<bool>,
}

impl Shutdown {
    fn listen() -> Shutdown {
        let (tx, requested) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            info!(
                bound_s = SHUTDOWN_BOUND.as_secs(),
                "shutdown requested: finishing the work in hand"
            );
            let _ = tx.send(true);
            tokio::select! {
                _ = shutdown_signal() => tracing::warn!("second signal: exiting now"),
                _ = tokio::time::sleep(SHUTDOWN_BOUND) => tracing::error!(
                    "did not stop within {} s; exiting", SHUTDOWN_BOUND.as_secs()
                ),
            }
            std::process::exit(1);
        });
        Shutdown { requested }
    }

    /// Resolves once shutdown was requested.
    fn requested(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.requested.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

/// The metrics and health endpoint of a long-running command; stopped after the pipeline, so
/// the last scrape sees the final counts.
struct HttpEndpoint {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpEndpoint {
    async fn start(settings: &Settings, readiness: Readiness) -> Result<HttpEndpoint> {
        let server = HttpServer::bind(settings.http_addr, readiness).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        Ok(HttpEndpoint { stop, task })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn readiness(
    store: &Store,
    kafka: Option<KafkaProducer>,
    max_poll_age: Option<Duration>,
) -> Readiness {
    Readiness {
        store: store.clone(),
        kafka,
        max_poll_age,
        started_at: chrono::Utc::now(),
    }
}

async fn open_store(settings: &Settings) -> Result<Store> {
    Store::connect(&settings.database_url)
        .await
        .with_context(|| format!("opening store {}", redact_url(&settings.database_url)))
}

async fn suppliers_import(args: SuppliersImportArgs, settings: &Settings) -> Result<()> {
    use entitywatch::suppliers::{read_suppliers_with_progress, ReadLimits};
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let store = open_store(settings).await?;

    let bar = progress_bar(size, "reading");
    let limits = ReadLimits {
        max_field_bytes: args.max_field_bytes,
        ..ReadLimits::default()
    };
    let import = read_suppliers_with_progress(std::io::BufReader::new(file), limits, |p| {
        bar.set_position(p.bytes)
    })
    .with_context(|| format!("cannot import {}", args.file.display()))?;
    bar.finish_and_clear();

    for error in &import.errors {
        eprintln!("{}: {error}", args.file.display());
    }
    let bar = progress_bar(import.records.len() as u64, "storing");
    let counts = store
        .upsert_suppliers_with_progress(&import.records, |done| bar.set_position(done as u64))
        .await?;
    bar.finish_and_clear();
    if !args.no_screen {
        let worker = embedded_worker(&store, &args.sinks)?;
        let ids: Vec<String> = import.records.iter().map(|r| r.id().to_string()).collect();
        let outcome = worker.screen_suppliers(&ids).await?;
        println!(
            "screened against the stored Entity List: {} matches, {} alerts sent, {} already sent, {} dismissed",
            outcome.matches,
            outcome.alerts_delivered,
            outcome.alerts_already_delivered,
            outcome.dismissed
        );
    }
    let rejected = import.rejected();
    println!(
        "{}: {} rows read, {} stored ({} new, {} updated), {} rejected, {} warnings; {} suppliers in store",
        args.file.display(),
        import.rows,
        import.records.len(),
        counts.inserted,
        counts.updated,
        rejected,
        import.warnings(),
        store.supplier_count().await?
    );
    store.close().await;
    if args.strict && rejected > 0 {
        bail!("{rejected} rows were rejected");
    }
    Ok(())
}

fn progress_bar(len: u64, what: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:8} [{bar:40}] {pos}/{len} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}

async fn suppliers_export(args: SuppliersExportArgs, settings: &Settings) -> Result<()> {
    let store = open_store(settings).await?;
    let records = store.suppliers().await?;
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            entitywatch::suppliers::write_suppliers(std::io::BufWriter::new(file), &records)?;
        }
        None => entitywatch::suppliers::write_suppliers(std::io::stdout().lock(), &records)?,
    }
    info!(suppliers = records.len(), "exported");
    store.close().await;
    Ok(())
}

async fn list_import(args: ListImportArgs, settings: &Settings) -> Result<()> {
    use entitywatch::csl::{read_csl_path, snapshot, SourceFilter};
    let filter = SourceFilter::parse(&args.source);
    let import = read_csl_path(&args.file, &filter)
        .with_context(|| format!("cannot import {}", args.file.display()))?;
    for w in &import.warnings {
        eprintln!("{}: {w}", args.file.display());
    }
    let snap = snapshot(&import.entries);
    let store = open_store(settings).await?;
    let counts = store.replace_entity_list_snapshot(&snap.entries).await?;
    println!(
        "{}: {} rows, {} entries kept ({} rows merged into others), {} of other lists skipped; \
         {} new, {} updated, {} revived, {} unchanged, {} removed; {} entries in store",
        args.file.display(),
        import.rows,
        snap.entries.len(),
        snap.merged_rows,
        import.other_sources,
        counts.inserted,
        counts.updated,
        counts.revived,
        counts.unchanged,
        counts.removed,
        store.listed_entry_count().await?
    );
    store.close().await;
    Ok(())
}

fn match_pairs(args: MatchArgs) -> Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(&args.pairs)
        .with_context(|| format!("cannot open {}", args.pairs.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| {
                h.trim()
                    .trim_start_matches('\u{feff}')
                    .eq_ignore_ascii_case(name)
            })
            .with_context(|| {
                format!(
                    "{} has no {name} column (found: {})",
                    args.pairs.display(),
                    headers.iter().collect::<Vec<_>>().join(", ")
                )
            })
    };
    let (c1, c2) = (column("name1")?, column("name2")?);
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_record(["name1", "name2", "score", "is_match"])?;
    for (i, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{} row {}", args.pairs.display(), i + 2))?;
        let a = row.get(c1).unwrap_or("");
        let b = row.get(c2).unwrap_or("");
        let score = entitywatch::screening::score_pair(a, b);
        out.write_record([
            a,
            b,
            &format!("{:.4}", score.value),
            if score.is_match { "true" } else { "false" },
        ])?;
    }
    out.flush()?;
    Ok(())
}

async fn screen(args: ScreenArgs, settings: &Settings) -> Result<()> {
    use entitywatch::screening::{ListedEntry, Screener};
    let country = match &args.country {
        Some(c) => Some(
            entitywatch::suppliers::recognise_country(c)
                .with_context(|| format!("--country {c:?} is not a country we know"))?,
        ),
        None => None,
    };
    let store = open_store(settings).await?;
    let entries: Vec<ListedEntry> = store
        .listed_entries()
        .await?
        .into_iter()
        .map(|l| ListedEntry {
            key: l.entry.entity_key,
            name: l.entry.name.to_string(),
            aliases: l.entry.aliases,
            countries: l.entry.countries,
        })
        .collect();
    store.close().await;
    if entries.is_empty() {
        bail!("the Entity List snapshot is empty: run `entitywatch list import FILE` first");
    }
    let screener = Screener::new(entries);
    let mut matches = screener.screen(&args.name, &[], country.as_ref());
    matches.truncate(args.limit);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&matches)?);
        return Ok(());
    }
    if matches.is_empty() {
        println!(
            "no listed entry scores above {:.2} for {:?}",
            screener.floor(),
            args.name
        );
        return Ok(());
    }
    for (rank, m) in matches.iter().enumerate() {
        println!(
            "{:>2}. {:.3} {} {} [{}]\n    {}",
            rank + 1,
            m.score,
            if m.is_match { "MATCH" } else { "near " },
            m.listed_name,
            m.key,
            m.explanation
        );
    }
    Ok(())
}

fn evaluate(args: EvaluateArgs) -> Result<()> {
    let file = std::fs::File::open(&args.pairs)
        .with_context(|| format!("cannot open {}", args.pairs.display()))?;
    let report = entitywatch::screening::evaluate_pairs(std::io::BufReader::new(file))?;
    print!("{report}");
    Ok(())
}

const CHANGES_TOPIC: &str = "entitywatch.entity-changes.v1";
const ALERTS_TOPIC: &str = "entitywatch.alerts.v1";
const DEAD_LETTER_TOPIC: &str = "entitywatch.dead-letter.v1";

/// The sinks outside the bus (Slack, generic webhook) that the flags configure; the alert
/// topic sink comes from the bus the worker runs on.
fn external_sinks(args: &SinkArgs) -> Result<Vec<Arc<dyn entitywatch::alerts::AlertSink>>> {
    use entitywatch::alerts::{SecretUrl, SlackSink, WebhookSecret, WebhookSink};
    let mut sinks: Vec<Arc<dyn entitywatch::alerts::AlertSink>> = Vec::new();
    // An empty value (as docker-compose passes an unset variable) means "not configured".
    let configured = |v: &Option<String>| v.clone().filter(|u| !u.trim().is_empty());
    if let Some(url) = &configured(&args.slack_webhook_url) {
        let url = SecretUrl::parse(url).context("--slack-webhook-url")?;
        sinks.push(Arc::new(SlackSink::new(url).context("Slack client")?));
    }
    if let (Some(url), Some(secret)) = (
        &configured(&args.webhook_url),
        &configured(&args.webhook_secret),
    ) {
        let url = SecretUrl::parse(url).context("--webhook-url")?;
        sinks.push(Arc::new(
            WebhookSink::new(url, WebhookSecret::new(secret)).context("webhook client")?,
        ));
    }
    Ok(sinks)
}

/// A worker whose alert and dead-letter topics are the embedded bus's.
fn embedded_worker(store: &Store, sinks: &SinkArgs) -> Result<Worker> {
    let alerts = InProcessBus::new(store.clone(), ALERTS_TOPIC);
    let dead_letters = InProcessBus::new(store.clone(), DEAD_LETTER_TOPIC);
    let mut all: Vec<Arc<dyn entitywatch::alerts::AlertSink>> = vec![Arc::new(
        entitywatch::alerts::topic::AlertTopicSink::new(alerts),
    )];
    all.extend(external_sinks(sinks)?);
    Ok(Worker::new(
        store.clone(),
        all,
        Arc::new(dead_letters),
        sinks.retry_policy(),
    )
    .with_claim_lease(sinks.alert_claim_lease))
}

/// The embedded pipeline: a watcher publishing to the in-process bus and a worker consuming it.
struct Embedded {
    watcher: Watcher,
    worker: Worker,
    changes: InProcessBus,
    alerts: InProcessBus,
}

fn embedded(
    store: &Store,
    settings: &Settings,
    federal_register_url: url::Url,
    sinks: &SinkArgs,
    public_inspection: bool,
) -> Result<Embedded> {
    let changes = InProcessBus::new(store.clone(), CHANGES_TOPIC);
    let alerts = InProcessBus::new(store.clone(), ALERTS_TOPIC);
    let client = FederalRegisterClient::new(ClientConfig {
        base_url: federal_register_url,
        max_document_bytes: settings.max_document_bytes,
        timeout: settings.federal_register_timeout,
        ..ClientConfig::default()
    })
    .context("building the Federal Register client")?;
    let watcher = Watcher::new(
        client,
        store.clone(),
        Arc::new(changes.clone()),
        WatcherConfig {
            parse_limits: ParseLimits {
                max_bytes: settings.max_document_bytes,
            },
            public_inspection,
            ..WatcherConfig::default()
        },
    );
    let worker = embedded_worker(store, sinks)?;
    Ok(Embedded {
        watcher,
        worker,
        changes,
        alerts,
    })
}

async fn run_service(args: RunArgs, settings: &Settings) -> Result<()> {
    if settings.kafka_brokers.is_some() {
        return run_kafka(args, settings).await;
    }
    let store = open_store(settings).await?;
    let pipeline = embedded(
        &store,
        settings,
        settings.federal_register_url.clone(),
        &args.sinks,
        !args.no_public_inspection,
    )?;
    let shutdown = Shutdown::listen();
    let http = HttpEndpoint::start(
        settings,
        readiness(&store, None, Some(args.readiness.ready_max_poll_age)),
    )
    .await?;
    info!(
        federal_register = %settings.federal_register_url,
        store = %redact_url(&settings.database_url),
        "entitywatch running on the embedded bus"
    );
    let consumer = pipeline.changes.consumer("entitywatch-workers");
    let watch = pipeline
        .watcher
        .run(args.interval, args.since, shutdown.requested());
    let work = pipeline
        .worker
        .consume_in_process(&consumer, false, shutdown.requested());
    let ((), worked) = tokio::join!(watch, work);
    http.stop().await;
    let handled = worked?;
    info!(handled, "entitywatch stopped");
    store.close().await;
    Ok(())
}

async fn demo(args: DemoArgs, settings: &Settings) -> Result<()> {
    use entitywatch::federal_register::replay::{ReplayConfig, ReplayServer};
    use entitywatch::suppliers::{read_suppliers, ReadLimits};

    let db_path = match &args.keep {
        Some(p) => p.clone(),
        None => std::env::temp_dir().join(format!(
            "entitywatch-demo-{}-{}.db",
            std::process::id(),
            chrono::Utc::now().timestamp_millis()
        )),
    };
    let store = Store::connect(&format!("sqlite://{}", db_path.display()))
        .await
        .with_context(|| format!("opening the demo store {}", db_path.display()))?;

    let server = ReplayServer::start(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ReplayConfig {
            documents: entitywatch::demo::rules(),
            ..ReplayConfig::default()
        },
    )
    .await
    .context("starting the local Federal Register replay")?;
    let import = read_suppliers(
        entitywatch::demo::SUPPLIERS_CSV.as_bytes(),
        ReadLimits::default(),
    )?;
    store.upsert_suppliers(&import.records).await?;
    println!(
        "entitywatch demo: {} suppliers imported; replaying {} Entity List rules from a local \
         Federal Register at {}",
        import.records.len(),
        entitywatch::demo::rules().len(),
        server.base_url()
    );

    let base = url::Url::parse(&server.base_url()).context("replay URL")?;
    let pipeline = embedded(&store, settings, base, &args.sinks, false)?;
    let since = NaiveDate::from_ymd_opt(2019, 1, 1).context("date")?;
    let report = pipeline.watcher.poll_once(Some(since)).await?;
    println!(
        "watcher: {} rules found, {} entity change events published",
        report.documents_found, report.entity_events
    );
    let consumer = pipeline.changes.consumer("entitywatch-workers");
    let handled = pipeline
        .worker
        .consume_in_process(&consumer, true, std::future::pending::<()>())
        .await?;
    let alerts = store.read_log(pipeline.alerts.topic(), 0, i64::MAX).await?;
    println!(
        "worker: {handled} events screened, {} alerts:\n",
        alerts.len()
    );
    for message in &alerts {
        let alert: entitywatch::alerts::Alert = serde_json::from_str(&message.payload)?;
        println!("  {}", alert.summary());
        println!("      why: {}", alert.explanation);
        if let Some(policy) = &alert.entry.license_policy {
            println!("      licence review policy: {policy}");
        }
        for change in &alert.changes {
            println!("      changed: {change}");
        }
        println!("      rule: {}", alert.entry.rule_url());
    }
    store.close().await;
    if args.keep.is_none() {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
        }
    }
    Ok(())
}

async fn review(args: ReviewArgs, settings: &Settings) -> Result<()> {
    let key = entitywatch::events::EntityKey::parse(&args.entry_key)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.reason.trim().is_empty() {
        bail!("--reason must say why the pair is dismissed");
    }
    let store = open_store(settings).await?;
    if store.supplier(&args.supplier_id).await?.is_none() {
        bail!("no supplier with id {:?} in the store", args.supplier_id);
    }
    let Some(entry) = store.listed_entry(&key).await? else {
        bail!("no Entity List entry {key} in the snapshot");
    };
    debug_assert!(args.dismiss);
    store
        .dismiss(
            &args.supplier_id,
            key.as_str(),
            entry.version,
            args.reason.trim(),
        )
        .await?;
    println!(
        "dismissed {} ~ {} at version {}: no alert until the entry is revised",
        args.supplier_id, key, entry.version
    );
    store.close().await;
    Ok(())
}

/// `run` on Kafka: the same watcher and worker as the embedded mode, with the change, alert and
/// dead-letter topics on the cluster and the store (Postgres in production) for the rest.
async fn run_kafka(args: RunArgs, settings: &Settings) -> Result<()> {
    use entitywatch::kafka_pipeline::{KafkaPipeline, KafkaPipelineConfig};
    let store = open_store(settings).await?;
    let mut config = KafkaPipelineConfig::from_settings(settings)?;
    args.sinks.configure_delivery(&mut config);
    let brokers = config.settings.brokers.clone();
    let client = FederalRegisterClient::new(ClientConfig {
        base_url: settings.federal_register_url.clone(),
        max_document_bytes: settings.max_document_bytes,
        timeout: settings.federal_register_timeout,
        ..ClientConfig::default()
    })
    .context("building the Federal Register client")?;
    let watcher_config = WatcherConfig {
        parse_limits: ParseLimits {
            max_bytes: settings.max_document_bytes,
        },
        public_inspection: !args.no_public_inspection,
        ..WatcherConfig::default()
    };
    let extra_sinks = external_sinks(&args.sinks)?;
    let pipeline = KafkaPipeline::start(config, &store, client, watcher_config, extra_sinks)
        .await
        .with_context(|| format!("starting the Kafka pipeline on {brokers}"))?;
    info!(
        federal_register = %settings.federal_register_url,
        store = %redact_url(&settings.database_url),
        %brokers,
        group = %pipeline.config.group_id,
        "entitywatch running on Kafka"
    );
    let shutdown = Shutdown::listen();
    let producer = pipeline.producer.clone();
    let http = HttpEndpoint::start(
        settings,
        readiness(
            &store,
            Some(producer.clone()),
            Some(args.readiness.ready_max_poll_age),
        ),
    )
    .await?;
    let handled = pipeline
        .run(args.interval, args.since, shutdown.requested())
        .await;
    http.stop().await;
    let handled = handled?;
    producer
        .flush(Duration::from_secs(10))
        .await
        .context("flushing the Kafka producer")?;
    info!(handled, "entitywatch stopped");
    store.close().await;
    Ok(())
}

async fn work(args: WorkArgs, settings: &Settings) -> Result<()> {
    let store = open_store(settings).await?;
    let shutdown = Shutdown::listen();
    let handled = if settings.kafka_brokers.is_some() {
        use entitywatch::kafka_pipeline::{consume_kafka_with, KafkaPipeline, KafkaPipelineConfig};
        let mut config = KafkaPipelineConfig::from_settings(settings)?;
        args.sinks.configure_delivery(&mut config);
        config
            .ensure_topics()
            .await
            .context("creating the Kafka topics")?;
        let producer = KafkaProducer::new(&config.settings)?;
        let extra_sinks = external_sinks(&args.sinks)?;
        let (worker, dead_letters) = KafkaPipeline::worker(&config, &store, &producer, extra_sinks);
        let consumer = KafkaPipeline::subscribe(&config, &config.group_id)?;
        let http =
            HttpEndpoint::start(settings, readiness(&store, Some(producer.clone()), None)).await?;
        info!(brokers = %config.settings.brokers, group = %config.group_id, "worker running on Kafka");
        let handled = consume_kafka_with(
            &worker,
            consumer,
            dead_letters.as_ref(),
            config.service_consume_options(),
            shutdown.requested(),
        )
        .await;
        http.stop().await;
        let handled = handled?;
        producer
            .flush(Duration::from_secs(10))
            .await
            .context("flushing the Kafka producer")?;
        handled
    } else {
        let worker = embedded_worker(&store, &args.sinks)?;
        let consumer =
            InProcessBus::new(store.clone(), CHANGES_TOPIC).consumer("entitywatch-workers");
        let http = HttpEndpoint::start(settings, readiness(&store, None, None)).await?;
        info!(store = %redact_url(&settings.database_url), "worker running on the embedded bus");
        let handled = worker
            .consume_in_process(&consumer, false, shutdown.requested())
            .await;
        http.stop().await;
        handled?
    };
    info!(handled, "worker stopped");
    store.close().await;
    Ok(())
}

/// One record of the dead-letter topic, wherever it is kept.
#[derive(Debug, serde::Serialize)]
struct DeadLetter {
    /// `position N` on the embedded bus, `topic/partition@offset` on Kafka.
    at: String,
    key: String,
    reason: String,
    dead_lettered_at: String,
    payload: String,
}

impl DeadLetter {
    fn from_body(at: String, key: String, body: &[u8]) -> DeadLetter {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let text = |name: &str| v[name].as_str().unwrap_or_default().to_string();
        DeadLetter {
            at,
            key,
            reason: text("reason"),
            dead_lettered_at: text("dead_lettered_at"),
            payload: text("payload"),
        }
    }

    /// The alert, when this is an alert no sink retry could deliver.
    fn alert(&self) -> Option<entitywatch::alerts::Alert> {
        if !self.reason.starts_with("sink ") {
            return None;
        }
        serde_json::from_str(&self.payload).ok()
    }
}

async fn read_dead_letters(settings: &Settings, store: &Store) -> Result<Vec<DeadLetter>> {
    if settings.kafka_brokers.is_some() {
        use entitywatch::bus::KafkaConsumer;
        let config = entitywatch::kafka_pipeline::KafkaPipelineConfig::from_settings(settings)?;
        let topic = config.topics.dead_letter.clone();
        let messages = KafkaConsumer::read_topic(&config.settings, &topic, Duration::from_secs(60))
            .await
            .with_context(|| format!("reading {topic}"))?;
        Ok(messages
            .iter()
            .map(|m| {
                DeadLetter::from_body(
                    format!("{}/{}@{}", m.topic, m.partition, m.offset),
                    m.key_str().unwrap_or_default().to_string(),
                    m.payload.as_deref().unwrap_or_default(),
                )
            })
            .collect())
    } else {
        Ok(store
            .read_log(DEAD_LETTER_TOPIC, 0, i64::MAX)
            .await?
            .into_iter()
            .map(|m| {
                DeadLetter::from_body(
                    format!("position {}", m.position),
                    m.key,
                    m.payload.as_bytes(),
                )
            })
            .collect())
    }
}

async fn dead_letters_list(args: DeadLettersListArgs, settings: &Settings) -> Result<()> {
    let store = open_store(settings).await?;
    let letters = read_dead_letters(settings, &store).await?;
    store.close().await;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        for letter in &letters {
            serde_json::to_writer(&mut out, letter)?;
            writeln!(out)?;
        }
        return Ok(());
    }
    if letters.is_empty() {
        writeln!(out, "no dead letters")?;
        return Ok(());
    }
    for letter in &letters {
        let what = match letter.alert() {
            Some(alert) => format!("alert {}", alert.summary()),
            None => format!("message with key {:?}", letter.key),
        };
        writeln!(out, "{}  {}  {what}", letter.dead_lettered_at, letter.at)?;
        writeln!(out, "    why: {}", letter.reason)?;
    }
    writeln!(
        out,
        "\n{} dead letters, {} of them alerts (`entitywatch dead-letters redrive` sends those again)",
        letters.len(),
        letters.iter().filter(|l| l.alert().is_some()).count()
    )?;
    Ok(())
}

async fn dead_letters_redrive(args: DeadLettersRedriveArgs, settings: &Settings) -> Result<()> {
    let store = open_store(settings).await?;
    let letters = read_dead_letters(settings, &store).await?;
    let mut producer = None;
    let worker = if settings.kafka_brokers.is_some() {
        use entitywatch::kafka_pipeline::{KafkaPipeline, KafkaPipelineConfig};
        let mut config = KafkaPipelineConfig::from_settings(settings)?;
        args.sinks.configure_delivery(&mut config);
        let p = KafkaProducer::new(&config.settings)?;
        let (worker, _) = KafkaPipeline::worker(&config, &store, &p, external_sinks(&args.sinks)?);
        producer = Some(p);
        worker
    } else {
        embedded_worker(&store, &args.sinks)?
    };
    let (mut delivered, mut already, mut failed, mut skipped) = (0, 0, 0, 0);
    for letter in &letters {
        let Some(alert) = letter.alert() else {
            skipped += 1;
            continue;
        };
        let outcome = worker.redeliver(&alert).await?;
        delivered += outcome.alerts_delivered;
        already += outcome.alerts_already_delivered;
        failed += outcome.alerts_dead_lettered;
        info!(alert = %alert.summary(), delivered = outcome.alerts_delivered, failed = outcome.alerts_dead_lettered, "redriven");
    }
    if let Some(p) = producer {
        p.flush(Duration::from_secs(10)).await?;
    }
    store.close().await;
    println!(
        "{} dead letters: {} alerts redriven ({delivered} deliveries made, {already} sinks already \
         had them, {failed} failed again and were dead-lettered again); {skipped} non-alert \
         messages left alone",
        letters.len(),
        letters.len() - skipped,
    );
    if failed > 0 {
        bail!("{failed} deliveries failed again");
    }
    Ok(())
}
