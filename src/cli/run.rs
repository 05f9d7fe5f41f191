//! `entitywatch run`: the whole service (watcher, worker, sinks, HTTP endpoint) in one process.

use std::time::Duration;

use anyhow::Result;
use chrono::NaiveDate;
use clap::Args;
use tracing::info;

use super::args::{ReadinessArgs, SinkArgs};
use crate::app::{App, Bus, ServiceSpec, WatcherOutput, WatcherSpec};
use crate::config::{parse_duration, redact_url, Settings};
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
