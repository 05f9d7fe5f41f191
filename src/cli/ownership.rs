//! `entitywatch ownership import`: who owns the suppliers, for the Affiliates (50 %) rule.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::args::SinkArgs;
use crate::app::{open_store, Bus};
use crate::config::Settings;
use crate::ownership::reader::read_ownership;
use crate::ownership::GraphBuilder;

#[derive(Debug, Subcommand)]
pub enum OwnershipCommand {
    /// Upsert holdings from a CSV file, screen their owners and alert on affiliates.
    ///
    /// Columns: owned_id (a supplier's or an owner's id), owner_id, owner_name, percent
    /// (required); owner_country, as_of (YYYY-MM-DD), source (optional). A later row for the
    /// same (owned_id, owner_id) replaces an earlier one. Every bad row is reported with its
    /// line and reason; self-ownership, totals over 100 % and cycles are reported too.
    Import(OwnershipImportArgs),
}

#[derive(Debug, Args)]
pub struct OwnershipImportArgs {
    /// The CSV file (`-` for standard input).
    pub file: PathBuf,
    /// Exit non-zero if any row was rejected.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub sinks: SinkArgs,
}

pub async fn run(command: OwnershipCommand, settings: &Settings) -> Result<()> {
    match command {
        OwnershipCommand::Import(args) => import(args, settings).await,
    }
}

async fn import(args: OwnershipImportArgs, settings: &Settings) -> Result<()> {
    let input: Box<dyn std::io::Read> = if args.file == std::path::Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("cannot open {}", args.file.display()))?,
        )
    };
    let import = read_ownership(std::io::BufReader::new(input))
        .map_err(|e| anyhow::anyhow!("cannot import {}: {e}", args.file.display()))?;
    for e in import.rejected.iter().chain(&import.warnings) {
        note!("{}: {e}", args.file.display());
    }
    let store = open_store(settings).await?;
    // Stored, owners screened, affiliates re-evaluated and alerted, in this process.
    let worker = Bus::embedded(&store).worker(&store, &args.sinks.settings())?;
    let outcome = worker.ownership_upserted(&import.records).await?;

    let holdings = store.holdings().await?;
    let mut b = GraphBuilder::with_capacity(holdings.len(), holdings.len());
    for h in &holdings {
        b.edge(&h.owned_id, &h.owner_id, h.share);
    }
    let graph = b.build();
    for a in graph.anomalies().iter().chain(&graph.cycles()) {
        note!("ownership data: {a}");
    }
    println!(
        "{}: {} holdings stored, {} rejected, {} warnings; {} holdings in store; \
         owners matched: {}, affiliate alerts sent: {} ({} already sent)",
        args.file.display(),
        import.records.len(),
        import.rejected.len(),
        import.warnings.len(),
        holdings.len(),
        outcome.matches,
        outcome.alerts_delivered,
        outcome.alerts_already_delivered,
    );
    store.close().await;
    if args.strict && !import.rejected.is_empty() {
        bail!("{} rows were rejected", import.rejected.len());
    }
    Ok(())
}
