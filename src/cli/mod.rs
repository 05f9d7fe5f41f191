//! The command line: one file per subcommand, each turning its flags into a call on the
//! library (mostly [`crate::app`]). Nothing here decides anything about rules, suppliers or
//! alerts; `main.rs` only parses, sets up telemetry and calls [`dispatch`].

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{ConfigError, ConfigFile, GlobalArgs, Settings};

/// `eprintln!` that never panics: a closed stderr (a log pipe whose reader went away) must not
/// kill a command, as `eprintln!` would.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod alerts;
pub mod args;
pub mod audit;
pub mod dead_letters;
pub mod demo;
pub mod evaluate;
pub mod list;
pub mod match_pairs;
pub mod ownership;
pub mod parse;
pub mod rescreen;
pub mod review;
pub mod run;
pub mod screen;
pub mod suppliers;
pub mod tokens;
pub mod watch;
pub mod work;

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
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse a rule's Federal Register full-text XML and print its entity changes as JSON lines.
    ///
    /// One object per change on stdout (action, entity_key, name, aliases, addresses, country,
    /// country_name, license_requirement, license_policy, federal_register_citation, source).
    /// Parser warnings go to the log on stderr. Exits non-zero if the file is unreadable.
    Parse(parse::ParseArgs),
    /// Poll the Federal Register and publish Entity List changes.
    ///
    /// Searches BIS final rules for part 744 since the checkpoint, fetches each new rule's
    /// full-text XML, and publishes its events (entity changes, then one document event).
    /// A rule is checkpointed only after its events are written, so a restart neither misses
    /// nor repeats one. Public-inspection filings are reported as early-warning events.
    Watch(watch::WatchArgs),
    /// Run the whole service: watcher, workers and alert sinks in one process.
    ///
    /// With no --kafka-brokers it uses the embedded in-process bus, kept in the same store
    /// as everything else (the SQLite file by default), so nothing is lost across restarts.
    /// Alerts go to the alert topic, and to Slack and a signed webhook when configured.
    Run(run::RunArgs),
    /// Run only the worker: consume change events (and supplier upserts on Kafka), screen,
    /// store decisions and send alerts. Start several on Kafka: they share the partitions as
    /// the consumer group `entitywatch-workers`. Without Kafka it consumes the embedded bus of
    /// the store, for a watcher publishing into the same store.
    Work(work::WorkArgs),
    /// Offline demo: replays bundled Entity List rules through the whole pipeline against a
    /// sample supplier master and prints the alerts. Needs no network and no services.
    Demo(demo::DemoArgs),
    /// Record a review decision: `--dismiss` suppresses alerts for a (supplier, entry) pair
    /// until the entry is revised.
    Review(review::ReviewArgs),
    /// The alerts raised so far: list them, show one, confirm, dismiss or escalate it
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// Export the audit trail: every screening decision and every review, in time order
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// List the dead-letter topic, or deliver its alerts again once a sink is fixed.
    #[command(subcommand)]
    DeadLetters(dead_letters::DeadLettersCommand),
    /// Manage the supplier records screened against the Entity List.
    #[command(subcommand)]
    Suppliers(suppliers::SuppliersCommand),
    /// Manage who owns the suppliers, for the Affiliates (50 %) rule.
    #[command(subcommand)]
    Ownership(ownership::OwnershipCommand),
    /// Manage the tokens that let people and systems use the HTTP API and the review console.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Manage the stored Entity List snapshot.
    #[command(subcommand)]
    List(list::ListCommand),
    /// Score name pairs from a CSV file (columns name1,name2) and print
    /// name1,name2,score,is_match as CSV, one row per input row, in order.
    Match(match_pairs::MatchArgs),
    /// Screen one name against the stored Entity List snapshot and print the best entries
    /// with scores and explanations.
    Screen(screen::ScreenArgs),
    /// Re-decide every supplier against the whole list with this build's matcher, store the
    /// new decisions beside the old ones, alert on new matches and report what changed.
    ///
    /// Decisions are a function of (supplier record, entry version, matcher version): replaying
    /// events never changes them; upgrading the matcher changes nothing until this is run.
    Rescreen(rescreen::RescreenArgs),
    /// Print precision, recall and F1 of the matcher on a labelled pairs CSV
    /// (name1,name2,is_match[,category]) at the default threshold.
    Evaluate(evaluate::EvaluateArgs),
}

