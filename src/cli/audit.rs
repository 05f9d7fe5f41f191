//! `entitywatch audit export`: every screening decision and every review, in time order, for
//! an auditor — streamed, so a store of millions of decisions exports in flat memory.

use std::io::Write;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use futures::TryStreamExt;

use crate::app::open_existing_store;
use crate::config::Settings;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write the audit trail to stdout: one record per screening decision (supplier, entry
    /// version, score, why, the rule, the matcher basis) and per review (who, when, what, why).
    Export(AuditExportArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    /// One JSON object per line.
    Jsonl,
    /// A header line, then one row per record (fields that could start a spreadsheet formula
    /// are neutralised).
    Csv,
}

#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// Only records on or after this date (YYYY-MM-DD) or instant (RFC 3339).
    #[arg(long, value_parser = super::alerts::parse_since)]
    pub since: Option<String>,
    #[arg(long, value_enum, default_value_t = AuditFormat::Jsonl)]
    pub format: AuditFormat,
}

pub async fn run(command: AuditCommand, settings: &Settings) -> Result<()> {
    match command {
        AuditCommand::Export(args) => export(args, settings).await,
    }
}

async fn export(args: AuditExportArgs, settings: &Settings) -> Result<()> {
    let store = open_existing_store(settings).await?;
    let written = write(&store, &args).await;
    store.close().await;
    match written {
        Ok(n) => {
            note!("{n} audit records written");
            Ok(())
        }
        // `audit export | head` closes the pipe early; that is not a failure.
        Err(e) if super::is_broken_pipe(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn write(store: &crate::store::Store, args: &AuditExportArgs) -> Result<usize> {
    let stdout = std::io::stdout();
    let out = std::io::BufWriter::new(stdout.lock());
    let records = store.audit_trail(args.since.as_deref()).await?;
    futures::pin_mut!(records);
    let mut n = 0usize;
    match args.format {
        AuditFormat::Jsonl => {
            let mut out = out;
            while let Some(r) = records.try_next().await? {
                n += 1;
                serde_json::to_writer(&mut out, &r)?;
                out.write_all(b"\n")?;
            }
            out.flush().context("writing the audit trail")?;
        }
        AuditFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(crate::store::AuditRecord::CSV_HEADER)?;
            while let Some(r) = records.try_next().await? {
                n += 1;
                w.write_record(r.csv_row())?;
            }
            w.flush().context("writing the audit trail")?;
        }
    }
    Ok(n)
}
