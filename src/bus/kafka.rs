//! Kafka transport of the bus: topic set-up, the watcher's [`KafkaPublisher`], a generic keyed
//! [`KafkaProducer`] (alerts, dead letters) and the worker's [`KafkaConsumer`].
//!
//! Data flow: watcher → [`KafkaPublisher`] → `entitywatch.entity-changes.v1` → [`KafkaConsumer`]
//! (worker group) → alerts via [`KafkaProducer`] → `entitywatch.alerts.v1` /
//! `entitywatch.dead-letter.v1`. Supplier upserts arrive on the compacted
//! `entitywatch.suppliers.v1`.
//!
//! What this module must never do:
//! - acknowledge a batch before the broker has confirmed every message of it (`acks=all`,
//!   idempotent producer, every delivery future awaited): the watcher advances its checkpoint,
//!   and the worker stores its offsets, on that promise;
//! - log or `Debug`-print a credential: librdkafka settings pass through from configuration
//!   (SASL/SSL), so anything secret-looking is redacted wherever settings are shown, and the
//!   rdkafka `ClientConfig` (whose `Debug` prints every value) is never formatted;
//! - rely on automatic topic creation (tansu, the test broker, does not do it, and production
//!   clusters usually forbid it): [`ensure_topics`] creates them explicitly.
//!
//! Build: librdkafka is bundled (statically built by rdkafka-sys, no cmake) with the `ssl`
//! feature, linking the system OpenSSL (`libssl-dev`), so SSL and SASL PLAIN/SCRAM work; SASL
//! OAUTHBEARER/OIDC (needs libcurl) and GSSAPI are not compiled in. Never `dynamic-linking`:
//! Debian's librdkafka 2.0.2 cannot talk to tansu.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Offset;
use serde::Serialize;

use super::cloudevents::{self, CONTENT_TYPE};
use super::{PublishError, Publisher};
use crate::events::ChangeEvent;

/// Change events from the watcher: key = entity key (or `document/NUMBER`), value = CloudEvent.
pub const ENTITY_CHANGES_TOPIC: &str = "entitywatch.entity-changes.v1";
/// Alerts for enterprises to consume.
pub const ALERTS_TOPIC: &str = "entitywatch.alerts.v1";
/// Supplier upserts by id, tombstones delete; compacted so it is a table, not a log.
pub const SUPPLIERS_TOPIC: &str = "entitywatch.suppliers.v1";
/// Messages the worker could not process and alerts no sink accepted, with the reason.
pub const DEAD_LETTER_TOPIC: &str = "entitywatch.dead-letter.v1";

/// Header carrying the CloudEvents content type in structured mode (Kafka protocol binding).
pub const CONTENT_TYPE_HEADER: &str = "content-type";

/// librdkafka's own default is 5 minutes; a watcher whose broker is down should learn it sooner
/// and retry on its next poll (the checkpoint has not moved). Overridable through `extra`.
const DEFAULT_MESSAGE_TIMEOUT_MS: &str = "60000";

/// How to reach the cluster. `extra` passes librdkafka properties through unchanged
/// (`security.protocol`, `sasl.mechanism`, `sasl.username`, `sasl.password`, `ssl.ca.location`,
/// ...), so SASL/SSL clusters need no code here.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `bootstrap.servers`: `host:port[,host:port...]`.
    pub brokers: String,
    pub client_id: String,
    pub extra: BTreeMap<String, String>,
}

impl KafkaSettings {
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaSettings {
            brokers: brokers.into(),
            client_id: "entitywatch".to_string(),
            extra: BTreeMap::new(),
        }
    }

    /// Adds one librdkafka property.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// `extra` with secret-looking values replaced, for logs and error messages.
    pub fn redacted_extra(&self) -> BTreeMap<&str, &str> {
        self.extra
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_key(k) { "[redacted]" } else { v };
                (k.as_str(), shown)
            })
            .collect()
    }

    /// Base config: bootstrap servers, client id, then `extra`, then the properties a role
    /// cannot work without. A pass-through value contradicting one of those is refused rather
    /// than silently overridden, because it would break a guarantee this module gives.
    fn client_config(
        &self,
        defaults: &[(&str, &str)],
        required: &[(&str, &str)],
    ) -> Result<ClientConfig, KafkaBusError> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        config.set("client.id", &self.client_id);
        for (k, v) in defaults {
            config.set(*k, *v);
        }
        for (k, v) in &self.extra {
            config.set(k, v);
        }
        for (k, v) in required {
            if let Some(given) = self.extra.get(*k) {
                if given != v {
                    return Err(KafkaBusError::Config(format!(
                        "`{k}` must be `{v}` here (it was set to `{given}`)"
                    )));
                }
            }
            config.set(*k, *v);
        }
        Ok(config)
    }
}

