//! `entitywatch evaluate --pairs FILE.csv`: the matcher's precision, recall and F1.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::screening::evaluate_pairs;

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Labelled pairs CSV (`-` for standard input).
    #[arg(long)]
    pub pairs: PathBuf,
}

pub fn run(args: EvaluateArgs) -> Result<()> {
    let bytes = super::read_input(&args.pairs, super::MAX_INPUT_BYTES)?;
    let report = evaluate_pairs(bytes.as_slice())
        .with_context(|| format!("cannot evaluate {}", args.pairs.display()))?;
    print!("{report}");
    Ok(())
}
