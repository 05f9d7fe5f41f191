//! Dead letters: what could not be handled, with why, kept where an operator finds it
//! (`entitywatch.dead-letter.v1`, on Kafka or the embedded bus).
//!
//! Two kinds of thing end here: a message on the change or suppliers topic that is not
//! something entitywatch understands (retrying cannot help, so it is set aside and the topic
//! moves on), and an alert that no delivery retry could bring to a sink (kept whole so that
//! `dead-letters redrive` can send it again). A dead letter must be durable before the
//! position of the message that caused it is committed; nothing here may drop one.
//!
//! The record on the topic is `{reason, payload, dead_lettered_at, cause}`: `reason` is the
//! human line (and the Kafka header) integrations already read; `cause` is the typed form this
//! build writes and reads. Records written before `cause` existed still read: their cause is
//! recovered from the reason.

use std::fmt::{self, Display};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alerts::Alert;
use crate::bus::kafka::{KafkaProducer, OutgoingRecord};
use crate::bus::InProcessBus;

/// Header on Kafka dead letters carrying the reason, so a consumer can route without parsing.
pub const DEAD_LETTER_REASON_HEADER: &str = "entitywatch-dead-letter-reason";

/// Where a message was read from, for the operator who has to find its producer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "bus", rename_all = "snake_case")]
pub enum Origin {
    /// The embedded bus: a position in the store's log of `topic`.
    Log { topic: String, position: i64 },
    Kafka {
        topic: String,
        partition: i32,
        offset: i64,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Log { topic, position } => write!(f, "{topic}@{position}"),
            Origin::Kafka {
                topic,
                partition,
                offset,
            } => write!(f, "{topic}/{partition}@{offset}"),
        }
    }
}

/// Why something was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    /// A message on the change topic that does not decode into a change event (not JSON, not a
    /// CloudEvent, an unknown type or schema version, data that contradicts its type).
    UndecodableEvent {
        /// The decoder's stable reason code (`invalid_json`, `unknown_schema_version`, ...).
        code: String,
        detail: String,
        from: Origin,
    },
    /// A record on the suppliers topic that is not a valid supplier for its key.
    InvalidSupplier { detail: String, from: Origin },
    /// A record on the ownership topic that is not a valid holding for its key.
    InvalidOwnership { detail: String, from: Origin },
    /// An alert that every delivery attempt to `sink` failed to deliver.
    SinkFailure {
        sink: String,
        alert_id: String,
        detail: String,
    },
    /// A record written before causes were typed whose reason says nothing more.
    Unrecognised { reason: String },
}

impl Cause {
    /// The human reason line, exactly as integrations and runbooks know it.
    pub fn reason(&self) -> String {
        match self {
            Cause::UndecodableEvent { code, detail, from } => {
                format!("{code}: {detail} (from {from})")
            }
            Cause::InvalidSupplier { detail, from } => {
                format!("invalid_supplier: {detail} (from {from})")
            }
            Cause::InvalidOwnership { detail, from } => {
                format!("invalid_ownership: {detail} (from {from})")
            }
            Cause::SinkFailure { sink, detail, .. } => format!("sink {sink}: {detail}"),
            Cause::Unrecognised { reason } => reason.clone(),
        }
    }

    /// Recovers the cause of a record written before `cause` existed, from its reason and key.
    fn from_legacy_reason(reason: &str, key: &str) -> Cause {
        if let Some(rest) = reason.strip_prefix("sink ") {
            if let Some((sink, detail)) = rest.split_once(": ") {
                return Cause::SinkFailure {
                    sink: sink.to_string(),
                    alert_id: key.to_string(),
                    detail: detail.to_string(),
                };
            }
        }
        Cause::Unrecognised {
            reason: reason.to_string(),
        }
    }
}

/// One dead letter: what, why, when.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The key of the original message (an alert's id for a failed alert).
    pub key: String,
    pub cause: Cause,
    /// The original message or alert JSON, unchanged.
    pub payload: String,
    pub dead_lettered_at: DateTime<Utc>,
}

/// The record's shape on the topic.
#[derive(Serialize, Deserialize)]
struct Record {
    reason: String,
    payload: String,
    dead_lettered_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cause: Option<Cause>,
}

impl DeadLetter {
    pub fn undecodable_event(
        key: &str,
        code: &str,
        detail: impl Display,
        from: Origin,
        payload: &[u8],
    ) -> Self {
        Self::now(
            key,
            Cause::UndecodableEvent {
                code: code.to_string(),
                detail: detail.to_string(),
                from,
            },
            String::from_utf8_lossy(payload).into_owned(),
        )
    }

    pub fn invalid_supplier(key: &str, detail: impl Display, from: Origin, payload: &[u8]) -> Self {
        Self::now(
            key,
            Cause::InvalidSupplier {
                detail: detail.to_string(),
                from,
            },
            String::from_utf8_lossy(payload).into_owned(),
        )
    }

    pub fn invalid_ownership(
        key: &str,
        detail: impl Display,
        from: Origin,
        payload: &[u8],
    ) -> Self {
        Self::now(
            key,
            Cause::InvalidOwnership {
                detail: detail.to_string(),
                from,
            },
            String::from_utf8_lossy(payload).into_owned(),
        )
    }

