//! Producing: the watcher's [`KafkaPublisher`] and the generic keyed [`KafkaProducer`] (alerts,
//! dead letters). A send returns only once the broker confirmed every record (`acks=all`).

use std::fmt;

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

use super::super::cloudevents::{self, CONTENT_TYPE};
use super::super::{PublishError, Publisher};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::{KafkaBusError, KafkaSettings, CONTENT_TYPE_HEADER, DEFAULT_MESSAGE_TIMEOUT_MS};
use crate::events::ChangeEvent;

/// One message to produce. `payload: None` is a tombstone (deletes the key in a compacted
/// topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    pub topic: String,
    pub key: String,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutgoingRecord {
    pub fn json<T: Serialize + ?Sized>(
        topic: impl Into<String>,
        key: impl Into<String>,
        value: &T,
    ) -> Result<Self, KafkaBusError> {
        Ok(OutgoingRecord {
            topic: topic.into(),
            key: key.into(),
            payload: Some(serde_json::to_vec(value)?),
            headers: vec![(
                CONTENT_TYPE_HEADER.to_string(),
                b"application/json".to_vec(),
            )],
        })
    }

    pub fn tombstone(topic: impl Into<String>, key: impl Into<String>) -> Self {
        OutgoingRecord {
            topic: topic.into(),
            key: key.into(),
            payload: None,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Where the broker put a confirmed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

/// A durable, ordered producer of keyed messages: idempotent with `acks=all`, so a retry inside
/// librdkafka neither duplicates nor reorders messages of a partition. Cheap to clone (one
/// librdkafka handle shared). Create it at start-up: the first send after creation pays for the
/// connection and the idempotent producer id (~0.5 s measured on tansu), later ones do not.
/// After a fatal idempotence error librdkafka refuses every further message; a process that
/// sees its sends keep failing should recreate the producer (restarting does that).
#[derive(Clone)]
pub struct KafkaProducer {
    inner: FutureProducer,
    brokers: String,
}

impl fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaProducer")
            .field("brokers", &self.brokers)
            .finish_non_exhaustive()
    }
}

impl KafkaProducer {
    pub fn new(settings: &KafkaSettings) -> Result<Self, KafkaBusError> {
        let inner: FutureProducer = settings
            .client_config(
                &[
                    ("message.timeout.ms", DEFAULT_MESSAGE_TIMEOUT_MS),
                    ("compression.type", "lz4"),
                ],
                &[("enable.idempotence", "true"), ("acks", "all")],
            )?
            .create()
            .map_err(|e| settings.client_error("producer", e))?;
        Ok(KafkaProducer {
            inner,
            brokers: settings.brokers.clone(),
        })
    }

    /// Asks the cluster for its metadata: proves a broker answers (readiness probes).
    pub async fn ping(&self, timeout: Duration) -> Result<usize, KafkaBusError> {
        use rdkafka::producer::Producer;
        let inner = self.inner.clone();
        let metadata = tokio::task::spawn_blocking(move || {
            inner
                .client()
                .fetch_metadata(None, timeout)
                .map(|m| m.brokers().len())
        })
        .await?;
        metadata.map_err(|e| KafkaBusError::Cluster(Box::new(e)))
    }

    /// Waits until everything enqueued was delivered or failed (shutdown). Every send of ours
    /// already awaits its delivery, so this only matters for a send abandoned mid-way.
    pub async fn flush(&self, timeout: Duration) -> Result<(), KafkaBusError> {
        use rdkafka::producer::Producer;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.flush(timeout))
            .await?
            .map_err(|e| KafkaBusError::Cluster(Box::new(e)))
    }

    /// Produces `records` in order and returns once the broker confirmed every one of them,
    /// or an error naming the first that failed (after waiting for all, so that no delivery is
    /// still in doubt when the caller decides what to do next).
    pub async fn send_all(
        &self,
        records: &[OutgoingRecord],
    ) -> Result<Vec<Delivered>, KafkaBusError> {
        // Enqueue everything first and await afterwards: one round trip per batch, not per
        // message; the idempotent producer keeps the enqueue order within a partition.
        let mut pending = Vec::with_capacity(records.len());
        for rec in records {
            let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len());
            for (name, value) in &rec.headers {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value),
                });
            }
            let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&rec.topic)
                .key(rec.key.as_str())
                .headers(headers);
            if let Some(payload) = &rec.payload {
                record = record.payload(payload.as_slice());
            }
            loop {
                match self.inner.send_result(record) {
                    Ok(future) => {
                        pending.push(future);
                        break;
                    }
                    // The local queue is full: wait for deliveries to drain it, as
                    // FutureProducer::send would.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((source, _)) => {
                        return Err(KafkaBusError::Enqueue {
                            topic: rec.topic.clone(),
                            key: rec.key.clone(),
                            source: Box::new(source),
                        })
                    }
                }
            }
        }
        let total = pending.len();
        let mut delivered = Vec::with_capacity(total);
        let mut first_error = None;
        let mut failed = 0;
        for (future, rec) in pending.into_iter().zip(records) {
            match future.await {
                Ok(Ok(d)) => delivered.push(Delivered {
                    partition: d.partition,
                    offset: d.offset,
                }),
                Ok(Err((source, _))) => {
                    failed += 1;
                    first_error.get_or_insert(KafkaBusError::Delivery {
                        topic: rec.topic.clone(),
                        key: rec.key.clone(),
                        failed: 0,
                        total,
                        source: Box::new(source),
                    });
                }
                Err(_canceled) => {
                    failed += 1;
                    first_error.get_or_insert(KafkaBusError::DeliveryCanceled {
                        topic: rec.topic.clone(),
                        key: rec.key.clone(),
                    });
                }
            }
        }
        match first_error {
            None => Ok(delivered),
            Some(KafkaBusError::Delivery {
                topic,
                key,
                total,
                source,
                ..
            }) => Err(KafkaBusError::Delivery {
                topic,
                key,
                failed,
                total,
                source,
            }),
            Some(other) => Err(other),
        }
    }

    /// Produces one JSON value and waits for the broker's confirmation.
    pub async fn send_json<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        key: &str,
        value: &T,
    ) -> Result<Delivered, KafkaBusError> {
        let record = OutgoingRecord::json(topic, key, value)?;
        let mut d = self.send_all(std::slice::from_ref(&record)).await?;
        Ok(d.remove(0))
    }
}

