//! Delivery of one event's alerts to every sink, exactly once each, and the durable per-sink
//! outbox that keeps a dead sink from holding anything else.
//!
//! An event's alerts go first to the alert topic (the durable record downstream consumers
//! read), then to the other sinks, each sink a queue of its own, all sinks at once. Each
//! (alert, sink) is claimed in the store's delivery ledger, sent with retries while the claim is
//! renewed, and marked delivered (or dead-lettered and released).
//!
//! A sink whose last delivery ran out of retries is *down* as far as this worker knows. Its next
//! alerts are not tried while the event waits: they are parked in the ledger as `queued` (the
//! outbox; durable, in order), the event is committed, and a dispatcher task per sink sends
//! them in the background, one attempt each while the sink stays down, with full retries again
//! once one got through. So a webhook that takes requests and never answers costs the events
//! after it nothing, not one timeout per alert; and nothing is lost: parked rows survive a
//! restart (a dead worker's are adopted by another's dispatcher once its lease ran out), and
//! one-shot commands [flush](Deliveries::flush) the outbox before they exit.
//!
//! Slack digests: while the alerts of a batch (one document, list sync or supplier import,
//! see [`in_batch`]) are being raised, a sink that takes digests does not get them one by one:
//! each is *held* in the ledger for its batch, and the event is committed. A digest dispatcher
//! per such sink decides a batch once it is closed (the rule's document event, the end of an
//! import) or quiet — a document's for [`DIGEST_QUIET`], an import's or rescreen's only once
//! the process running it stopped keeping it active (it died): more than `--slack-digest-over` held alerts become one
//! digest — written to the ledger with the alerts it carries in one transaction, sent paced and
//! with retries, and marked delivered with all of them — and fewer go to the outbox to be sent
//! singly. A digest whose sender died is adopted and resent whole once its lease ran out.
//!
//! What this module must never do: send an alert a sink already accepted, send one alert to
//! one sink from two places at once (every send holds the ledger claim), or let an alert
//! vanish — a parked or interrupted delivery stays in the ledger until it is delivered or
//! dead-lettered.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{info, warn};

use super::{EventOutcome, WorkerError};
use crate::alerts::delivery::retry_until;
use crate::alerts::{
    deliver_until, Alert, AlertSink, Digest, DigestPolicy, DigestSource, RetryPolicy,
};
use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::store::{Claim, Delivery, QueuedDelivery, Store};
use crate::telemetry::{
    AlertAlreadyDelivered, AlertDeadLettered, AlertDelivered, AlertParked, DeliveryRetried,
    DigestDeadLettered, DigestDelivered, InternalEvent,
};

/// The default delivery-claim lease: an alert whose sender died mid-delivery is sent by
/// another worker at most this long after the sender's last renewal.
pub const DEFAULT_CLAIM_LEASE: Duration = Duration::from_secs(30);

/// How often a worker waiting on another's claim looks again.
const CLAIM_POLL: Duration = Duration::from_millis(250);

/// How often an idle dispatcher looks for parked deliveries it was not told about (another
/// worker's, left behind when it died).
const OUTBOX_POLL: Duration = Duration::from_secs(2);

/// How long a batch whose end was not signalled (a list sync, a Kafka worker that saw the
/// document event before another's last changes) must be quiet before its digest is decided.
pub const DIGEST_QUIET: Duration = Duration::from_secs(2);

/// How often an idle digest dispatcher looks for batches that went quiet.
const DIGEST_POLL: Duration = Duration::from_millis(500);

tokio::task_local! {
    /// The batch whose alerts are being raised, for sinks that take digests.
    static BATCH: DigestSource;
}

/// Runs `body` with its alerts raised as part of batch `source`: for a sink that takes
/// digests they are held until the batch is decided.
pub(super) async fn in_batch<F: std::future::Future>(source: DigestSource, body: F) -> F::Output {
    BATCH.scope(source, body).await
}

fn current_batch() -> Option<DigestSource> {
    BATCH.try_with(Clone::clone).ok()
}

/// What one (alert, sink) delivery came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    Delivered,
    AlreadyDelivered,
    DeadLettered,
    /// Parked in the outbox: the sink is down; the dispatcher sends it later.
    Queued,
}

impl Sent {
    pub(super) fn count(self, outcome: &mut EventOutcome) {
        match self {
            Sent::Delivered => outcome.alerts_delivered += 1,
            Sent::AlreadyDelivered => outcome.alerts_already_delivered += 1,
            Sent::DeadLettered => outcome.alerts_dead_lettered += 1,
            Sent::Queued => outcome.alerts_queued += 1,
        }
    }
}