impl KafkaSettings {
    /// `text` with the value of every secret-looking setting replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (k, v) in &self.extra {
            if is_secret_key(k) && !v.is_empty() {
                out = out.replace(v.as_str(), "[redacted]");
            }
        }
        out
    }

    fn client_error(&self, role: &'static str, e: KafkaError) -> KafkaBusError {
        KafkaBusError::Client {
            role,
            brokers: self.brokers.clone(),
            reason: self.redact(&e.to_string()),
        }
    }
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("client_id", &self.client_id)
            .field("extra", &self.redacted_extra())
            .finish()
    }
}

/// Whether a librdkafka property holds a credential (`sasl.password`, `ssl.key.password`,
/// `ssl.keystore.password`, `sasl.oauthbearer.client.secret`, `ssl.key.pem`, JAAS configs ...).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "key.pem",
        "oauthbearer.config",
        "jaas",
        "token",
    ]
    .iter()
    .any(|needle| k.contains(needle))
}

/// What went wrong talking to Kafka. Messages name topics and keys, never settings values.
#[derive(Debug, thiserror::Error)]
pub enum KafkaBusError {
    #[error("invalid Kafka settings: {0}")]
    Config(String),
    /// `reason` is librdkafka's message with secret values cut out: for a refused property it
    /// quotes the value, and that value may be a password.
    #[error("cannot create the Kafka {role} for {brokers}: {reason}")]
    Client {
        role: &'static str,
        brokers: String,
        reason: String,
    },
    #[error("cannot create topic {topic}: {code}")]
    CreateTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("cannot read the config of topic {topic}: {code}")]
    DescribeTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("topic administration failed: {0}")]
    Admin(#[source] Box<KafkaError>),
    #[error("the Kafka cluster did not answer: {0}")]
    Cluster(#[source] Box<KafkaError>),
    #[error("cannot encode the message: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("Kafka did not take the message with key {key:?} for {topic}: {source}")]
    Enqueue {
        topic: String,
        key: String,
        #[source]
        source: Box<KafkaError>,
    },
    #[error(
        "the broker did not confirm {failed} of {total} message(s); first: key {key:?} to {topic}: {source}"
    )]
    Delivery {
        topic: String,
        key: String,
        failed: usize,
        total: usize,
        #[source]
        source: Box<KafkaError>,
    },
    #[error("the Kafka producer shut down before confirming key {key:?} to {topic}")]
    DeliveryCanceled { topic: String, key: String },
    #[error("cannot receive from Kafka: {0}")]
    Receive(#[source] Box<KafkaError>),
    #[error("cannot store offset {offset} of {topic}/{partition}: {source}")]
    StoreOffset {
        topic: String,
        partition: i32,
        offset: i64,
        #[source]
        source: Box<KafkaError>,
    },
    #[error("cannot commit offsets of group {group}: {source}")]
    Commit {
        group: String,
        #[source]
        source: Box<KafkaError>,
    },
    #[error("a blocking Kafka call panicked or was cancelled: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The topic names in use; the defaults are the `*_TOPIC` constants, each can be renamed by
/// configuration (a shared cluster may need a prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub entity_changes: String,
    pub alerts: String,
    pub suppliers: String,
    pub dead_letter: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            entity_changes: ENTITY_CHANGES_TOPIC.to_string(),
            alerts: ALERTS_TOPIC.to_string(),
            suppliers: SUPPLIERS_TOPIC.to_string(),
            dead_letter: DEAD_LETTER_TOPIC.to_string(),
        }
    }
}

impl Topics {
    /// The four topics under another first name part: `PREFIX.entity-changes.v1`, ...
    pub fn with_prefix(prefix: &str) -> Topics {
        let rename = |default: &str| {
            let rest = default
                .strip_prefix("entitywatch")
                .expect("default topic names start with entitywatch");
            format!("{prefix}{rest}")
        };
        Topics {
            entity_changes: rename(ENTITY_CHANGES_TOPIC),
            alerts: rename(ALERTS_TOPIC),
            suppliers: rename(SUPPLIERS_TOPIC),
            dead_letter: rename(DEAD_LETTER_TOPIC),
        }
    }

