//! Alerts: the last step of the data flow, where a screening decision leaves the system.
//!
//! The worker builds an [`Alert`] (supplier, the listed entry it matches, why, and what the
//! listing means) and hands it to each [`AlertSink`] through [`deliver`], which retries with
//! jittered backoff. The sinks are Slack incoming webhooks ([`SlackSink`]), signed generic
//! webhooks ([`WebhookSink`]) and the alert topic ([`topic`]).
//!
//! This module (the alert type, the sink trait, [`SecretUrl`]) does no I/O; the sinks in
//! [`slack`] and [`webhook`] do. Two rules hold for everything under `alerts`:
//! - it never logs or returns a secret: webhook URLs (a Slack webhook URL *is* the credential)
//!   live in [`SecretUrl`], whose `Debug` and `Display` redact the path, and error reasons are
//!   scrubbed of the URL before they leave a sink;
//! - it never sends an alert twice on its own initiative. Exactly-once per (supplier, entry,
//!   version) is decided by the store before `send` is called and recorded after it succeeded;
//!   a sink only retries an attempt that failed, and the deterministic [`Alert::alert_id`] lets
//!   a receiver recognise the rare duplicate that a lost acknowledgement can still produce.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::events::EntityKey;

pub mod delivery;
pub mod digest;
pub mod pacing;
pub mod sinks;
pub mod slack;
pub mod topic;
pub mod webhook;

pub use delivery::{
    deliver, deliver_until, deliver_with, parse_retry_after, DeliveryFailure, DeliveryReport,
    RetryNotice, RetryPolicy,
};
pub use digest::{Digest, DigestSource};
pub use pacing::Turn;
pub use sinks::{DigestPolicy, SinkSettings, SinkSettingsError, DEFAULT_DIGEST_OVER};
pub use slack::{digest_payload, slack_payload, SlackSink};
pub use topic::{AlertTopicSink, KafkaAlertSink, ALERT_TOPIC_SINK};
pub use webhook::{sign, verify_signature, SignatureError, WebhookSecret, WebhookSink};

/// What happened between a supplier and a listed entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A supplier matches an entry that was added (or that it newly matches).
    Listed,
    /// An entry a supplier matches was revised (licence policy, aliases, ...).
    Revised,
    /// An entry a supplier was alerted on was removed from the list; or, with
    /// [`Alert::affiliate`] set, the listed share in a supplier fell below the threshold.
    Cleared,
    /// The supplier is owned (directly or indirectly, alone or in the aggregate) 50 % or more
    /// by listed parties: the BIS Affiliates rule. Details in [`Alert::affiliate`].
    Affiliate,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Listed => "listed",
            AlertKind::Revised => "revised",
            AlertKind::Cleared => "cleared",
            AlertKind::Affiliate => "affiliate",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The supplier side of an alert, as the company's own records name it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSupplier {
    pub id: String,
    pub name: String,
    /// ISO code, when the supplier file gave a recognisable country.
    pub country: Option<String>,
}

/// The listed side of an alert: the entry and what its listing means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEntry {
    pub entity_key: EntityKey,
    /// The entry's version in the list snapshot; a revision bumps it, so a revised entry can
    /// alert again while a redelivered event cannot.
    pub version: i64,
    pub name: String,
    /// The listed name or alias the supplier matched.
    pub matched_name: String,
    pub aliases: Vec<String>,
    /// ISO code of the country heading the entry is listed under.
    pub country: String,
    /// The heading as the rule writes it, e.g. "CHINA, PEOPLE'S REPUBLIC OF".
    pub country_name: String,
    pub license_requirement: Option<String>,
    pub license_policy: Option<String>,
    /// The entry's citation column, e.g. "84 FR 54002, 10/9/19."
    pub federal_register_citation: Option<String>,
    /// The FR document the change came from, e.g. `2019-22210`.
    pub document_number: String,
    pub html_url: Option<String>,
}

impl AlertEntry {
    /// The rule on federalregister.gov: the document's own URL, or the short `/d/NUMBER` form
    /// that federalregister.gov redirects to it.
    pub fn rule_url(&self) -> String {
        match self.html_url.as_deref().map(str::trim) {
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => u.to_string(),
            _ => {
                let mut url = url::Url::parse("https://www.federalregister.gov/d/")
                    .expect("constant URL parses");
                // Pushing a segment percent-encodes it, so an odd document number cannot
                // reshape the URL.
                if let Ok(mut segments) = url.path_segments_mut() {
                    segments.pop_if_empty().push(self.document_number.trim());
                }
                url.to_string()
            }
        }
    }
}

