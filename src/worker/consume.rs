//! The one consume loop of every worker, whichever bus it reads: receive a message, hand it to
//! the [`Worker`], and only then commit its position.
//!
//! The bus is a [`MessageSource`] with two implementations: [`LogSource`], the store's log of
//! the embedded bus, and [`KafkaSource`], a member of the Kafka consumer group. Both carry the
//! same CloudEvents (one codec, [`decode_change_event`]) and go through the same retry policy.
//!
//! What this loop must never do: commit a position before the message's decisions and alerts
//! are durable (the worker returned Ok, or the dead letter is written), or skip a message whose
//! handling failed — a failed message is retried in place, since it could be an unsent alert. A
//! poison message is dead-lettered and skipped, since retrying cannot help.
//!
//! Consecutive supplier upserts already at hand are handled as one batch (up to
//! [`crate::worker::SUPPLIER_BATCH`]): stored and decided in one transaction, and their
//! positions committed only after the whole batch is durable; a failed batch is retried whole.

use std::time::Duration;

use async_trait::async_trait;
use tracing::{info, warn};

use super::{Worker, WorkerError};
use crate::bus::kafka::{KafkaBusError, KafkaConsumer};
use crate::bus::{decode_change_event, InProcessConsumer};
use crate::dead_letter::{DeadLetter, Origin};
use crate::domain::SupplierRecord;
use crate::metrics::metrics;
use crate::outcome::WorkerOutcome;
use crate::store::StoreError;
use crate::telemetry::{InternalEvent, MessageDeadLettered, MessageFailed, MessageHandled};

/// One message off a topic, wherever it came from.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub key: String,
    /// `None` for a tombstone (a deleted supplier on the suppliers topic).
    pub payload: Option<Vec<u8>>,
    pub origin: Origin,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Kafka(#[from] KafkaBusError),
}

/// A topic the worker consumes, with a committed position per message.
#[async_trait]
pub trait MessageSource: Send {
    /// The next message, or `None` if none arrived within `idle_wait`.
    async fn receive(&mut self, idle_wait: Duration) -> Result<Option<Message>, SourceError>;
    /// The next message if one is at hand (fetched already, or arriving within a few
    /// milliseconds): how a batch is filled without waiting on an idle topic.
    async fn receive_ready(&mut self) -> Result<Option<Message>, SourceError> {
        self.receive(Duration::ZERO).await
    }
    /// Records `message` as handled: the next start resumes after it.
    async fn commit(&mut self, message: &Message) -> Result<(), SourceError>;
    /// Brings the consumer-lag gauges up to date.
    async fn record_lag(&mut self);
    /// Leaves cleanly (Kafka: commits stored offsets and leaves the group).
    async fn close(self: Box<Self>) -> Result<(), SourceError>;
    /// Whether a receive error is worth retrying (librdkafka recovers by itself).
    fn receive_errors_are_transient(&self) -> bool;
}

/// When [`consume`] returns, besides shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Until shutdown (the service).
    Shutdown,
    /// Until the topic is drained (the demo, tests): a handling failure is returned, not
    /// retried, since nobody would be there to see the retries.
    Idle,
    /// Until this many messages were handled and committed (tests, one-shot runs).
    Handled(usize),
}

/// How a worker consumes.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    pub until: Until,
    /// Pause before handling a failed message again (store or sink down).
    pub retry_delay: Duration,
    /// Messages from this topic are supplier upserts (the JSON of a supplier record, keyed by
    /// its id) or tombstones; every other topic carries change events.
    pub suppliers_topic: Option<String>,
    /// Messages from this topic are ownership holdings (`ownership::OwnershipRecord` JSON keyed
    /// by `ownership::record_key`) or tombstones deleting one.
    pub ownership_topic: Option<String>,
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        ConsumeOptions {
            until: Until::Shutdown,
            retry_delay: DEFAULT_RETRY_DELAY,
            suppliers_topic: None,
            ownership_topic: None,
        }
    }
}

/// The pause before a failed message is handled again.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(2);

/// How long an idle receive waits before the loop looks at its stop conditions again.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// How long filling a batch waits for a message that is not at hand yet.
const BATCH_LINGER: Duration = Duration::from_millis(5);

