//! `entitywatch list import | sync | reconcile`: the list snapshot from a Consolidated Screening
//! List file (offline), from the codified list (as change events on the bus), and the codified
//! list compared with the rules.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::args::ListSourceArgs;
use crate::app::{list_sync, open_store, Bus, SyncPatience};
use crate::config::Settings;
use crate::csl::{read_csl_path, snapshot, ShrinkGuard, SourceFilter};
use crate::list_sources::ListSourceKind;

#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// Replace the Entity List snapshot from a trade.gov Consolidated Screening List file
    /// (CSV in its 2019 or 2022/2025 layout, JSON with results[] or entries[], optionally gzip).
    ///
    /// Entries of the imported lists missing from the file are marked removed, and listed. An
    /// import that would remove more than --max-removed-share of a list (a file cut short) is
    /// refused with the numbers, changing nothing, unless --allow-shrink.
    Import(ListImportArgs),
    /// Sync the snapshot from the codified list: every entry it adds, revises or removes is
    /// published as a change event (source document `ecfr-DATE` or `csl-DIGEST`), all in one
    /// publish, for the workers to apply, re-screen and alert on. An unchanged list publishes
    /// nothing; a fetch or parse failure publishes nothing and exits non-zero.
    Sync(ListSyncArgs),
    /// Compare the eCFR's codified list with the snapshot the rules built: entries no rule
    /// explains, rule changes the list (dated after the rule) does not show, fields that differ.
    Reconcile(ListReconcileArgs),
}

#[derive(Debug, Args)]
pub struct ListSyncArgs {
    /// Which codified list to read.
    #[arg(long, value_enum, default_value = "ecfr")]
    pub from: ListSourceKind,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sources: ListSourceArgs,
}

#[derive(Debug, Args)]
pub struct ListReconcileArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sources: ListSourceArgs,
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
        ListCommand::Sync(args) => sync(args, settings).await,
        ListCommand::Reconcile(args) => reconcile(args, settings).await,
    }
}

async fn sync(args: ListSyncArgs, settings: &Settings) -> Result<()> {
    let store = open_store(settings).await?;
    let bus = Bus::connect(settings, &store).await?;
    let sync = list_sync(
        settings,
        &store,
        bus.change_publisher(),
        (&args.sources.ecfr_url, &args.sources.csl_url),
        SyncPatience::Full,
    )?;
    let report = sync.sync(args.from).await;
    bus.flush().await?;
    store.close().await;
    let report = report.context("list sync failed; nothing was published")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} {}: {}; {} added, {} revised, {} removed published; {} left as newer rules made them",
            report.source.as_str(),
            report.document_number.as_deref().unwrap_or("(not modified)"),
            report.outcome,
            report.added,
            report.revised,
            report.removed,
            report.not_yet_codified,
        );
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        if let Some(r) = &report.reconcile {
            print_reconcile(r);
        }
    }
    Ok(())
}

async fn reconcile(args: ListReconcileArgs, settings: &Settings) -> Result<()> {
    let store = open_store(settings).await?;
    let bus = Bus::embedded(&store);
    let sync = list_sync(
        settings,
        &store,
        bus.change_publisher(),
        (&args.sources.ecfr_url, &args.sources.csl_url),
        SyncPatience::Full,
    )?;
    let report = sync.reconcile().await;
    store.close().await;
    let report = report.context("list reconcile failed")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_reconcile(&report);
    }
    Ok(())
}

fn print_reconcile(r: &crate::list_sources::plan::ReconcileReport) {
    println!(
        "{}: {} codified entries; {} unexplained, {} unreflected, {} differing",
        r.source,
        r.codified_entries,
        r.unexplained.len(),
        r.unreflected.len(),
        r.differing.len()
    );
    for u in &r.unexplained {
        println!(
            "unexplained {} ({}): no rule added it{}",
            u.entity_key,
            u.name,
            u.last_document
                .as_deref()
                .map(|d| format!("; stored by {d}"))
                .unwrap_or_default()
        );
    }
    for u in &r.unreflected {
        println!(
            "unreflected {} ({}): {} by rule {} not in the codified list",
            u.entity_key, u.name, u.action, u.document_number
        );
    }
    for d in &r.differing {
        println!(
            "differing {} ({}): {} differ from rule {}",
            d.entity_key,
            d.name,
            d.fields.join(", "),
            d.document_number
        );
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