/// One alert: which supplier, which listed entry, how sure, why, and what changed.
///
/// The JSON form of this type is the body of generic webhooks and of messages on the alert
/// topic, so it is a public contract: add fields, never rename them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Hex SHA-256 of `supplier_id \0 entity_key \0 entry_version \0 kind`: the same alert
    /// re-sent carries the same id, so receivers can de-duplicate on it.
    pub alert_id: String,
    pub kind: AlertKind,
    pub supplier: AlertSupplier,
    pub entry: AlertEntry,
    /// Match score in `0.0..=1.0` (0 for a cleared notice, which is not a match).
    pub score: f64,
    /// One human line: which tokens matched.
    pub explanation: String,
    /// For [`AlertKind::Revised`]: what changed, one line per field.
    #[serde(default)]
    pub changes: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// For [`AlertKind::Affiliate`] (and the clearing of one): who owns the supplier and how.
    /// Absent from every other alert, so existing consumers see the JSON they always saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affiliate: Option<AffiliateDetail>,
}

/// Why a supplier is restricted under the Affiliates rule: the aggregate share held by listed
/// and restricted owners, each path from a listed party down to the supplier, the listed
/// entries behind it and the licence requirement that applies (the most restrictive of theirs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffiliateDetail {
    /// Percent of the supplier held by listed and restricted owners, summed.
    pub aggregate_share_percent: f64,
    /// The threshold it was compared with (50 unless configured).
    pub threshold_percent: f64,
    pub paths: Vec<AffiliatePath>,
    pub listed_entries: Vec<AffiliateListedEntry>,
    /// The most restrictive licence requirement and policy of the listed entries.
    pub license_requirement: Option<String>,
    pub license_policy: Option<String>,
}

/// One chain of holdings, from a listed party (first hop) to the supplier (last hop).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffiliatePath {
    pub hops: Vec<AffiliateHop>,
}

/// One entity on a path, and the percent of it its predecessor holds (none for the first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffiliateHop {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_percent: Option<f64>,
    /// The list entry this entity is matched to, for the listed party a path starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_key: Option<EntityKey>,
}

/// A listed entry behind an affiliate alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffiliateListedEntry {
    pub entity_key: EntityKey,
    pub version: i64,
    pub name: String,
    pub federal_register_citation: Option<String>,
    pub document_number: Option<String>,
    pub license_requirement: Option<String>,
    pub license_policy: Option<String>,
}

impl Alert {
    /// Builds an alert created now, computing its id.
    pub fn new(
        kind: AlertKind,
        supplier: AlertSupplier,
        entry: AlertEntry,
        score: f64,
        explanation: impl Into<String>,
        changes: Vec<String>,
    ) -> Self {
        Alert::new_at(
            kind,
            supplier,
            entry,
            score,
            explanation,
            changes,
            Utc::now(),
        )
    }

    /// As [`Alert::new`] with an explicit creation time (replays, tests). The time is not part
    /// of the id: the same decision made twice is the same alert.
    pub fn new_at(
        kind: AlertKind,
        supplier: AlertSupplier,
        entry: AlertEntry,
        score: f64,
        explanation: impl Into<String>,
        changes: Vec<String>,
        created_at: DateTime<Utc>,
    ) -> Self {
        let alert_id = Alert::compute_id(&supplier.id, &entry.entity_key, entry.version, kind);
        Alert {
            alert_id,
            kind,
            supplier,
            entry,
            score,
            explanation: explanation.into(),
            changes,
            created_at,
            affiliate: None,
        }
    }

