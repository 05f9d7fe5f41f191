//! `entitywatch match --pairs FILE.csv`: scores name pairs, one output row per input row.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::screening::{parse_pairs, DEFAULT_MAX_FIELD_BYTES};

#[derive(Debug, Args)]
pub struct MatchArgs {
    /// CSV file with name1,name2 columns and an optional schema column (Person, Company,
    /// Organization, ...: the pair is scored by the rules of its kind); other columns are
    /// ignored; `-` for standard input. A row without both names, with an unknown schema or an
    /// over-long field is reported with its line and skipped, and the command then exits
    /// non-zero.
    #[arg(long)]
    pub pairs: PathBuf,
}

pub fn run(args: MatchArgs) -> Result<()> {
    let bytes = super::read_input(&args.pairs, super::MAX_INPUT_BYTES)?;
    let file = parse_pairs(bytes.as_slice(), DEFAULT_MAX_FIELD_BYTES)
        .with_context(|| format!("cannot read {}", args.pairs.display()))?;
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_record(["name1", "name2", "score", "is_match"])?;
    let mut malformed = 0usize;
    for row in &file.rows {
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                // Scoring a missing or unreadable name would print a confident 0.0000,false for
                // a row that says nothing: the row is named and skipped.
                malformed += 1;
                note!("{} {e}; row skipped", args.pairs.display());
                continue;
            }
        };
        let score = row.score();
        out.write_record([
            row.name1.as_str(),
            row.name2.as_str(),
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
