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
use crate::alerts::{deliver_until, Alert, AlertSink, RetryPolicy};
use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::store::{Claim, Delivery, QueuedDelivery, Store};
use crate::telemetry::{
    AlertAlreadyDelivered, AlertDeadLettered, AlertDelivered, AlertParked, DeliveryRetried,
    InternalEvent,
};

/// The default delivery-claim lease: an alert whose sender died mid-delivery is sent by
/// another worker at most this long after the sender's last renewal.
pub const DEFAULT_CLAIM_LEASE: Duration = Duration::from_secs(30);

/// How often a worker waiting on another's claim looks again.
const CLAIM_POLL: Duration = Duration::from_millis(250);

/// How often an idle dispatcher looks for parked deliveries it was not told about (another
/// worker's, left behind when it died).
const OUTBOX_POLL: Duration = Duration::from_secs(2);

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
        }
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
        let queues = others.iter().map(|sink| async {
            let mut sent = Vec::with_capacity(alerts.len());
            for (alert, payload) in alerts.iter().zip(&payloads) {
                let s = if self.sink_is_down(sink.name()) {
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
        }
    }

    /// Waits until every delivery this worker parked is delivered or dead-lettered (each gets
    /// at least one attempt, so this ends), or a stop was requested. One-shot commands call it
    /// before they exit.
    pub(super) async fn flush(self: &Arc<Self>) -> FlushReport {
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
