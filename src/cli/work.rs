//! `entitywatch work`: a worker alone, a member of the Kafka consumer group or a consumer of
//! the embedded bus of the store.

use anyhow::Result;
use clap::Args;
use tracing::info;

use super::args::SinkArgs;
use crate::app::{App, Bus, ServiceSpec};
use crate::config::{redact_url, Settings};
use crate::shutdown::Shutdown;

#[derive(Debug, Args)]
pub struct WorkArgs {
    #[command(flatten)]
    pub sinks: SinkArgs,
}

pub async fn run(args: WorkArgs, settings: &Settings) -> Result<()> {
    let spec = ServiceSpec {
        worker: true,
        sinks: args.sinks.settings(),
        http: true,
        ..ServiceSpec::default()
    };
    let app = App::build(settings, spec).await?;
    match app.bus() {
        Bus::Embedded { .. } => {
            info!(store = %redact_url(&settings.database_url), "worker running on the embedded bus")
        }
        Bus::Kafka { config, .. } => {
            info!(brokers = %config.settings.brokers, group = %config.group_id, "worker running on Kafka")
        }
    }
    app.run_until_stopped(Shutdown::on_signal()).await?;
    Ok(())
}
