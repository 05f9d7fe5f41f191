//! The watcher: polls the Federal Register, parses each new Entity List rule and publishes its
//! events, one document at a time, checkpointing after the bus confirmed them.
//!
//! The promise it keeps: no rule is missed and none is published twice across restarts. A
//! document is marked processed only after its events are durable; a document that could not be
//! fetched is left unmarked and holds the search watermark back, so the next poll tries it again.
//! A document that was fetched but cannot be read still goes out as a document-level event with
//! the reason, so it is seen; the watcher never crashes on a bad document.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{Days, NaiveDate, Utc};
use tracing::{error, info, warn};

use super::amendment::{parse_rule, ParseLimits};
use super::client::{ClientError, DocumentSummary, FederalRegisterClient};
use crate::bus::{PublishError, Publisher};
use crate::domain::list_entry::{resolve_change, Resolution};
use crate::events::{ChangeAction, ChangeEvent, DocumentEvent, DocumentStage, EntityChange};
use crate::metrics::metrics;
use crate::outcome::{DocumentOutcome, PollOutcome};
use crate::store::{ProcessedDocument, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("Federal Register search failed: {0}")]
    Search(#[source] ClientError),
    #[error("publishing failed, checkpoint not advanced: {0}")]
    Publish(#[from] PublishError),
    #[error("checkpoint store failed: {0}")]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct WatcherConfig {
    /// How far before the watermark each poll searches again. Documents can appear in the
    /// search index a little after their publication date; already processed ones are skipped.
    pub overlap_days: u64,
    /// Where the very first poll starts when no `--since` is given and no watermark exists.
    pub first_run_lookback_days: u64,
    pub parse_limits: ParseLimits,
    /// Also report public-inspection filings (early warnings, text not final).
    pub public_inspection: bool,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        WatcherConfig {
            overlap_days: 7,
            first_run_lookback_days: 30,
            parse_limits: ParseLimits::default(),
            public_inspection: true,
        }
    }
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    pub searched_since: Option<NaiveDate>,
    pub documents_found: usize,
    pub already_processed: usize,
    /// Documents read and published with their entity changes.
    pub documents_parsed: usize,
    /// Documents fetched but unreadable: only their document event was published.
    pub documents_unreadable: usize,
    /// Documents that could not be fetched; retried next poll.
    pub documents_failed: usize,
    pub entity_events: usize,
    pub document_events: usize,
    pub parser_warnings: usize,
    pub public_inspection_events: usize,
}

impl PollReport {
    /// Rules were tried and not one could be fetched (the Federal Register refuses or fails
    /// every full text).
    pub fn all_attempts_failed(&self) -> bool {
        self.documents_failed > 0 && self.documents_parsed + self.documents_unreadable == 0
    }
}

pub struct Watcher {
    client: FederalRegisterClient,
    store: Store,
    publisher: Arc<dyn Publisher>,
    config: WatcherConfig,
    /// Set when shutdown was requested during a poll: the poll finishes the document in hand
    /// (so its events are not published without its checkpoint) and handles no further one.
    stopping: AtomicBool,
    /// Set while a document's events are being published and its checkpoint written: the only
    /// stretch of a poll a shutdown waits for. Anywhere else (searching, fetching, retrying an
    /// unreachable Federal Register) the poll is dropped at once.
    publishing: AtomicBool,
    /// The oldest rule that could not be fetched, and since when (Unix seconds): it holds the
    /// watermark until it is read.
    stuck: std::sync::Mutex<Option<(String, i64)>>,
}

/// How long a poll in progress may go on after shutdown was requested, to finish the document
/// in hand. After that it is abandoned, which is still safe (see [`Watcher::run`]).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

impl Watcher {
    pub fn new(
        client: FederalRegisterClient,
        store: Store,
        publisher: Arc<dyn Publisher>,
        config: WatcherConfig,
    ) -> Self {
        Watcher {
            client,
            store,
            publisher,
            config,
            stopping: AtomicBool::new(false),
            publishing: AtomicBool::new(false),
            stuck: std::sync::Mutex::new(None),
        }
    }