    /// `payload` is the alert's JSON as the sinks were sent it.
    pub fn sink_failure(sink: &str, alert_id: &str, detail: impl Display, payload: String) -> Self {
        Self::now(
            alert_id,
            Cause::SinkFailure {
                sink: sink.to_string(),
                alert_id: alert_id.to_string(),
                detail: detail.to_string(),
            },
            payload,
        )
    }

    fn now(key: &str, cause: Cause, payload: String) -> Self {
        DeadLetter {
            key: key.to_string(),
            cause,
            payload,
            dead_lettered_at: Utc::now(),
        }
    }

    pub fn reason(&self) -> String {
        self.cause.reason()
    }

    fn record(&self) -> Record {
        Record {
            reason: self.reason(),
            payload: self.payload.clone(),
            dead_lettered_at: self.dead_lettered_at.to_rfc3339(),
            cause: Some(self.cause.clone()),
        }
    }

    /// The record as written to the topic.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.record()).expect("a dead letter always encodes")
    }

    /// Reads a record back, whichever build wrote it. A body that is not a dead-letter record
    /// at all is kept whole as the payload of an unrecognised cause, never dropped.
    pub fn from_record(key: &str, body: &[u8]) -> DeadLetter {
        match serde_json::from_slice::<Record>(body) {
            Ok(record) => DeadLetter {
                key: key.to_string(),
                cause: record
                    .cause
                    .unwrap_or_else(|| Cause::from_legacy_reason(&record.reason, key)),
                payload: record.payload,
                dead_lettered_at: DateTime::parse_from_rfc3339(&record.dead_lettered_at)
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_default(),
            },
            Err(e) => DeadLetter {
                key: key.to_string(),
                cause: Cause::Unrecognised {
                    reason: format!("not a dead-letter record: {e}"),
                },
                payload: String::from_utf8_lossy(body).into_owned(),
                dead_lettered_at: DateTime::default(),
            },
        }
    }

    /// The alert, when this is an alert no sink retry could deliver.
    pub fn alert(&self) -> Option<Alert> {
        match self.cause {
            Cause::SinkFailure { .. } => serde_json::from_str(&self.payload).ok(),
            _ => None,
        }
    }
}

/// Where dead letters are written. `write` returns only once the record is durable.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    async fn write(&self, letter: &DeadLetter) -> Result<(), DeadLetterError>;
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write to the dead-letter topic: {0}")]
pub struct DeadLetterError(String);

/// The embedded bus's dead-letter topic, in the store.
#[async_trait]
impl DeadLetters for InProcessBus {
    async fn write(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        self.append(&[(letter.key.clone(), letter.to_json())])
            .await
            .map(|_| ())
            .map_err(|e| DeadLetterError(e.to_string()))
    }
}

/// The dead-letter topic on Kafka, keyed as the original, with the reason also in a header.
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
    async fn write(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let record = OutgoingRecord::json(&self.topic, &letter.key, &letter.record())
            .map_err(|e| DeadLetterError(e.to_string()))?
            .with_header(DEAD_LETTER_REASON_HEADER, letter.reason().into_bytes());
        self.producer
            .send_all(std::slice::from_ref(&record))
            .await
            .map(|_| ())
            .map_err(|e| DeadLetterError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_written() {
        let from = Origin::Kafka {
            topic: "t".into(),
            partition: 2,
            offset: 7,
        };
        let letter = DeadLetter::undecodable_event("k", "invalid_json", "bad", from, b"{");
        assert_eq!(letter.reason(), "invalid_json: bad (from t/2@7)");
        let back = DeadLetter::from_record("k", letter.to_json().as_bytes());
        assert_eq!(back.cause, letter.cause);
        assert_eq!(back.payload, "{");
    }

    #[test]
    fn an_old_sink_record_is_still_an_alert_dead_letter() {
        let body = r#"{"reason":"sink webhook: HTTP 500","payload":"{}","dead_lettered_at":"2026-11-28T13:45:00+00:00"}"#;
        let letter = DeadLetter::from_record("alert-1", body.as_bytes());
        assert_eq!(
            letter.cause,
            Cause::SinkFailure {
                sink: "webhook".into(),
                alert_id: "alert-1".into(),
                detail: "HTTP 500".into()
            }
        );
        assert_eq!(letter.reason(), "sink webhook: HTTP 500");
    }

    #[test]
    fn an_old_poison_record_keeps_its_reason() {
        let body = r#"{"reason":"invalid_json: x (from a/0@1)","payload":"x","dead_lettered_at":"2026-11-28T13:45:00+00:00"}"#;
        let letter = DeadLetter::from_record("k", body.as_bytes());
        assert_eq!(letter.reason(), "invalid_json: x (from a/0@1)");
        assert!(letter.alert().is_none());
    }

    #[test]
    fn a_body_that_is_no_record_is_kept() {
        let letter = DeadLetter::from_record("k", b"garbage");
        assert_eq!(letter.payload, "garbage");
        assert!(matches!(letter.cause, Cause::Unrecognised { .. }));
    }
}
