//! Telemetry: the log subscriber, and the internal events through which the service reports
//! what it did. Each internal event is a struct whose `emit()` writes its log line and moves its
//! counters together (the pattern of vector's internal events), so a log line and the metric an
//! alert rule reads can never tell two stories.
//!
//! Logs go to stderr; stdout carries events and results that users pipe elsewhere. Nothing
//! emitted here may carry a secret (URLs with credentials, tokens) or an unbounded value in a
//! metric label.

use std::fmt::Display;

use tracing::{debug, info, warn};

use crate::alerts::Alert;
use crate::config::{LogFormat, Settings};
use crate::metrics::metrics;
use crate::outcome::{DeadLetterKind, DeliveryOutcome, MatchLabel, WorkerOutcome};

/// Installs the process-wide log subscriber for `settings` (filter and format).
pub fn init_logging(settings: &Settings) {
    // PostgreSQL's notices ("relation _sqlx_migrations already exists, skipping" on every
    // start) are INFO in sqlx; they are noise unless someone asks for sqlx's logs.
    let filter = if settings.log.contains("sqlx") {
        settings.log.clone()
    } else {
        format!("{},sqlx::postgres::notice=warn", settings.log)
    };
    // The filter was checked by `Settings::resolve`.
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: in a file, a pipe or a container log
    // they would be noise around every field.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        // On a failed write the layer would report it with `eprintln!`, which panics when
        // stderr is a closed pipe (`entitywatch run 2>&1 | head`) and takes the service down
        // with exit 101. A log line nobody can read is dropped instead.
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Something the service did that is both logged and counted.
pub trait InternalEvent {
    fn emit(self);
}

/// A message of the change or suppliers topic was handled (or dead-lettered) and may be
/// committed.
pub struct MessageHandled {
    pub outcome: WorkerOutcome,
}

impl InternalEvent for MessageHandled {
    fn emit(self) {
        metrics()
            .worker_events
            .with_label_values(&[self.outcome.as_str()])
            .inc();
    }
}

/// Handling a message failed (the store or the dead-letter topic is down); it stays
/// uncommitted and is tried again, never skipped, since it could carry an unsent alert.
pub struct MessageFailed<'a> {
    pub origin: &'a dyn Display,
    pub error: &'a dyn Display,
}

impl InternalEvent for MessageFailed<'_> {
    fn emit(self) {
        warn!(
            from = %self.origin,
            error = %self.error,
            "handling failed; the message is not committed and is retried"
        );
        metrics()
            .worker_events
            .with_label_values(&[WorkerOutcome::Failed.as_str()])
            .inc();
    }
}

/// A message that is not something entitywatch understands went to the dead-letter topic.
pub struct MessageDeadLettered<'a> {
    pub origin: &'a dyn Display,
    pub letter: &'a crate::dead_letter::DeadLetter,
}

impl InternalEvent for MessageDeadLettered<'_> {
    fn emit(self) {
        use crate::dead_letter::Cause;
        let reason = self.letter.reason();
        match &self.letter.cause {
            Cause::InvalidSupplier { .. } => {
                warn!(from = %self.origin, %reason, "supplier message dead-lettered")
            }
            Cause::InvalidOwnership { .. } => {
                warn!(from = %self.origin, %reason, "ownership message dead-lettered")
            }
            _ => warn!(from = %self.origin, %reason, "poison change event dead-lettered"),
        }
        metrics()
            .dead_letters
            .with_label_values(&[DeadLetterKind::Event.as_str()])
            .inc();
    }
}

/// A sink accepted an alert.
pub struct AlertDelivered<'a> {
    pub sink: &'a str,
    pub alert: &'a Alert,
}

impl InternalEvent for AlertDelivered<'_> {
    fn emit(self) {
        info!(sink = self.sink, alert = %self.alert.summary(), "alert delivered");
        count_delivery(self.sink, DeliveryOutcome::Delivered);
    }
}

