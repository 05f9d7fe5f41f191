//! A scripted alert receiver for fault tests: a local HTTP server standing in for a Slack
//! incoming webhook or a generic webhook. Each request is keyed by the alert it carries
//! (`SUPPLIER/KIND`, e.g. `S-2/listed`), the script answers it by key and attempt number (a
//! 429 with `Retry-After`, a 500, a 404, or a reply slower than the sender's timeout), and
//! every request is recorded with its arrival time, so a test can count attempts and measure
//! the waits between them.
//!
//! The generic-webhook receiver verifies each request as the README's "Generic webhook
//! signature" tells an enterprise to, computed here independently of the crate's own
//! `verify_signature`: HMAC-SHA256 with the shared secret over `"{timestamp}.{raw body}"`,
//! compared in constant time with the `v1=` value of `X-Entitywatch-Signature`, a timestamp
//! within five minutes, `X-Entitywatch-Delivery` equal to the body's `alert_id` and
//! `X-Entitywatch-Event` equal to `alert.{kind}`. A request that fails is answered 401 and
//! recorded with the reason; the script is not consulted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// How the script answers one attempt.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::status(200).body("ok")
    }

    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn body(mut self, body: impl Into<String>) -> Reply {
        self.body = body.into();
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// No answer for `delay` (longer than the sender's timeout), then a 504: an attempt the
    /// sender must give up on. It is never counted as accepted.
    pub fn hang(delay: Duration) -> Reply {
        Reply {
            delay,
            ..Reply::status(504).body("gateway timeout")
        }
    }
}

/// Answers attempt `attempt` (1-based, per key) of the alert keyed `key`.
pub type Script = Arc<dyn Fn(&str, usize) -> Reply + Send + Sync>;

/// A script that accepts everything.
pub fn healthy() -> Script {
    Arc::new(|_, _| Reply::ok())
}

/// What kind of receiver, and so how requests are keyed and checked.
#[derive(Clone)]
pub enum Kind {
    /// Block Kit messages; the key comes from the Supplier field and the fallback text.
    Slack,
    /// Signed alert JSON; verified with this shared secret.
    Webhook { secret: String },
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The request's JSON body.
    pub body: Value,
    /// `SUPPLIER/KIND`, or `unknown` when the body did not say.
    pub key: String,
    pub at: Instant,
    /// The status the receiver answered (after `delay`).
    pub status: u16,
    pub delay: Duration,
    /// Generic webhooks: `Err(reason)` when verification failed (answered 401).
    pub verified: Result<(), String>,
    /// Generic webhooks: `X-Entitywatch-Delivery`.
    pub delivery_id: Option<String>,
    /// Generic webhooks: `X-Entitywatch-Timestamp`.
    pub timestamp: Option<i64>,
}

impl Hit {
    /// The receiver took the alert: a 2xx answered at once.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status) && self.delay.is_zero()
    }
}

struct Inner {
    kind: Kind,
    script: Script,
    hits: Vec<Hit>,
}

/// A running receiver; dropping it stops it.
pub struct Receiver {
    pub addr: SocketAddr,
    pub path: String,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Serves `path` (any other path is a 404 `no_service`, as Slack answers) on a free port.
    pub async fn start(kind: Kind, path: &str, script: Script) -> Receiver {
        let inner = Arc::new(Mutex::new(Inner {
            kind,
            script,
            hits: Vec::new(),
        }));
        let app = axum::Router::new()
            .route(path, axum::routing::post(handle))
            .fallback(|| async { (StatusCode::NOT_FOUND, "no_service") })
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            path: path.to_string(),
            inner,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }

    /// Replaces the script (the fault clears, or starts).
    pub fn set_script(&self, script: Script) {
        self.inner.lock().unwrap().script = script;
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.inner.lock().unwrap().hits.clone()
    }

