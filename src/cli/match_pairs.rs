//! `entitywatch match --pairs FILE.csv`: scores name pairs, one output row per input row.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::screening::score_pair;

#[derive(Debug, Args)]
pub struct MatchArgs {
    /// CSV file with name1,name2 columns (other columns are ignored); `-` for standard input.
    /// A row without both names is reported with its line and skipped, and the command then
    /// exits non-zero.
    #[arg(long)]
    pub pairs: PathBuf,
}

pub fn run(args: MatchArgs) -> Result<()> {
    let bytes = super::read_input(&args.pairs, super::MAX_INPUT_BYTES)?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(bytes.as_slice());
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| {
                h.trim()
                    .trim_start_matches('\u{feff}')
                    .eq_ignore_ascii_case(name)
            })
            .with_context(|| {
                format!(
                    "{} has no {name} column (found: {})",
                    args.pairs.display(),
                    headers.iter().collect::<Vec<_>>().join(", ")
                )
            })
    };
    let (c1, c2) = (column("name1")?, column("name2")?);
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_record(["name1", "name2", "score", "is_match"])?;
    let mut malformed = 0usize;
    for row in reader.records() {
        let row = row.with_context(|| format!("cannot read {}", args.pairs.display()))?;
        let line = row.position().map_or(0, |p| p.line());
        let (Some(a), Some(b)) = (row.get(c1), row.get(c2)) else {
            // Scoring a missing name as "" would print a confident 0.0000,false for a row that
            // says nothing.
            malformed += 1;
            note!(
                "{} line {line}: {} fields, but name1 and name2 are columns {} and {}; row skipped",
                args.pairs.display(),
                row.len(),
                c1 + 1,
                c2 + 1
            );
            continue;
        };
        let score = score_pair(a, b);
        out.write_record([
            a,
            b,
            &format!("{:.4}", score.value),
            if score.is_match { "true" } else { "false" },
        ])?;
    }
    out.flush()?;
    if malformed > 0 {
        bail!(
            "{malformed} malformed rows in {} were skipped",
            args.pairs.display()
        );
    }
    Ok(())
}
