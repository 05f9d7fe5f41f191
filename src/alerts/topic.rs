//! The alert topic of the embedded mode: alerts appended, keyed by supplier id, to the
//! in-process bus log `entitywatch.alerts.v1`, where integrations read them as they would read
//! the Kafka topic.
//!
//! Like every sink it makes one attempt per `send` and never decides whether to send.

use async_trait::async_trait;

use super::{Alert, AlertSink, SinkError};
use crate::bus::InProcessBus;

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
        "alert-topic"
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