/// What [`Deliveries::flush`] did with the parked deliveries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    pub delivered: usize,
    pub dead_lettered: usize,
}

/// Everything a delivery needs, shared by the worker and its dispatcher tasks.
pub(super) struct Deliveries {
    store: Store,
    /// The alert topic first, then the others.
    sinks: Vec<Arc<dyn AlertSink>>,
    dead_letters: Arc<dyn DeadLetters>,
    retry: RetryPolicy,
    /// Who this worker is in the delivery ledger's claims (host, pid and a random part).
    owner: String,
    /// How long a claim on a delivery lasts unless renewed; renewed every third of it.
    pub(super) claim_lease: Duration,
    /// Set once by `Worker::request_stop`; deliveries stop retrying, dispatchers stop.
    pub(super) stop: tokio::sync::watch::Sender<bool>,
    /// Sinks whose last delivery ran out of retries: down, as far as this worker knows.
    failing_sinks: Mutex<HashSet<String>>,
    /// Per sink, how many deliveries this worker parked that are not yet done. While it is
    /// not zero new alerts are parked behind them, so a sink gets its alerts in order.
    parked: Mutex<HashMap<String, usize>>,
    /// Woken when a delivery is parked (dispatchers) and when one is done (flush).
    parked_changed: tokio::sync::Notify,
    flushed: Mutex<FlushReport>,
    next_seq: AtomicI64,
    dispatchers_started: std::sync::Once,
    /// The dispatcher tasks, awaited on shutdown so that none is cut off mid-attempt.
    dispatchers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Slack digests; `None`: every alert goes to every sink on its own.
    digest: Option<DigestPolicy>,
    /// Batches this process held alerts for, closed by [`Deliveries::flush`].
    held_batches: Mutex<HashSet<String>>,
    /// Woken when an alert is held, a batch closed, or a digest is done.
    digest_changed: tokio::sync::Notify,
    /// Digests being decided or sent by this process; flush waits for them.
    digests_in_flight: Mutex<usize>,
}

impl Deliveries {
    pub(super) fn new(
        store: Store,
        sinks: Vec<Arc<dyn AlertSink>>,
        dead_letters: Arc<dyn DeadLetters>,
        retry: RetryPolicy,
    ) -> Self {
        Deliveries {
            store,
            sinks,
            dead_letters,
            retry,
            owner: claim_owner(),
            claim_lease: DEFAULT_CLAIM_LEASE,
            stop: tokio::sync::watch::Sender::new(false),
            failing_sinks: Default::default(),
            parked: Default::default(),
            parked_changed: tokio::sync::Notify::new(),
            flushed: Default::default(),
            next_seq: AtomicI64::new(0),
            dispatchers_started: std::sync::Once::new(),
            dispatchers: Default::default(),
            digest: None,
            held_batches: Default::default(),
            digest_changed: tokio::sync::Notify::new(),
            digests_in_flight: Mutex::new(0),
        }
    }

    /// Turns Slack digests on (or off with `None`) for the sinks that take them.
    pub(super) fn set_digest(&mut self, policy: Option<DigestPolicy>) {
        if policy.is_some() {
            for sink in self.sinks.iter().filter(|s| s.digests().is_some()) {
                crate::telemetry::register_digest_sink(sink.name());
            }
        }
        self.digest = policy;
    }

    pub(super) fn dead_letters(&self) -> &dyn DeadLetters {
        self.dead_letters.as_ref()
    }