    /// Every attempt at the alert keyed `key`, in arrival order.
    pub fn attempts(&self, key: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.key == key).collect()
    }

    /// How many times each key was accepted (exactly once each is the promise).
    pub fn accepted(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for h in self.hits().iter().filter(|h| h.accepted()) {
            *out.entry(h.key.clone()).or_insert(0) += 1;
        }
        out
    }

    /// Requests that failed signature verification (must be none).
    pub fn unverified(&self) -> Vec<(String, String)> {
        self.hits()
            .into_iter()
            .filter_map(|h| h.verified.err().map(|e| (h.key, e)))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits between consecutive attempts, from arrival to arrival.
pub fn gaps(attempts: &[Hit]) -> Vec<Duration> {
    attempts.windows(2).map(|w| w[1].at - w[0].at).collect()
}

/// `1.02 s, 2.31 s` for a summary line.
pub fn show(gaps: &[Duration]) -> String {
    gaps.iter()
        .map(|g| format!("{:.2} s", g.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let kind = inner.lock().unwrap().kind.clone();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (key, verified, delivery_id, timestamp) = match &kind {
        Kind::Slack => (slack_key(&json), Ok(()), None, None),
        Kind::Webhook { secret } => {
            let header = |n: &str| {
                headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let key = match (json["supplier"]["id"].as_str(), json["kind"].as_str()) {
                (Some(s), Some(k)) => format!("{s}/{k}"),
                _ => "unknown".to_string(),
            };
            let timestamp = header("x-entitywatch-timestamp").and_then(|t| t.parse().ok());
            let delivery_id = header("x-entitywatch-delivery");
            let verified = verify(
                secret.as_bytes(),
                timestamp,
                header("x-entitywatch-signature").as_deref(),
                &body,
            )
            .and_then(|()| {
                if delivery_id.as_deref() != json["alert_id"].as_str() {
                    return Err(format!(
                        "X-Entitywatch-Delivery {delivery_id:?} is not the body's alert_id"
                    ));
                }
                let event = header("x-entitywatch-event");
                let want = json["kind"].as_str().map(|k| format!("alert.{k}"));
                if event.is_none() || event != want {
                    return Err(format!("X-Entitywatch-Event {event:?}, expected {want:?}"));
                }
                Ok(())
            });
            (key, verified, delivery_id, timestamp)
        }
    };
    let reply = {
        let mut g = inner.lock().unwrap();
        let attempt = g.hits.iter().filter(|h| h.key == key).count() + 1;
        let reply = if verified.is_ok() {
            (g.script)(&key, attempt)
        } else {
            Reply::status(401).body("invalid signature")
        };
        g.hits.push(Hit {
            body: json.clone(),
            key,
            at,
            status: reply.status,
            delay: reply.delay,
            verified,
            delivery_id,
            timestamp,
        });
        reply
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// The generic-webhook check, written from the README: `v1=<hex HMAC-SHA256(secret,
/// "{timestamp}.{body}")>`, constant-time comparison, timestamp within 5 minutes.
fn verify(
    secret: &[u8],
    timestamp: Option<i64>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    let timestamp = timestamp.ok_or("no X-Entitywatch-Timestamp")?;
    let signature = signature.ok_or("no X-Entitywatch-Signature")?;
    let age = chrono::Utc::now().timestamp() - timestamp;
    if age.abs() > 300 {
        return Err(format!("timestamp {age} s from now"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let ok = signature
        .split(',')
        .filter_map(|p| p.trim().strip_prefix("v1="))
        .filter_map(|h| hex::decode(h).ok())
        .any(|sig| mac.clone().verify_slice(&sig).is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!("signature {signature:?} does not match"))
    }
}

/// `SUPPLIER/KIND` of a Slack message: the supplier id is in the Supplier field as
/// ``NAME (`ID`)``, the kind in the fallback text's headline.
fn slack_key(message: &Value) -> String {
    let text = message["text"].as_str().unwrap_or("");
    // A digest: `digest/ID` from the footer's ``digest `ID` ``.
    if text.contains(" Entity List alerts from ") {
        let footer = message["blocks"]
            .as_array()
            .and_then(|b| b.last())
            .and_then(|b| b["elements"][0]["text"].as_str())
            .unwrap_or("");
        return match footer.rsplit_once("digest `") {
            Some((_, id)) => format!("digest/{}", id.trim_end_matches('`')),
            None => "unknown".to_string(),
        };
    }
    let kind = if text.starts_with("Supplier on the Entity List") {
        "listed"
    } else if text.starts_with("Entity List entry revised") {
        "revised"
    } else if text.starts_with("Entity List entry removed") {
        "cleared"
    } else {
        return "unknown".to_string();
    };
    let supplier = message["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["fields"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f["text"].as_str().map(str::to_string))
        .find(|t| t.starts_with("*Supplier*"))
        .and_then(|t| {
            let start = t.rfind("(`")? + 2;
            let end = start + t[start..].find("`)")?;
            Some(t[start..end].to_string())
        });
    match supplier {
        Some(s) => format!("{s}/{kind}"),
        None => "unknown".to_string(),
    }
}
