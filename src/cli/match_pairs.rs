//! `entitywatch match --pairs FILE.csv`: scores name pairs, one output row per input row.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::screening::score_pair;

#[derive(Debug, Args)]
pub struct MatchArgs {
    /// CSV file with name1,name2 columns (other columns are ignored).
    #[arg(long)]
    pub pairs: PathBuf,
}

pub fn run(args: MatchArgs) -> Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(&args.pairs)
        .with_context(|| format!("cannot open {}", args.pairs.display()))?;
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
    for (i, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{} row {}", args.pairs.display(), i + 2))?;
        let a = row.get(c1).unwrap_or("");
        let b = row.get(c2).unwrap_or("");
        let score = score_pair(a, b);
        out.write_record([
            a,
            b,
            &format!("{:.4}", score.value),
            if score.is_match { "true" } else { "false" },
        ])?;
    }
    out.flush()?;
    Ok(())
}
