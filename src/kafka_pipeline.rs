//! The Kafka mode of `entitywatch run`: the same watcher and worker as the embedded mode, with
//! Kafka between them and after them.
//!
//! Data flow: watcher → [`KafkaPublisher`] (CloudEvents) → `entitywatch.entity-changes.v1` →
//! [`consume_kafka`] (consumer group `entitywatch-workers`) → [`Worker::handle`] (snapshot,
//! decisions and delivery ledger in the store) → [`KafkaAlertSink`] → `entitywatch.alerts.v1`,
//! plus Slack and webhooks; poison messages and undeliverable alerts go through
//! [`KafkaDeadLetters`] to `entitywatch.dead-letter.v1`.
//!
//! What this module must never do: store a message's offset before the event's decisions and
//! alerts are durable (the worker returned Ok, or the poison message is confirmed on the
//! dead-letter topic). A failed event is retried in place, never skipped; redelivery after a
//! crash is harmless because the store's delivery ledger absorbs repeated alerts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tracing::{info, warn};

use crate::alerts::{Alert, AlertSink, RetryPolicy, SinkError};
use crate::bus::cloudevents::from_cloud_event;
use crate::bus::kafka::{
    ensure_topics, KafkaBusError, KafkaConsumer, KafkaProducer, KafkaPublisher, KafkaSettings,
    OutgoingRecord, ReceivedMessage, Topics,
};
use crate::config::Settings;
use crate::federal_register::client::FederalRegisterClient;
use crate::federal_register::watcher::{Watcher, WatcherConfig};
use crate::metrics::metrics;
use crate::store::Store;
use crate::worker::{DeadLetters, Worker};

/// The consumer group of `entitywatch run` workers: every process of a deployment shares it,
/// so each change event is handled by one of them.
pub const WORKER_GROUP: &str = "entitywatch-workers";

/// Header on dead letters carrying the reason, so a consumer can route without parsing.
pub const DEAD_LETTER_REASON_HEADER: &str = "entitywatch-dead-letter-reason";

#[derive(Debug, thiserror::Error)]
pub enum KafkaPipelineError {
    #[error("Kafka mode needs brokers (--kafka-brokers / ENTITYWATCH_KAFKA_BROKERS)")]
    NoBrokers,
    #[error(transparent)]
    Kafka(#[from] KafkaBusError),
}

/// How the Kafka pipeline is wired. Topic names are configurable because enterprises
/// integrate against them (a shared cluster may need a prefix) and tests need fresh ones.
#[derive(Debug, Clone)]
pub struct KafkaPipelineConfig {
    pub settings: KafkaSettings,
    pub topics: Topics,
    /// Used only when a topic is created; an existing topic is left as it is.
    pub partitions: i32,
    pub replication: i32,
    pub group_id: String,
    pub retry: RetryPolicy,
    /// How long a worker's delivery claim lasts unless renewed (see `Worker::with_claim_lease`).
    pub claim_lease: Duration,
    /// Pause before handling a failed event again (store or sink down).
    pub retry_delay: Duration,
}

impl KafkaPipelineConfig {
    /// Creates the configured topics if missing; an existing topic is left as it is.
    pub async fn ensure_topics(&self) -> Result<(), KafkaPipelineError> {
        ensure_topics(
            &self.settings,
            &self.topics.specs(self.partitions, self.replication),
        )
        .await?;
        Ok(())
    }

    /// How a long-running worker consumes: until shutdown, with supplier upserts recognised
    /// by their topic.
    pub fn service_consume_options(&self) -> ConsumeOptions {
        ConsumeOptions {
            max_messages: None,
            retry_delay: Some(self.retry_delay),
            suppliers_topic: Some(self.topics.suppliers.clone()),
        }
    }

    pub fn new(settings: KafkaSettings) -> Self {
        KafkaPipelineConfig {
            settings,
            topics: Topics::default(),
            partitions: 3,
            replication: 1,
            group_id: WORKER_GROUP.to_string(),
            retry: RetryPolicy::default(),
            claim_lease: crate::worker::DEFAULT_CLAIM_LEASE,
            retry_delay: Duration::from_secs(2),
        }
    }

