//! `entitywatch parse FILE.xml`: a rule's entity changes as JSON lines, without the network.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use tracing::info;

use crate::config::Settings;
use crate::events::{DocumentStage, SourceDocument};
use crate::federal_register::amendment::{parse_rule, ParseLimits};

#[derive(Debug, Args)]
pub struct ParseArgs {
    /// The rule's full-text XML (as served at the document's full_text_xml_url); `-` for
    /// standard input. At most --max-document-bytes are read.
    pub file: PathBuf,
    /// The document number to attribute changes to, if the XML carries no FRDOC line.
    #[arg(long)]
    pub document_number: Option<String>,
    /// Also print the document-level event (amendatory text, warnings) as the last line.
    #[arg(long)]
    pub with_document_event: bool,
}

pub fn run(args: ParseArgs, settings: &Settings) -> Result<()> {
    // Bounded before the parser sees it: `/dev/zero` or an endless pipe has no size to check.
    let xml = super::read_input(&args.file, settings.max_document_bytes as u64)?;
    let source = args
        .document_number
        .as_deref()
        .map(SourceDocument::from_number);
    let limits = ParseLimits {
        max_bytes: settings.max_document_bytes,
    };
    let rule = parse_rule(&xml, source, &limits)
        .with_context(|| format!("cannot parse {}", args.file.display()))?;
    for w in &rule.warnings {
        tracing::warn!(document = %rule.source.document_number, "{w}");
    }
    let written = (|| -> std::io::Result<()> {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for change in &rule.changes {
            serde_json::to_writer(&mut out, change)?;
            out.write_all(b"\n")?;
        }
        if args.with_document_event {
            let doc = rule.document_event(DocumentStage::Published);
            serde_json::to_writer(&mut out, &doc)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    })();
    match written {
        // `entitywatch parse x.xml | head` closes the pipe early; that is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        other => other.context("writing to stdout")?,
    }
    info!(
        document = %rule.source.document_number,
        changes = rule.changes.len(),
        warnings = rule.warnings.len(),
        "parsed"
    );
    Ok(())
}
