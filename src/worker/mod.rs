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

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

pub mod consume;

use crate::alerts::{
    deliver_until, Alert, AlertEntry, AlertKind, AlertSink, AlertSupplier, RetryPolicy,
};
use crate::dead_letter::{DeadLetter, DeadLetterError, DeadLetters};
use crate::domain::list_entry::{resolve_change, Resolution};
use crate::domain::{ListEntry, SupplierRecord};
use crate::events::{ChangeAction, ChangeEvent, EntityChange};
use crate::metrics::metrics;
use crate::outcome::{DecisionKind, MatchLabel};
use crate::screening::{self, Screener, SupplierIndex};
use crate::store::{
    ChangeOutcome, Claim, Decision, Delivery, Store, StoreError, StoredEntry, UpsertCounts,
};
use crate::telemetry::{
    register_sink, AlertAlreadyDelivered, AlertDeadLettered, AlertDelivered, ChangeUnmatched,
    DecisionMade, DeliveryRetried, InternalEvent,
};

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
    pub dismissed: usize,
}

impl EventOutcome {
    /// Adds what another batch did.
    pub fn add(&mut self, other: &EventOutcome) {
        self.candidates += other.candidates;
        self.matches += other.matches;
        self.alerts_delivered += other.alerts_delivered;
        self.alerts_already_delivered += other.alerts_already_delivered;
        self.alerts_dead_lettered += other.alerts_dead_lettered;
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

/// One (supplier, entry) pair the screener scored, to be decided.
struct Candidate<'a> {
    supplier: &'a SupplierRecord,
    entry: &'a StoredEntry,
    /// The entry version decided on (the one a change just wrote, or the snapshot's).
    version: i64,
    matched: &'a screening::Match,
    document: Option<String>,
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
    sinks: Vec<Arc<dyn AlertSink>>,
    dead_letters: Arc<dyn DeadLetters>,
    retry: RetryPolicy,
    /// Who this worker is in the delivery ledger's claims (host, pid and a random part).
    owner: String,
    /// How long a claim on a delivery lasts unless renewed; renewed every third of it.
    claim_lease: Duration,
    /// Set once by [`Worker::request_stop`]; deliveries stop retrying and consumers stop
    /// taking messages. Sticky: a stopped worker is done.
    stop: tokio::sync::watch::Sender<bool>,
    /// Sinks whose last delivery ran out of retries: down, as far as this worker knows.
    failing_sinks: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// What one (alert, sink) delivery came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Delivered,
    AlreadyDelivered,
    DeadLettered,
}

impl Sent {
    fn count(self, outcome: &mut EventOutcome) {
        match self {
            Sent::Delivered => outcome.alerts_delivered += 1,
            Sent::AlreadyDelivered => outcome.alerts_already_delivered += 1,
            Sent::DeadLettered => outcome.alerts_dead_lettered += 1,
        }
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
            store,
            supplier_index: tokio::sync::Mutex::new(None),
            screening_list: tokio::sync::Mutex::new(None),
            sinks,
            dead_letters,
            retry,
            owner: claim_owner(),
            claim_lease: DEFAULT_CLAIM_LEASE,
            stop: tokio::sync::watch::Sender::new(false),
            failing_sinks: Default::default(),
        }
    }

    /// Sets how long a delivery claim lasts unless renewed: how long an alert whose sender
    /// died waits before another worker sends it (default 30 s).
    pub fn with_claim_lease(mut self, lease: Duration) -> Self {
        self.claim_lease = lease.max(Duration::from_millis(300));
        self
    }

    /// Where this worker writes what it cannot handle.
    pub fn dead_letters(&self) -> &dyn DeadLetters {
        self.dead_letters.as_ref()
    }

    /// Asks the worker to stop: the message in hand is finished unless an alert of it is
    /// waiting for a retry, in which case it is left uncommitted (see
    /// [`WorkerError::Interrupted`]); no further message is taken.
    pub fn request_stop(&self) {
        self.stop.send_replace(true);
    }