    /// An affiliate alert (or, with `kind` [`AlertKind::Cleared`], its clearing) for
    /// `supplier`. `entry` is the listed entry whose licence requirement applies; the id
    /// covers the whole set of listed entries and their versions, so the same set alerts once
    /// and a changed set (an entry added or revised) alerts again.
    pub fn affiliate(
        kind: AlertKind,
        supplier: AlertSupplier,
        entry: AlertEntry,
        detail: AffiliateDetail,
        explanation: impl Into<String>,
    ) -> Self {
        let listed: Vec<(&str, i64)> = detail
            .listed_entries
            .iter()
            .map(|e| (e.entity_key.as_str(), e.version))
            .collect();
        let alert_id = Alert::affiliate_id(&supplier.id, &listed, kind);
        Alert {
            alert_id,
            kind,
            supplier,
            entry,
            score: 0.0,
            explanation: explanation.into(),
            changes: Vec::new(),
            created_at: Utc::now(),
            affiliate: Some(detail),
        }
    }

    /// The id of an affiliate alert: SHA-256 of the supplier id, each (entity key, version) of
    /// the set in sorted order, and the kind, `\0`-separated, prefixed `affiliate` so it can
    /// never equal the id of a direct match.
    pub fn affiliate_id(supplier_id: &str, listed: &[(&str, i64)], kind: AlertKind) -> String {
        let mut listed = listed.to_vec();
        listed.sort_unstable();
        listed.dedup();
        let mut h = Sha256::new();
        h.update(b"affiliate\0");
        h.update(supplier_id.as_bytes());
        for (key, version) in listed {
            h.update([0u8]);
            h.update(key.as_bytes());
            h.update([0u8]);
            h.update(version.to_string().as_bytes());
        }
        h.update([0u8]);
        h.update(kind.as_str().as_bytes());
        hex::encode(h.finalize())
    }

    /// The id an alert for this (supplier, entry, version, kind) has, so the store can check
    /// its ledger before building the alert.
    pub fn compute_id(
        supplier_id: &str,
        entity_key: &EntityKey,
        entry_version: i64,
        kind: AlertKind,
    ) -> String {
        let mut h = Sha256::new();
        h.update(supplier_id.as_bytes());
        h.update([0u8]);
        h.update(entity_key.as_str().as_bytes());
        h.update([0u8]);
        h.update(entry_version.to_string().as_bytes());
        h.update([0u8]);
        h.update(kind.as_str().as_bytes());
        hex::encode(h.finalize())
    }

    /// One line for logs and the CLI. Holds no URL at all, so it is safe wherever it goes.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{kind}: supplier {sname:?} ({sid}) ~ {ename:?} [{key} v{version}]",
            kind = self.kind,
            sname = self.supplier.name,
            sid = self.supplier.id,
            ename = self.entry.matched_name,
            key = self.entry.entity_key,
            version = self.entry.version,
        );
        match &self.affiliate {
            Some(a) => s.push_str(&format!(
                " owned {:.2} % by {} listed part{}",
                a.aggregate_share_percent,
                a.listed_entries.len(),
                if a.listed_entries.len() == 1 {
                    "y"
                } else {
                    "ies"
                }
            )),
            None if self.kind != AlertKind::Cleared => {
                s.push_str(&format!(" score {:.2}", self.score))
            }
            None => {}
        }
        match &self.entry.federal_register_citation {
            Some(c) => s.push_str(&format!(", {}", c.trim())),
            None => s.push_str(&format!(", FR doc {}", self.entry.document_number)),
        }
        s.push_str(&format!(
            " (alert {})",
            &self.alert_id[..self.alert_id.len().min(12)]
        ));
        s
    }
}

/// Why a sink did not take an alert. The reason never contains the sink's URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Worth trying again: 408, 429, 5xx, timeouts, connection failures. `retry_after` is the
    /// receiver's own `Retry-After`, when it sent one.
    #[error("retryable: {reason}")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help (any other 4xx: revoked Slack webhook, rejected payload, ...).
    #[error("permanent: {reason}")]
    Permanent { reason: String },
}

impl SinkError {
    pub fn retryable(reason: impl Into<String>) -> Self {
        SinkError::Retryable {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        SinkError::Permanent {
            reason: reason.into(),
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            SinkError::Retryable { reason, .. } | SinkError::Permanent { reason } => reason,
        }
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, SinkError::Permanent { .. })
    }
}