    /// From resolved configuration: `kafka_brokers` plus the librdkafka pass-through settings.
    pub fn from_settings(settings: &Settings) -> Result<Self, KafkaPipelineError> {
        let brokers = settings
            .kafka_brokers
            .as_deref()
            .filter(|b| !b.trim().is_empty())
            .ok_or(KafkaPipelineError::NoBrokers)?;
        let mut kafka = KafkaSettings::new(brokers);
        for (k, v) in &settings.kafka_settings {
            kafka = kafka.with(k.clone(), v.clone());
        }
        let mut config = KafkaPipelineConfig::new(kafka);
        config.topics = Topics::with_prefix(&settings.kafka_topic_prefix);
        config.group_id = settings.kafka_group_id.clone();
        Ok(config)
    }
}

/// The alert topic on Kafka: the alert JSON keyed by supplier id, so one supplier's alerts stay
/// in order on one partition. Like every sink it makes one attempt and never decides whether
/// to send; it returns only once the broker confirmed the message (`acks=all`), because the
/// worker records the delivery in its ledger on that promise.
#[derive(Debug, Clone)]
pub struct KafkaAlertSink {
    producer: KafkaProducer,
    topic: String,
}

impl KafkaAlertSink {
    pub fn new(producer: KafkaProducer, topic: impl Into<String>) -> Self {
        KafkaAlertSink {
            producer,
            topic: topic.into(),
        }
    }
}

#[async_trait]
impl AlertSink for KafkaAlertSink {
    fn bounds_its_own_attempts(&self) -> bool {
        // The producer resolves every send within message.timeout.ms, delivered or not.
        true
    }

    fn name(&self) -> &str {
        // The same name as the embedded alert topic: the ledger then says "on the alert topic"
        // whichever transport carried it.
        "alert-topic"
    }

    async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        let record = OutgoingRecord::json(&self.topic, &alert.supplier.id, alert)
            .map_err(|e| SinkError::permanent(format!("cannot encode alert: {e}")))?;
        self.producer
            .send_all(std::slice::from_ref(&record))
            .await
            .map(|_| ())
            // A broker that did not confirm may well confirm on the next attempt.
            .map_err(|e| SinkError::retryable(format!("Kafka topic {}: {e}", self.topic)))
    }
}

/// The dead-letter topic on Kafka: `{reason, payload, dead_lettered_at}` keyed as the original,
/// with the reason also in a header.
#[derive(Debug, Clone)]
pub struct KafkaDeadLetters {
    producer: KafkaProducer,
    topic: String,
}

impl KafkaDeadLetters {
    pub fn new(producer: KafkaProducer, topic: impl Into<String>) -> Self {
        KafkaDeadLetters {
            producer,
            topic: topic.into(),
        }
    }
}

