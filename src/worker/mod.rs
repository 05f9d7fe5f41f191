//! The worker: turns one change event into an updated list snapshot, stored screening decisions
//! and alerts.
//!
//! For each entity change it applies the change to the snapshot (which gives the entry's new
//! version), re-screens only the suppliers the candidate index finds for that entry, stores every
//! decision above the review floor, and delivers each alert to each sink exactly once per
//! (supplier, entry, version): the worker claims (alert, sink) in the store's delivery ledger
//! before calling the sink, renews the claim while it sends and marks it delivered after the
//! sink accepted. The caller commits the event's offset only after `handle` returned, so a crash
//! re-handles the event and the ledger absorbs the repeat; a rebalance that hands an event to a
//! second worker while the first still sends makes the second wait on the claim, not send.
//! Matching is CPU work and runs on the blocking pool, never on the async threads.
//!
//! Alerts are raised in batches for Slack digests: a change event's belong to its document
//! (a rule or a list sync), a supplier import's to the run ([`Worker::in_batch`]); the
//! document event closes its batch.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

mod affiliates;
pub mod consume;
mod delivery;

use delivery::Deliveries;
pub use delivery::{FlushReport, DEFAULT_CLAIM_LEASE};

use crate::alerts::{
    Alert, AlertEntry, AlertKind, AlertSink, AlertSupplier, DigestPolicy, DigestSource, RetryPolicy,
};
use crate::dead_letter::{DeadLetterError, DeadLetters};
use crate::domain::list_entry::{resolve_change, Resolution};
use crate::domain::{ListEntry, SupplierRecord};
use crate::events::{ChangeAction, ChangeEvent, EntityChange};
use crate::metrics::metrics;
use crate::outcome::{DecisionKind, MatchLabel};
use crate::screening::{self, Schema, Screener, SupplierIndex};
use crate::store::{ChangeOutcome, Decision, Store, StoreError, StoredEntry, UpsertCounts};
use crate::telemetry::{register_sink, ChangeUnmatched, DecisionMade, InternalEvent};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("store failed: {0}")]
    Store(#[from] StoreError),
    #[error("screening task failed: {0}")]
    Screening(String),
    #[error("dead-lettering failed, event not committed: {0}")]
    DeadLetter(#[from] DeadLetterError),
    /// Shutdown came while an alert was between delivery attempts: the event is left
    /// uncommitted, to be handled again after the restart (the ledger keeps what was sent).
    #[error("stopped before alert {alert_id} reached sink {sink}")]
    Interrupted { alert_id: String, sink: String },
}

/// What handling one event did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventOutcome {
    pub candidates: usize,
    pub matches: usize,
    pub alerts_delivered: usize,
    pub alerts_already_delivered: usize,
    pub alerts_dead_lettered: usize,
    /// Parked in the outbox for a sink that is down; sent in the background.
    pub alerts_queued: usize,
    pub dismissed: usize,
}

impl EventOutcome {
    /// Adds what the outbox did with the parked deliveries, for a one-shot command's totals.
    pub fn absorb(&mut self, flushed: FlushReport) {
        self.alerts_delivered += flushed.delivered;
        self.alerts_dead_lettered += flushed.dead_lettered;
        self.alerts_queued = self
            .alerts_queued
            .saturating_sub(flushed.delivered + flushed.dead_lettered);
    }

    /// Adds what another batch did.
    pub fn add(&mut self, other: &EventOutcome) {
        self.candidates += other.candidates;
        self.matches += other.matches;
        self.alerts_delivered += other.alerts_delivered;
        self.alerts_already_delivered += other.alerts_already_delivered;
        self.alerts_dead_lettered += other.alerts_dead_lettered;
        self.alerts_queued += other.alerts_queued;
        self.dismissed += other.dismissed;
    }
}

/// The supplier index, and the fingerprint of the supplier table it was built from.
type CachedIndex = ((i64, Option<String>), Arc<SupplierIndex<String>>);

/// The current list and the screener over it.
struct ScreeningList {
    entries: Vec<StoredEntry>,
    screener: Screener,
}

/// The screening list, and the fingerprint of the list it was built from.
type CachedList = ((i64, i64, Option<String>), Arc<ScreeningList>);

/// Suppliers stored and screened per batch (an import, a rescreen): enough that a batch's
/// writes are a handful of multi-row statements in one transaction, few enough that memory
/// stays flat whatever the file's size (10,000 records with their matches are a few MB).
pub const SUPPLIER_BATCH: usize = 10_000;

/// How old a list [`Worker::screen_names`] may answer from: a rule's changes reach ad-hoc name
/// screening within this, while a burst of requests asks the store once, not once each.
/// Supplier writes never use it: they screen against the list as stored.
pub const NAME_SCREENING_STALENESS: Duration = Duration::from_millis(500);

/// One (supplier, entry) pair the screener scored, to be decided.
struct Candidate<'a> {
    supplier: &'a SupplierRecord,
    entry: &'a StoredEntry,
    /// The entry version decided on (the one a change just wrote, or the snapshot's).
    version: i64,
    matched: &'a screening::Match,
    document: Option<String>,
}

