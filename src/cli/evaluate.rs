//! `entitywatch evaluate --pairs FILE.csv`: the matcher's precision, recall and F1.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::screening::evaluate_pairs;

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Labelled pairs CSV.
    #[arg(long)]
    pub pairs: PathBuf,
}

pub fn run(args: EvaluateArgs) -> Result<()> {
    let file = std::fs::File::open(&args.pairs)
        .with_context(|| format!("cannot open {}", args.pairs.display()))?;
    let report = evaluate_pairs(std::io::BufReader::new(file))?;
    print!("{report}");
    Ok(())
}