    /// What [`ensure_topics`] should create: the suppliers topic compacted, the rest deleted by
    /// retention as the cluster's default says.
    pub fn specs(&self, partitions: i32, replication: i32) -> Vec<TopicSpec> {
        vec![
            TopicSpec::new(&self.entity_changes, partitions, replication),
            TopicSpec::new(&self.alerts, partitions, replication),
            TopicSpec::new(&self.suppliers, partitions, replication).compacted(),
            TopicSpec::new(&self.dead_letter, partitions, replication),
        ]
    }
}

/// A topic to create if missing. An existing topic is left as it is, even if its partition
/// count or config differ: changing a live topic is an operator's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    /// Topic-level config, e.g. `cleanup.policy=compact`.
    pub config: BTreeMap<String, String>,
}

impl TopicSpec {
    pub fn new(name: impl Into<String>, partitions: i32, replication: i32) -> Self {
        TopicSpec {
            name: name.into(),
            partitions,
            replication,
            config: BTreeMap::new(),
        }
    }

    pub fn compacted(mut self) -> Self {
        self.config
            .insert("cleanup.policy".to_string(), "compact".to_string());
        self
    }

    pub fn is_compacted(&self) -> bool {
        self.config.get("cleanup.policy").map(String::as_str) == Some("compact")
    }
}

/// Creates the topics that do not exist yet; "already exists" counts as success, so every
/// process can call this at start-up.
pub async fn ensure_topics(
    settings: &KafkaSettings,
    topics: &[TopicSpec],
) -> Result<(), KafkaBusError> {
    let admin: AdminClient<DefaultClientContext> = settings
        .client_config(&[], &[])?
        .create()
        .map_err(|e| settings.client_error("admin client", e))?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            let mut nt = NewTopic::new(
                &t.name,
                t.partitions,
                TopicReplication::Fixed(t.replication),
            );
            for (k, v) in &t.config {
                nt = nt.set(k, v);
            }
            nt
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|e| KafkaBusError::Admin(Box::new(e)))?;
    let mut existing = Vec::new();
    for result in results {
        match result {
            Ok(_) => {}
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push(topic),
            Err((topic, code)) => return Err(KafkaBusError::CreateTopic { topic, code }),
        }
    }
    // An existing topic is not changed, but a difference that matters is said out loud: a
    // suppliers topic without compaction loses suppliers to retention, silently.
    for spec in topics
        .iter()
        .filter(|t| existing.contains(&t.name) && !t.config.is_empty())
    {
        let actual = describe_topic_config(&admin, &spec.name).await?;
        for (key, wanted) in &spec.config {
            if actual.get(key) != Some(wanted) {
                tracing::warn!(
                    topic = %spec.name,
                    key = %key,
                    wanted = %wanted,
                    actual = ?actual.get(key),
                    "existing topic has a different config; leaving it as it is"
                );
            }
        }
    }
    Ok(())
}

/// The topic-level config of `topic` as the broker reports it (explicit and default values).
pub async fn topic_config(
    settings: &KafkaSettings,
    topic: &str,
) -> Result<BTreeMap<String, String>, KafkaBusError> {
    let admin: AdminClient<DefaultClientContext> = settings
        .client_config(&[], &[])?
        .create()
        .map_err(|e| settings.client_error("admin client", e))?;
    describe_topic_config(&admin, topic).await
}

async fn describe_topic_config(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> Result<BTreeMap<String, String>, KafkaBusError> {
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &options)
        .await
        .map_err(|e| KafkaBusError::Admin(Box::new(e)))?;
    let mut config = BTreeMap::new();
    for result in results {
        let resource = result.map_err(|code| KafkaBusError::DescribeTopic {
            topic: topic.to_string(),
            code,
        })?;
        for entry in resource.entries {
            if let Some(value) = entry.value {
                config.insert(entry.name, value);
            }
        }
    }
    Ok(config)
}

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

/// A message as the consumer hands it over: owned, so it can move to a blocking task (matching
/// runs off the async threads) while the consumer keeps fetching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// `None` for a tombstone.
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Milliseconds since the epoch, as the producer or broker stamped it.
    pub timestamp_ms: Option<i64>,
}

impl ReceivedMessage {
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// A committed offset of the group: the next offset it will read, `None` if nothing committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: Option<i64>,
}

/// See [`KafkaConsumer::lag`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub lag: i64,
}