    /// One poll: search, then handle every unprocessed document oldest first.
    /// `since` forces the search start (backfill); otherwise the checkpoint decides.
    pub async fn poll_once(&self, since: Option<NaiveDate>) -> Result<PollReport, WatchError> {
        let result = self.poll(since).await;
        let m = metrics();
        match &result {
            // A poll in which every rule it tried failed to fetch did nothing: it is no
            // success, however cleanly it ended.
            Ok(report) if report.all_attempts_failed() => m
                .polls
                .with_label_values(&[PollOutcome::Failure.as_str()])
                .inc(),
            Ok(report) => {
                m.polls
                    .with_label_values(&[PollOutcome::Success.as_str()])
                    .inc();
                m.last_successful_poll.set(Utc::now().timestamp());
                for (outcome, n) in [
                    (DocumentOutcome::Parsed, report.documents_parsed),
                    (DocumentOutcome::Unreadable, report.documents_unreadable),
                    (DocumentOutcome::FetchFailed, report.documents_failed),
                    (DocumentOutcome::AlreadyProcessed, report.already_processed),
                ] {
                    m.documents
                        .with_label_values(&[outcome.as_str()])
                        .inc_by(n as u64);
                }
            }
            Err(_) => m
                .polls
                .with_label_values(&[PollOutcome::Failure.as_str()])
                .inc(),
        }
        result
    }

    async fn poll(&self, since: Option<NaiveDate>) -> Result<PollReport, WatchError> {
        let today = Utc::now().date_naive();
        let start = match (since, self.store.watermark().await?) {
            (Some(s), _) => s,
            (None, Some(w)) => w
                .checked_sub_days(Days::new(self.config.overlap_days))
                .unwrap_or(w),
            (None, None) => today
                .checked_sub_days(Days::new(self.config.first_run_lookback_days))
                .unwrap_or(today),
        };
        let mut report = PollReport {
            searched_since: Some(start),
            ..Default::default()
        };

        let documents = self
            .client
            .search_entity_list_rules(start)
            .await
            .map_err(WatchError::Search)?;
        report.documents_found = documents.len();
        info!(since = %start, found = documents.len(), "searched the Federal Register for Entity List rules");

        let mut earliest_failed: Option<NaiveDate> = None;
        let mut oldest_unfetchable: Option<(NaiveDate, String)> = None;
        let mut latest_seen: Option<NaiveDate> = None;
        for doc in &documents {
            latest_seen = latest_seen.max(Some(doc.publication_date));
            if self.stopping.load(Ordering::SeqCst) {
                // Left for the next start: hold the watermark at it like a failed fetch.
                earliest_failed = earliest_failed
                    .map(|d| d.min(doc.publication_date))
                    .or(Some(doc.publication_date));
                continue;
            }
            if self.store.is_processed(&doc.document_number).await? {
                report.already_processed += 1;
                continue;
            }
            match self.handle_document(doc, &mut report).await {
                Ok(()) => {}
                Err(DocumentFailure::Fetch(e)) => {
                    report.documents_failed += 1;
                    let this = (doc.publication_date, doc.document_number.clone());
                    if oldest_unfetchable.as_ref().is_none_or(|o| this < *o) {
                        oldest_unfetchable = Some(this);
                    }
                    earliest_failed = earliest_failed
                        .map(|d| d.min(doc.publication_date))
                        .or(Some(doc.publication_date));
                    warn!(
                        document = %doc.document_number,
                        error = %e,
                        "could not fetch the rule's full text; it stays unprocessed and is retried next poll"
                    );
                }
                Err(DocumentFailure::Fatal(e)) => return Err(e),
            }
        }

        // The watermark never passes a document that is still unprocessed.
        let old = self.store.watermark().await?;
        let new = match earliest_failed {
            Some(failed) => Some(failed),
            None => old.max(latest_seen),
        };
        if let Some(new) = new.filter(|n| Some(*n) != old) {
            self.store.set_watermark(new).await?;
        }

        self.note_stuck(oldest_unfetchable.map(|(_, number)| number));

        if self.config.public_inspection && !self.stopping.load(Ordering::SeqCst) {
            self.poll_public_inspection(&mut report).await?;
        }
        if !report.all_attempts_failed() {
            self.store.set_last_successful_poll(Utc::now()).await?;
        }
        info!(
            parsed = report.documents_parsed,
            unreadable = report.documents_unreadable,
            failed = report.documents_failed,
            skipped = report.already_processed,
            entity_events = report.entity_events,
            "poll finished"
        );
        Ok(report)
    }

