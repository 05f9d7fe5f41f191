//! The in-process bus: the embedded mode's stand-in for Kafka, for a single machine with no
//! infrastructure.
//!
//! It keeps Kafka's promises rather than merely passing values between tasks: messages are
//! appended to a log in the store (the same SQLite file or Postgres database as everything
//! else) before `publish` returns, and a consumer resumes from its stored position after a
//! restart. A wake-up signal saves the consumer from polling; it must never be the only copy of
//! a message.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{to_cloud_event, PublishError, Publisher};
use crate::events::ChangeEvent;
use crate::store::{LoggedMessage, Store, StoreError};

/// A topic log in the store, shared by its publisher and consumers.
#[derive(Clone)]
pub struct InProcessBus {
    store: Store,
    topic: String,
    wake: Arc<Notify>,
}

impl InProcessBus {
    pub fn new(store: Store, topic: impl Into<String>) -> Self {
        InProcessBus {
            store,
            topic: topic.into(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Appends raw keyed payloads (alerts, dead letters) to the topic.
    pub async fn append(&self, messages: &[(String, String)]) -> Result<Vec<i64>, StoreError> {
        let positions = self.store.append_to_log(&self.topic, messages).await?;
        self.wake.notify_waiters();
        Ok(positions)
    }

    /// A consumer named `consumer` that resumes where it left off.
    pub fn consumer(&self, consumer: impl Into<String>) -> InProcessConsumer {
        InProcessConsumer {
            bus: self.clone(),
            name: consumer.into(),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }
}

#[async_trait]
impl Publisher for InProcessBus {
    async fn publish(&self, events: &[ChangeEvent]) -> Result<(), PublishError> {
        let mut messages = Vec::with_capacity(events.len());
        for event in events {
            // The same CloudEvent as on Kafka: one codec for the worker, whichever bus it reads.
            let body =
                String::from_utf8(to_cloud_event(event).to_json_bytes()?).expect("JSON is UTF-8");
            messages.push((event.key(), body));
        }
        self.append(&messages)
            .await
            .map_err(|e| PublishError::Refused(e.to_string()))?;
        Ok(())
    }
}

pub struct InProcessConsumer {
    bus: InProcessBus,
    name: String,
}

impl InProcessConsumer {
    /// The next messages after the stored position, waiting up to `wait` for one to arrive.
    pub async fn next_batch(
        &self,
        max: i64,
        wait: Duration,
    ) -> Result<Vec<LoggedMessage>, StoreError> {
        // Register interest before reading, so a publish between the read and the wait is not
        // missed.
        let notified = self.bus.wake.notified();
        let after = self.position().await?;
        let batch = self.bus.store.read_log(&self.bus.topic, after, max).await?;
        if !batch.is_empty() {
            return Ok(batch);
        }
        let _ = tokio::time::timeout(wait, notified).await;
        self.bus.store.read_log(&self.bus.topic, after, max).await
    }

    /// The position of the newest message on the topic (0 when empty).
    pub async fn head(&self) -> Result<i64, StoreError> {
        self.bus.store.log_length(&self.bus.topic).await
    }

    pub fn topic(&self) -> &str {
        &self.bus.topic
    }

    pub async fn position(&self) -> Result<i64, StoreError> {
        self.bus
            .store
            .consumer_position(&self.name, &self.bus.topic)
            .await
    }

    /// Records that everything up to and including `position` is handled.
    pub async fn commit(&self, position: i64) -> Result<(), StoreError> {
        self.bus
            .store
            .set_consumer_position(&self.name, &self.bus.topic, position)
            .await
    }
}
