//! The command line: one file per subcommand, each turning its flags into a call on the
//! library (mostly [`crate::app`]). Nothing here decides anything about rules, suppliers or
//! alerts; `main.rs` only parses, sets up telemetry and calls [`dispatch`].

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::{GlobalArgs, Settings};

pub mod args;
pub mod dead_letters;
pub mod demo;
pub mod evaluate;
pub mod list;
pub mod match_pairs;
pub mod parse;
pub mod rescreen;
pub mod review;
pub mod run;
pub mod screen;
pub mod suppliers;
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
    /// List the dead-letter topic, or deliver its alerts again once a sink is fixed.
    #[command(subcommand)]
    DeadLetters(dead_letters::DeadLettersCommand),
    /// Manage the supplier records screened against the Entity List.
    #[command(subcommand)]
    Suppliers(suppliers::SuppliersCommand),
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

/// Runs one subcommand with the resolved settings.
pub async fn dispatch(command: Command, settings: Settings) -> Result<()> {
    match command {
        Command::Parse(args) => parse::run(args, &settings),
        Command::Watch(args) => watch::run(args, &settings).await,
        Command::Run(args) => run::run(args, &settings).await,
        Command::Review(args) => review::run(args, &settings).await,
        Command::Demo(args) => demo::run(args, &settings).await,
        Command::Work(args) => work::run(args, &settings).await,
        Command::DeadLetters(command) => dead_letters::run(command, &settings).await,
        Command::Suppliers(command) => suppliers::run(command, &settings).await,
        Command::List(command) => list::run(command, &settings).await,
        Command::Match(args) => match_pairs::run(args),
        Command::Screen(args) => screen::run(args, &settings).await,
        Command::Evaluate(args) => evaluate::run(args),
        Command::Rescreen(args) => rescreen::run(args, &settings).await,
    }
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
