//! The alert topic, `entitywatch.alerts.v1`, on either bus: [`AlertTopicSink`] appends alerts,
//! keyed by supplier id, to the in-process bus log of the embedded mode, where integrations
//! read them as they would read Kafka; [`KafkaAlertSink`] produces them to the Kafka topic.
//! Both are named `alert-topic`, so the delivery ledger says "on the alert topic" whichever
//! transport carried it.
//!
//! Like every sink they make one attempt per `send` and never decide whether to send.

use async_trait::async_trait;

use super::{Alert, AlertSink, SinkError};
use crate::bus::kafka::{KafkaProducer, OutgoingRecord};
use crate::bus::InProcessBus;

/// The name of the alert-topic sink in the ledger and the metrics.
pub const ALERT_TOPIC_SINK: &str = "alert-topic";

pub struct AlertTopicSink {
    bus: InProcessBus,
}

impl AlertTopicSink {
    pub fn new(bus: InProcessBus) -> Self {
        AlertTopicSink { bus }
    }
}

#[async_trait]
impl AlertSink for AlertTopicSink {
    fn name(&self) -> &str {
        ALERT_TOPIC_SINK
    }

    async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        let payload = serde_json::to_string(alert)
            .map_err(|e| SinkError::permanent(format!("cannot encode alert: {e}")))?;
        self.bus
            .append(&[(alert.supplier.id.clone(), payload)])
            .await
            .map(|_| ())
            .map_err(|e| SinkError::retryable(format!("cannot append to the alert topic: {e}")))
    }
}

/// The alert topic on Kafka: the alert JSON keyed by supplier id, so one supplier's alerts stay
/// in order on one partition. It returns only once the broker confirmed the message
/// (`acks=all`), because the worker records the delivery in its ledger on that promise.
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
        ALERT_TOPIC_SINK
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
