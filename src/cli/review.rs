//! `entitywatch review`: a reviewer's decision on a (supplier, entry) pair.

use anyhow::{bail, Result};
use clap::Args;

use crate::app::open_store;
use crate::config::Settings;
use crate::events::EntityKey;

#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The supplier's id.
    pub supplier_id: String,
    /// The entry's key, as in alerts (e.g. CN/dahua-technology).
    pub entry_key: String,
    /// Dismiss the pair: no alert for it until the entry's next revision.
    #[arg(long, required = true)]
    pub dismiss: bool,
    /// Why (kept with the decision for the audit trail).
    #[arg(long)]
    pub reason: String,
}

pub async fn run(args: ReviewArgs, settings: &Settings) -> Result<()> {
    let key = EntityKey::parse(&args.entry_key).map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.reason.trim().is_empty() {
        bail!("--reason must say why the pair is dismissed");
    }
    let store = open_store(settings).await?;
    if store.supplier(&args.supplier_id).await?.is_none() {
        bail!("no supplier with id {:?} in the store", args.supplier_id);
    }
    let Some(entry) = store.listed_entry(&key).await? else {
        bail!("no Entity List entry {key} in the snapshot");
    };
    debug_assert!(args.dismiss);
    store
        .dismiss(
            &args.supplier_id,
            key.as_str(),
            entry.version,
            args.reason.trim(),
        )
        .await?;
    println!(
        "dismissed {} ~ {} at version {}: no alert until the entry is revised",
        args.supplier_id, key, entry.version
    );
    store.close().await;
    Ok(())
}
