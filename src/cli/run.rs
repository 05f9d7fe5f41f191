//! `entitywatch run`: the whole service (watcher, worker, sinks, HTTP endpoint) in one process.

use std::time::Duration;

use anyhow::Result;
use chrono::NaiveDate;
use clap::Args;
use tracing::info;

use super::args::{ListSourceArgs, ReadinessArgs, SinkArgs};
use crate::app::{App, Bus, ListSyncSpec, ServiceSpec, WatcherOutput, WatcherSpec};
use crate::config::{parse_duration, redact_url, Settings};
use crate::list_sources::ListSourceKind;
use crate::shutdown::Shutdown;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Time between Federal Register polls, e.g. 60s, 5m, 1h30m; at least 10s (100ms for a
    /// Federal Register on this machine).
    #[arg(long, env = "ENTITYWATCH_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Search from this publication date (YYYY-MM-DD) on the first poll (backfill).
    #[arg(long, value_name = "DATE")]
    pub since: Option<NaiveDate>,
    /// Do not poll public-inspection filings.
    #[arg(long)]
    pub no_public_inspection: bool,
    /// Time between syncs of the snapshot from the codified list (the first runs at start,
    /// before the watcher when the snapshot is empty); 0s turns syncing off.
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
    #[command(flatten)]
    pub sinks: SinkArgs,
}

pub async fn run(args: RunArgs, settings: &Settings) -> Result<()> {
    settings.check_poll_interval(args.interval)?;
    let spec = ServiceSpec {
        watcher: Some(WatcherSpec {
            interval: args.interval,
            since: args.since,
            public_inspection: !args.no_public_inspection,
            output: WatcherOutput::Bus,
        }),
        worker: true,
        sinks: args.sinks.settings(),
        http: true,
        ready_max_poll_age: args.readiness.ready_max_poll_age,
        ready_max_stuck: Some(args.readiness.ready_max_stuck),
        retry_delay: None,
        list_sync: (!args.list_sync_interval.is_zero()).then(|| ListSyncSpec {
            ecfr_url: args.list_sources.ecfr_url.clone(),
            csl_url: args.list_sources.csl_url.clone(),
            source: args.list_sync_from,
            interval: args.list_sync_interval,
        }),
    };
    let app = App::build(settings, spec).await?;
    match app.bus() {
        Bus::Embedded { .. } => info!(
            federal_register = %settings.federal_register_url,
            store = %redact_url(&settings.database_url),
            "entitywatch running on the embedded bus"
        ),
        Bus::Kafka { config, .. } => info!(
            federal_register = %settings.federal_register_url,
            store = %redact_url(&settings.database_url),
            brokers = %config.settings.brokers,
            group = %config.group_id,
            "entitywatch running on Kafka"
        ),
    }
    app.run_until_stopped(Shutdown::on_signal()).await?;
    Ok(())
}
