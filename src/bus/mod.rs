//! The bus: how change events leave the watcher.
//!
//! The watcher only knows the [`Publisher`] trait; which transport sits behind it (JSON lines on
//! stdout or a file today, Kafka or the in-process bus later) is chosen at start-up. A publisher
//! returns only once its events are durable where it writes them: the watcher advances its
//! checkpoint on that promise, so a publisher must never acknowledge what it has not written.

pub mod cloudevents;
mod in_process;
mod jsonl;
pub mod kafka;

pub use cloudevents::{from_cloud_event, to_cloud_event, CloudEvent};
pub use in_process::{InProcessBus, InProcessConsumer};
pub use jsonl::JsonLinesPublisher;
pub use kafka::{
    ensure_topics, KafkaBusError, KafkaConsumer, KafkaProducer, KafkaPublisher, KafkaSettings,
    TopicSpec, Topics,
};

use async_trait::async_trait;
use serde::Serialize;

use crate::events::{ChangeEvent, SCHEMA_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot write events: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot encode event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the bus refused the events: {0}")]
    Refused(String),
}

#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes the events of one document, in order, and returns once all are durable.
    async fn publish(&self, events: &[ChangeEvent]) -> Result<(), PublishError>;
}

/// The wire form of an event: schema version and partition key beside the event's own fields.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    pub schema_version: u32,
    pub key: String,
    #[serde(flatten)]
    pub event: &'a ChangeEvent,
}

impl<'a> Envelope<'a> {
    pub fn new(event: &'a ChangeEvent) -> Self {
        Envelope {
            schema_version: SCHEMA_VERSION,
            key: event.key(),
            event,
        }
    }
}

/// Why a message on the change topic is not a change event; such messages are dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message is not JSON: {0}")]
    NotJson(String),
    #[error("unknown schema version {0} (this build reads version {SCHEMA_VERSION})")]
    UnknownSchemaVersion(u64),
    #[error("message is not a change event: {0}")]
    NotAnEvent(String),
}

/// Reads an [`Envelope`] back.
pub fn decode_event(payload: &[u8]) -> Result<ChangeEvent, DecodeError> {
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    match value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
    {
        Some(v) if v == u64::from(SCHEMA_VERSION) => {}
        Some(v) => return Err(DecodeError::UnknownSchemaVersion(v)),
        None => return Err(DecodeError::NotAnEvent("no schema_version".into())),
    }
    serde_json::from_value(value).map_err(|e| DecodeError::NotAnEvent(e.to_string()))
}