/// Parses the process's command line, with the values of the configuration file (named by
/// `--config` or `ENTITYWATCH_CONFIG`) as the flags' defaults. Exits as clap does on `--help`
/// or a bad flag; a bad file is returned.
pub fn parse_command_line() -> Result<Cli, ConfigError> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = Cli::command();
    if let Some(path) = ConfigFile::named_by(&argv, std::env::var_os("ENTITYWATCH_CONFIG")) {
        command = ConfigFile::read(&path)?.apply(command)?;
    }
    let matches = command.get_matches_from(argv);
    Ok(Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()))
}

/// Runs one subcommand with the resolved settings.
pub async fn dispatch(command: Command, settings: Settings) -> Result<()> {
    match command {
        Command::Parse(args) => parse::run(args, &settings),
        Command::Watch(args) => watch::run(args, &settings).await,
        Command::Run(args) => run::run(args, &settings).await,
        Command::Review(args) => review::run(args, &settings).await,
        Command::Alerts(command) => alerts::run(command, &settings).await,
        Command::Audit(command) => audit::run(command, &settings).await,
        Command::Demo(args) => demo::run(args, &settings).await,
        Command::Work(args) => work::run(args, &settings).await,
        Command::DeadLetters(command) => dead_letters::run(command, &settings).await,
        Command::Suppliers(command) => suppliers::run(command, &settings).await,
        Command::List(command) => list::run(command, &settings).await,
        Command::Tokens(command) => tokens::run(command, &settings).await,
        Command::Ownership(command) => ownership::run(command, &settings).await,
        Command::Match(args) => match_pairs::run(args),
        Command::Screen(args) => screen::run(args, &settings).await,
        Command::Evaluate(args) => evaluate::run(args),
        Command::Rescreen(args) => rescreen::run(args, &settings).await,
    }
}

/// An error as one line: the outermost message, then each cause that the messages before it
/// do not already say. Our errors often carry their source in their own message (`opening
/// store X: cannot open the store at X: ...`), and `{:#}` would then print each cause again.
/// Writes `text` to stdout. A reader that closed the pipe early (`| head`) is not a failure:
/// it has what it wanted.
pub fn print_out(text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Whether `e` is (caused by) stdout's reader having gone away.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<csv::Error>().is_some_and(|csv| {
                matches!(csv.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
            })
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

pub fn describe_error(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line.replace('\n', " ")
}

/// The exit status of a failed command: 2 for a configuration error (as for one found before
/// the command started), 1 for any other failure.
pub fn exit_status(error: &anyhow::Error) -> u8 {
    if error
        .chain()
        .any(|c| c.downcast_ref::<crate::config::ConfigError>().is_some())
    {
        2
    } else {
        1
    }
}

/// Largest input file a command reads whole (pairs CSVs): far above any real one, and a bound
/// for `/dev/zero` or a pipe that never ends.
pub const MAX_INPUT_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is larger than the limit of {limit} bytes this command reads")]
    TooLarge { path: String, limit: u64 },
}

/// The whole of an input file, or of standard input for `-`, refusing more than `limit` bytes.
/// The limit holds for anything that is not a regular file too (a device, a FIFO), whose
/// size nobody can ask for up front.
pub fn read_input(path: &std::path::Path, limit: u64) -> Result<Vec<u8>, InputError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let read = |source| InputError::Read {
        path: shown.clone(),
        source,
    };
    let mut bytes = Vec::new();
    let taken = limit.saturating_add(1);
    if path == std::path::Path::new("-") {
        std::io::stdin()
            .lock()
            .take(taken)
            .read_to_end(&mut bytes)
            .map_err(read)?;
    } else {
        std::fs::File::open(path)
            .map_err(read)?
            .take(taken)
            .read_to_end(&mut bytes)
            .map_err(read)?;
    }
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge { path: shown, limit });
    }
    Ok(bytes)
}

/// A progress bar on stderr for long work (reading and storing a supplier file).
pub(crate) fn progress_bar(len: u64, what: &'static str) -> indicatif::ProgressBar {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the store at db: {0}")]
    struct Inner(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("opening store db: {0}")]
    struct Outer(#[source] Inner);

    #[test]
    fn inputs_that_never_end_are_cut_at_the_limit() {
        let e = read_input(std::path::Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(matches!(e, InputError::TooLarge { limit: 1024, .. }), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, b"abc").unwrap();
        assert_eq!(read_input(&small, 3).unwrap(), b"abc");
        assert!(read_input(&small, 2).is_err());
    }

    #[test]
    fn an_error_is_one_line_with_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = anyhow::Error::new(Outer(Inner(io))).context("cannot import x.csv");
        let line = describe_error(&e);
        assert_eq!(
            line,
            "cannot import x.csv: opening store db: cannot open the store at db: connection refused"
        );
        assert_eq!(line.matches("connection refused").count(), 1);
        assert_eq!(exit_status(&e), 1);
    }
}
