//! `entitywatch list import`: the list snapshot from a Consolidated Screening List file.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::app::open_store;
use crate::config::Settings;
use crate::csl::{read_csl_path, snapshot, SourceFilter};

#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// Replace the Entity List snapshot from a trade.gov Consolidated Screening List file
    /// (CSV in its 2019 or 2022/2025 layout, JSON with results[] or entries[], optionally gzip).
    ///
    /// Entries of the imported lists missing from the file are marked removed.
    Import(ListImportArgs),
}

#[derive(Debug, Args)]
pub struct ListImportArgs {
    /// The screening list file.
    pub file: PathBuf,
    /// Which lists to keep: EL (default), SDN, DPL, MEU, UVL, ..., comma-separated, or `all`.
    #[arg(long, default_value = "EL")]
    pub source: String,
}

pub async fn run(command: ListCommand, settings: &Settings) -> Result<()> {
    match command {
        ListCommand::Import(args) => import(args, settings).await,
    }
}

async fn import(args: ListImportArgs, settings: &Settings) -> Result<()> {
    let filter = SourceFilter::parse(&args.source);
    let import = read_csl_path(&args.file, &filter)
        .with_context(|| format!("cannot import {}", args.file.display()))?;
    for w in &import.warnings {
        eprintln!("{}: {w}", args.file.display());
    }
    let snap = snapshot(&import.entries);
    let store = open_store(settings).await?;
    let counts = store.replace_entity_list_snapshot(&snap.entries).await?;
    println!(
        "{}: {} rows, {} entries kept ({} rows merged into others), {} of other lists skipped; \
         {} new, {} updated, {} revived, {} unchanged, {} removed; {} entries in store",
        args.file.display(),
        import.rows,
        snap.entries.len(),
        snap.merged_rows,
        import.other_sources,
        counts.inserted,
        counts.updated,
        counts.revived,
        counts.unchanged,
        counts.removed,
        store.listed_entry_count().await?
    );
    store.close().await;
    Ok(())
}