/// Somewhere an alert can go.
///
/// `send` makes exactly one attempt; retrying is [`deliver`]'s job, and deciding whether to
/// send at all is the store's.
#[async_trait]
pub trait AlertSink: Send + Sync {
    /// A stable, non-secret name (`slack`, `webhook:erp`), used in logs, the delivery ledger
    /// and dead letters.
    fn name(&self) -> &str;
    async fn send(&self, alert: &Alert) -> Result<(), SinkError>;
    /// True when `send` always ends by itself, so delivery must not cut an attempt short: a
    /// Kafka producer keeps an abandoned message queued and delivers it later, and a retry
    /// beside it would put the alert on the topic twice.
    fn bounds_its_own_attempts(&self) -> bool {
        false
    }
    /// The sink's digests, for a sink that takes one message for a batch of alerts (Slack);
    /// `None` for sinks that get every alert on its own (the topic, the signed webhook).
    fn digests(&self) -> Option<&dyn DigestSink> {
        None
    }
    /// Waits for this sink's turn to post, for a receiver with a rate limit (Slack); the turn
    /// is held through one attempt and then recorded. `None`: no pacing.
    async fn turn(&self) -> Option<Turn> {
        None
    }
}

/// A sink that can take a [`Digest`] in place of the alerts it carries.
#[async_trait]
pub trait DigestSink: Send + Sync {
    /// One attempt, as [`AlertSink::send`].
    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError>;
}

/// Why a string is not a usable sink URL. Never echoes the string: it may be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretUrlError {
    #[error("not a valid URL: {0}")]
    Invalid(url::ParseError),
    #[error("only http and https URLs can receive alerts, got scheme {0:?}")]
    Scheme(String),
}

/// A URL that is itself a credential (a Slack incoming webhook, a webhook with a token in its
/// path or query). `Debug` and `Display` show only scheme and host, so a sink can derive or
/// print its configuration without leaking it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(url::Url);

impl SecretUrl {
    pub fn parse(raw: &str) -> Result<Self, SecretUrlError> {
        let url = url::Url::parse(raw.trim()).map_err(SecretUrlError::Invalid)?;
        match url.scheme() {
            "http" | "https" => Ok(SecretUrl(url)),
            other => Err(SecretUrlError::Scheme(other.to_string())),
        }
    }

    /// The full URL, for the one place that needs it: the HTTP request.
    pub fn expose(&self) -> &url::Url {
        &self.0
    }

    /// `text` with every occurrence of this URL, and of its path and query, replaced by
    /// `[redacted]`. Receivers' error pages echo the request path ("Cannot POST /hooks/..."),
    /// and error types embed the URL, so every reason a sink returns goes through here.
    pub fn redact(&self, text: &str) -> String {
        let full = self.0.as_str();
        let mut out = text.replace(full, "[redacted]");
        out = out.replace(full.trim_end_matches('/'), "[redacted]");
        let path_and_query = &self.0[url::Position::BeforePath..];
        if path_and_query.len() > 1 {
            out = out.replace(path_and_query, "[redacted]");
        }
        let path = self.0.path();
        if path.len() > 1 {
            out = out.replace(path, "[redacted]");
        }
        if let Some(q) = self.0.query().filter(|q| !q.is_empty()) {
            out = out.replace(q, "[redacted]");
        }
        out
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({self})")
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.0.host_str().unwrap_or("");
        match self.0.port() {
            Some(p) => write!(f, "{}://{host}:{p}/[redacted]", self.0.scheme()),
            None => write!(f, "{}://{host}/[redacted]", self.0.scheme()),
        }
    }
}

impl std::str::FromStr for SecretUrl {
    type Err = SecretUrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecretUrl::parse(s)
    }
}

impl TryFrom<String> for SecretUrl {
    type Error = SecretUrlError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        SecretUrl::parse(&value)
    }
}

