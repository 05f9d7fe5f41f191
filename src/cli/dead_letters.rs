//! `entitywatch dead-letters list|redrive`: what went to the dead-letter topic, and sending its
//! alerts again once a sink is fixed.

use std::io::Write;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use tracing::info;

use super::args::SinkArgs;
use crate::app::{open_existing_store, Bus};
use crate::config::Settings;
use crate::dead_letter::{Cause, DeadLetter};

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
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
pub struct DeadLettersListArgs {
    /// One JSON object per dead letter instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DeadLettersRedriveArgs {
    #[command(flatten)]
    pub sinks: SinkArgs,
}

/// One dead letter as `list --json` prints it.
#[derive(Serialize)]
struct Listed<'a> {
    /// `position N` on the embedded bus, `topic/partition@offset` on Kafka.
    at: &'a str,
    key: &'a str,
    reason: String,
    dead_lettered_at: String,
    payload: &'a str,
    cause: &'a Cause,
}

pub async fn run(command: DeadLettersCommand, settings: &Settings) -> Result<()> {
    match command {
        DeadLettersCommand::List(args) => list(args, settings).await,
        DeadLettersCommand::Redrive(args) => redrive(args, settings).await,
    }
}

async fn list(args: DeadLettersListArgs, settings: &Settings) -> Result<()> {
    // On Kafka the dead letters are on the topic: no store is needed, or opened.
    let letters = match crate::bus::kafka::KafkaConfig::from_settings(settings) {
        Some(config) => Bus::kafka_existing(config)?.read_dead_letters().await?,
        None => {
            let store = open_existing_store(settings).await?;
            let letters = Bus::embedded(&store).read_dead_letters().await?;
            store.close().await;
            letters
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        for (at, letter) in &letters {
            let listed = Listed {
                at,
                key: &letter.key,
                reason: letter.reason(),
                dead_lettered_at: letter.dead_lettered_at.to_rfc3339(),
                payload: &letter.payload,
                cause: &letter.cause,
            };
            serde_json::to_writer(&mut out, &listed)?;
            writeln!(out)?;
        }
        return Ok(());
    }
    if letters.is_empty() {
        writeln!(out, "no dead letters")?;
        return Ok(());
    }
    for (at, letter) in &letters {
        let what = match letter.alert() {
            Some(alert) => format!("alert {}", alert.summary()),
            None => format!("message with key {:?}", letter.key),
        };
        writeln!(
            out,
            "{}  {at}  {what}",
            letter.dead_lettered_at.to_rfc3339()
        )?;
        writeln!(out, "    why: {}", letter.reason())?;
    }
    writeln!(
        out,
        "\n{} dead letters, {} of them alerts (`entitywatch dead-letters redrive` sends those again)",
        letters.len(),
        letters.iter().filter(|(_, l)| l.alert().is_some()).count()
    )?;
    Ok(())
}

async fn redrive(args: DeadLettersRedriveArgs, settings: &Settings) -> Result<()> {
    let store = open_existing_store(settings).await?;
    let bus = Bus::connect_existing(settings, &store)?;
    let letters: Vec<DeadLetter> = bus
        .read_dead_letters()
        .await?
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    let worker = bus.worker(&store, &args.sinks.settings())?;
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
    // Alerts parked for a sink that was down again get their attempt before the exit.
    let flushed = worker.flush_outbox().await;
    delivered += flushed.delivered;
    failed += flushed.dead_lettered;
    bus.flush().await?;
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
