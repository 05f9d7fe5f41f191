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
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

mod consumer;
mod producer;
#[cfg(test)]
mod tests;

pub use consumer::*;
pub use producer::*;

/// Change events from the watcher: key = entity key (or `document/NUMBER`), value = CloudEvent.
pub const ENTITY_CHANGES_TOPIC: &str = "entitywatch.entity-changes.v1";
/// Alerts for enterprises to consume.
pub const ALERTS_TOPIC: &str = "entitywatch.alerts.v1";
/// Supplier upserts by id, tombstones delete; compacted so it is a table, not a log.
pub const SUPPLIERS_TOPIC: &str = "entitywatch.suppliers.v1";
/// Ownership holdings keyed by `["owned_id","owner_id"]`, tombstones delete; compacted.
pub const OWNERSHIP_TOPIC: &str = "entitywatch.ownership.v1";
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
    pub ownership: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            entity_changes: ENTITY_CHANGES_TOPIC.to_string(),
            alerts: ALERTS_TOPIC.to_string(),
            suppliers: SUPPLIERS_TOPIC.to_string(),
            dead_letter: DEAD_LETTER_TOPIC.to_string(),
            ownership: OWNERSHIP_TOPIC.to_string(),
        }
    }
}

impl Topics {
    /// The topics under another first name part: `PREFIX.entity-changes.v1`, ...
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
            ownership: rename(OWNERSHIP_TOPIC),
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
            TopicSpec::new(&self.ownership, partitions, replication).compacted(),
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

/// The consumer group of the workers: every process of a deployment shares it, so each change
/// event is handled by one of them.
pub const WORKER_GROUP: &str = "entitywatch-workers";

/// How a process uses the cluster: where it is, the topic names, how topics are created, and
/// the workers' group. Topic names are configurable because enterprises integrate against
/// them (a shared cluster may need a prefix) and tests need fresh ones.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub settings: KafkaSettings,
    pub topics: Topics,
    /// Used only when a topic is created; an existing topic is left as it is.
    pub partitions: i32,
    pub replication: i32,
    pub group_id: String,
}

impl KafkaConfig {
    pub fn new(settings: KafkaSettings) -> Self {
        KafkaConfig {
            settings,
            topics: Topics::default(),
            partitions: 3,
            replication: 1,
            group_id: WORKER_GROUP.to_string(),
        }
    }

    /// From resolved configuration: `kafka_brokers` plus the librdkafka pass-through settings;
    /// `None` when no brokers are configured (the embedded bus).
    pub fn from_settings(settings: &crate::config::Settings) -> Option<Self> {
        let brokers = settings
            .kafka_brokers
            .as_deref()
            .filter(|b| !b.trim().is_empty())?;
        let mut kafka = KafkaSettings::new(brokers);
        for (k, v) in &settings.kafka_settings {
            kafka = kafka.with(k.clone(), v.clone());
        }
        let mut config = KafkaConfig::new(kafka);
        config.topics = Topics::with_prefix(&settings.kafka_topic_prefix);
        config.group_id = settings.kafka_group_id.clone();
        Some(config)
    }

    /// Creates the configured topics if missing; an existing topic is left as it is.
    pub async fn ensure_topics(&self) -> Result<(), KafkaBusError> {
        ensure_topics(
            &self.settings,
            &self.topics.specs(self.partitions, self.replication),
        )
        .await
    }

    /// A member of `group_id` consuming the change and suppliers topics.
    pub fn subscribe_worker(&self, group_id: &str) -> Result<KafkaConsumer, KafkaBusError> {
        KafkaConsumer::subscribe(
            &self.settings,
            group_id,
            &[
                self.topics.entity_changes.as_str(),
                self.topics.suppliers.as_str(),
                self.topics.ownership.as_str(),
            ],
        )
    }
}