// Deserialize only: configuration reads webhook URLs, nothing should ever write one back out.
impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        SecretUrl::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    pub(crate) fn sample_alert(kind: AlertKind) -> Alert {
        let changes = if kind == AlertKind::Revised {
            vec!["license_policy: 'Presumption of denial.' → 'Case-by-case review.'".to_string()]
        } else {
            Vec::new()
        };
        Alert::new_at(
            kind,
            AlertSupplier {
                id: "SUP-0042".into(),
                name: "Hangzhou Hikvision Digital Tech <HK> & Co".into(),
                country: Some("CN".into()),
            },
            AlertEntry {
                entity_key: EntityKey::parse("CN/hangzhou-hikvision-digital-technology-co-ltd")
                    .unwrap(),
                version: 3,
                name: "Hangzhou Hikvision Digital Technology Co., Ltd.".into(),
                matched_name: "Hangzhou Hikvision Digital Technology Co., Ltd.".into(),
                aliases: vec!["Hikvision".into()],
                country: "CN".into(),
                country_name: "CHINA, PEOPLE'S REPUBLIC OF".into(),
                license_requirement: Some("For all items subject to the EAR.".into()),
                license_policy: Some("Presumption of denial.".into()),
                federal_register_citation: Some("84 FR 54002, 10/9/19.".into()),
                document_number: "2019-22210".into(),
                html_url: None,
            },
            0.97,
            "matched hangzhou, hikvision, digital (legal form co ltd ignored)",
            changes,
            Utc.with_ymd_and_hms(2019, 10, 9, 12, 0, 0).unwrap(),
        )
    }

    #[test]
    fn alert_id_is_deterministic_and_depends_on_the_identity_only() {
        let a = sample_alert(AlertKind::Listed);
        let mut b = sample_alert(AlertKind::Listed);
        b.created_at = Utc::now();
        assert_eq!(a.alert_id, b.alert_id);
        assert_eq!(a.alert_id.len(), 64);

        let mut h = Sha256::new();
        h.update(b"SUP-0042\0CN/hangzhou-hikvision-digital-technology-co-ltd\x003\0listed");
        assert_eq!(a.alert_id, hex::encode(h.finalize()));

        assert_ne!(a.alert_id, sample_alert(AlertKind::Revised).alert_id);
        let mut e = a.entry.clone();
        e.version = 4;
        let c = Alert::new(AlertKind::Listed, a.supplier.clone(), e, 0.97, "", vec![]);
        assert_ne!(a.alert_id, c.alert_id);
    }

    #[test]
    fn alert_json_round_trips_with_snake_case_kind() {
        let a = sample_alert(AlertKind::Cleared);
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["kind"], "cleared");
        assert_eq!(
            v["entry"]["entity_key"],
            "CN/hangzhou-hikvision-digital-technology-co-ltd"
        );
        assert_eq!(v["entry"]["version"], 3);
        let back: Alert = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn summary_is_one_line_without_urls() {
        let mut a = sample_alert(AlertKind::Listed);
        a.entry.html_url = Some("https://www.federalregister.gov/documents/2019/10/09/x".into());
        let s = a.summary();
        assert!(!s.contains('\n'));
        assert!(!s.contains("http"));
        assert!(s.contains("SUP-0042") && s.contains("0.97") && s.contains("84 FR 54002"));
    }

    #[test]
    fn rule_url_falls_back_to_the_short_form() {
        let mut e = sample_alert(AlertKind::Listed).entry;
        assert_eq!(e.rule_url(), "https://www.federalregister.gov/d/2019-22210");
        e.document_number = "2019 22210/../x".into();
        assert_eq!(
            e.rule_url(),
            "https://www.federalregister.gov/d/2019%2022210%2F..%2Fx"
        );
        e.html_url =
            Some("https://www.federalregister.gov/documents/2019/10/09/2019-22210/x".into());
        assert!(e.rule_url().ends_with("/2019-22210/x"));
    }

    #[test]
    fn secret_url_never_shows_its_path() {
        let u = SecretUrl::parse("https://hooks.slack.com/services/T000/B000/SECRET").unwrap();
        assert_eq!(format!("{u}"), "https://hooks.slack.com/[redacted]");
        assert!(!format!("{u:?}").contains("SECRET"));
        let text = "error for url (https://hooks.slack.com/services/T000/B000/SECRET): Cannot POST /services/T000/B000/SECRET";
        let r = u.redact(text);
        assert!(!r.contains("SECRET"), "{r}");
        assert!(SecretUrl::parse("ftp://x/y").is_err());
        let err = SecretUrl::parse("not a url /T000/B000/SECRET").unwrap_err();
        assert!(!err.to_string().contains("SECRET"));

        let q = SecretUrl::parse("https://erp.example/hook?token=SECRET").unwrap();
        assert!(!q.redact("GET /hook?token=SECRET failed").contains("SECRET"));
    }
}