/// A consumer-group member for the worker.
///
/// Offset policy (at-least-once, chosen over manual synchronous commits): librdkafka commits
/// in the background (`enable.auto.commit=true`), but only offsets the application stored with
/// [`KafkaConsumer::store`] (`enable.auto.offset.store=false`). The worker stores a message's
/// offset once its decisions and alerts are durable, so a crash replays at most the messages
/// since the last background commit — harmless, since alerts are de-duplicated by the store —
/// and never skips one. Background commit also covers rebalances: librdkafka commits stored
/// offsets before a partition is revoked. [`KafkaConsumer::commit`] forces a synchronous commit
/// (shutdown, tests).
///
/// Order: messages of one partition arrive in offset order. Storing offset N means "everything
/// up to N is done", so a worker that processes a partition's messages concurrently must store
/// them in order. [`KafkaConsumer::recv`] must be called at least every `max.poll.interval.ms`
/// (5 minutes by default) or the member is evicted from the group.
///
/// A fresh group starts at the earliest offset (`auto.offset.reset=earliest`): a new worker
/// must see the whole list history.
pub struct KafkaConsumer {
    // Arc: blocking calls (commit, committed, close) run on the blocking pool with a clone.
    inner: Arc<StreamConsumer>,
    group_id: String,
}

impl fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("group_id", &self.group_id)
            .finish_non_exhaustive()
    }
}

impl KafkaConsumer {
    /// Joins `group_id` and subscribes to `topics` (which must exist: see [`ensure_topics`]).
    pub fn subscribe(
        settings: &KafkaSettings,
        group_id: &str,
        topics: &[&str],
    ) -> Result<Self, KafkaBusError> {
        let inner: StreamConsumer = settings
            .client_config(
                &[
                    ("auto.offset.reset", "earliest"),
                    ("enable.partition.eof", "false"),
                ],
                &[
                    ("group.id", group_id),
                    ("enable.auto.commit", "true"),
                    ("enable.auto.offset.store", "false"),
                ],
            )?
            .create()
            .map_err(|e| settings.client_error("consumer", e))?;
        inner
            .subscribe(topics)
            .map_err(|e| KafkaBusError::Receive(Box::new(e)))?;
        Ok(KafkaConsumer {
            inner: Arc::new(inner),
            group_id: group_id.to_string(),
        })
    }