    /// Records which rule (if any) holds the watermark, keeping the time it first failed while
    /// it is the same rule, and shows it on `entitywatch_watcher_stuck_since_timestamp_seconds`.
    fn note_stuck(&self, oldest_unfetchable: Option<String>) {
        let Ok(mut stuck) = self.stuck.lock() else {
            return;
        };
        let now = Utc::now().timestamp();
        *stuck = match (stuck.take(), oldest_unfetchable) {
            (Some((held, since)), Some(number)) if held == number => Some((held, since)),
            (_, Some(number)) => {
                warn!(document = %number, "rule cannot be fetched; it holds the watermark until it is read");
                Some((number, now))
            }
            (Some((held, since)), None) => {
                info!(document = %held, stuck_seconds = now - since, "watermark no longer held");
                None
            }
            (None, None) => None,
        };
        metrics()
            .stuck_since
            .set(stuck.as_ref().map_or(0, |(_, since)| *since));
    }

    async fn handle_document(
        &self,
        doc: &DocumentSummary,
        report: &mut PollReport,
    ) -> Result<(), DocumentFailure> {
        let source = doc.source_document();
        let Some(xml_url) = doc.full_text_xml_url.as_deref() else {
            return Err(DocumentFailure::Fetch(
                "the document has no full_text_xml_url yet".to_string(),
            ));
        };
        let xml = self
            .client
            .fetch_full_text_xml(xml_url)
            .await
            .map_err(|e| DocumentFailure::Fetch(e.to_string()))?;

        let limits = self.config.parse_limits.clone();
        let parse_source = source.clone();
        let parsed =
            tokio::task::spawn_blocking(move || parse_rule(&xml, Some(parse_source), &limits))
                .await
                .map_err(|e| DocumentFailure::Fetch(format!("parser task failed: {e}")))?;

        let (events, outcome, warnings) = match parsed {
            Ok(rule) => {
                for w in &rule.warnings {
                    warn!(document = %doc.document_number, warning = %w, "parser warning");
                }
                let warnings = rule.warnings.len();
                let changes = rule.changes.len();
                report.documents_parsed += 1;
                report.entity_events += changes;
                info!(document = %doc.document_number, changes, warnings, "parsed Entity List rule");
                let mut events = rule.into_events();
                let unmatched = self
                    .unmatched_changes(&events)
                    .await
                    .map_err(|e| DocumentFailure::Fatal(e.into()))?;
                let warnings = warnings + unmatched.len();
                if let Some(ChangeEvent::Document(d)) = events.last_mut() {
                    d.warnings.extend(unmatched);
                }
                (events, DocumentOutcome::Parsed, warnings)
            }
            Err(e) => {
                report.documents_unreadable += 1;
                error!(
                    document = %doc.document_number,
                    error = %e,
                    "rule is unreadable; publishing only its document event so it is still seen"
                );
                let event = ChangeEvent::Document(DocumentEvent {
                    stage: DocumentStage::Published,
                    source: source.clone(),
                    amendatory_text: Vec::new(),
                    change_count: 0,
                    warnings: vec![format!("unreadable rule: {e}")],
                });
                (vec![event], DocumentOutcome::Unreadable, 1)
            }
        };
        report.parser_warnings += warnings;
        report.document_events += 1;
        metrics().parser_warnings.inc_by(warnings as u64);

        let _in_hand = InHand::new(&self.publishing);
        if let Err(e) = self.publisher.publish(&events).await {
            metrics().publish_failures.inc();
            return Err(DocumentFailure::Fatal(e.into()));
        }
        count_published(&events);
        self.store
            .mark_processed(&ProcessedDocument {
                document_number: doc.document_number.clone(),
                publication_date: Some(doc.publication_date),
                outcome,
                change_count: events.len().saturating_sub(1) as i64,
                warning_count: warnings as i64,
            })
            .await
            .map_err(|e| DocumentFailure::Fatal(e.into()))?;
        Ok(())
    }

