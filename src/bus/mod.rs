//! The bus: how change events leave the watcher.
//!
//! The watcher only knows the [`Publisher`] trait; which transport sits behind it (JSON lines on
//! stdout or a file, Kafka, or the in-process bus in the store) is chosen at start-up. Kafka and
//! the in-process bus carry the same CloudEvents envelope ([`cloudevents`]), so the worker has one
//! codec and one decode error whichever bus it reads; JSON lines carry the [`Envelope`] that
//! `watch` prints for people and scripts. A publisher
//! returns only once its events are durable where it writes them: the watcher advances its
//! checkpoint on that promise, so a publisher must never acknowledge what it has not written.

pub mod cloudevents;
mod in_process;
mod jsonl;
pub mod kafka;

pub use cloudevents::{
    decode_change_event, from_cloud_event, to_cloud_event, CloudEvent, DecodeError,
};
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