/// How often lag is sampled: on Kafka it costs a round trip to the brokers.
const LAG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Consumes `source` with `worker` until `shutdown` resolves or `options.until` says. On
/// shutdown the message in hand is finished and committed first, unless an alert of it was
/// waiting between delivery attempts: then it stays uncommitted, to be redone after the
/// restart (the ledger keeps what was sent). Returns how many messages were handled.
pub async fn consume(
    worker: &Worker,
    mut source: Box<dyn MessageSource>,
    options: ConsumeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<usize, ConsumeError> {
    worker.refresh_snapshot_metrics().await;
    // Before the first message: alerts a dead worker left parked are adopted even if this one
    // never parks any.
    worker.start_outbox();
    let until = options.until;
    let body = async {
        let handled = consume_messages(worker, source.as_mut(), &options).await?;
        // A run that ends by itself must not end with alerts still parked for a sink that was
        // down: each gets its attempt first. The service's dispatchers simply go on.
        if until != Until::Shutdown {
            worker.flush_outbox().await;
        }
        Ok::<_, ConsumeError>(handled)
    };
    let result = worker.until_stopped(shutdown, body).await;
    worker.stop_outbox().await;
    let closed = source.close().await;
    let handled = result?;
    closed?;
    Ok(handled)
}

async fn consume_messages(
    worker: &Worker,
    source: &mut dyn MessageSource,
    options: &ConsumeOptions,
) -> Result<usize, ConsumeError> {
    let mut handled = 0usize;
    let idle_wait = match options.until {
        Until::Idle => Duration::ZERO,
        _ => IDLE_WAIT,
    };
    let mut last_lag: Option<std::time::Instant> = None;
    // A message read while filling a batch that does not belong in it: handled next.
    let mut pending: Option<Message> = None;
    'messages: loop {
        if let Until::Handled(max) = options.until {
            if handled >= max {
                break;
            }
        }
        if last_lag.is_none_or(|t| t.elapsed() >= LAG_INTERVAL) {
            source.record_lag().await;
            last_lag = Some(std::time::Instant::now());
        }
        // Biased: a requested stop wins over a message that happens to be ready.
        let received = match pending.take() {
            Some(m) => Ok(Some(m)),
            None => tokio::select! {
                biased;
                _ = worker.stopped() => break,
                r = source.receive(idle_wait) => r,
            },
        };
        let message = match received {
            Ok(Some(m)) => m,
            Ok(None) if options.until == Until::Idle => break,
            Ok(None) => continue,
            Err(e) if source.receive_errors_are_transient() => {
                warn!(error = %e, "receive failed; retrying");
                tokio::select! {
                    biased;
                    _ = worker.stopped() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                }
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(first) = supplier_upsert(&message, options) {
            let room = match options.until {
                Until::Handled(max) => max.saturating_sub(handled).max(1),
                _ => usize::MAX,
            };
            let batch = fill_supplier_batch(source, message, first, room, &mut pending).await?;
            match handle_supplier_batch(worker, &batch, options).await? {
                BatchEnd::Handled => {}
                BatchEnd::Stopped => break 'messages,
            }
            for (message, _) in &batch {
                commit(source, message).await?;
                handled += 1;
            }
            continue;
        }
        loop {
            if worker.stop_requested() {
                break 'messages;
            }
            match handle_message(worker, &message, options).await {
                Ok(outcome) => {
                    MessageHandled { outcome }.emit();
                    break;
                }
                // Stopped between delivery attempts: the position stays uncommitted and the
                // next start (or the group's next member) handles the message again.
                Err(WorkerError::Interrupted { .. }) => break 'messages,
                Err(_) if worker.stop_requested() => break 'messages,
                Err(e) => {
                    MessageFailed {
                        origin: &message.origin,
                        error: &e,
                    }
                    .emit();
                    if options.until == Until::Idle {
                        return Err(e.into());
                    }
                    tokio::select! {
                        biased;
                        _ = worker.stopped() => break 'messages,
                        _ = tokio::time::sleep(options.retry_delay) => {}
                    }
                }
            }
        }
        commit(source, &message).await?;
        handled += 1;
    }
    Ok(handled)
}

/// Records `message` as handled.
async fn commit(source: &mut dyn MessageSource, message: &Message) -> Result<(), ConsumeError> {
    if let Err(e) = source.commit(message).await {
        // On Kafka only a partition revoked by a rebalance refuses a store: its new owner
        // redoes the message and the ledger absorbs the repeat. In the store it is an error.
        if source.receive_errors_are_transient() {
            warn!(error = %e, from = %message.origin, "cannot store the offset");
        } else {
            return Err(e.into());
        }
    }
    Ok(())
}

/// The record of a supplier upsert that can join a batch: a message of the suppliers topic
/// whose payload parses as a record keyed by its id. Tombstones and messages to dead-letter
/// go one at a time through [`handle_message`], in their place.
fn supplier_upsert(message: &Message, options: &ConsumeOptions) -> Option<SupplierRecord> {
    if options.suppliers_topic.as_deref() != Some(message.topic.as_str()) {
        return None;
    }
    let record = serde_json::from_slice::<SupplierRecord>(message.payload.as_deref()?).ok()?;
    (record.id() == message.key).then_some(record)
}

/// Supplier upserts handled as one batch at most (one transaction of upserts and decisions).
const KAFKA_SUPPLIER_BATCH: usize = crate::worker::SUPPLIER_BATCH;

/// Fills a batch of consecutive supplier upserts starting with `first`, up to `room` messages,
/// taking only what is already at hand. The first message that cannot join (another topic, a
/// tombstone, a bad record) is left in `pending`, so order on the topic is kept.
async fn fill_supplier_batch(
    source: &mut dyn MessageSource,
    message: Message,
    first: SupplierRecord,
    room: usize,
    pending: &mut Option<Message>,
) -> Result<Vec<(Message, SupplierRecord)>, ConsumeError> {
    let mut batch = vec![(message, first)];
    let limit = room.min(KAFKA_SUPPLIER_BATCH);
    while batch.len() < limit {
        let next = match source.receive_ready().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            // Handled by the main loop's retry on its next receive.
            Err(e) if source.receive_errors_are_transient() => {
                warn!(error = %e, "receive failed while filling a batch");
                break;
            }
            Err(e) => return Err(e.into()),
        };
        // The batch's options are the loop's: only suppliers-topic messages reach here as
        // upserts, so checking the topic of the first is enough.
        let joins = next.topic == batch[0].0.topic && next.payload.is_some();
        let record = joins
            .then(|| serde_json::from_slice::<SupplierRecord>(next.payload.as_deref()?).ok())
            .flatten()
            .filter(|r| r.id() == next.key);
        match record {
            Some(r) => batch.push((next, r)),
            None => {
                *pending = Some(next);
                break;
            }
        }
    }
    Ok(batch)
}

/// How handling a batch ended.
enum BatchEnd {
    Handled,
    /// A stop came first: nothing of the batch is committed.
    Stopped,
}

/// Stores and screens a batch of supplier upserts, retrying the whole batch in place on
/// failure (it is one transaction, then deliveries the ledger makes idempotent).
async fn handle_supplier_batch(
    worker: &Worker,
    batch: &[(Message, SupplierRecord)],
    options: &ConsumeOptions,
) -> Result<BatchEnd, ConsumeError> {
    let records: Vec<SupplierRecord> = batch.iter().map(|(_, r)| r.clone()).collect();
    loop {
        if worker.stop_requested() {
            return Ok(BatchEnd::Stopped);
        }
        match worker.suppliers_upserted(&records).await {
            Ok(_) => {
                for _ in batch {
                    MessageHandled {
                        outcome: WorkerOutcome::Processed,
                    }
                    .emit();
                }
                return Ok(BatchEnd::Handled);
            }
            Err(WorkerError::Interrupted { .. }) => return Ok(BatchEnd::Stopped),
            Err(_) if worker.stop_requested() => return Ok(BatchEnd::Stopped),
            Err(e) => {
                MessageFailed {
                    origin: &batch[0].0.origin,
                    error: &e,
                }
                .emit();
                if options.until == Until::Idle {
                    return Err(e.into());
                }
                tokio::select! {
                    biased;
                    _ = worker.stopped() => return Ok(BatchEnd::Stopped),
                    _ = tokio::time::sleep(options.retry_delay) => {}
                }
            }
        }
    }
}

/// Hands one message to the worker: a supplier upsert or tombstone, or a change event.
async fn handle_message(
    worker: &Worker,
    message: &Message,
    options: &ConsumeOptions,
) -> Result<WorkerOutcome, WorkerError> {
    if options.suppliers_topic.as_deref() == Some(message.topic.as_str()) {
        return handle_supplier_message(worker, message).await;
    }
    if options.ownership_topic.as_deref() == Some(message.topic.as_str()) {
        return handle_ownership_message(worker, message).await;
    }
    let payload = message.payload.as_deref().unwrap_or_default();
    match decode_change_event(payload) {
        Ok(event) => worker
            .handle(&event)
            .await
            .map(|_| WorkerOutcome::Processed),
        Err(e) => {
            let letter = DeadLetter::undecodable_event(
                &message.key,
                e.reason(),
                &e,
                message.origin.clone(),
                payload,
            );
            dead_letter(worker, message, &letter).await
        }
    }
}

/// A supplier upsert is stored and screened against the whole list; a tombstone deletes the
/// supplier. A record that does not parse, or whose id is not its key, is dead-lettered.
async fn handle_supplier_message(
    worker: &Worker,
    message: &Message,
) -> Result<WorkerOutcome, WorkerError> {
    let key = message.key.as_str();
    let Some(payload) = message.payload.as_deref() else {
        worker.supplier_deleted(key).await?;
        return Ok(WorkerOutcome::Processed);
    };
    let parsed = serde_json::from_slice::<SupplierRecord>(payload)
        .map_err(|e| e.to_string())
        .and_then(|r| {
            if r.id() == key {
                Ok(r)
            } else {
                Err(format!("key {key:?} is not the record's id {:?}", r.id()))
            }
        });
    match parsed {
        Ok(record) => worker
            .supplier_upserted(record)
            .await
            .map(|_| WorkerOutcome::Processed),
        Err(detail) => {
            let letter = DeadLetter::invalid_supplier(key, detail, message.origin.clone(), payload);
            dead_letter(worker, message, &letter).await
        }
    }
}

/// A holding upsert is stored and what it reaches re-evaluated; a tombstone deletes the
/// holding. A record that does not parse, whose percent is out of range, or whose key is not
/// its (owned, owner) pair, is dead-lettered.
async fn handle_ownership_message(
    worker: &Worker,
    message: &Message,
) -> Result<WorkerOutcome, WorkerError> {
    use crate::ownership::{parse_record_key, OwnershipRecord};
    let key = message.key.as_str();
    let payload = message.payload.as_deref();
    let Some(payload) = payload else {
        return match parse_record_key(key) {
            Some((owned, owner)) => worker
                .ownership_deleted(&owned, &owner)
                .await
                .map(|_| WorkerOutcome::Processed),
            None => {
                let detail = format!("tombstone key {key:?} is not [\"owned_id\",\"owner_id\"]");
                let letter =
                    DeadLetter::invalid_ownership(key, detail, message.origin.clone(), b"");
                dead_letter(worker, message, &letter).await
            }
        };
    };
    let parsed = serde_json::from_slice::<OwnershipRecord>(payload)
        .map_err(|e| e.to_string())
        .and_then(|r| {
            if r.share().is_none() {
                Err(format!("percent {} is not from 0 to 100", r.percent))
            } else if r.key() != key {
                Err(format!("key {key:?} is not the record's {:?}", r.key()))
            } else {
                Ok(r)
            }
        });
    match parsed {
        Ok(record) => worker
            .ownership_upserted(std::slice::from_ref(&record))
            .await
            .map(|_| WorkerOutcome::Processed),
        Err(detail) => {
            let letter =
                DeadLetter::invalid_ownership(key, detail, message.origin.clone(), payload);
            dead_letter(worker, message, &letter).await
        }
    }
}

async fn dead_letter(
    worker: &Worker,
    message: &Message,
    letter: &DeadLetter,
) -> Result<WorkerOutcome, WorkerError> {
    worker.dead_letters().write(letter).await?;
    MessageDeadLettered {
        origin: &message.origin,
        letter,
    }
    .emit();
    Ok(WorkerOutcome::DeadLettered)
}

/// The embedded bus: the store's log of a topic, read in batches from the consumer's stored
/// position.
pub struct LogSource {
    consumer: InProcessConsumer,
    buffered: std::collections::VecDeque<crate::store::LoggedMessage>,
    head: i64,
}

impl LogSource {
    pub fn new(consumer: InProcessConsumer) -> Self {
        LogSource {
            consumer,
            buffered: Default::default(),
            head: 0,
        }
    }

    fn lag_gauge(&self) -> prometheus::IntGauge {
        metrics()
            .consumer_lag
            .with_label_values(&[self.consumer.topic(), "0"])
    }
}

/// Messages read from the log at a time.
const LOG_BATCH: i64 = 100;

#[async_trait]
impl MessageSource for LogSource {
    async fn receive(&mut self, idle_wait: Duration) -> Result<Option<Message>, SourceError> {
        if self.buffered.is_empty() {
            let batch = self.consumer.next_batch(LOG_BATCH, idle_wait).await?;
            if batch.is_empty() {
                self.lag_gauge().set(0);
                return Ok(None);
            }
            self.head = self.consumer.head().await?;
            self.buffered.extend(batch);
        }
        let Some(logged) = self.buffered.pop_front() else {
            return Ok(None);
        };
        self.lag_gauge()
            .set((self.head - logged.position + 1).max(0));
        Ok(Some(Message {
            topic: self.consumer.topic().to_string(),
            key: logged.key,
            payload: Some(logged.payload.into_bytes()),
            origin: Origin::Log {
                topic: self.consumer.topic().to_string(),
                position: logged.position,
            },
        }))
    }

    async fn commit(&mut self, message: &Message) -> Result<(), SourceError> {
        let Origin::Log { position, .. } = message.origin else {
            unreachable!("a log source only hands out log messages");
        };
        self.consumer.commit(position).await?;
        self.lag_gauge().set((self.head - position).max(0));
        Ok(())
    }

    async fn record_lag(&mut self) {
        // Kept current message by message; nothing to sample.
    }

    async fn close(self: Box<Self>) -> Result<(), SourceError> {
        Ok(())
    }

    fn receive_errors_are_transient(&self) -> bool {
        false
    }
}

fn kafka_message(m: crate::bus::kafka::ReceivedMessage) -> Message {
    Message {
        key: m.key_str().unwrap_or_default().to_string(),
        origin: Origin::Kafka {
            topic: m.topic.clone(),
            partition: m.partition,
            offset: m.offset,
        },
        topic: m.topic,
        payload: m.payload,
    }
}

/// A member of the Kafka consumer group.
pub struct KafkaSource {
    consumer: Option<KafkaConsumer>,
}

impl KafkaSource {
    pub fn new(consumer: KafkaConsumer) -> Self {
        KafkaSource {
            consumer: Some(consumer),
        }
    }

    fn consumer(&self) -> &KafkaConsumer {
        self.consumer.as_ref().expect("open until closed")
    }
}

#[async_trait]
impl MessageSource for KafkaSource {
    async fn receive(&mut self, idle_wait: Duration) -> Result<Option<Message>, SourceError> {
        // A group member never sees "the end" of a topic: idle means nothing came for a while.
        let wait = idle_wait.max(Duration::from_secs(1));
        let received = match tokio::time::timeout(wait, self.consumer().recv()).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        };
        Ok(received?.map(kafka_message))
    }

    async fn receive_ready(&mut self) -> Result<Option<Message>, SourceError> {
        // Long enough for librdkafka to hand over what it has fetched, short enough that a
        // batch on a quiet topic is not held back.
        let received = match tokio::time::timeout(BATCH_LINGER, self.consumer().recv()).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        };
        Ok(received?.map(kafka_message))
    }

    async fn commit(&mut self, message: &Message) -> Result<(), SourceError> {
        let Origin::Kafka {
            topic,
            partition,
            offset,
        } = &message.origin
        else {
            unreachable!("a Kafka source only hands out Kafka messages");
        };
        Ok(self.consumer().store_offset(topic, *partition, *offset)?)
    }

    async fn record_lag(&mut self) {
        match self.consumer().lag(Duration::from_secs(2)).await {
            Ok(partitions) => {
                // Partitions a rebalance moved to another member must not keep reporting their
                // last lag from here: start from the current assignment each time.
                metrics().consumer_lag.reset();
                for p in partitions {
                    metrics()
                        .consumer_lag
                        .with_label_values(&[&p.topic, &p.partition.to_string()])
                        .set(p.lag);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot sample the consumer lag"),
        }
    }

    async fn close(mut self: Box<Self>) -> Result<(), SourceError> {
        let consumer = self.consumer.take().expect("closed once");
        info!(group = consumer.group_id(), "Kafka worker stopping");
        Ok(consumer.close().await?)
    }

    fn receive_errors_are_transient(&self) -> bool {
        true
    }
}
