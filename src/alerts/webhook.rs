//! Generic signed webhooks: an alert leaves the system as its own JSON, POSTed to a URL the
//! enterprise runs, signed so the receiver can tell it came from us and was not replayed.
//!
//! # Request
//!
//! `POST` to the configured URL with the body exactly `serde_json` of [`Alert`] and:
//!
//! | header                      | value                                          |
//! |-----------------------------|------------------------------------------------|
//! | `Content-Type`              | `application/json`                             |
//! | `X-Entitywatch-Event`       | `alert.listed`, `alert.revised`, `alert.cleared` |
//! | `X-Entitywatch-Delivery`    | the alert id (the same on every re-send: de-duplicate on it) |
//! | `X-Entitywatch-Timestamp`   | Unix seconds when this attempt was signed       |
//! | `X-Entitywatch-Signature`   | `v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>` |
//!
//! # Verifying (receivers)
//!
//! 1. Take the timestamp header and the raw body bytes (before any JSON parsing).
//! 2. Compute HMAC-SHA256 with the shared secret over `"{timestamp}.{body}"`, hex-encode it.
//! 3. Compare, in constant time, with each `v1=` value of the signature header (a
//!    comma-separated list, so a secret can be rotated by sending two signatures).
//! 4. Reject a timestamp further than a tolerance (e.g. 5 minutes) from your clock: the
//!    timestamp is signed, so this stops a captured request from being replayed later.
//!
//! [`verify_signature`] does exactly this. Every attempt is signed afresh, so a retry after a
//! long backoff is not rejected as stale.
//!
//! This sink never logs or returns the URL or the secret (both are redacted in `Debug`), and
//! it makes one attempt per `send`: retries are [`deliver`](super::deliver)'s, and whether to
//! send at all is the store's.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::delivery::{http_client, send_http};
use super::{Alert, AlertSink, SecretUrl, SinkError};

type HmacSha256 = Hmac<Sha256>;

pub const EVENT_HEADER: &str = "X-Entitywatch-Event";
pub const DELIVERY_HEADER: &str = "X-Entitywatch-Delivery";
pub const TIMESTAMP_HEADER: &str = "X-Entitywatch-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Entitywatch-Signature";

/// The shared signing secret. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        WebhookSecret(secret.as_ref().to_vec())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

// Deserialize only, for configuration; a secret is never written back out.
impl<'de> Deserialize<'de> for WebhookSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(WebhookSecret::new(String::deserialize(d)?))
    }
}

/// Posts signed alert JSON to one URL.
#[derive(Clone)]
pub struct WebhookSink {
    name: String,
    url: SecretUrl,
    secret: WebhookSecret,
    client: reqwest::Client,
}

impl WebhookSink {
    /// A sink named `webhook` with its own HTTP client (no redirects followed).
    pub fn new(url: SecretUrl, secret: WebhookSecret) -> Result<Self, reqwest::Error> {
        Ok(WebhookSink::with_client(url, secret, http_client()?))
    }

    pub fn with_client(url: SecretUrl, secret: WebhookSecret, client: reqwest::Client) -> Self {
        WebhookSink {
            name: "webhook".to_string(),
            url,
            secret,
            client,
        }
    }

    /// Renames the sink, for several webhooks: the name keys the delivery ledger.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl AlertSink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        // Serialised once and sent as bytes, so the signed bytes are the bytes on the wire.
        let body = serde_json::to_vec(alert)
            .map_err(|e| SinkError::permanent(format!("alert does not serialise: {e}")))?;
        let timestamp = Utc::now().timestamp();
        let signature = sign(self.secret.expose(), timestamp, &body);
        let request = self
            .client
            .post(self.url.expose().clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, format!("alert.{}", alert.kind.as_str()))
            .header(DELIVERY_HEADER, &alert.alert_id)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body);
        send_http(request, &self.url).await
    }
}

