//! `entitywatch rescreen`: re-decides every supplier against the whole list with this build's
//! matcher, deliberately. Decisions are a function of (supplier record, entry version, matcher
//! version), so a new matcher or new word tables change nothing until this is run; it then
//! stores the new decisions beside the old ones, alerts on new matches (the ledger keeps an
//! alert already sent from going out again) and reports every decision that changed.

use std::collections::HashMap;

use anyhow::Result;
use clap::Args;

use super::args::SinkArgs;
use crate::app::{open_store, Bus};
use crate::config::Settings;
use crate::screening::MATCHER_VERSION;
use crate::store::Decision;
use crate::worker::decision_basis;

#[derive(Debug, Args)]
pub struct RescreenArgs {
    /// Print the report as JSON lines (one object per changed decision).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sinks: SinkArgs,
}

pub async fn run(args: RescreenArgs, settings: &Settings) -> Result<()> {
    let store = open_store(settings).await?;
    let suppliers = store.suppliers().await?;
    let current: HashMap<String, String> = suppliers
        .iter()
        .map(|s| (s.id().to_string(), decision_basis(s)))
        .collect();
    // The latest decision per (supplier, entry, version) made on another basis: what stood.
    let mut before: HashMap<(String, String, i64), Decision> = HashMap::new();
    for d in store.decisions().await? {
        if current.get(&d.supplier_id) != Some(&d.basis) {
            before.insert(
                (d.supplier_id.clone(), d.entity_key.clone(), d.entry_version),
                d,
            );
        }
    }
    let worker = Bus::embedded(&store).worker(&store, &args.sinks.settings())?;
    let ids: Vec<String> = current.keys().cloned().collect();
    let batch = crate::alerts::DigestSource::rescreen();
    let mut outcome = worker
        .in_batch(&batch, worker.screen_suppliers(&ids))
        .await?;
    outcome.absorb(worker.flush_outbox().await);
    let mut changed = 0usize;
    for d in store.decisions().await? {
        if current.get(&d.supplier_id) != Some(&d.basis) {
            continue;
        }
        let Some(old) = before.get(&(d.supplier_id.clone(), d.entity_key.clone(), d.entry_version))
        else {
            continue;
        };
        if old.decision == d.decision && (old.score - d.score).abs() < 1e-9 {
            continue;
        }
        changed += 1;
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "supplier_id": d.supplier_id,
                    "entity_key": d.entity_key,
                    "entry_version": d.entry_version,
                    "before": {"decision": old.decision.as_str(), "score": old.score, "basis": old.basis},
                    "after": {"decision": d.decision.as_str(), "score": d.score, "basis": d.basis},
                })
            );
        } else {
            println!(
                "{} ~ {} v{}: {} {:.3} → {} {:.3}",
                d.supplier_id,
                d.entity_key,
                d.entry_version,
                old.decision,
                old.score,
                d.decision,
                d.score
            );
        }
    }
    eprintln!(
        "rescreened {} suppliers with matcher {MATCHER_VERSION}: {changed} decisions changed; \
         {} matches, {} alerts sent, {} already sent",
        ids.len(),
        outcome.matches,
        outcome.alerts_delivered,
        outcome.alerts_already_delivered
    );
    store.close().await;
    Ok(())
}
