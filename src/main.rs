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

use entitywatch::bus::{JsonLinesPublisher, Publisher};
use entitywatch::config::{parse_duration, redact_url, GlobalArgs, LogFormat, Settings};
use entitywatch::events::SourceDocument;
use entitywatch::federal_register::amendment::{parse_rule, ParseLimits};
use entitywatch::federal_register::client::{ClientConfig, FederalRegisterClient};
use entitywatch::federal_register::watcher::{Watcher, WatcherConfig};
use entitywatch::store::Store;

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
    /// Append JSON-lines events to this file instead of stdout.
    #[arg(long, env = "ENTITYWATCH_OUTPUT", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Do not poll public-inspection filings.
    #[arg(long)]
    no_public_inspection: bool,
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
        ..ClientConfig::default()
    })
    .context("building the Federal Register client")?;
    let publisher: Arc<dyn Publisher> = match &args.output {
        Some(path) => Arc::new(
            JsonLinesPublisher::file(path.clone())
                .await
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        None => Arc::new(JsonLinesPublisher::stdout()),
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
        watcher
            .run(args.interval, args.since, shutdown_signal())
            .await;
    }
    store.close().await;
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