/// A sink accepted a digest: every alert it carried is delivered to that sink.
pub struct DigestDelivered<'a> {
    pub sink: &'a str,
    pub digest: &'a crate::alerts::Digest,
}

impl InternalEvent for DigestDelivered<'_> {
    fn emit(self) {
        info!(
            sink = self.sink,
            digest_id = %self.digest.digest_id,
            batch = %self.digest.source.key(),
            alerts = self.digest.total(),
            kinds = %self.digest.counts_line(),
            "digest delivered"
        );
        let m = metrics();
        m.digests
            .with_label_values(&[self.sink, DeliveryOutcome::Delivered.as_str()])
            .inc();
        m.digest_alerts
            .with_label_values(&[self.sink])
            .inc_by(self.digest.total() as u64);
        m.alerts
            .with_label_values(&[self.sink, DeliveryOutcome::Delivered.as_str()])
            .inc_by(self.digest.total() as u64);
    }
}

/// A digest ran out of retries (or was refused): the alerts it carried were dead-lettered
/// one by one (each counted as its own dead letter), so a redrive sends each on its own.
pub struct DigestDeadLettered<'a> {
    pub sink: &'a str,
    pub digest_id: &'a str,
    pub alerts: usize,
    pub reason: &'a str,
}

impl InternalEvent for DigestDeadLettered<'_> {
    fn emit(self) {
        warn!(
            sink = self.sink,
            digest_id = self.digest_id,
            alerts = self.alerts,
            reason = self.reason,
            "digest not delivered; the alerts it carried were dead-lettered"
        );
        metrics()
            .digests
            .with_label_values(&[self.sink, DeliveryOutcome::DeadLettered.as_str()])
            .inc();
    }
}

/// The ledger says the sink already has this alert: it is not sent again.
pub struct AlertAlreadyDelivered<'a> {
    pub sink: &'a str,
    pub alert_id: &'a str,
}

impl InternalEvent for AlertAlreadyDelivered<'_> {
    fn emit(self) {
        debug!(
            sink = self.sink,
            alert_id = self.alert_id,
            "alert already delivered"
        );
        count_delivery(self.sink, DeliveryOutcome::Duplicate);
    }
}

/// Every delivery attempt failed: the alert went to the dead-letter topic.
pub struct AlertDeadLettered<'a> {
    pub sink: &'a str,
    pub alert_id: &'a str,
    pub reason: &'a str,
}

impl InternalEvent for AlertDeadLettered<'_> {
    fn emit(self) {
        warn!(
            sink = self.sink,
            alert_id = self.alert_id,
            reason = self.reason,
            "alert dead-lettered"
        );
        count_delivery(self.sink, DeliveryOutcome::DeadLettered);
        metrics()
            .dead_letters
            .with_label_values(&[DeadLetterKind::Alert.as_str()])
            .inc();
    }
}

/// The alert's sink is down (its last delivery ran out of retries): the delivery is parked in
/// the outbox, the event goes on, and the sink's dispatcher sends it later.
pub struct AlertParked<'a> {
    pub sink: &'a str,
    pub alert_id: &'a str,
}

impl InternalEvent for AlertParked<'_> {
    fn emit(self) {
        info!(
            sink = self.sink,
            alert_id = self.alert_id,
            "sink is down: alert parked in the outbox, to be sent in the background"
        );
        count_delivery(self.sink, DeliveryOutcome::Queued);
    }
}

/// A delivery attempt failed and will be retried.
pub struct DeliveryRetried<'a> {
    pub sink: &'a str,
}

impl InternalEvent for DeliveryRetried<'_> {
    fn emit(self) {
        debug!(sink = self.sink, "alert delivery attempt failed; retrying");
        metrics()
            .alert_delivery_retries
            .with_label_values(&[self.sink])
            .inc();
    }
}