    /// The revisions and removals of a rule that name no stored entry, as document-event
    /// warnings, so a rule that revises what the snapshot does not hold is visible where the
    /// rule is, not only in the worker's log.
    async fn unmatched_changes(&self, events: &[ChangeEvent]) -> Result<Vec<String>, StoreError> {
        let touching: Vec<&EntityChange> = events
            .iter()
            .filter_map(|e| match e {
                ChangeEvent::Entity(c) if c.action != ChangeAction::Added => Some(c),
                _ => None,
            })
            .collect();
        if touching.is_empty() {
            return Ok(Vec::new());
        }
        let candidates = self.store.identity_candidates().await?;
        Ok(touching
            .into_iter()
            .filter(|c| resolve_change(c, &candidates) == Resolution::Unmatched)
            .map(|c| {
                format!(
                    "unmatched {}: {} ({}) names no entry of the stored list",
                    c.action, c.name, c.entity_key
                )
            })
            .collect())
    }

    async fn poll_public_inspection(&self, report: &mut PollReport) -> Result<(), WatchError> {
        let filings = match self.client.public_inspection_current().await {
            Ok(f) => f,
            Err(e) => {
                // An early warning is a bonus; the published rule will still come. Do not fail
                // the poll for it.
                warn!(error = %e, "public inspection check failed");
                return Ok(());
            }
        };
        for filing in filings {
            if self
                .store
                .public_inspection_seen(&filing.document_number)
                .await?
            {
                continue;
            }
            let event = ChangeEvent::Document(DocumentEvent {
                stage: DocumentStage::PublicInspection,
                source: filing.source_document(),
                amendatory_text: Vec::new(),
                change_count: 0,
                warnings: Vec::new(),
            });
            let in_hand = InHand::new(&self.publishing);
            if let Err(e) = self.publisher.publish(std::slice::from_ref(&event)).await {
                metrics().publish_failures.inc();
                return Err(e.into());
            }
            count_published(std::slice::from_ref(&event));
            self.store
                .mark_public_inspection_seen(&filing.document_number)
                .await?;
            drop(in_hand);
            report.public_inspection_events += 1;
            info!(document = %filing.document_number, title = %filing.title, "Entity List filing on public inspection (early warning)");
        }
        Ok(())
    }

    /// Polls every `interval` until `shutdown` resolves. A failed poll is logged and retried at
    /// the next tick; it never stops the loop.
    pub async fn run(
        &self,
        interval: Duration,
        mut since: Option<NaiveDate>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            // A poll against an unreachable Federal Register can spend minutes in retries; a
            // shutdown must not wait for that. Abandoning a poll is safe: a document is marked
            // processed only after its events were published, so the next start redoes it.
            let poll = self.poll_once(since);
            tokio::pin!(poll);
            let result = tokio::select! {
                r = &mut poll => r,
                _ = &mut shutdown => {
                    self.stopping.store(true, Ordering::SeqCst);
                    // The poll runs on this task, so it is parked while we look: the flag is exact.
                    if !self.publishing.load(Ordering::SeqCst) {
                        info!("shutdown requested during a poll with no document in hand; poll dropped, watcher stopped");
                        return;
                    }
                    info!("shutdown requested during a poll; finishing the document in hand");
                    match tokio::time::timeout(SHUTDOWN_GRACE, poll).await {
                        Ok(Ok(_)) => info!("watcher stopped"),
                        Ok(Err(e)) => warn!(error = %e, "last poll failed; watcher stopped"),
                        Err(_) => warn!("poll abandoned after the shutdown grace period; watcher stopped"),
                    }
                    return;
                }
            };
            match result {
                // A backfill date applies until one poll got through; then the checkpoint rules.
                Ok(_) => since = None,
                Err(e) => error!(error = %e, "poll failed; retrying at the next interval"),
            }
            tokio::select! {
                _ = &mut shutdown => {
                    info!("shutdown requested; watcher stopped");
                    return;
                }
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// Marks the publish-then-checkpoint stretch of a document; cleared however it ends.
struct InHand<'a>(&'a AtomicBool);

impl<'a> InHand<'a> {
    fn new(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::SeqCst);
        InHand(flag)
    }
}

impl Drop for InHand<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

fn count_published(events: &[ChangeEvent]) {
    let m = metrics();
    for event in events {
        match event {
            ChangeEvent::Entity(change) => {
                m.change_events_published
                    .with_label_values(&[change.action.as_str()])
                    .inc();
            }
            ChangeEvent::Document(_) => m.document_events_published.inc(),
        }
    }
}

enum DocumentFailure {
    /// The document could not be fetched: leave it for the next poll.
    Fetch(String),
    /// The bus or the store failed: stop this poll so nothing is marked ahead of the bus.
    Fatal(WatchError),
}