    fn stop_requested(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once a stop was requested; any number of these may be made.
    pub(super) fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Delivers `alerts` (those of one event) to every sink that has not accepted them yet, as
    /// the module comment says. Each (alert, sink) is delivered, dead-lettered or parked in the
    /// ledger before this returns, and the caller commits the event only then.
    pub(super) async fn send_all(
        self: &Arc<Self>,
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
        let batch = self.holding_batch(others, alerts).await?;
        let queues = others.iter().map(|sink| async {
            let mut sent = Vec::with_capacity(alerts.len());
            let held = batch.as_ref().filter(|_| sink.digests().is_some());
            for (alert, payload) in alerts.iter().zip(&payloads) {
                let s = if let Some(batch) = held {
                    self.hold(sink, alert, payload, batch).await?
                } else if self.sink_is_down(sink.name()) {
                    self.park(sink, alert, payload).await?
                } else {
                    self.deliver_to(sink, alert, payload).await?
                };
                sent.push(s);
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

    /// The batch `alerts` are held for, when digests are on, one is being raised and a sink
    /// takes digests: the batch is opened (or touched) in the ledger first.
    async fn holding_batch(
        &self,
        others: &[Arc<dyn AlertSink>],
        alerts: &[Alert],
    ) -> Result<Option<String>, WorkerError> {
        if self.digest.is_none()
            || alerts.is_empty()
            || !others.iter().any(|s| s.digests().is_some())
        {
            return Ok(None);
        }
        let Some(batch) = current_batch() else {
            return Ok(None);
        };
        let key = batch.key();
        self.store.open_digest_group(&key).await?;
        if let Ok(mut held) = self.held_batches.lock() {
            held.insert(key.clone());
        }
        Ok(Some(key))
    }

    /// Records that an event of `source` was handled, so its batch is not quiet yet.
    pub(super) async fn batch_active(&self, source: &DigestSource) -> Result<(), WorkerError> {
        if self.digest.is_some() {
            self.store.touch_digest_group(&source.key()).await?;
        }
        Ok(())
    }

    /// The batch `source` is complete: its held alerts are decided now.
    pub(super) async fn close_batch(&self, source: &DigestSource) -> Result<(), WorkerError> {
        if self.digest.is_some() {
            let key = source.key();
            self.store.close_digest_group(&key).await?;
            if let Ok(mut held) = self.held_batches.lock() {
                held.remove(&key);
            }
            self.digest_changed.notify_waiters();
        }
        Ok(())
    }

    /// Holds one alert for `sink` in `batch`: claimed like any delivery, then marked held; the
    /// digest dispatcher sends it, in a digest or on its own.
    async fn hold(
        self: &Arc<Self>,
        sink: &Arc<dyn AlertSink>,
        alert: &Alert,
        payload: &str,
        batch: &str,
    ) -> Result<Sent, WorkerError> {
        let delivery = delivery_of(sink.as_ref(), alert, payload);
        match self
            .store
            .claim_delivery(&delivery, &self.owner, self.claim_lease)
            .await?
        {
            Claim::Delivered => {
                AlertAlreadyDelivered {
                    sink: sink.name(),
                    alert_id: &alert.alert_id,
                }
                .emit();
                return Ok(Sent::AlreadyDelivered);
            }
            Claim::Queued => return Ok(Sent::Queued),
            // Another worker is sending it singly right now (a rebalance): wait for its claim.
            Claim::HeldElsewhere { .. } => return self.deliver_to(sink, alert, payload).await,
            Claim::Held | Claim::TakenOver { .. } => {}
        }
        let seq = self.sequence();
        self.store
            .hold_claim(&alert.alert_id, sink.name(), &self.owner, batch, seq)
            .await?;
        tracing::debug!(sink = sink.name(), alert_id = %alert.alert_id, batch, "alert held for its batch's digest decision");
        self.start_dispatchers();
        Ok(Sent::Queued)
    }

    /// Whether new alerts for `sink` go to the outbox: it is down, or alerts parked for it
    /// are still waiting (a new one must not overtake them).
    fn sink_is_down(&self, sink: &str) -> bool {
        self.is_failing(sink)
            || self
                .parked
                .lock()
                .map(|p| p.get(sink).copied().unwrap_or(0) > 0)
                .unwrap_or(false)
    }

    /// Parks one alert for `sink` in the outbox: claimed by this worker like any delivery, then
    /// marked `queued`; the dispatcher sends it.
    async fn park(
        self: &Arc<Self>,
        sink: &Arc<dyn AlertSink>,
        alert: &Alert,
        payload: &str,
    ) -> Result<Sent, WorkerError> {
        let delivery = delivery_of(sink.as_ref(), alert, payload);
        match self
            .store
            .claim_delivery(&delivery, &self.owner, self.claim_lease)
            .await?
        {
            Claim::Delivered => {
                AlertAlreadyDelivered {
                    sink: sink.name(),
                    alert_id: &alert.alert_id,
                }
                .emit();
                return Ok(Sent::AlreadyDelivered);
            }
            Claim::Queued => return Ok(Sent::Queued),
            // Another worker is sending it right now: that is today's rebalance case, handled
            // as any delivery is (wait for its claim).
            Claim::HeldElsewhere { .. } => return self.deliver_to(sink, alert, payload).await,
            Claim::Held | Claim::TakenOver { .. } => {}
        }
        let seq = self.sequence();
        // Counted before the row is parked, so the dispatcher never sees a parked row of ours
        // with the count at zero.
        self.adjust_parked(sink.name(), 1);
        if !self
            .store
            .park_claim(&alert.alert_id, sink.name(), &self.owner, seq)
            .await
            .inspect_err(|_| self.adjust_parked(sink.name(), -1))?
        {
            self.adjust_parked(sink.name(), -1);
            // Our claim was taken over between the claim and the park (its lease is far longer
            // than that, so only a paused process gets here): the taker sends it.
            return Ok(Sent::Queued);
        }
        AlertParked {
            sink: sink.name(),
            alert_id: &alert.alert_id,
        }
        .emit();
        self.start_dispatchers();
        self.parked_changed.notify_waiters();
        Ok(Sent::Queued)
    }

    /// A position in the outbox: microseconds since the epoch, strictly increasing within this
    /// process, so parked alerts keep their order and two workers' interleave by time.
    fn sequence(&self) -> i64 {
        let now = chrono::Utc::now().timestamp_micros();
        let mut prev = self.next_seq.load(Ordering::Relaxed);
        loop {
            let next = now.max(prev + 1);
            match self
                .next_seq
                .compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(p) => prev = p,
            }
        }
    }

    fn adjust_parked(&self, sink: &str, by: isize) {
        if let Ok(mut p) = self.parked.lock() {
            let n = p.entry(sink.to_string()).or_insert(0);
            *n = n.saturating_add_signed(by);
        }
    }

    fn parked_total(&self) -> usize {
        self.parked.lock().map(|p| p.values().sum()).unwrap_or(0)
    }

    /// Starts one dispatcher task per sink but the alert topic (which is never parked), once.
    /// Also called when a worker starts consuming, to adopt rows a dead worker left parked.
    pub(super) fn start_dispatchers(self: &Arc<Self>) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        self.dispatchers_started.call_once(|| {
            let mut tasks = Vec::new();
            for sink in self.sinks.iter().skip(1) {
                let deliveries = Arc::clone(self);
                let sink = Arc::clone(sink);
                tasks.push(tokio::spawn(async move { deliveries.dispatch(sink).await }));
            }
            if self.digest.is_some() {
                for sink in self.sinks.iter().skip(1).filter(|s| s.digests().is_some()) {
                    let deliveries = Arc::clone(self);
                    let sink = Arc::clone(sink);
                    tasks.push(tokio::spawn(async move {
                        deliveries.dispatch_digests(sink).await
                    }));
                }
            }
            let deliveries = Arc::clone(self);
            tasks.push(tokio::spawn(async move {
                deliveries.keep_parked_leases().await
            }));
            if let Ok(mut d) = self.dispatchers.lock() {
                d.extend(tasks);
            }
        });
    }

    /// Once a stop was requested: waits for the dispatchers to finish the attempt in hand and
    /// put back what they had not sent, so the process never exits with a parked alert half
    /// sent (it would only be adopted after its lease ran out).
    pub(super) async fn wait_for_dispatchers(&self) {
        if !self.stop_requested() {
            return;
        }
        let tasks = self
            .dispatchers
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
    }

    /// One sink's dispatcher: sends the parked deliveries oldest first until stopped.
    async fn dispatch(self: Arc<Self>, sink: Arc<dyn AlertSink>) {
        while !self.stop_requested() {
            // Registered before looking, so a park between the look and the wait wakes it.
            let woken = self.parked_changed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let next = match self.store.next_queued(sink.name(), &self.owner).await {
                Ok(next) => next,
                Err(e) => {
                    warn!(sink = sink.name(), error = %e, "cannot read the alert outbox; trying again");
                    None
                }
            };
            match next {
                Some(queued) => {
                    if let Err(e) = self.send_parked(&sink, queued).await {
                        warn!(sink = sink.name(), error = %e, "a parked alert could not be sent; it stays parked");
                        self.pause(OUTBOX_POLL).await;
                    }
                }
                None => {
                    tokio::select! {
                        _ = woken => {}
                        _ = tokio::time::sleep(OUTBOX_POLL) => {}
                        _ = self.stopped() => {}
                    }
                }
            }
        }
    }

    async fn pause(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.stopped() => {}
        }
    }

    /// Takes one parked delivery and sends it (one attempt while the sink is down).
    async fn send_parked(
        &self,
        sink: &Arc<dyn AlertSink>,
        queued: QueuedDelivery,
    ) -> Result<(), WorkerError> {
        let ours = queued.parked_by == self.owner;
        if !self
            .store
            .take_queued(&queued, &self.owner, self.claim_lease)
            .await?
        {
            // Another dispatcher adopted it first.
            return Ok(());
        }
        if !ours {
            warn!(
                sink = sink.name(),
                alert_id = %queued.delivery.alert_id,
                parked_by = %queued.parked_by,
                "adopting an alert another worker parked and left (its lease ran out)"
            );
        }
        let delivery = queued.delivery;
        let sent = match serde_json::from_str::<Alert>(&delivery.payload) {
            Ok(alert) => {
                self.send_claimed(
                    sink,
                    &alert,
                    &delivery.payload,
                    &delivery,
                    ClaimedFrom::Outbox,
                )
                .await
            }
            Err(e) => {
                // Only a payload written by another version could fail to read back; it is
                // dead-lettered whole rather than dropped.
                self.dead_letter(
                    sink.name(),
                    &delivery.alert_id,
                    &format!("parked alert unreadable: {e}"),
                    &delivery.payload,
                )
                .await
                .map(|_| Sent::DeadLettered)
            }
        };
        let outcome = match sent {
            Ok(s) => s,
            Err(WorkerError::Interrupted { .. }) => {
                // Left parked (send_claimed requeued it) for after the restart.
                return Ok(());
            }
            Err(e) => {
                self.store
                    .requeue_claim(&delivery.alert_id, sink.name(), &self.owner)
                    .await?;
                return Err(e);
            }
        };
        if ours {
            self.adjust_parked(sink.name(), -1);
        }
        if let Ok(mut f) = self.flushed.lock() {
            match outcome {
                Sent::Delivered => f.delivered += 1,
                Sent::DeadLettered => f.dead_lettered += 1,
                Sent::AlreadyDelivered | Sent::Queued => {}
            }
        }
        self.parked_changed.notify_waiters();
        Ok(())
    }

    /// Renews the leases of this worker's parked deliveries while it lives.
    async fn keep_parked_leases(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.claim_lease / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.stopped() => return,
            }
            if let Err(e) = self.store.renew_queued(&self.owner, self.claim_lease).await {
                warn!(error = %e, "could not renew the leases of parked alerts");
            }
            // The imports and rescreens this process is running stay undecided while it lives.
            let running: Vec<String> = self
                .held_batches
                .lock()
                .map(|b| {
                    b.iter()
                        .filter(|k| {
                            !matches!(DigestSource::from_key(k), Some(DigestSource::Document(_)))
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            for batch in running {
                if let Err(e) = self.store.touch_digest_group(&batch).await {
                    warn!(batch, error = %e, "could not keep the batch's digest waiting");
                }
            }
        }
    }

    /// Waits until every delivery this worker parked is delivered or dead-lettered (each gets
    /// at least one attempt, so this ends), or a stop was requested. One-shot commands call it
    /// before they exit.
    pub(super) async fn flush(self: &Arc<Self>) -> FlushReport {
        self.flush_digests().await;
        if self.parked_total() > 0 {
            self.start_dispatchers();
            info!(
                parked = self.parked_total(),
                "sending the alerts parked for sinks that were down before exiting"
            );
        }
        loop {
            let changed = self.parked_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.parked_total() == 0 || self.stop_requested() {
                break;
            }
            tokio::select! {
                _ = changed => {}
                _ = self.stopped() => {}
            }
        }
        self.flushed
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default()
    }

    /// Closes every batch this process held alerts for and decides them now (their digests
    /// sent, their singles parked for the outbox flush that follows), waiting for digests a
    /// dispatcher of this process is sending. One-shot commands end here.
    async fn flush_digests(self: &Arc<Self>) {
        let batches: Vec<String> = self
            .held_batches
            .lock()
            .map(|mut b| b.drain().collect())
            .unwrap_or_default();
        if self.digest.is_none() {
            return;
        }
        for batch in &batches {
            if let Err(e) = self.store.close_digest_group(batch).await {
                warn!(batch, error = %e, "cannot close the batch; its digest waits for it to go quiet");
            }
        }
        let digest_sinks: Vec<Arc<dyn AlertSink>> = self
            .sinks
            .iter()
            .skip(1)
            .filter(|s| s.digests().is_some())
            .cloned()
            .collect();
        for sink in &digest_sinks {
            for batch in &batches {
                if self.stop_requested() {
                    return;
                }
                if let Err(e) = self.decide_batch(sink, batch).await {
                    warn!(sink = sink.name(), batch, error = %e, "cannot decide the batch's digest; it stays held");
                }
            }
        }
        loop {
            let changed = self.digest_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self
                .digests_in_flight
                .lock()
                .map(|n| *n == 0)
                .unwrap_or(true)
                || self.stop_requested()
            {
                break;
            }
            tokio::select! {
                _ = changed => {}
                _ = self.stopped() => {}
            }
        }
    }

    /// One digest sink's dispatcher: adopts digests whose sender died and decides the batches
    /// that are closed or quiet, until stopped.
    async fn dispatch_digests(self: Arc<Self>, sink: Arc<dyn AlertSink>) {
        while !self.stop_requested() {
            let woken = self.digest_changed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let worked = match self.digest_round(&sink).await {
                Ok(n) => n,
                Err(e) => {
                    warn!(sink = sink.name(), error = %e, "cannot decide held alerts; trying again");
                    0
                }
            };
            if worked == 0 {
                tokio::select! {
                    _ = woken => {}
                    _ = tokio::time::sleep(DIGEST_POLL) => {}
                    _ = self.stopped() => {}
                }
            }
        }
    }

    /// One look at the ledger for `sink`: orphaned digests resent, ready batches decided.
    /// Returns how many it acted on.
    async fn digest_round(&self, sink: &Arc<dyn AlertSink>) -> Result<usize, WorkerError> {
        let mut acted = 0;
        for orphan in self.store.orphaned_digests(sink.name()).await? {
            if self.stop_requested() {
                return Ok(acted);
            }
            let _flight = self.digest_in_flight();
            if !self
                .store
                .take_digest(&orphan, &self.owner, self.claim_lease)
                .await?
            {
                continue;
            }
            warn!(
                sink = sink.name(),
                digest_id = %orphan.digest_id,
                alerts = orphan.alert_count,
                "adopting a digest whose sender's lease ran out before it was recorded as \
                 delivered; it is sent again (the sink may get it twice if the first got through)"
            );
            match serde_json::from_str::<Digest>(&orphan.payload) {
                Ok(digest) => self.send_digest(sink, &digest).await?,
                Err(e) => {
                    self.give_up_digest(
                        sink,
                        &orphan.digest_id,
                        &format!("stored digest unreadable: {e}"),
                    )
                    .await?
                }
            }
            acted += 1;
        }
        let now = chrono::Utc::now().timestamp_millis();
        for (batch, closed, last_activity) in self.store.held_digest_groups(sink.name()).await? {
            if self.stop_requested() {
                return Ok(acted);
            }
            if closed || now - last_activity >= self.quiet_for(&batch).as_millis() as i64 {
                acted += self.decide_batch(sink, &batch).await?;
            }
        }
        Ok(acted)
    }

    /// How long batch `batch` must go without an event before it is decided unclosed. A
    /// document's end may never be signalled (a list sync has no document event), so a short
    /// quiet ends it; an import or rescreen is closed by the process running it, which keeps it
    /// active while it lives, so only that process dying (its lease running out) ends it.
    fn quiet_for(&self, batch: &str) -> Duration {
        match DigestSource::from_key(batch) {
            Some(DigestSource::Document(_)) | None => DIGEST_QUIET,
            Some(_) => self.claim_lease.max(DIGEST_QUIET),
        }
    }

    /// Decides batch `batch` for `sink`: over the threshold, one digest (written with the
    /// alerts it carries, then sent); at or under it, its alerts parked to go singly.
    async fn decide_batch(
        &self,
        sink: &Arc<dyn AlertSink>,
        batch: &str,
    ) -> Result<usize, WorkerError> {
        let Some(policy) = &self.digest else {
            return Ok(0);
        };
        let _flight = self.digest_in_flight();
        let held = self.store.held_deliveries(sink.name(), batch).await?;
        if held.is_empty() {
            return Ok(0);
        }
        if let Ok(mut b) = self.held_batches.lock() {
            b.remove(batch);
        }
        // Only a payload written by another version could fail to read: it goes singly, and
        // the outbox dead-letters it whole.
        let readable: Vec<(Alert, &str)> = held
            .iter()
            .filter_map(|h| {
                serde_json::from_str::<Alert>(&h.delivery.payload)
                    .ok()
                    .map(|a| (a, h.delivery.alert_id.as_str()))
            })
            .collect();
        let singles: Vec<&str> = if readable.len() > policy.over {
            held.iter()
                .map(|h| h.delivery.alert_id.as_str())
                .filter(|id| !readable.iter().any(|(_, r)| r == id))
                .collect()
        } else {
            held.iter().map(|h| h.delivery.alert_id.as_str()).collect()
        };
        if !singles.is_empty() {
            let n = singles.len() as isize;
            self.adjust_parked(sink.name(), n);
            let queued = self
                .store
                .queue_held(sink.name(), &singles, &self.owner, self.claim_lease)
                .await
                .inspect_err(|_| self.adjust_parked(sink.name(), -n))?;
            self.adjust_parked(sink.name(), queued as isize - n);
            info!(
                sink = sink.name(),
                batch,
                alerts = queued,
                over = policy.over,
                "batch at or under the digest threshold: its alerts go singly"
            );
            self.parked_changed.notify_waiters();
        }
        if readable.len() <= policy.over {
            return Ok(1);
        }
        let alerts: Vec<Alert> = readable.into_iter().map(|(a, _)| a).collect();
        let source = DigestSource::from_key(batch)
            .unwrap_or_else(|| DigestSource::Document(batch.to_string()));
        let digest = Digest::new(
            sink.name(),
            source,
            &alerts,
            policy.over,
            policy.console_url.as_ref(),
        );
        let payload = serde_json::to_string(&digest).unwrap_or_default();
        let carried: Vec<&str> = digest.alert_ids.iter().map(String::as_str).collect();
        if !self
            .store
            .start_digest(
                &digest.digest_id,
                sink.name(),
                batch,
                &payload,
                &carried,
                &self.owner,
                self.claim_lease,
            )
            .await?
        {
            // Another dispatcher decided the batch first.
            return Ok(0);
        }
        self.send_digest(sink, &digest).await?;
        Ok(1)
    }

    /// Sends a digest this process holds the claim on (paced, with retries, renewing the
    /// claim) and records it delivered with every alert it carries; or dead-letters those
    /// alerts and drops the digest, so a redrive sends each on its own.
    async fn send_digest(
        &self,
        sink: &Arc<dyn AlertSink>,
        digest: &Digest,
    ) -> Result<(), WorkerError> {
        let Some(digests) = sink.digests() else {
            return Ok(());
        };
        let failing = self.is_failing(sink.name());
        let policy = if failing {
            RetryPolicy {
                max_attempts: 1,
                ..self.retry.clone()
            }
        } else {
            self.retry.clone()
        };
        let sent = self
            .renewing_digest_claim(
                digest,
                sink.name(),
                retry_until(
                    sink.as_ref(),
                    &digest.digest_id,
                    &policy,
                    |notice| DeliveryRetried { sink: notice.sink }.emit(),
                    self.stopped(),
                    || digests.send_digest(digest),
                ),
            )
            .await;
        match sent {
            Ok(_) => {
                self.set_failing(sink.name(), false);
                if !self
                    .store
                    .finish_digest(&digest.digest_id, sink.name(), &self.owner)
                    .await?
                {
                    warn!(
                        sink = sink.name(),
                        digest_id = %digest.digest_id,
                        "digest delivered after this worker's claim had run out and another \
                         worker had taken it over: the sink may get it twice"
                    );
                }
                DigestDelivered {
                    sink: sink.name(),
                    digest,
                }
                .emit();
                if let Ok(mut f) = self.flushed.lock() {
                    f.delivered += digest.total();
                }
                Ok(())
            }
            Err(failure) if failure.interrupted => {
                self.store
                    .release_digest_lease(&digest.digest_id, sink.name(), &self.owner)
                    .await?;
                info!(sink = sink.name(), digest_id = %digest.digest_id, "digest left for after the restart");
                Ok(())
            }
            Err(failure) => {
                if !failure.permanent {
                    self.set_failing(sink.name(), true);
                }
                self.give_up_digest(sink, &digest.digest_id, &failure.reason)
                    .await
            }
        }
    }

    /// Dead-letters every alert a digest carried, with the digest's failure as the reason,
    /// then drops the digest and their ledger rows.
    async fn give_up_digest(
        &self,
        sink: &Arc<dyn AlertSink>,
        digest_id: &str,
        reason: &str,
    ) -> Result<(), WorkerError> {
        let members = self.store.digest_members(digest_id).await?;
        let reason = format!(
            "digest {} of {} alerts: {reason}",
            &digest_id[..digest_id.len().min(12)],
            members.len()
        );
        for (alert_id, payload) in &members {
            self.dead_letter(sink.name(), alert_id, &reason, payload)
                .await?;
        }
        self.store
            .drop_digest(digest_id, sink.name(), &self.owner)
            .await?;
        DigestDeadLettered {
            sink: sink.name(),
            digest_id,
            alerts: members.len(),
            reason: &reason,
        }
        .emit();
        if let Ok(mut f) = self.flushed.lock() {
            f.dead_lettered += members.len();
        }
        Ok(())
    }

    /// Counts a digest decision or send in progress until the guard drops.
    fn digest_in_flight(&self) -> InFlight<'_> {
        if let Ok(mut n) = self.digests_in_flight.lock() {
            *n += 1;
        }
        InFlight(self)
    }

    /// As [`Deliveries::renewing_claim`], for a digest's claim.
    async fn renewing_digest_claim<T>(
        &self,
        digest: &Digest,
        sink: &str,
        send: impl std::future::Future<Output = T>,
    ) -> T {
        tokio::pin!(send);
        let mut renew = tokio::time::interval(self.claim_lease / 3);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.tick().await;
        loop {
            tokio::select! {
                r = &mut send => return r,
                _ = renew.tick() => {
                    match self.store.renew_digest(&digest.digest_id, sink, &self.owner, self.claim_lease).await {
                        Ok(true) => {}
                        Ok(false) => warn!(sink, digest_id = %digest.digest_id, "digest claim lost (its lease ran out and another worker took it); the digest may reach the sink twice"),
                        Err(e) => warn!(sink, digest_id = %digest.digest_id, error = %e, "could not renew the digest claim"),
                    }
                }
            }
        }
    }

    /// One alert to one sink: claim, send (with retries, renewing the claim), mark delivered;
    /// or dead-letter and release the claim.
    #[tracing::instrument(skip_all, fields(alert_id = %alert.alert_id, kind = alert.kind.as_str()))]
    pub(super) async fn deliver_to(
        &self,
        sink: &Arc<dyn AlertSink>,
        alert: &Alert,
        payload: &str,
    ) -> Result<Sent, WorkerError> {
        let delivery = delivery_of(sink.as_ref(), alert, payload);
        match self.claim(&delivery).await? {
            Claimed::Held => {
                self.send_claimed(sink, alert, payload, &delivery, ClaimedFrom::Event)
                    .await
            }
            Claimed::Delivered => {
                AlertAlreadyDelivered {
                    sink: sink.name(),
                    alert_id: &alert.alert_id,
                }
                .emit();
                Ok(Sent::AlreadyDelivered)
            }
            Claimed::Parked => Ok(Sent::Queued),
        }
    }

    /// Sends a delivery this worker holds the claim on, and records how it ended.
    async fn send_claimed(
        &self,
        sink: &Arc<dyn AlertSink>,
        alert: &Alert,
        payload: &str,
        delivery: &Delivery,
        from: ClaimedFrom,
    ) -> Result<Sent, WorkerError> {
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
                delivery,
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
                // A delivery from the outbox goes back there: its event was committed when it
                // was parked, so no re-handled event would ever send it.
                if from == ClaimedFrom::Outbox {
                    self.store
                        .requeue_claim(&alert.alert_id, sink.name(), &self.owner)
                        .await?;
                } else {
                    self.store
                        .release_claim(&alert.alert_id, sink.name(), &self.owner)
                        .await?;
                }
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
                            "sink ran out of retries: its next alerts are parked and sent in \
                             the background, one attempt each, until one is delivered"
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
                self.dead_letter(sink.name(), &alert.alert_id, &reason, payload)
                    .await?;
                Ok(Sent::DeadLettered)
            }
        }
    }

    async fn dead_letter(
        &self,
        sink: &str,
        alert_id: &str,
        reason: &str,
        payload: &str,
    ) -> Result<(), WorkerError> {
        let letter = DeadLetter::sink_failure(sink, alert_id, reason, payload.to_string());
        self.dead_letters.write(&letter).await?;
        // Only once the dead letter is durable: a redrive claims it afresh.
        self.store
            .release_claim(alert_id, sink, &self.owner)
            .await?;
        AlertDeadLettered {
            sink,
            alert_id,
            reason,
        }
        .emit();
        Ok(())
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

    /// Claims `delivery` for this worker. While another worker holds a live claim (a rebalance
    /// handed both the event) this waits for it to be delivered, released or to expire; a stop
    /// ends the wait as an interrupted delivery.
    async fn claim(&self, delivery: &Delivery) -> Result<Claimed, WorkerError> {
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
                    return Ok(Claimed::Held);
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
                    return Ok(Claimed::Held);
                }
                Claim::Delivered => return Ok(Claimed::Delivered),
                Claim::Queued => return Ok(Claimed::Parked),
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

/// A digest in progress, counted in [`Deliveries::digests_in_flight`] until dropped.
struct InFlight<'a>(&'a Deliveries);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut n) = self.0.digests_in_flight.lock() {
            *n = n.saturating_sub(1);
        }
        self.0.digest_changed.notify_waiters();
    }
}

/// Where a claimed delivery came from: an event being handled, or the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClaimedFrom {
    Event,
    Outbox,
}

/// What [`Deliveries::claim`] came to for the caller.
enum Claimed {
    Held,
    Delivered,
    /// Parked in the outbox; a dispatcher sends it.
    Parked,
}

fn delivery_of(sink: &dyn AlertSink, alert: &Alert, payload: &str) -> Delivery {
    Delivery {
        alert_id: alert.alert_id.clone(),
        sink: sink.name().to_string(),
        supplier_id: alert.supplier.id.clone(),
        entity_key: alert.entry.entity_key.to_string(),
        entry_version: alert.entry.version,
        kind: alert.kind.as_str().to_string(),
        payload: payload.to_string(),
    }
}

fn claim_owner() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_string());
    let random: u32 = rand::random();
    format!("{host}/{}/{random:08x}", std::process::id())
}