#[async_trait]
impl DeadLetters for KafkaDeadLetters {
    async fn dead_letter(&self, key: &str, reason: &str, payload: &str) -> Result<(), String> {
        let body = serde_json::json!({
            "reason": reason,
            "payload": payload,
            "dead_lettered_at": chrono::Utc::now().to_rfc3339(),
        });
        let record = OutgoingRecord::json(&self.topic, key, &body)
            .map_err(|e| e.to_string())?
            .with_header(DEAD_LETTER_REASON_HEADER, reason.as_bytes().to_vec());
        self.producer
            .send_all(std::slice::from_ref(&record))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// When [`consume_kafka_with`] returns besides shutdown.
#[derive(Debug, Clone, Default)]
pub struct ConsumeOptions {
    /// Stop after this many messages were handled and stored (tests, one-shot runs).
    pub max_messages: Option<usize>,
    /// Pause before retrying a message whose handling failed; 2 s when `None`.
    pub retry_delay: Option<Duration>,
    /// Messages from this topic are supplier upserts (JSON of a supplier record, keyed by its
    /// id) or tombstones that delete the supplier; every other topic carries change events.
    pub suppliers_topic: Option<String>,
}

/// Consumes the change topic until `shutdown` resolves; see [`consume_kafka_with`].
pub async fn consume_kafka(
    worker: &Worker,
    consumer: KafkaConsumer,
    dead_letters: &dyn DeadLetters,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<usize, KafkaPipelineError> {
    consume_kafka_with(
        worker,
        consumer,
        dead_letters,
        ConsumeOptions::default(),
        shutdown,
    )
    .await
}

/// The Kafka twin of [`Worker::consume_in_process`]: receive, decode, handle, and only then
/// store the offset. Messages are handled one at a time, which keeps each partition's order.
/// A poison message (not a CloudEvent we understand) is dead-lettered and skipped, since
/// retrying cannot help; a handling failure (store or dead-letter topic down) is retried on the
/// same message until it succeeds or shutdown, never skipped. On shutdown the message in hand
/// is finished, then stored offsets are committed and the consumer leaves the group. Returns
/// how many messages were handled.
pub async fn consume_kafka_with(
    worker: &Worker,
    consumer: KafkaConsumer,
    dead_letters: &dyn DeadLetters,
    options: ConsumeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<usize, KafkaPipelineError> {
    let retry_delay = options.retry_delay.unwrap_or(Duration::from_secs(2));
    worker.refresh_snapshot_metrics().await;
    // Lag needs a round trip to the brokers, so it is sampled, not computed per message.
    let mut lag_tick = tokio::time::interval(Duration::from_secs(10));
    lag_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let body = async {
        let mut handled = 0usize;
        'messages: loop {
            if options.max_messages.is_some_and(|max| handled >= max) {
                break;
            }
            // Biased: a requested stop wins over a message that happens to be ready.
            let message = tokio::select! {
                biased;
                _ = worker.stopped() => break,
                _ = lag_tick.tick() => {
                    record_lag(&consumer).await;
                    continue;
                }
                m = consumer.recv() => m,
            };
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    // librdkafka recovers from these by itself (broker restart, rebalance).
                    warn!(error = %e, "Kafka receive failed; retrying");
                    tokio::select! {
                        biased;
                        _ = worker.stopped() => break,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
            };
            loop {
                let outcome = if options.suppliers_topic.as_deref() == Some(message.topic.as_str())
                {
                    handle_supplier_message(worker, dead_letters, &message).await
                } else {
                    handle_message(worker, dead_letters, &message).await
                };
                match outcome {
                    Ok(label) => {
                        metrics().worker_events.with_label_values(&[label]).inc();
                        if label == "dead_lettered" {
                            metrics().dead_letters.with_label_values(&["event"]).inc();
                        }
                        break;
                    }
                    // Stopped between delivery attempts: the offset stays unstored and the
                    // group's next member (or this one after restart) handles it again.
                    Err(_) if worker.stop_requested() => break 'messages,
                    Err(e) => {
                        metrics().worker_events.with_label_values(&["failed"]).inc();
                        warn!(
                            topic = %message.topic,
                            partition = message.partition,
                            offset = message.offset,
                            error = %e,
                            "handling failed; the offset is not stored and the message is retried"
                        );
                        tokio::select! {
                            biased;
                            _ = worker.stopped() => break 'messages,
                            _ = tokio::time::sleep(retry_delay) => {}
                        }
                    }
                }
            }
            if let Err(e) = consumer.store(&message) {
                // Only a partition revoked by a rebalance refuses a store; its new owner redoes
                // the message and the ledger absorbs the repeat.
                warn!(error = %e, "cannot store offset");
            }
            handled += 1;
        }
        handled
    };
    let handled = worker.until_stopped(shutdown, body).await;
    info!(
        handled,
        group = consumer.group_id(),
        "Kafka worker stopping"
    );
    consumer.close().await?;
    Ok(handled)
}

/// Sets the consumer-lag gauges to the partitions this member holds now. A failure leaves the
/// gauges as they were: the lag is for operators, not a reason to stop consuming.
async fn record_lag(consumer: &KafkaConsumer) {
    match consumer.lag(Duration::from_secs(2)).await {
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

/// A supplier upsert is stored and screened against the whole list; a tombstone deletes the
/// supplier. A record that does not parse, or whose id is not its key, is dead-lettered.
async fn handle_supplier_message(
    worker: &Worker,
    dead_letters: &dyn DeadLetters,
    message: &ReceivedMessage,
) -> Result<&'static str, String> {
    let key = message.key_str().unwrap_or_default().to_string();
    let Some(payload) = message.payload.as_deref() else {
        return worker
            .supplier_deleted(&key)
            .await
            .map(|_| "processed")
            .map_err(|e| e.to_string());
    };
    let parsed = serde_json::from_slice::<crate::suppliers::SupplierRecord>(payload)
        .map_err(|e| format!("invalid_supplier: {e}"))
        .and_then(|r| {
            if r.id() == key {
                Ok(r)
            } else {
                Err(format!(
                    "invalid_supplier: key {key:?} is not the record's id {:?}",
                    r.id()
                ))
            }
        });
    match parsed {
        Ok(record) => worker
            .supplier_upserted(record)
            .await
            .map(|_| "processed")
            .map_err(|e| e.to_string()),
        Err(reason) => {
            warn!(topic = %message.topic, offset = message.offset, %reason, "supplier message dead-lettered");
            let reason = format!(
                "{reason} (from {}/{}@{})",
                message.topic, message.partition, message.offset
            );
            dead_letters
                .dead_letter(&key, &reason, &String::from_utf8_lossy(payload))
                .await
                .map(|_| "dead_lettered")
        }
    }
}

async fn handle_message(
    worker: &Worker,
    dead_letters: &dyn DeadLetters,
    message: &ReceivedMessage,
) -> Result<&'static str, String> {
    let payload = message.payload.as_deref().unwrap_or_default();
    match from_cloud_event(payload) {
        Ok(event) => worker
            .handle(&event)
            .await
            .map(|_| "processed")
            .map_err(|e| e.to_string()),
        Err(e) => {
            warn!(
                topic = %message.topic,
                partition = message.partition,
                offset = message.offset,
                reason = e.reason(),
                error = %e,
                "poison change event dead-lettered"
            );
            let reason = format!(
                "{}: {e} (from {}/{}@{})",
                e.reason(),
                message.topic,
                message.partition,
                message.offset
            );
            dead_letters
                .dead_letter(
                    message.key_str().unwrap_or_default(),
                    &reason,
                    &String::from_utf8_lossy(payload),
                )
                .await
                .map(|_| "dead_lettered")
        }
    }
}

/// The Kafka pipeline of one process: the watcher publishing to Kafka, the worker consuming the
/// change topic in the worker group, and the producer they share.
pub struct KafkaPipeline {
    pub watcher: Watcher,
    pub worker: Worker,
    pub consumer: KafkaConsumer,
    pub dead_letters: Arc<KafkaDeadLetters>,
    pub producer: KafkaProducer,
    pub config: KafkaPipelineConfig,
}

impl KafkaPipeline {
    /// Creates the topics if missing, then the producer, watcher, worker (sinks: the alert
    /// topic, then `extra_sinks` such as Slack and webhooks) and the group consumer.
    pub async fn start(
        config: KafkaPipelineConfig,
        store: &Store,
        client: FederalRegisterClient,
        watcher_config: WatcherConfig,
        extra_sinks: Vec<Arc<dyn AlertSink>>,
    ) -> Result<Self, KafkaPipelineError> {
        config.ensure_topics().await?;
        let producer = KafkaProducer::new(&config.settings)?;
        let publisher =
            KafkaPublisher::from_producer(producer.clone(), config.topics.entity_changes.clone());
        let watcher = Watcher::new(client, store.clone(), Arc::new(publisher), watcher_config);
        let (worker, dead_letters) = Self::worker(&config, store, &producer, extra_sinks);
        let consumer = Self::subscribe(&config, &config.group_id)?;
        Ok(KafkaPipeline {
            watcher,
            worker,
            consumer,
            dead_letters,
            producer,
            config,
        })
    }

    /// A worker writing alerts and dead letters to the configured topics.
    pub fn worker(
        config: &KafkaPipelineConfig,
        store: &Store,
        producer: &KafkaProducer,
        extra_sinks: Vec<Arc<dyn AlertSink>>,
    ) -> (Worker, Arc<KafkaDeadLetters>) {
        let mut sinks: Vec<Arc<dyn AlertSink>> = vec![Arc::new(KafkaAlertSink::new(
            producer.clone(),
            config.topics.alerts.clone(),
        ))];
        sinks.extend(extra_sinks);
        let dead_letters = Arc::new(KafkaDeadLetters::new(
            producer.clone(),
            config.topics.dead_letter.clone(),
        ));
        let worker = Worker::new(
            store.clone(),
            sinks,
            dead_letters.clone(),
            config.retry.clone(),
        )
        .with_claim_lease(config.claim_lease);
        (worker, dead_letters)
    }

    /// A consumer of the change topic in `group_id`.
    pub fn subscribe(
        config: &KafkaPipelineConfig,
        group_id: &str,
    ) -> Result<KafkaConsumer, KafkaPipelineError> {
        Ok(KafkaConsumer::subscribe(
            &config.settings,
            group_id,
            &[
                config.topics.entity_changes.as_str(),
                config.topics.suppliers.as_str(),
            ],
        )?)
    }

    /// Runs watcher and worker until `shutdown` resolves; the worker finishes the message in
    /// hand, commits and leaves the group. Returns how many messages the worker handled.
    pub async fn run(
        self,
        interval: Duration,
        since: Option<chrono::NaiveDate>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<usize, KafkaPipelineError> {
        let KafkaPipeline {
            watcher,
            worker,
            consumer,
            dead_letters,
            config,
            ..
        } = self;
        // One shutdown future fans out to both halves.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let watch = watcher.run(interval, since, stopped(stop_rx.clone()));
        let work = consume_kafka_with(
            &worker,
            consumer,
            dead_letters.as_ref(),
            config.service_consume_options(),
            stopped(stop_rx.clone()),
        );
        let signal = async {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        let ((), worked, ()) = tokio::join!(watch, work, signal);
        worked
    }
}