/// A screening decision was stored (or a `cleared` notice decided).
pub struct DecisionMade {
    pub label: MatchLabel,
}

impl InternalEvent for DecisionMade {
    fn emit(self) {
        metrics()
            .matches
            .with_label_values(&[self.label.as_str()])
            .inc();
    }
}

/// Creates every series of a sink at 0, so that `increase()` sees its first failure (a series
/// that appears at 1 has no increase).
pub fn register_sink(sink: &str) {
    let m = metrics();
    for outcome in DeliveryOutcome::ALL {
        m.alerts.with_label_values(&[sink, outcome.as_str()]);
    }
    m.alert_delivery_retries.with_label_values(&[sink]);
}

/// Makes a digest sink's series visible (at 0) before its first digest.
pub fn register_digest_sink(sink: &str) {
    let m = metrics();
    for outcome in [DeliveryOutcome::Delivered, DeliveryOutcome::DeadLettered] {
        m.digests.with_label_values(&[sink, outcome.as_str()]);
    }
    m.digest_alerts.with_label_values(&[sink]);
}

fn count_delivery(sink: &str, outcome: DeliveryOutcome) {
    metrics()
        .alerts
        .with_label_values(&[sink, outcome.as_str()])
        .inc();
}

/// A revision or removal that matched no stored entry: applied anyway (a revision stores the
/// entry as the rule states it; a removal leaves a tombstone), but never silently.
pub struct ChangeUnmatched<'a> {
    pub change: &'a crate::events::EntityChange,
}

impl InternalEvent for ChangeUnmatched<'_> {
    fn emit(self) {
        warn!(
            entity = %self.change.entity_key,
            name = %self.change.name,
            action = %self.change.action,
            document = %self.change.source.document_number,
            "the change matches no stored entry by key or by name; the snapshot may not be the list"
        );
        metrics()
            .list_unmatched_changes
            .with_label_values(&[self.change.action.as_str()])
            .inc();
    }
}

/// A sync of the codified list came to an end: logged with what it published, counted by
/// outcome.
pub struct ListSynced<'a> {
    pub source: &'a str,
    pub outcome: crate::outcome::SyncOutcome,
    pub published: usize,
    pub error: Option<&'a dyn Display>,
}

impl InternalEvent for ListSynced<'_> {
    fn emit(self) {
        let m = metrics();
        m.list_syncs
            .with_label_values(&[self.outcome.as_str()])
            .inc();
        match self.error {
            Some(error) => warn!(
                source = self.source,
                error = %error,
                "list sync failed; nothing was published and the snapshot is unchanged"
            ),
            None => {
                m.list_last_sync.set(chrono::Utc::now().timestamp());
                info!(
                    source = self.source,
                    outcome = %self.outcome,
                    published = self.published,
                    "list synced"
                );
            }
        }
    }
}

/// The codified list was compared with the rules: the gauges an alert reads, and one warning
/// per entry a rule's change is missing from the list for.
pub struct ListReconciled<'a> {
    pub report: &'a crate::list_sources::plan::ReconcileReport,
}

impl InternalEvent for ListReconciled<'_> {
    fn emit(self) {
        let r = self.report;
        let m = metrics();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        m.list_codified_entries.set(count(r.codified_entries));
        m.list_unexplained_entries.set(count(r.unexplained.len()));
        m.list_unreflected_rule_entries
            .set(count(r.unreflected.len()));
        m.list_differing_entries.set(count(r.differing.len()));
        for u in &r.unreflected {
            warn!(
                entity = %u.entity_key,
                name = %u.name,
                action = %u.action,
                document = %u.document_number,
                list = %r.source,
                "a rule's change is not in the codified list"
            );
        }
        info!(
            list = %r.source,
            codified = r.codified_entries,
            unexplained = r.unexplained.len(),
            unreflected = r.unreflected.len(),
            differing = r.differing.len(),
            "list reconciled"
        );
    }
}
