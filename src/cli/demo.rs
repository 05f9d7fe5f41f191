//! `entitywatch demo`: the whole pipeline offline, on bundled rules and a sample supplier
//! master, against a local Federal Register replay.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::Args;

use super::args::SinkArgs;
use crate::alerts::Alert;
use crate::app::{App, ServiceSpec, WatcherOutput, WatcherSpec};
use crate::bus::kafka::ALERTS_TOPIC;
use crate::config::Settings;
use crate::federal_register::replay::{ReplayConfig, ReplayServer};
use crate::suppliers::{read_suppliers, ReadLimits};

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub sinks: SinkArgs,
    /// Keep the demo's SQLite database at this path instead of a temporary file.
    #[arg(long, value_name = "FILE")]
    pub keep: Option<PathBuf>,
}

pub async fn run(args: DemoArgs, settings: &Settings) -> Result<()> {
    let db_path = match &args.keep {
        Some(p) => p.clone(),
        None => std::env::temp_dir().join(format!(
            "entitywatch-demo-{}-{}.db",
            std::process::id(),
            chrono::Utc::now().timestamp_millis()
        )),
    };
    let server = ReplayServer::start(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ReplayConfig {
            documents: crate::demo::rules(),
            ..ReplayConfig::default()
        },
    )
    .await
    .context("starting the local Federal Register replay")?;
    // The demo's own store and Federal Register; never Kafka, whatever the environment says.
    let mut demo_settings = settings.clone();
    demo_settings.database_url = format!("sqlite://{}", db_path.display());
    demo_settings.federal_register_url =
        url::Url::parse(&server.base_url()).context("replay URL")?;
    demo_settings.kafka_brokers = None;
    let spec = ServiceSpec {
        watcher: Some(WatcherSpec {
            interval: std::time::Duration::from_secs(60),
            since: None,
            public_inspection: false,
            output: WatcherOutput::Bus,
        }),
        worker: true,
        sinks: args.sinks.settings(),
        ..ServiceSpec::default()
    };
    let mut app = App::build(&demo_settings, spec)
        .await
        .with_context(|| format!("opening the demo store {}", db_path.display()))?;

    let import = read_suppliers(crate::demo::SUPPLIERS_CSV.as_bytes(), ReadLimits::default())?;
    app.store().upsert_suppliers(&import.records).await?;
    let ownership =
        crate::ownership::reader::read_ownership(crate::demo::OWNERSHIP_CSV.as_bytes())?;
    app.store().upsert_ownership(&ownership.records).await?;
    println!(
        "entitywatch demo: {} suppliers imported; replaying {} Entity List rules from a local \
         Federal Register at {}",
        import.records.len(),
        crate::demo::rules().len(),
        server.base_url()
    );
    let since = NaiveDate::from_ymd_opt(2019, 1, 1).context("date")?;
    let report = app.poll_once(Some(since)).await?;
    println!(
        "watcher: {} rules found, {} entity change events published",
        report.documents_found, report.entity_events
    );
    let handled = app.drain().await?;
    let alerts = app.store().read_log(ALERTS_TOPIC, 0, i64::MAX).await?;
    println!(
        "worker: {handled} events screened, {} alerts:\n",
        alerts.len()
    );
    for message in &alerts {
        let alert: Alert = serde_json::from_str(&message.payload)?;
        println!("  {}", alert.summary());
        println!("      why: {}", alert.explanation);
        if let Some(policy) = &alert.entry.license_policy {
            println!("      licence review policy: {policy}");
        }
        for change in &alert.changes {
            println!("      changed: {change}");
        }
        if let Some(a) = &alert.affiliate {
            for e in &a.listed_entries {
                let citation = e.federal_register_citation.as_deref().unwrap_or("");
                println!("      listed owner: {} {}", e.name, citation.trim());
            }
        }
        println!("      rule: {}", alert.entry.rule_url());
    }
    app.close().await?;
    if args.keep.is_none() {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
        }
    }
    Ok(())
}
