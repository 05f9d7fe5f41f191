//! `entitywatch suppliers import|export`: the supplier master in and out.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use tracing::info;

use super::args::SinkArgs;
use super::progress_bar;
use crate::app::{open_existing_store, open_store, Bus};
use crate::config::Settings;
use crate::store::UpsertCounts;
use crate::suppliers::{write_suppliers, ReadLimits, SupplierBatches, SupplierFileError};
use crate::worker::EventOutcome;

#[derive(Debug, Subcommand)]
pub enum SuppliersCommand {
    /// Upsert supplier records by id from a CSV file.
    ///
    /// Required columns: id, name. Optional: aliases (separated by ; or |), country (ISO-2 or
    /// name), address; any other column is kept as a reference field. Every bad row is reported
    /// with its line number and reason; every good row is stored.
    Import(SuppliersImportArgs),
    /// Write the stored supplier records as CSV to stdout (or --output).
    Export(SuppliersExportArgs),
    /// Delete supplier records by id: they are no longer screened. An id that is not stored is
    /// an error naming it (the others are still deleted).
    Delete(SuppliersDeleteArgs),
}

#[derive(Debug, Args)]
pub struct SuppliersDeleteArgs {
    /// The ids of the suppliers to delete.
    #[arg(required = true)]
    pub ids: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SuppliersImportArgs {
    /// The CSV file (`-` for standard input).
    pub file: PathBuf,
    /// Longest accepted field, in bytes; longer fields reject their row.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_field_bytes: usize,
    /// Exit non-zero if any row was rejected (for scripted imports).
    #[arg(long)]
    pub strict: bool,
    /// Do not screen the imported suppliers against the stored Entity List snapshot.
    #[arg(long)]
    pub no_screen: bool,
    #[command(flatten)]
    pub sinks: SinkArgs,
}

#[derive(Debug, Args)]
pub struct SuppliersExportArgs {
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

pub async fn run(command: SuppliersCommand, settings: &Settings) -> Result<()> {
    match command {
        SuppliersCommand::Import(args) => import(args, settings).await,
        SuppliersCommand::Export(args) => export(args, settings).await,
        SuppliersCommand::Delete(args) => delete(args, settings).await,
    }
}

async fn import(args: SuppliersImportArgs, settings: &Settings) -> Result<()> {
    let stdin = args.file == std::path::Path::new("-");
    let (input, size): (Box<dyn std::io::Read>, u64) = if stdin {
        (Box::new(std::io::stdin().lock()), 0)
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(file), size)
    };
    let store = open_store(settings).await?;
    let limits = ReadLimits {
        max_field_bytes: args.max_field_bytes,
        ..ReadLimits::default()
    };
    let cannot_import = |e: SupplierFileError| {
        let hint = match &e {
            SupplierFileError::MissingColumns { found, .. }
                if found.len() == 1 && found[0].contains(';') =>
            {
                " (the header looks semicolon-separated, as some spreadsheets save CSV; save \
                 it comma-separated)"
            }
            _ => "",
        };
        anyhow::anyhow!("cannot import {}: {e}{hint}", args.file.display())
    };
    // Streamed: a batch is read, then stored and screened (its upserts and decisions in one
    // transaction, then its alerts), then the next is read, so memory is one batch whatever
    // the file's size. A crash mid-import leaves whole batches stored; re-running the import
    // redoes the rest, reusing the stored decisions, and the delivery ledger sends no alert
    // twice.
    let mut batches = SupplierBatches::new(
        std::io::BufReader::new(input),
        limits,
        crate::worker::SUPPLIER_BATCH,
    )
    .map_err(cannot_import)?;
    // Screened here, in this process, with the alert topic of the embedded bus.
    let worker = if args.no_screen {
        None
    } else {
        Some(Bus::embedded(&store).worker(&store, &args.sinks.settings())?)
    };

    let digest_batch = crate::alerts::DigestSource::supplier_import();
    let bar = progress_bar(size, "importing");
    let mut rows = 0u64;
    let mut rejected = 0usize;
    let mut warnings = 0usize;
    let mut counts = UpsertCounts::default();
    let mut outcome = EventOutcome::default();
    let mut stored = 0u64;
    while let Some(batch) = batches.next_batch().map_err(|e| {
        bar.finish_and_clear();
        cannot_import(e).context(format!("{stored} rows were stored before the error"))
    })? {
        for error in &batch.errors {
            bar.suspend(|| note!("{}: {error}", args.file.display()));
        }
        rows += batch.rows;
        rejected += batch
            .errors
            .iter()
            .filter(|e| !e.reason.is_warning())
            .count();
        warnings += batch
            .errors
            .iter()
            .filter(|e| e.reason.is_warning())
            .count();
        let done = match &worker {
            Some(worker) => {
                // One import is one batch for Slack digests, however many batches of
                // records it is stored in.
                let (done, screened) = worker
                    .in_batch(&digest_batch, worker.import_batch(&batch.records, true))
                    .await?;
                outcome.add(&screened);
                done
            }
            None => store.upsert_suppliers(&batch.records).await?,
        };
        counts.inserted += done.inserted;
        // A record whose id an earlier batch of this file stored updates that row: for the
        // file it is one record, as if it had been read whole.
        counts.updated += done
            .updated
            .saturating_sub(batch.repeats_of_earlier_batches);
        stored += batch.records.len() as u64;
        bar.set_position(batches.bytes_read());
        bar.set_message(if worker.is_some() {
            format!("{stored} stored and screened")
        } else {
            format!("{stored} stored")
        });
    }
    bar.finish_and_clear();
    if let Some(worker) = &worker {
        // Alerts parked for a sink that was down get their attempt before the exit.
        outcome.absorb(worker.flush_outbox().await);
        println!(
            "screened against the stored Entity List: {} matches, {} alerts sent, {} already sent, {} dismissed",
            outcome.matches,
            outcome.alerts_delivered,
            outcome.alerts_already_delivered,
            outcome.dismissed
        );
    }
    println!(
        "{}: {} rows read, {} stored ({} new, {} updated), {} rejected, {} warnings; {} suppliers in store",
        args.file.display(),
        rows,
        batches.distinct_ids(),
        counts.inserted,
        counts.updated,
        rejected,
        warnings,
        store.supplier_count().await?
    );
    store.close().await;
    if args.strict && rejected > 0 {
        bail!("{rejected} rows were rejected");
    }
    Ok(())
}

async fn export(args: SuppliersExportArgs, settings: &Settings) -> Result<()> {
    let store = open_existing_store(settings).await?;
    let records = store.suppliers().await?;
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            write_suppliers(std::io::BufWriter::new(file), &records)?;
        }
        None => write_suppliers(std::io::stdout().lock(), &records)?,
    }
    info!(suppliers = records.len(), "exported");
    store.close().await;
    Ok(())
}

async fn delete(args: SuppliersDeleteArgs, settings: &Settings) -> Result<()> {
    let store = open_existing_store(settings).await?;
    let mut missing = Vec::new();
    for id in &args.ids {
        if store.delete_supplier(id).await? {
            println!("deleted {id}");
        } else {
            missing.push(id.as_str());
        }
    }
    let left = store.supplier_count().await?;
    store.close().await;
    if !missing.is_empty() {
        bail!(
            "no supplier with id {}; {left} suppliers in store",
            missing.join(", ")
        );
    }
    println!("{left} suppliers in store");
    Ok(())
}