/// A match with what the caller needs of its entry: which version it was scored against and
/// when that version was written (delta screening keeps only entries changed since a time).
#[derive(Debug, Clone, PartialEq)]
pub struct ListMatch {
    pub matched: screening::Match,
    pub entry_version: i64,
    pub entry_updated_at: chrono::DateTime<chrono::Utc>,
    /// The Federal Register document that wrote that version, if one did.
    pub entry_document: Option<String>,
}

/// Each screened record's id with its matches, in the order screened.
pub type MatchesById = Vec<(String, Vec<ListMatch>)>;

fn list_matches(list: &ScreeningList, matches: Vec<screening::Match>) -> Vec<ListMatch> {
    matches
        .into_iter()
        .map(|m| {
            let entry = &list.entries[m.entry];
            ListMatch {
                entry_version: entry.version,
                entry_updated_at: entry.updated_at,
                entry_document: entry.last_document.clone(),
                matched: m,
            }
        })
        .collect()
}

/// The last record of each id, in the order of those last occurrences (upsert semantics: a
/// later record replaces an earlier one, as a second import would).
fn last_of_each_id(records: &[SupplierRecord]) -> Vec<&SupplierRecord> {
    let mut last: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        last.insert(r.id(), i);
    }
    records
        .iter()
        .enumerate()
        .filter(|(i, r)| last.get(r.id()) == Some(i))
        .map(|(_, r)| r)
        .collect()
}

pub struct Worker {
    store: Store,
    /// Rebuilding the index over every supplier for every event would make a rule of 27
    /// entries cost 27 full index builds; it is rebuilt only when the suppliers changed.
    supplier_index: tokio::sync::Mutex<Option<CachedIndex>>,
    /// Rebuilding the screener over the whole list for every batch of an import would cost a
    /// hundred builds per million suppliers; it is rebuilt only when the list changed.
    screening_list: tokio::sync::Mutex<Option<CachedList>>,
    /// The list [`Worker::screen_names`] last used and when its fingerprint was checked: name
    /// screening (nothing stored or decided) may answer from a list up to
    /// [`NAME_SCREENING_STALENESS`] old instead of asking the store on every request.
    recent_list: std::sync::Mutex<Option<(std::time::Instant, Arc<ScreeningList>)>>,
    /// Sinks, ledger claims, the outbox and its dispatchers; its stop flag is the worker's
    /// (set once by [`Worker::request_stop`]; sticky: a stopped worker is done).
    deliveries: Arc<Deliveries>,
    /// The Affiliates rule's threshold; `None` when it is off (`--affiliates off`).
    affiliates: Option<crate::ownership::Share>,
    /// The evaluated ownership graph (see [`affiliates`]).
    affiliate_cache: tokio::sync::Mutex<Option<affiliates::AffiliateCache>>,
}

impl Drop for Worker {
    /// The outbox dispatchers hold the deliveries, not the worker: they must not outlive it.
    fn drop(&mut self) {
        self.deliveries.stop.send_replace(true);
    }
}

impl Worker {
    pub fn new(
        store: Store,
        sinks: Vec<Arc<dyn AlertSink>>,
        dead_letters: Arc<dyn DeadLetters>,
        retry: RetryPolicy,
    ) -> Self {
        for sink in &sinks {
            register_sink(sink.name());
        }
        Worker {
            deliveries: Arc::new(Deliveries::new(store.clone(), sinks, dead_letters, retry)),
            store,
            supplier_index: tokio::sync::Mutex::new(None),
            screening_list: tokio::sync::Mutex::new(None),
            recent_list: std::sync::Mutex::new(None),
            affiliates: Some(crate::ownership::Share::DEFAULT_THRESHOLD),
            affiliate_cache: tokio::sync::Mutex::new(None),
        }
    }

    /// Sets the Affiliates rule's threshold, or turns the rule off with `None`.
    pub fn with_affiliates(mut self, threshold: Option<crate::ownership::Share>) -> Self {
        self.affiliates = threshold;
        self
    }

    /// Sets how long a delivery claim lasts unless renewed: how long an alert whose sender
    /// died waits before another worker sends it (default 30 s).
    pub fn with_claim_lease(mut self, lease: Duration) -> Self {
        if let Some(d) = Arc::get_mut(&mut self.deliveries) {
            d.claim_lease = lease.max(Duration::from_millis(300));
        }
        self
    }

    /// Sends Slack digests for batches of more than `policy.over` alerts (`None`: every alert
    /// on its own, as the sinks were before digests).
    pub fn with_digests(mut self, policy: Option<DigestPolicy>) -> Self {
        if let Some(d) = Arc::get_mut(&mut self.deliveries) {
            d.set_digest(policy);
        }
        self
    }

    /// Runs `body` (an import's batch, a rescreen) with the alerts it raises counted in batch
    /// `source`: a Slack sink gets one digest for the batch if it raises more than
    /// `--slack-digest-over` alerts. The batch is decided when [`Worker::close_batch`] or
    /// [`Worker::flush_outbox`] says it is complete.
    pub async fn in_batch<F: std::future::Future>(
        &self,
        source: &DigestSource,
        body: F,
    ) -> F::Output {
        delivery::in_batch(source.clone(), body).await
    }