/// The watcher's publisher: each change event as a structured-mode CloudEvent keyed by
/// [`ChangeEvent::key`], so all changes to one entry land in one partition, in order.
#[derive(Debug, Clone)]
pub struct KafkaPublisher {
    producer: KafkaProducer,
    topic: String,
}

impl KafkaPublisher {
    pub fn new(settings: &KafkaSettings, topic: impl Into<String>) -> Result<Self, KafkaBusError> {
        Ok(Self::from_producer(KafkaProducer::new(settings)?, topic))
    }

    /// Shares an existing producer (one librdkafka handle per process is enough).
    pub fn from_producer(producer: KafkaProducer, topic: impl Into<String>) -> Self {
        KafkaPublisher {
            producer,
            topic: topic.into(),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The records [`Publisher::publish`] sends for `events`.
    pub fn records(
        &self,
        events: &[ChangeEvent],
    ) -> Result<Vec<OutgoingRecord>, serde_json::Error> {
        events
            .iter()
            .map(|event| {
                Ok(OutgoingRecord {
                    topic: self.topic.clone(),
                    key: event.key(),
                    payload: Some(cloudevents::to_cloud_event(event).to_json_bytes()?),
                    headers: vec![(
                        CONTENT_TYPE_HEADER.to_string(),
                        CONTENT_TYPE.as_bytes().to_vec(),
                    )],
                })
            })
            .collect()
    }
}

#[async_trait]
impl Publisher for KafkaPublisher {
    async fn publish(&self, events: &[ChangeEvent]) -> Result<(), PublishError> {
        // Encode the whole batch before sending any of it: an unencodable event must not leave
        // half a document on the topic.
        let records = self.records(events)?;
        self.producer
            .send_all(&records)
            .await
            .map_err(|e| PublishError::Refused(format!("Kafka topic {}: {e}", self.topic)))?;
        Ok(())
    }
}