/// The signature header value for `body` signed at `timestamp`: `v1=<hex>`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// Why a received webhook is not to be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the timestamp header is not Unix seconds")]
    MalformedTimestamp,
    #[error("the signature header holds no v1= signature")]
    MissingSignature,
    #[error("no v1 signature matches the body")]
    Mismatch,
    #[error("the timestamp is {age_seconds} s from now, beyond the tolerance")]
    Stale { age_seconds: i64 },
}

/// Checks a received webhook (see the module documentation): some `v1=` value of
/// `signature_header` is the HMAC of `"{timestamp}.{body}"` under `secret`, compared in
/// constant time, and the timestamp is within `tolerance` of `now` (either side).
pub fn verify_signature(
    secret: &[u8],
    timestamp_header: &str,
    body: &[u8],
    signature_header: &str,
    tolerance: Duration,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let ts_text = timestamp_header.trim();
    if ts_text.is_empty() || !ts_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::MalformedTimestamp);
    }
    let timestamp: i64 = ts_text
        .parse()
        .map_err(|_| SignatureError::MalformedTimestamp)?;
    let candidates: Vec<Vec<u8>> = signature_header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .filter_map(|h| hex::decode(h.trim()).ok())
        .collect();
    if candidates.is_empty() {
        return Err(SignatureError::MissingSignature);
    }
    let expected = mac(secret, timestamp, body);
    // `verify_slice` compares in constant time; every candidate is checked so the time taken
    // does not depend on which one matched.
    let matched = candidates
        .iter()
        .fold(false, |ok, c| expected.clone().verify_slice(c).is_ok() | ok);
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    let age_seconds = now.timestamp().saturating_sub(timestamp);
    let tolerance_seconds = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if age_seconds.unsigned_abs() > tolerance_seconds.unsigned_abs() {
        return Err(SignatureError::Stale { age_seconds });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};

    use super::*;
    use crate::alerts::tests::sample_alert;
    use crate::alerts::{deliver, AlertKind, RetryPolicy};

    const SECRET: &[u8] = b"whsec_test_0123456789";
    const TOLERANCE: Duration = Duration::from_secs(300);

    #[derive(Debug, Clone)]
    struct Received {
        headers: HeaderMap,
        body: Bytes,
        verdict: Result<(), SignatureError>,
    }

    /// A receiver as an enterprise would write it: verify, then accept or answer 401.
    async fn verifying_receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        async fn handle(
            State(seen): State<Arc<Mutex<Vec<Received>>>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> (StatusCode, &'static str) {
            let header = |n: &str| {
                headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            let verdict = verify_signature(
                SECRET,
                &header(TIMESTAMP_HEADER),
                &body,
                &header(SIGNATURE_HEADER),
                TOLERANCE,
                Utc::now(),
            );
            let status = if verdict.is_ok() {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            seen.lock().unwrap().push(Received {
                headers: headers.clone(),
                body,
                verdict,
            });
            (status, "")
        }
        let app = axum::Router::new()
            .route("/hooks/alerts", axum::routing::post(handle))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/alerts", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (url, seen)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            min_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn the_receiver_verifies_the_signature_and_gets_the_alert_json() {
        let (url, seen) = verifying_receiver().await;
        let sink = WebhookSink::new(SecretUrl::parse(&url).unwrap(), WebhookSecret::new(SECRET))
            .unwrap()
            .named("webhook:erp");
        let alert = sample_alert(AlertKind::Revised);
        let report = deliver(&sink, &alert, &policy()).await.unwrap();
        assert_eq!(report.attempts, 1);

        let got = seen.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        let r = &got[0];
        assert_eq!(r.verdict, Ok(()));
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["x-entitywatch-event"], "alert.revised");
        assert_eq!(r.headers["x-entitywatch-delivery"], alert.alert_id.as_str());
        assert!(r.headers["x-entitywatch-signature"]
            .to_str()
            .unwrap()
            .starts_with("v1="));
        // Exactly the serde form of the alert.
        assert_eq!(
            r.body.as_ref(),
            serde_json::to_vec(&alert).unwrap().as_slice()
        );
        let back: Alert = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(back, alert);

        let ts = r.headers[TIMESTAMP_HEADER].to_str().unwrap();
        let sig = r.headers[SIGNATURE_HEADER].to_str().unwrap();

        // A tampered body is rejected.
        let mut tampered = r.body.to_vec();
        let pos = tampered.iter().position(|b| *b == b'9').unwrap();
        tampered[pos] = b'1';
        assert_eq!(
            verify_signature(SECRET, ts, &tampered, sig, TOLERANCE, Utc::now()),
            Err(SignatureError::Mismatch)
        );
        // So is the right body replayed later than the tolerance.
        let later = Utc::now() + chrono::Duration::minutes(10);
        assert!(matches!(
            verify_signature(SECRET, ts, &r.body, sig, TOLERANCE, later),
            Err(SignatureError::Stale { age_seconds }) if age_seconds >= 599
        ));
        // And a different secret.
        assert_eq!(
            verify_signature(b"other", ts, &r.body, sig, TOLERANCE, Utc::now()),
            Err(SignatureError::Mismatch)
        );
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_permanently() {
        let (url, seen) = verifying_receiver().await;
        let sink =
            WebhookSink::new(SecretUrl::parse(&url).unwrap(), WebhookSecret::new("wrong")).unwrap();
        let failure = deliver(&sink, &sample_alert(AlertKind::Listed), &policy())
            .await
            .unwrap_err();
        assert!(failure.permanent);
        assert_eq!(failure.attempts, 1);
        assert!(failure.reason.contains("401"), "{}", failure.reason);
        assert_eq!(
            seen.lock().unwrap()[0].verdict,
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn verification_covers_the_edge_cases() {
        let body = br#"{"a":1}"#;
        let now = Utc::now();
        let ts = now.timestamp();
        let sig = sign(SECRET, ts, body);
        let ts_s = ts.to_string();
        assert_eq!(
            verify_signature(SECRET, &ts_s, body, &sig, TOLERANCE, now),
            Ok(())
        );
        // Rotation: any of several v1 values may match; other schemes are ignored.
        let rotated = format!("v0=abc, v1={}, {sig}", "00".repeat(32));
        assert_eq!(
            verify_signature(SECRET, &ts_s, body, &rotated, TOLERANCE, now),
            Ok(())
        );
        // The timestamp is signed: changing it breaks the signature.
        assert_eq!(
            verify_signature(SECRET, &(ts + 1).to_string(), body, &sig, TOLERANCE, now),
            Err(SignatureError::Mismatch)
        );
        // Too far in the future is as bad as too old.
        let future = sign(SECRET, ts + 3600, body);
        assert!(matches!(
            verify_signature(
                SECRET,
                &(ts + 3600).to_string(),
                body,
                &future,
                TOLERANCE,
                now
            ),
            Err(SignatureError::Stale { .. })
        ));
        assert_eq!(
            verify_signature(SECRET, "yesterday", body, &sig, TOLERANCE, now),
            Err(SignatureError::MalformedTimestamp)
        );
        assert_eq!(
            verify_signature(SECRET, &ts_s, body, "sha256=abc", TOLERANCE, now),
            Err(SignatureError::MissingSignature)
        );
        assert_eq!(
            verify_signature(SECRET, &ts_s, body, "v1=zz", TOLERANCE, now),
            Err(SignatureError::MissingSignature)
        );
        // A known vector, so receivers in other languages can check their implementation:
        // HMAC-SHA256("whsec_test_0123456789", "1700000000.{\"a\":1}").
        let mut m = HmacSha256::new_from_slice(SECRET).unwrap();
        m.update(b"1700000000.{\"a\":1}");
        assert_eq!(
            sign(SECRET, 1_700_000_000, body),
            format!("v1={}", hex::encode(m.finalize().into_bytes()))
        );
    }

    #[test]
    fn debug_redacts_url_and_secret() {
        let sink = WebhookSink::new(
            SecretUrl::parse("https://erp.example/hooks/T000/B000/SECRET").unwrap(),
            WebhookSecret::new("whsec_visible?"),
        )
        .unwrap();
        let d = format!("{sink:?}");
        assert!(!d.contains("SECRET") && !d.contains("whsec"), "{d}");
        assert!(d.contains("erp.example"));
    }
}