    pub fn stop_requested(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once a stop was requested; any number of these may be made.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
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
            ChangeEvent::Document(_) => Ok(EventOutcome::default()),
            ChangeEvent::Entity(change) => {
                let outcome = self.handle_change(change).await?;
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
            return Ok(outcome);
        }

        let Some(current) = self.store.listed_entry(&change.entity_key).await? else {
            warn!(entity = %change.entity_key, "change applied but entry not in snapshot");
            return Ok(outcome);
        };
        let listed = self.store.listed_entries().await?;
        let index = self.supplier_index().await?;
        let changed = to_screening_entry(&current);
        let timer = metrics().screening_duration.start_timer();
        let hits = tokio::task::spawn_blocking(move || {
            let screener = Screener::new(listed.iter().map(to_screening_entry).collect());
            index
                .rescreen(&screener, std::slice::from_ref(&changed))
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
            Arc::new(SupplierIndex::new(suppliers.iter().map(|s| {
                screening::SupplierRecord {
                    id: s.id().to_string(),
                    name: s.name().to_string(),
                    aliases: s.aliases().to_vec(),
                    country: s.country().cloned(),
                }
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
        let (_, outcome) = self.import_batch(records, true).await?;
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
    #[tracing::instrument(skip_all, fields(suppliers = records.len()))]
    pub async fn import_batch(
        &self,
        records: &[SupplierRecord],
        screen: bool,
    ) -> Result<(UpsertCounts, EventOutcome), WorkerError> {
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
        Ok((counts, outcome))
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
            let screener = Screener::new(entries.iter().map(to_screening_entry).collect());
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
        let query: Vec<screening::SupplierRecord<()>> = records
            .iter()
            .map(|s| screening::SupplierRecord {
                id: (),
                name: s.name().to_string(),
                aliases: s.aliases().to_vec(),
                country: s.country().cloned(),
            })
            .collect();
        let list = list.clone();
        let matches = tokio::task::spawn_blocking(move || list.screener.screen_many(&query))
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

    /// Delivers `alerts` (those of one event) to every sink that has not accepted them yet:
    /// first each to the alert topic, the durable record downstream consumers read, then to
    /// the other sinks, each sink a queue of its own going through the alerts in order, all
    /// sinks at once. A slow or dead webhook then holds neither Slack nor the alert topic, and
    /// a sink whose last alert ran out of retries (it is down, not refusing one alert) gets a
    /// single attempt per alert until one succeeds, so it costs later alerts one attempt each,
    /// not a whole retry sequence. Each (alert, sink) is still claimed, sent and marked
    /// delivered (or dead-lettered) in the ledger before this returns, and the caller commits
    /// the event only then.
    async fn send_all(
        &self,
        alerts: &[Alert],
        outcome: &mut EventOutcome,
    ) -> Result<(), WorkerError> {
        let Some((topic, others)) = self.sinks.split_first() else {
            return Ok(());
        };
        let payloads: Vec<String> = alerts
            .iter()
            .map(|a| serde_json::to_string(a).unwrap_or_default())
            .collect();
        for (alert, payload) in alerts.iter().zip(&payloads) {
            let sent = self.deliver_to(topic, alert, payload).await?;
            sent.count(outcome);
        }
        let queues = others.iter().map(|sink| async {
            let mut sent = Vec::with_capacity(alerts.len());
            for (alert, payload) in alerts.iter().zip(&payloads) {
                sent.push(self.deliver_to(sink, alert, payload).await?);
            }
            Ok::<_, WorkerError>(sent)
        });
        let mut first_error = None;
        for result in futures::future::join_all(queues).await {
            match result {
                Ok(sent) => sent.iter().for_each(|s| s.count(outcome)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// One alert to one sink: claim, send (with retries, renewing the claim), mark delivered;
    /// or dead-letter and release the claim.
    #[tracing::instrument(skip_all, fields(alert_id = %alert.alert_id, kind = alert.kind.as_str()))]
    async fn deliver_to(
        &self,
        sink: &Arc<dyn AlertSink>,
        alert: &Alert,
        payload: &str,
    ) -> Result<Sent, WorkerError> {
        let delivery = Delivery {
            alert_id: alert.alert_id.clone(),
            sink: sink.name().to_string(),
            supplier_id: alert.supplier.id.clone(),
            entity_key: alert.entry.entity_key.to_string(),
            entry_version: alert.entry.version,
            kind: alert.kind.as_str().to_string(),
            payload: payload.to_string(),
        };
        if !self.claim(&delivery).await? {
            AlertAlreadyDelivered {
                sink: sink.name(),
                alert_id: &alert.alert_id,
            }
            .emit();
            return Ok(Sent::AlreadyDelivered);
        }
        let failing = self.is_failing(sink.name());
        let policy = if failing {
            RetryPolicy {
                max_attempts: 1,
                ..self.retry.clone()
            }
        } else {
            self.retry.clone()
        };
        let delivered = self
            .renewing_claim(
                &delivery,
                deliver_until(
                    sink.as_ref(),
                    alert,
                    &policy,
                    |notice| DeliveryRetried { sink: notice.sink }.emit(),
                    self.stopped(),
                ),
            )
            .await;
        match delivered {
            Ok(_) => {
                self.set_failing(sink.name(), false);
                let first = self
                    .store
                    .mark_delivered(&alert.alert_id, sink.name(), &self.owner)
                    .await?;
                if !first {
                    warn!(
                        sink = sink.name(),
                        alert_id = %alert.alert_id,
                        "alert delivered after this worker's claim had run out and another \
                         worker had delivered it: the sink got it twice"
                    );
                }
                AlertDelivered {
                    sink: sink.name(),
                    alert,
                }
                .emit();
                Ok(Sent::Delivered)
            }
            Err(failure) if failure.interrupted => {
                self.store
                    .release_claim(&alert.alert_id, sink.name(), &self.owner)
                    .await?;
                info!(sink = sink.name(), alert_id = %alert.alert_id, "delivery left for after the restart");
                Err(WorkerError::Interrupted {
                    alert_id: alert.alert_id.clone(),
                    sink: sink.name().to_string(),
                })
            }
            Err(failure) => {
                if !failure.permanent {
                    if !failing {
                        warn!(
                            sink = sink.name(),
                            "sink ran out of retries; its next alerts get one attempt each \
                             until one is delivered"
                        );
                    }
                    self.set_failing(sink.name(), true);
                }
                let reason = if failing && !failure.permanent {
                    format!(
                        "{} (one attempt only: the sink's previous alert had run out of retries)",
                        failure.reason
                    )
                } else {
                    failure.reason.clone()
                };
                let letter = DeadLetter::sink_failure(
                    sink.name(),
                    &alert.alert_id,
                    &reason,
                    payload.to_string(),
                );
                self.dead_letters.write(&letter).await?;
                // Only once the dead letter is durable: a redrive claims it afresh.
                self.store
                    .release_claim(&alert.alert_id, sink.name(), &self.owner)
                    .await?;
                AlertDeadLettered {
                    sink: sink.name(),
                    alert_id: &alert.alert_id,
                    reason: &reason,
                }
                .emit();
                Ok(Sent::DeadLettered)
            }
        }
    }

    fn is_failing(&self, sink: &str) -> bool {
        self.failing_sinks
            .lock()
            .map(|f| f.contains(sink))
            .unwrap_or(false)
    }

    fn set_failing(&self, sink: &str, failing: bool) {
        if let Ok(mut f) = self.failing_sinks.lock() {
            if failing {
                f.insert(sink.to_string());
            } else {
                f.remove(sink);
            }
        }
    }

    /// Claims `delivery` for this worker. False if a sink already accepted it. While another
    /// worker holds a live claim (a rebalance handed both the event) this waits for it to be
    /// delivered, released or to expire; a stop ends the wait as an interrupted delivery.
    async fn claim(&self, delivery: &Delivery) -> Result<bool, WorkerError> {
        let mut waiting_since: Option<std::time::Instant> = None;
        loop {
            match self
                .store
                .claim_delivery(delivery, &self.owner, self.claim_lease)
                .await?
            {
                Claim::Held => {
                    if let Some(since) = waiting_since {
                        info!(
                            sink = %delivery.sink,
                            alert_id = %delivery.alert_id,
                            waited_ms = since.elapsed().as_millis() as u64,
                            "delivery claim free again (its holder gave it up); sending"
                        );
                    }
                    return Ok(true);
                }
                Claim::TakenOver { from } => {
                    warn!(
                        sink = %delivery.sink,
                        alert_id = %delivery.alert_id,
                        holder = %from,
                        waited_ms = waiting_since.map_or(0, |s| s.elapsed().as_millis() as u64),
                        "delivery claim taken over: its holder's lease ran out (it died or hung \
                         mid-delivery), so the alert is sent again; the sink may get it twice"
                    );
                    return Ok(true);
                }
                Claim::Delivered => return Ok(false),
                Claim::HeldElsewhere { by, until_ms } => {
                    if waiting_since.is_none() {
                        let left = until_ms - chrono::Utc::now().timestamp_millis();
                        info!(
                            sink = %delivery.sink,
                            alert_id = %delivery.alert_id,
                            holder = %by,
                            lease_left_ms = left.max(0),
                            "another worker is delivering this alert; waiting for it instead of sending too"
                        );
                        waiting_since = Some(std::time::Instant::now());
                    }
                    tokio::select! {
                        _ = self.stopped() => {
                            return Err(WorkerError::Interrupted {
                                alert_id: delivery.alert_id.clone(),
                                sink: delivery.sink.clone(),
                            });
                        }
                        _ = tokio::time::sleep(CLAIM_POLL) => {}
                    }
                }
            }
        }
    }

    /// Runs `deliver` while renewing this worker's claim on `delivery`, so that a delivery
    /// spending minutes in retries is not taken over while it is still alive. A failed renewal
    /// never stops the delivery: at worst the claim expires and the alert is sent twice.
    async fn renewing_claim<T>(
        &self,
        delivery: &Delivery,
        deliver: impl std::future::Future<Output = T>,
    ) -> T {
        tokio::pin!(deliver);
        let mut renew = tokio::time::interval(self.claim_lease / 3);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.tick().await;
        loop {
            tokio::select! {
                r = &mut deliver => return r,
                _ = renew.tick() => {
                    match self
                        .store
                        .renew_claim(&delivery.alert_id, &delivery.sink, &self.owner, self.claim_lease)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => warn!(
                            sink = %delivery.sink,
                            alert_id = %delivery.alert_id,
                            "delivery claim lost (its lease ran out and another worker took it); \
                             the alert may reach the sink twice"
                        ),
                        Err(e) => warn!(
                            sink = %delivery.sink,
                            alert_id = %delivery.alert_id,
                            error = %e,
                            "could not renew the delivery claim"
                        ),
                    }
                }
            }
        }
    }
}

/// The default delivery-claim lease: an alert whose sender died mid-delivery is sent by
/// another worker at most this long after the sender's last renewal.
pub const DEFAULT_CLAIM_LEASE: Duration = Duration::from_secs(30);

/// How often a worker waiting on another's claim looks again.
const CLAIM_POLL: Duration = Duration::from_millis(250);

fn claim_owner() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_string());
    let random: u32 = rand::random();
    format!("{host}/{}/{random:08x}", std::process::id())
}

fn to_screening_entry(l: &StoredEntry) -> screening::ListedEntry {
    screening::ListedEntry {
        key: l.entry.entity_key.clone(),
        name: l.entry.name.to_string(),
        aliases: l.entry.aliases.clone(),
        countries: l.entry.countries.clone(),
    }
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