    /// The batch `source` is complete: its held alerts are decided now (a digest, or singles).
    pub async fn close_batch(&self, source: &DigestSource) -> Result<(), WorkerError> {
        self.deliveries.close_batch(source).await
    }

    /// Where this worker writes what it cannot handle.
    pub fn dead_letters(&self) -> &dyn DeadLetters {
        self.deliveries.dead_letters()
    }

    /// Asks the worker to stop: the message in hand is finished unless an alert of it is
    /// waiting for a retry, in which case it is left uncommitted (see
    /// [`WorkerError::Interrupted`]); no further message is taken.
    pub fn request_stop(&self) {
        self.deliveries.stop.send_replace(true);
    }

    pub fn stop_requested(&self) -> bool {
        *self.deliveries.stop.borrow()
    }

    /// Resolves once a stop was requested; any number of these may be made.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.deliveries.stopped()
    }

    /// Runs `body` (a consume loop) while forwarding `shutdown` to [`Worker::request_stop`].
    pub(crate) async fn until_stopped<T>(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
        body: impl std::future::Future<Output = T>,
    ) -> T {
        let forward = async {
            shutdown.await;
            self.request_stop();
            // Never completes: only `body` decides when the loop is over.
            std::future::pending::<()>().await
        };
        tokio::select! {
            r = body => r,
            _ = forward => unreachable!("the forwarder never completes"),
        }
    }

    /// Handles one event; when it returns Ok the event may be committed.
    pub async fn handle(&self, event: &ChangeEvent) -> Result<EventOutcome, WorkerError> {
        match event {
            ChangeEvent::Document(d) => {
                // A rule's document event follows its entity changes: its batch is complete.
                self.close_batch(&DigestSource::document(&d.source.document_number))
                    .await?;
                Ok(EventOutcome::default())
            }
            ChangeEvent::Entity(change) => {
                let batch = DigestSource::document(&change.source.document_number);
                let outcome = self.in_batch(&batch, self.handle_change(change)).await?;
                self.deliveries.batch_active(&batch).await?;
                self.refresh_snapshot_metrics().await;
                Ok(outcome)
            }
        }
    }

    /// Sets the supplier and list snapshot gauges from the store. A failure only leaves the
    /// gauges stale (and is logged): it must not fail the event that triggered it.
    pub async fn refresh_snapshot_metrics(&self) {
        match self.store.snapshot_stats().await {
            Ok(stats) => {
                let m = metrics();
                m.suppliers.set(stats.suppliers as i64);
                m.entity_list_entries.set(stats.entity_list_entries as i64);
                if let Some(t) = stats.suppliers_last_change {
                    m.suppliers_last_change.set(t.timestamp());
                }
                if let Some(t) = stats.entity_list_last_change {
                    m.entity_list_last_change.set(t.timestamp());
                }
            }
            Err(e) => warn!(error = %e, "cannot read snapshot sizes for the metrics"),
        }
    }

    #[tracing::instrument(skip_all, fields(entity = %change.entity_key, action = %change.action))]
    async fn handle_change(&self, change: &EntityChange) -> Result<EventOutcome, WorkerError> {
        let (resolved, resolution) = self.resolve(change).await?;
        let change = &resolved;
        let before = self.store.listed_entry(&change.entity_key).await?;
        let applied = self
            .store
            .apply_resolved_change(change, resolution.matched_by())
            .await?;
        let version = applied.version;
        if applied.outcome == ChangeOutcome::Superseded {
            tracing::debug!(
                version,
                "a later change of this entry was applied: nothing to do"
            );
            return Ok(EventOutcome::default());
        }
        let mut outcome = EventOutcome::default();
        let mut alerts = Vec::new();

        if change.action == ChangeAction::Removed {
            let alerted = self
                .store
                .suppliers_alerted_on(change.entity_key.as_str())
                .await?;
            let ids: Vec<&str> = alerted.iter().map(String::as_str).collect();
            let mut suppliers = self.store.suppliers_by_ids(&ids).await?;
            suppliers.sort_by(|a, b| a.id().cmp(b.id()));
            for supplier in suppliers {
                let entry = before
                    .as_ref()
                    .map(|b| alert_entry(&b.entry, version, change, &b.entry.name.to_string()))
                    .unwrap_or_else(|| entry_from_change(change, version));
                let alert = Alert::new(
                    AlertKind::Cleared,
                    alert_supplier(&supplier),
                    entry,
                    0.0,
                    format!("{} was removed from the Entity List", change.name),
                    Vec::new(),
                );
                DecisionMade {
                    label: MatchLabel::Cleared,
                }
                .emit();
                alerts.push(alert);
            }
            self.send_all(&alerts, &mut outcome).await?;
            self.affiliates_after_change(change, &mut outcome).await?;
            return Ok(outcome);
        }

        let Some(current) = self.store.listed_entry(&change.entity_key).await? else {
            warn!(entity = %change.entity_key, "change applied but entry not in snapshot");
            return Ok(outcome);
        };
        let index = self.supplier_index().await?;
        let changed = typed_screening_entry(&current);
        let timer = metrics().screening_duration.start_timer();
        let hits = tokio::task::spawn_blocking(move || {
            // Re-screening one entry needs from the screener only its word weights and floor,
            // and the weights are the fixed, versioned table (decisions must not depend on what
            // else is listed), so a screener over the changed entry alone scores exactly as one
            // over the whole list would — without reading and indexing the whole list for every
            // entry of a rule.
            let screener = Screener::new_typed(vec![changed.clone()]);
            index
                .rescreen_typed(&screener, std::slice::from_ref(&changed))
                .into_iter()
                .map(|h| (h.supplier.clone(), h.matched))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| WorkerError::Screening(e.to_string()))?;
        timer.observe_duration();
        outcome.candidates = hits.len();
        metrics().suppliers_screened.inc_by(hits.len() as u64);

        let changes = before
            .as_ref()
            .map(|b| describe_changes(&b.entry, &current.entry))
            .unwrap_or_default();
        // The hits of a rule matching thousands of suppliers: their records read in a few
        // statements and their decisions stored in one transaction, not a round trip each.
        let ids: Vec<&str> = hits.iter().map(|(id, _)| id.as_str()).collect();
        let suppliers: std::collections::HashMap<String, SupplierRecord> = self
            .store
            .suppliers_by_ids(&ids)
            .await?
            .into_iter()
            .map(|s| (s.id().to_string(), s))
            .collect();
        let document = Some(change.source.document_number.clone());
        let candidates: Vec<Candidate<'_>> = hits
            .iter()
            .filter_map(|(id, matched)| {
                Some(Candidate {
                    supplier: suppliers.get(id)?,
                    entry: &current,
                    version,
                    matched,
                    document: document.clone(),
                })
            })
            .collect();
        let fresh = self.fresh_decisions(&candidates).await?;
        let decisions: Vec<Decision> = fresh.iter().map(|(d, _)| d.clone()).collect();
        let stored = self.store.record_decisions(&decisions).await?;
        let kind = if change.action == ChangeAction::Revised && before.is_some() {
            AlertKind::Revised
        } else {
            AlertKind::Listed
        };
        for ((c, (fresh, dismissed)), stored) in candidates.iter().zip(&fresh).zip(stored) {
            let Some(decision) = self.conclude(fresh, *dismissed, stored, &mut outcome) else {
                continue;
            };
            let alert = Alert::new(
                kind,
                alert_supplier(c.supplier),
                alert_entry(
                    &current.entry,
                    version,
                    change,
                    &c.matched.explanation.listed_name,
                ),
                decision.score,
                decision.explanation,
                if kind == AlertKind::Revised {
                    changes.clone()
                } else {
                    Vec::new()
                },
            );
            alerts.push(alert);
        }
        self.send_all(&alerts, &mut outcome).await?;
        self.affiliates_after_change(change, &mut outcome).await?;
        info!(
            version,
            candidates = outcome.candidates,
            matches = outcome.matches,
            delivered = outcome.alerts_delivered,
            "change screened"
        );
        Ok(outcome)
    }

    /// Finds the stored entry `change` is about (one identity whatever source keyed it) and
    /// returns the change addressed to that entry's key. A revision or removal that matches
    /// nothing is reported ([`ChangeUnmatched`]) and applied as the rule states it.
    async fn resolve(
        &self,
        change: &EntityChange,
    ) -> Result<(EntityChange, Resolution), WorkerError> {
        let candidates = self.store.identity_candidates().await?;
        let resolution = resolve_change(change, &candidates);
        let mut resolved = change.clone();
        match &resolution {
            Resolution::NameInCountry(k) | Resolution::NameAcrossCountries(k) => {
                info!(
                    change_key = %change.entity_key,
                    stored_key = %k,
                    matched_by = resolution.matched_by(),
                    "change applied to the stored entry of the same name"
                );
                resolved.entity_key = k.clone();
            }
            Resolution::Unmatched if change.action != ChangeAction::Added => {
                ChangeUnmatched { change }.emit();
            }
            _ => {}
        }
        Ok((resolved, resolution))
    }

    /// The index over all suppliers, rebuilt (off the async threads) only if they changed.
    async fn supplier_index(&self) -> Result<Arc<SupplierIndex<String>>, WorkerError> {
        let fingerprint = self.store.suppliers_fingerprint().await?;
        let mut cached = self.supplier_index.lock().await;
        if let Some((f, index)) = cached.as_ref() {
            if *f == fingerprint {
                return Ok(index.clone());
            }
        }
        let suppliers = self.store.suppliers().await?;
        let index = tokio::task::spawn_blocking(move || {
            Arc::new(SupplierIndex::new_typed(suppliers.iter().map(|s| {
                (
                    screening::SupplierRecord {
                        id: s.id().to_string(),
                        name: s.name().to_string(),
                        aliases: s.aliases().to_vec(),
                        country: s.country().cloned(),
                    },
                    Some(supplier_schema(s)),
                )
            })))
        })
        .await
        .map_err(|e| WorkerError::Screening(e.to_string()))?;
        *cached = Some((fingerprint, index.clone()));
        Ok(index)
    }

    /// A supplier upsert from the suppliers topic: stored, then screened against the whole list.
    pub async fn supplier_upserted(
        &self,
        record: SupplierRecord,
    ) -> Result<EventOutcome, WorkerError> {
        self.suppliers_upserted(std::slice::from_ref(&record)).await
    }

    /// A batch of supplier upserts from the suppliers topic: stored and screened as one batch
    /// (see [`Worker::import_batch`]); the caller stores the messages' offsets only after this
    /// returned Ok.
    pub async fn suppliers_upserted(
        &self,
        records: &[SupplierRecord],
    ) -> Result<EventOutcome, WorkerError> {
        let batch = DigestSource::supplier_batch();
        let (_, outcome) = self
            .in_batch(&batch, self.import_batch(records, true))
            .await?;
        self.close_batch(&batch).await?;
        self.refresh_snapshot_metrics().await;
        Ok(outcome)
    }

    /// A tombstone on the suppliers topic: the supplier is no longer screened.
    pub async fn supplier_deleted(&self, id: &str) -> Result<(), WorkerError> {
        self.store.delete_supplier(id).await?;
        self.refresh_snapshot_metrics().await;
        Ok(())
    }

    /// Stores a batch of supplier records and, with `screen`, screens them against the whole
    /// current list: the upserts and every decision go to the store in one transaction (group
    /// commit: one durable write per batch, not two per decision), then the batch's alerts are
    /// delivered. A crash before the commit loses nothing that was promised (the caller has
    /// not acknowledged the batch: the import is re-run, the offsets were not stored); a crash
    /// after it redoes the batch on the same basis, reusing the stored decisions, and the
    /// delivery ledger absorbs the alerts already sent. If `records` repeats an id, the last
    /// one wins.
    pub async fn import_batch(
        &self,
        records: &[SupplierRecord],
        screen: bool,
    ) -> Result<(UpsertCounts, EventOutcome), WorkerError> {
        let (counts, outcome, _) = self.import_batch_reporting(records, screen).await?;
        Ok((counts, outcome))
    }

    /// [`Worker::import_batch`], also handing back each stored record's id with its matches
    /// (above the review floor, best first) and the list entry each is against, for a caller
    /// that answers with them (the HTTP API's supplier upserts). The same path, so the API's
    /// writes keep the import's exactly-once alerts.
    #[tracing::instrument(skip_all, fields(suppliers = records.len()))]
    pub async fn import_batch_reporting(
        &self,
        records: &[SupplierRecord],
        screen: bool,
    ) -> Result<(UpsertCounts, EventOutcome, MatchesById), WorkerError> {
        let mut outcome = EventOutcome::default();
        let records = last_of_each_id(records);
        let list = if screen {
            Some(self.screening_list().await?)
        } else {
            None
        };
        let screened = match &list {
            Some(list) => self.screen_records(list, &records).await?,
            None => Vec::new(),
        };
        let candidates: Vec<Candidate<'_>> = screened
            .iter()
            .flat_map(|(supplier, matches)| {
                let list = list.as_ref().expect("screened only with a list");
                matches.iter().map(move |matched| {
                    let entry = &list.entries[matched.entry];
                    Candidate {
                        supplier,
                        entry,
                        version: entry.version,
                        matched,
                        document: entry.last_document.clone(),
                    }
                })
            })
            .collect();
        outcome.candidates = candidates.len();
        let fresh = self.fresh_decisions(&candidates).await?;
        let decisions: Vec<Decision> = fresh.iter().map(|(d, _)| d.clone()).collect();
        let owned: Vec<SupplierRecord> = records.iter().map(|r| (*r).clone()).collect();
        let (counts, stored) = self.store.store_screened_batch(&owned, &decisions).await?;
        let mut alerts = Vec::new();
        for ((c, (fresh, dismissed)), stored) in candidates.iter().zip(&fresh).zip(stored) {
            let Some(decision) = self.conclude(fresh, *dismissed, stored, &mut outcome) else {
                continue;
            };
            alerts.push(Alert::new(
                AlertKind::Listed,
                alert_supplier(c.supplier),
                snapshot_alert_entry(c.entry, &c.matched.explanation.listed_name),
                decision.score,
                decision.explanation,
                Vec::new(),
            ));
        }
        self.send_all(&alerts, &mut outcome).await?;
        tracing::debug!(
            matches = outcome.matches,
            delivered = outcome.alerts_delivered,
            "supplier batch stored and screened"
        );
        let reported = match &list {
            Some(list) => screened
                .into_iter()
                .map(|(s, matches)| (s.id().to_string(), list_matches(list, matches)))
                .collect(),
            None => Vec::new(),
        };
        Ok((counts, outcome, reported))
    }

    /// Screens names that are not stored suppliers against the whole current list (the
    /// screener the imports use, rebuilt only when the list changed): nothing is stored,
    /// decided or sent. Each query comes back with its matches above the review floor.
    pub async fn screen_names(
        &self,
        queries: Vec<(screening::SupplierRecord<()>, Option<Schema>)>,
    ) -> Result<Vec<Vec<ListMatch>>, WorkerError> {
        use rayon::prelude::*;
        let recent = self
            .recent_list
            .lock()
            .expect("the lock is never held across a panic")
            .as_ref()
            .filter(|(checked, _)| checked.elapsed() < NAME_SCREENING_STALENESS)
            .map(|(_, list)| list.clone());
        let list = match recent {
            Some(list) => list,
            None => {
                let list = self.screening_list().await?;
                *self
                    .recent_list
                    .lock()
                    .expect("the lock is never held across a panic") =
                    Some((std::time::Instant::now(), list.clone()));
                list
            }
        };
        if list.entries.is_empty() || queries.is_empty() {
            return Ok(vec![Vec::new(); queries.len()]);
        }
        let screening = list.clone();
        // A name of no stated kind is scored as `entitywatch screen` scores it: against every
        // entry, by the rules of the entry's kind.
        let matches = tokio::task::spawn_blocking(move || {
            let screener = &screening.screener;
            let one = |(q, schema): &(screening::SupplierRecord<()>, Option<Schema>)| match schema {
                Some(schema) => {
                    screener.screen_typed(&q.name, &q.aliases, q.country.as_ref(), *schema)
                }
                None => screener.screen(&q.name, &q.aliases, q.country.as_ref()),
            };
            // A handful of names costs less than handing them to the thread pool.
            if queries.len() <= 4 {
                queries.iter().map(one).collect::<Vec<_>>()
            } else {
                queries.par_iter().map(one).collect::<Vec<_>>()
            }
        })
        .await
        .map_err(|e| WorkerError::Screening(e.to_string()))?;
        Ok(matches
            .into_iter()
            .map(|m| list_matches(&list, m))
            .collect())
    }

    /// Screens suppliers (already stored) against the whole current list, with the same
    /// decisions, dismissals and exactly-once alerts as a change, a batch at a time.
    #[tracing::instrument(skip_all, fields(suppliers = ids.len()))]
    pub async fn screen_suppliers(&self, ids: &[String]) -> Result<EventOutcome, WorkerError> {
        let mut outcome = EventOutcome::default();
        for chunk in ids.chunks(SUPPLIER_BATCH) {
            let wanted: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let records = self.store.suppliers_by_ids(&wanted).await?;
            if records.is_empty() {
                continue;
            }
            let (_, batch) = self.import_batch(&records, true).await?;
            outcome.add(&batch);
        }
        info!(
            matches = outcome.matches,
            delivered = outcome.alerts_delivered,
            "suppliers screened against the whole list"
        );
        Ok(outcome)
    }

    /// The current list and a screener over it, rebuilt only when the list changed: a
    /// million-supplier import screens a hundred batches against one list.
    async fn screening_list(&self) -> Result<Arc<ScreeningList>, WorkerError> {
        let fingerprint = self.store.listed_fingerprint().await?;
        let mut cached = self.screening_list.lock().await;
        if let Some((f, list)) = cached.as_ref() {
            if *f == fingerprint {
                return Ok(list.clone());
            }
        }
        let entries = self.store.listed_entries().await?;
        let list = tokio::task::spawn_blocking(move || {
            let screener = Screener::new_typed(entries.iter().map(typed_screening_entry).collect());
            Arc::new(ScreeningList { entries, screener })
        })
        .await
        .map_err(|e| WorkerError::Screening(e.to_string()))?;
        *cached = Some((fingerprint, list.clone()));
        Ok(list)
    }

    /// Scores `records` against `list` on the blocking pool, in parallel; every record comes
    /// back with its matches (possibly none), in order.
    async fn screen_records<'r>(
        &self,
        list: &Arc<ScreeningList>,
        records: &[&'r SupplierRecord],
    ) -> Result<Vec<(&'r SupplierRecord, Vec<screening::Match>)>, WorkerError> {
        if list.entries.is_empty() || records.is_empty() {
            return Ok(Vec::new());
        }
        metrics().suppliers_screened.inc_by(records.len() as u64);
        let timer = metrics().screening_duration.start_timer();
        let query: Vec<(screening::SupplierRecord<()>, Schema)> = records
            .iter()
            .map(|s| {
                (
                    screening::SupplierRecord {
                        id: (),
                        name: s.name().to_string(),
                        aliases: s.aliases().to_vec(),
                        country: s.country().cloned(),
                    },
                    supplier_schema(s),
                )
            })
            .collect();
        let list = list.clone();
        let matches = tokio::task::spawn_blocking(move || list.screener.screen_many_typed(&query))
            .await
            .map_err(|e| WorkerError::Screening(e.to_string()))?;
        timer.observe_duration();
        Ok(records.iter().copied().zip(matches).collect())
    }

    /// Delivers a dead-lettered alert again to every sink that has not accepted it (the
    /// ledger decides, so redoing it twice sends nothing twice); one that fails again is
    /// dead-lettered again with the new reason.
    pub async fn redeliver(&self, alert: &Alert) -> Result<EventOutcome, WorkerError> {
        let mut outcome = EventOutcome::default();
        self.send(alert, &mut outcome).await?;
        Ok(outcome)
    }

    /// The decision each candidate calls for as scored now, and whether a reviewer dismissed
    /// the pair at this version (read for the whole batch at once). A match no reviewer
    /// dismissed is a `match`, a dismissed one `dismissed`, anything else above the floor a
    /// `near_miss`.
    /// Decides one (supplier or owner, entry, version) pair as a batch of one, for the callers
    /// that decide pair by pair (the owners of the Affiliates rule).
    async fn decide(
        &self,
        supplier: &SupplierRecord,
        entry: &StoredEntry,
        version: i64,
        matched: &screening::Match,
        document: Option<String>,
        outcome: &mut EventOutcome,
    ) -> Result<Option<Decision>, WorkerError> {
        let candidates = [Candidate {
            supplier,
            entry,
            version,
            matched,
            document,
        }];
        let fresh = self.fresh_decisions(&candidates).await?;
        let decisions: Vec<Decision> = fresh.iter().map(|(d, _)| d.clone()).collect();
        let stored = self.store.record_decisions(&decisions).await?;
        let mut decided = None;
        for ((fresh, dismissed), stored) in fresh.iter().zip(stored) {
            decided = decided.or(self.conclude(fresh, *dismissed, stored, outcome));
        }
        Ok(decided)
    }

    async fn fresh_decisions(
        &self,
        candidates: &[Candidate<'_>],
    ) -> Result<Vec<(Decision, bool)>, WorkerError> {
        let mut matched: Vec<&str> = candidates
            .iter()
            .filter(|c| c.matched.is_match)
            .map(|c| c.supplier.id())
            .collect();
        matched.sort_unstable();
        matched.dedup();
        let reviews = if matched.is_empty() {
            Default::default()
        } else {
            self.store.dismissed_versions(&matched).await?
        };
        Ok(candidates
            .iter()
            .map(|c| {
                let key = c.entry.entry.entity_key.as_str();
                let version = c.version;
                let dismissed = c.matched.is_match
                    && reviews
                        .get(&(c.supplier.id().to_string(), key.to_string()))
                        .is_some_and(|v| *v >= version);
                let kind = match (c.matched.is_match, dismissed) {
                    (true, true) => DecisionKind::Dismissed,
                    (true, false) => DecisionKind::Match,
                    (false, _) => DecisionKind::NearMiss,
                };
                let decision = Decision {
                    supplier_id: c.supplier.id().to_string(),
                    entity_key: key.to_string(),
                    entry_version: version,
                    basis: decision_basis(c.supplier),
                    score: c.matched.score,
                    decision: kind,
                    explanation: c.matched.explanation.to_string(),
                    document_number: c.document.clone(),
                };
                (decision, dismissed)
            })
            .collect())
    }

    /// What a decision comes to once stored: a decision already stored on the same basis
    /// (matcher version, supplier record) stands over the one made now, so re-handling an
    /// event — a replay into a fresh consumer group, a rebalance, a re-run import — decides
    /// exactly as the first time did, whatever the list has become since. Returns the
    /// decision to alert on: a match that no reviewer dismissed at this version.
    fn conclude(
        &self,
        fresh: &Decision,
        dismissed: bool,
        stored: Decision,
        outcome: &mut EventOutcome,
    ) -> Option<Decision> {
        if stored.decision != fresh.decision {
            info!(
                supplier = %fresh.supplier_id,
                entity = %fresh.entity_key,
                version = fresh.entry_version,
                stored = %stored.decision,
                stored_score = stored.score,
                rescored = fresh.score,
                "a decision on this basis was already made; it stands (`entitywatch rescreen` re-decides deliberately)"
            );
        }
        // A reviewer's dismissal at this version stands over the stored decision (the review is
        // its own record in the audit trail).
        let decision = if dismissed && stored.decision == DecisionKind::Match {
            DecisionKind::Dismissed
        } else {
            stored.decision
        };
        if decision == DecisionKind::Dismissed {
            outcome.dismissed += 1;
        }
        DecisionMade {
            label: decision.metric_label(),
        }
        .emit();
        if decision == DecisionKind::Match {
            outcome.matches += 1;
            Some(stored)
        } else {
            None
        }
    }

    /// Delivers `alert` to every sink that has not accepted it yet.
    async fn send(&self, alert: &Alert, outcome: &mut EventOutcome) -> Result<(), WorkerError> {
        self.send_all(std::slice::from_ref(alert), outcome).await
    }

    /// Delivers `alerts` (those of one event) to every sink that has not accepted them yet
    /// (see [`delivery`]): the alert topic first, then each other sink as a queue of its own,
    /// a sink that is down parked in the outbox. Each (alert, sink) is delivered,
    /// dead-lettered or parked before this returns, and the caller commits the event only then.
    async fn send_all(
        &self,
        alerts: &[Alert],
        outcome: &mut EventOutcome,
    ) -> Result<(), WorkerError> {
        self.deliveries.send_all(alerts, outcome).await
    }

    /// Waits until the alerts this worker parked for sinks that were down are delivered or
    /// dead-lettered (each gets at least one attempt, so this ends), or a stop was requested.
    /// One-shot commands call it before they exit; the service's dispatchers simply go on.
    pub async fn flush_outbox(&self) -> FlushReport {
        self.deliveries.flush().await
    }

    /// Starts the outbox dispatchers now (the consume loop does, when a worker starts), so
    /// that alerts a dead worker left parked are adopted even before this one parks any.
    pub fn start_outbox(&self) {
        self.deliveries.start_dispatchers();
    }

    /// After a stop: waits until the outbox dispatchers have finished the attempt in hand
    /// (bounded by the sink timeout) and put back what they had not sent.
    pub async fn stop_outbox(&self) {
        self.deliveries.wait_for_dispatchers().await;
    }
}

/// An entry as the screener takes it, with its kind when the source gave one: a pair scores by
/// the rules of its kinds, and a person entry never matches an organisation supplier.
fn typed_screening_entry(l: &StoredEntry) -> (screening::ListedEntry, Option<Schema>) {
    (
        screening::ListedEntry {
            key: l.entry.entity_key.clone(),
            name: l.entry.name.to_string(),
            aliases: l.entry.aliases.clone(),
            countries: l.entry.countries.clone(),
        },
        l.entry.schema,
    )
}

/// A supplier is an organisation unless its record says otherwise.
fn supplier_schema(s: &SupplierRecord) -> Schema {
    s.screening_schema()
}

fn alert_supplier(s: &SupplierRecord) -> AlertSupplier {
    AlertSupplier {
        id: s.id().to_string(),
        name: s.name().to_string(),
        country: s.country().map(|c| c.to_string()),
    }
}

fn alert_entry(
    entry: &ListEntry,
    version: i64,
    change: &EntityChange,
    matched_name: &str,
) -> AlertEntry {
    AlertEntry {
        entity_key: entry.entity_key.clone(),
        version,
        name: entry.name.to_string(),
        matched_name: matched_name.to_string(),
        aliases: entry.aliases.clone(),
        country: change.country.to_string(),
        country_name: change.country_name.clone(),
        license_requirement: entry.license_requirement.clone(),
        license_policy: entry.license_policy.clone(),
        federal_register_citation: entry.federal_register_citation.clone(),
        document_number: change.source.document_number.clone(),
        html_url: change.source.html_url.clone(),
    }
}

/// An alert entry for a match found by screening a supplier against the stored snapshot,
/// where no change event is at hand.
fn snapshot_alert_entry(l: &StoredEntry, matched_name: &str) -> AlertEntry {
    let e = &l.entry;
    let country = e
        .countries
        .first()
        .cloned()
        .unwrap_or_else(crate::events::CountryCode::unknown);
    AlertEntry {
        entity_key: e.entity_key.clone(),
        version: l.version,
        name: e.name.to_string(),
        matched_name: matched_name.to_string(),
        aliases: e.aliases.clone(),
        country: country.to_string(),
        country_name: country.to_string(),
        license_requirement: e.license_requirement.clone(),
        license_policy: e.license_policy.clone(),
        federal_register_citation: e.federal_register_citation.clone(),
        document_number: l.last_document.clone().unwrap_or_default(),
        html_url: None,
    }
}

fn entry_from_change(change: &EntityChange, version: i64) -> AlertEntry {
    AlertEntry {
        entity_key: change.entity_key.clone(),
        version,
        name: change.name.to_string(),
        matched_name: change.name.to_string(),
        aliases: change.aliases.clone(),
        country: change.country.to_string(),
        country_name: change.country_name.clone(),
        license_requirement: change.license_requirement.clone(),
        license_policy: change.license_policy.clone(),
        federal_register_citation: change.federal_register_citation.clone(),
        document_number: change.source.document_number.clone(),
        html_url: change.source.html_url.clone(),
    }
}

/// What a revision changed, one human line per field.
fn describe_changes(before: &ListEntry, after: &ListEntry) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{name}: {a:?} → {b:?}"));
        }
    };
    field("name", before.name.to_string(), after.name.to_string());
    field(
        "aliases",
        before.aliases.join("; "),
        after.aliases.join("; "),
    );
    field(
        "addresses",
        before.addresses.join("; "),
        after.addresses.join("; "),
    );
    field(
        "license_requirement",
        before.license_requirement.clone().unwrap_or_default(),
        after.license_requirement.clone().unwrap_or_default(),
    );
    field(
        "license_policy",
        before.license_policy.clone().unwrap_or_default(),
        after.license_policy.clone().unwrap_or_default(),
    );
    field(
        "federal_register_citation",
        before.federal_register_citation.clone().unwrap_or_default(),
        after.federal_register_citation.clone().unwrap_or_default(),
    );
    out
}

/// What a decision is a function of besides the entry version: the matcher version and the
/// supplier record's screened fields. The same basis means the same decision, made once.
pub fn decision_basis(supplier: &SupplierRecord) -> String {
    format!(
        "{}/{}",
        screening::MATCHER_VERSION,
        supplier.screened_fields_digest()
    )
}