    /// For each assigned partition, how many messages lie beyond this consumer's position
    /// (high watermark minus the next offset to fetch). Partitions with no position yet are
    /// left out. Asks the brokers for the watermarks, so call it every few seconds, not per
    /// message.
    pub async fn lag(&self, timeout: Duration) -> Result<Vec<PartitionLag>, KafkaBusError> {
        use rdkafka::consumer::Consumer;
        use rdkafka::Offset;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let positions = inner
                .position()
                .map_err(|e| KafkaBusError::Cluster(Box::new(e)))?;
            let mut out = Vec::new();
            for element in positions.elements() {
                let Offset::Offset(position) = element.offset() else {
                    continue;
                };
                let (_, high) = inner
                    .fetch_watermarks(element.topic(), element.partition(), timeout)
                    .map_err(|e| KafkaBusError::Cluster(Box::new(e)))?;
                out.push(PartitionLag {
                    topic: element.topic().to_string(),
                    partition: element.partition(),
                    lag: (high - position).max(0),
                });
            }
            Ok(out)
        })
        .await?
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The next message of any assigned partition. An error is usually transient (broker
    /// unreachable, rebalance in progress) and librdkafka recovers by itself: log it and call
    /// again rather than stop the worker.
    pub async fn recv(&self) -> Result<ReceivedMessage, KafkaBusError> {
        let m = self
            .inner
            .recv()
            .await
            .map_err(|e| KafkaBusError::Receive(Box::new(e)))?;
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(ReceivedMessage {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers,
            timestamp_ms: m.timestamp().to_millis(),
        })
    }

    /// Every message on `topic` at the time of the call, from each partition's start, read by
    /// assignment without joining a group and without committing anything: for looking at a
    /// topic such as the dead letters. Fails after `timeout`.
    pub async fn read_topic(
        settings: &KafkaSettings,
        topic: &str,
        timeout: Duration,
    ) -> Result<Vec<ReceivedMessage>, KafkaBusError> {
        use rdkafka::consumer::Consumer;
        use rdkafka::{Offset, TopicPartitionList};
        let inner: StreamConsumer = settings
            .client_config(
                &[("enable.partition.eof", "false")],
                &[
                    ("group.id", "entitywatch-topic-reader"),
                    ("enable.auto.commit", "false"),
                    ("enable.auto.offset.store", "false"),
                ],
            )?
            .create()
            .map_err(|e| settings.client_error("consumer", e))?;
        let inner = Arc::new(inner);
        let reader = Arc::clone(&inner);
        let name = topic.to_string();
        let ends = tokio::task::spawn_blocking(move || {
            let metadata = reader
                .fetch_metadata(Some(&name), timeout)
                .map_err(|e| KafkaBusError::Cluster(Box::new(e)))?;
            let mut assignment = TopicPartitionList::new();
            let mut ends = BTreeMap::new();
            for t in metadata.topics() {
                for p in t.partitions() {
                    let (low, high) = reader
                        .fetch_watermarks(&name, p.id(), timeout)
                        .map_err(|e| KafkaBusError::Cluster(Box::new(e)))?;
                    if high > low {
                        assignment
                            .add_partition_offset(&name, p.id(), Offset::Offset(low))
                            .map_err(|e| KafkaBusError::Receive(Box::new(e)))?;
                        ends.insert(p.id(), high);
                    }
                }
            }
            reader
                .assign(&assignment)
                .map_err(|e| KafkaBusError::Receive(Box::new(e)))?;
            Ok::<_, KafkaBusError>(ends)
        })
        .await??;
        let consumer = KafkaConsumer {
            inner,
            group_id: "entitywatch-topic-reader".to_string(),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pending = ends;
        let mut out = Vec::new();
        while !pending.is_empty() {
            let m = tokio::time::timeout_at(deadline, consumer.recv())
                .await
                .map_err(|_| {
                    KafkaBusError::Config(format!(
                        "reading {topic}: partitions {:?} not read to the end within {} s",
                        pending.keys().collect::<Vec<_>>(),
                        timeout.as_secs()
                    ))
                })??;
            if pending
                .get(&m.partition)
                .is_some_and(|end| m.offset + 1 >= *end)
            {
                pending.remove(&m.partition);
            }
            out.push(m);
        }
        Ok(out)
    }

    /// Marks `message` processed: the group's next commit will resume after it.
    pub fn store(&self, message: &ReceivedMessage) -> Result<(), KafkaBusError> {
        // rd_kafka_offset_store stores offset + 1, the next offset to read.
        self.inner
            .store_offset(&message.topic, message.partition, message.offset)
            .map_err(|source| KafkaBusError::StoreOffset {
                topic: message.topic.clone(),
                partition: message.partition,
                offset: message.offset,
                source: Box::new(source),
            })
    }

    /// Commits the stored offsets now and waits for the broker. Nothing stored is not an error.
    pub async fn commit(&self) -> Result<(), KafkaBusError> {
        let inner = Arc::clone(&self.inner);
        let result =
            tokio::task::spawn_blocking(move || inner.commit_consumer_state(CommitMode::Sync))
                .await?;
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            Err(source) => Err(KafkaBusError::Commit {
                group: self.group_id.clone(),
                source: Box::new(source),
            }),
        }
    }

    /// The group's committed offsets for the current assignment.
    pub async fn committed(
        &self,
        timeout: Duration,
    ) -> Result<Vec<CommittedOffset>, KafkaBusError> {
        let inner = Arc::clone(&self.inner);
        let group = self.group_id.clone();
        tokio::task::spawn_blocking(move || {
            // The TopicPartitionList is converted and dropped here, never handed out: dropping a
            // consumer while such a list was alive has been seen to hang.
            let tpl = inner
                .committed(timeout)
                .map_err(|source| KafkaBusError::Commit {
                    group,
                    source: Box::new(source),
                })?;
            let offsets = tpl
                .elements()
                .iter()
                .map(|e| CommittedOffset {
                    topic: e.topic().to_string(),
                    partition: e.partition(),
                    offset: match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    },
                })
                .collect();
            drop(tpl);
            Ok(offsets)
        })
        .await?
    }

    /// The partitions currently assigned to this member. The assignment changes only while
    /// [`KafkaConsumer::recv`] is being polled (rebalances are served from the same queue).
    pub fn assignment(&self) -> Result<Vec<(String, i32)>, KafkaBusError> {
        let tpl = self
            .inner
            .assignment()
            .map_err(|e| KafkaBusError::Receive(Box::new(e)))?;
        // Converted and dropped at once, like the committed offsets.
        let parts = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        drop(tpl);
        Ok(parts)
    }

    /// Leaves the group, committing stored offsets first. Dropping the consumer does the same
    /// but blocks the calling thread until the group is left; this runs it on the blocking pool.
    pub async fn close(self) -> Result<(), KafkaBusError> {
        let committed = self.commit().await;
        // Leave the group even if the commit failed: dropping here would block an async thread.
        let inner = self.inner;
        tokio::task::spawn_blocking(move || {
            inner.unsubscribe();
            drop(inner);
        })
        .await?;
        committed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_credentials() {
        let s = KafkaSettings::new("broker:9093")
            .with("security.protocol", "SASL_SSL")
            .with("sasl.mechanism", "SCRAM-SHA-512")
            .with("sasl.username", "watcher")
            .with("sasl.password", "hunter2")
            .with("ssl.key.password", "pem-pass")
            .with("sasl.oauthbearer.client.secret", "oauth-secret");
        let shown = format!("{s:?} {:?}", s.redacted_extra());
        for secret in ["hunter2", "pem-pass", "oauth-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("SCRAM-SHA-512") && shown.contains("watcher"),
            "{shown}"
        );
        // librdkafka quotes a refused property's value in its error (this build refuses the
        // OIDC secret: no libcurl); that value must not reach our error.
        // A build with OIDC support accepts it; then there is nothing to leak.
        if let Err(e) = KafkaProducer::new(&s) {
            let text = format!("{e} {e:?}");
            assert!(text.contains("sasl.oauthbearer.client.secret"), "{text}");
            assert!(!text.contains("oauth-secret"), "{text}");
        }
        let s = KafkaSettings {
            extra: s
                .extra
                .into_iter()
                .filter(|(k, _)| !k.contains("oauthbearer"))
                .collect(),
            ..s
        };
        let producer = KafkaProducer::new(&s).unwrap();
        let publisher = KafkaPublisher::from_producer(producer, ENTITY_CHANGES_TOPIC);
        assert!(!format!("{publisher:?}").contains("hunter2"));
    }

    #[test]
    fn guarantees_cannot_be_configured_away() {
        let s = KafkaSettings::new("127.0.0.1:1").with("acks", "1");
        let err = KafkaProducer::new(&s).unwrap_err();
        assert!(err.to_string().contains("`acks` must be `all`"), "{err}");
        let s = KafkaSettings::new("127.0.0.1:1").with("enable.auto.offset.store", "true");
        let err = KafkaConsumer::subscribe(&s, "g", &["t"]).unwrap_err();
        assert!(
            err.to_string().contains("enable.auto.offset.store"),
            "{err}"
        );
        // Restating a required value is fine.
        let s = KafkaSettings::new("127.0.0.1:1").with("acks", "all");
        assert!(KafkaProducer::new(&s).is_ok());
    }

    #[test]
    fn default_topics_and_specs() {
        let specs = Topics::default().specs(3, 1);
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "entitywatch.entity-changes.v1",
                "entitywatch.alerts.v1",
                "entitywatch.suppliers.v1",
                "entitywatch.dead-letter.v1"
            ]
        );
        let compacted: Vec<_> = specs.iter().filter(|s| s.is_compacted()).collect();
        assert_eq!(compacted.len(), 1);
        assert_eq!(compacted[0].name, SUPPLIERS_TOPIC);
    }

    /// With no broker the publisher fails within its message timeout, with an error naming the
    /// topic and key, instead of returning as if the events were durable.
    #[tokio::test]
    async fn publish_without_a_broker_fails_clearly() {
        use crate::events::{DocumentEvent, DocumentStage, SourceDocument};
        let s = KafkaSettings::new("127.0.0.1:1")
            .with("message.timeout.ms", "1500")
            .with("sasl.password", "hunter2");
        let publisher = KafkaPublisher::new(&s, "entitywatch.test.unreachable").unwrap();
        let event = ChangeEvent::Document(DocumentEvent {
            stage: DocumentStage::Published,
            source: SourceDocument::from_number("2019-22210"),
            amendatory_text: vec![],
            change_count: 0,
            warnings: vec![],
        });
        let started = std::time::Instant::now();
        let err = tokio::time::timeout(
            Duration::from_secs(20),
            publisher.publish(&[event.clone(), event]),
        )
        .await
        .expect("publish must give up within the message timeout")
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, PublishError::Refused(_)), "{text}");
        assert!(text.contains("entitywatch.test.unreachable"), "{text}");
        assert!(text.contains("document/2019-22210"), "{text}");
        assert!(text.contains("2 of 2"), "{text}");
        assert!(!text.contains("hunter2"));
        assert!(started.elapsed() < Duration::from_secs(15));
    }
}
