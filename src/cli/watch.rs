//! `entitywatch watch`: the watcher alone, publishing to stdout, a file or the Kafka topic.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use chrono::NaiveDate;
use clap::Args;
use tracing::info;

use super::args::{ListSourceArgs, ReadinessArgs};
use crate::app::{App, ListSyncSpec, ServiceSpec, WatcherOutput, WatcherSpec};
use crate::config::{parse_duration, redact_url, Settings};
use crate::list_sources::ListSourceKind;
use crate::shutdown::Shutdown;

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Time between polls, e.g. 60s, 5m, 1h30m; at least 10s (100ms for a Federal Register
    /// on this machine).
    #[arg(long, env = "ENTITYWATCH_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Search from this publication date (YYYY-MM-DD) to backfill; documents already
    /// processed are still skipped. Without it: the checkpoint, or 30 days back on a first run.
    #[arg(long, value_name = "DATE")]
    pub since: Option<NaiveDate>,
    /// Poll once and exit (non-zero if the poll failed).
    #[arg(long)]
    pub once: bool,
    /// Append JSON-lines events to this file instead of stdout (or, with --kafka-brokers,
    /// instead of the Kafka change topic).
    #[arg(long, env = "ENTITYWATCH_OUTPUT", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Do not poll public-inspection filings.
    #[arg(long)]
    pub no_public_inspection: bool,
    /// Time between syncs of the codified list onto the Kafka change topic (the first at start,
    /// before polling when the snapshot is empty); 0s turns syncing off. Only when publishing
    /// to Kafka without --once: stdout and files are a rule's events alone.
    #[arg(long, env = "ENTITYWATCH_LIST_SYNC_INTERVAL", default_value = "24h", value_parser = parse_duration)]
    pub list_sync_interval: Duration,
    /// Which codified list the sync reads.
    #[arg(
        long,
        env = "ENTITYWATCH_LIST_SYNC_FROM",
        value_enum,
        default_value = "ecfr"
    )]
    pub list_sync_from: ListSourceKind,
    #[command(flatten)]
    pub list_sources: ListSourceArgs,
    #[command(flatten)]
    pub readiness: ReadinessArgs,
}

pub async fn run(args: WatchArgs, settings: &Settings) -> Result<()> {
    settings.check_poll_interval(args.interval)?;
    let output = match (&args.output, &settings.kafka_brokers) {
        (Some(path), _) => WatcherOutput::File(path.clone()),
        (None, Some(_)) => WatcherOutput::Bus,
        (None, None) => WatcherOutput::Stdout,
    };
    let spec = ServiceSpec {
        watcher: Some(WatcherSpec {
            interval: args.interval,
            since: args.since,
            public_inspection: !args.no_public_inspection,
            output: output.clone(),
        }),
        http: !args.once,
        ready_max_poll_age: args.readiness.ready_max_poll_age,
        ready_max_stuck: Some(args.readiness.ready_max_stuck),
        list_sync: (output == WatcherOutput::Bus
            && !args.once
            && !args.list_sync_interval.is_zero())
        .then(|| ListSyncSpec {
            ecfr_url: args.list_sources.ecfr_url.clone(),
            csl_url: args.list_sources.csl_url.clone(),
            source: args.list_sync_from,
            interval: args.list_sync_interval,
        }),
        ..ServiceSpec::default()
    };
    let app = App::build(settings, spec).await?;
    if output == WatcherOutput::Bus {
        if let crate::app::Bus::Kafka { config, .. } = app.bus() {
            info!(brokers = %config.settings.brokers, topic = %config.topics.entity_changes, "publishing to Kafka");
        }
    }
    info!(
        federal_register = %settings.federal_register_url,
        store = %redact_url(&settings.database_url),
        "watcher starting"
    );
    if args.once {
        let report = app.poll_once(args.since).await?;
        info!(?report, "single poll done");
        app.close().await?;
        info!("watcher stopped");
    } else {
        app.run_until_stopped(Shutdown::on_signal()).await?;
    }
    Ok(())
}
