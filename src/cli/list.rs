//! `entitywatch list import`: the list snapshot from a Consolidated Screening List file.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::app::open_store;
use crate::config::Settings;
use crate::csl::{read_csl_path, snapshot, ShrinkGuard, SourceFilter};

#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// Replace the Entity List snapshot from a trade.gov Consolidated Screening List file
    /// (CSV in its 2019 or 2022/2025 layout, JSON with results[] or entries[], optionally gzip).
    ///
    /// Entries of the imported lists missing from the file are marked removed, and listed. An
    /// import that would remove more than --max-removed-share of a list (a file cut short) is
    /// refused with the numbers, changing nothing, unless --allow-shrink.
    Import(ListImportArgs),
}

#[derive(Debug, Args)]
pub struct ListImportArgs {
    /// The screening list file (`-` for standard input).
    pub file: PathBuf,
    /// Which lists to keep: EL (default), SDN, DPL, MEU, UVL, ..., comma-separated, or `all`.
    /// A term that matches no list of the file is an error naming the lists it has.
    #[arg(long, default_value = "EL")]
    pub source: String,
    /// Accept an import that removes more than --max-removed-share of the listed entries.
    #[arg(long)]
    pub allow_shrink: bool,
    /// Largest share of the listed entries one import may remove (5%, 0.05).
    #[arg(long, default_value = "5%", value_name = "SHARE", value_parser = ShrinkGuard::parse_share)]
    pub max_removed_share: f64,
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
        note!("{}: {w}", args.file.display());
    }
    let snap = snapshot(&import.entries);
    let store = open_store(settings).await?;
    let guard = ShrinkGuard {
        max_removed_share: args.max_removed_share,
    };
    let allow_shrink = args.allow_shrink;
    let (plan, committed) = store
        .replace_entity_list_snapshot_if(&snap.entries, &|plan| {
            allow_shrink || guard.allows(plan.listed_before, plan.counts.removed)
        })
        .await?;
    if !committed {
        store.close().await;
        bail!(
            "{} would remove {} of the {} listed entries ({:.1}%), more than the {:.1}% one import \
             may remove; nothing was changed. Is the file cut short? If the removals are real, \
             pass --allow-shrink (or raise --max-removed-share)",
            args.file.display(),
            plan.counts.removed,
            plan.listed_before,
            100.0 * plan.counts.removed as f64 / plan.listed_before.max(1) as f64,
            100.0 * args.max_removed_share
        );
    }
    for (key, name) in &plan.removed {
        println!("removed {key}: {name}");
    }
    let counts = plan.counts;
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
