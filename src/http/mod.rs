//! The operator's HTTP endpoint beside the long-running commands: `GET /metrics` (Prometheus
//! text), `GET /healthz` (the process answers) and `GET /readyz` (it can do its job: the store
//! answers, Kafka answers when configured, and the watcher polled recently when this process
//! runs one).
//!
//! The probes only read: nothing they serve may change state, and nothing they return may
//! carry a secret (no URLs with credentials, no settings values), since probes and scrapes are
//! seldom authenticated. `/metrics` can be put behind a token ([`Readiness::metrics_scope`]);
//! the HTTP API v1 ([`api`], under `/v1`) is behind [`auth::require`], and the review
//! console ([`console`]) behind its own sign-in.

pub mod api;
pub mod auth;
pub mod console;
pub mod problem;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::bus::KafkaProducer;
use crate::domain::Scope;
use crate::metrics::metrics;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr} for /metrics and the health probes: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What `/readyz` checks.
#[derive(Clone)]
pub struct Readiness {
    pub store: Store,
    /// Probed with a metadata request when the process runs on Kafka.
    pub kafka: Option<KafkaProducer>,
    /// Set when this process runs the watcher: the last successful poll may be at most this
    /// old. Until the first poll completes, the process start counts as the last poll, so a
    /// fresh pod gets one bound's time to reach the Federal Register.
    pub max_poll_age: Option<Duration>,
    /// Set when this process runs the watcher: a rule may hold the watermark (fail to fetch,
    /// retried every poll) at most this long.
    pub max_stuck: Option<Duration>,
    pub started_at: DateTime<Utc>,
    /// A token of this scope or above is needed to read `/metrics`; `None`: open.
    pub metrics_scope: Option<Scope>,
}

/// How long one dependency may take to answer a probe; kubelet's default timeout is 1 s, so a
/// slower answer would be a failed probe anyway.
const CHECK_TIMEOUT: Duration = Duration::from_millis(900);

/// A bound listener and the router; [`serve`] runs it.
pub struct HttpServer {
    listener: tokio::net::TcpListener,
    router: Router,
}

impl HttpServer {
    /// Binds now, so that a taken port fails the command at start-up with a clear message
    /// rather than leaving a service that cannot be scraped.
    /// `services` are the routes people and systems use (the API, the console), each behind
    /// its own authentication; the probes and `/metrics` are added here.
    pub async fn bind(
        addr: SocketAddr,
        readiness: Readiness,
        services: Router,
    ) -> Result<Self, HttpError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| HttpError::Bind { addr, source })?;
        let metrics = Router::new().route("/metrics", get(metrics_text));
        let metrics = match readiness.metrics_scope {
            Some(scope) => auth::require(metrics, readiness.store.clone(), scope),
            None => metrics,
        };
        let router = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(Arc::new(readiness))
            .merge(metrics)
            .merge(services);
        Ok(HttpServer { listener, router })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves. Errors are logged: losing the endpoint must not stop
    /// the watcher or the worker.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
        let addr = self.local_addr();
        info!(%addr, "serving /metrics, /healthz and /readyz");
        if let Err(e) = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            warn!(%addr, error = %e, "the HTTP endpoint stopped");
        }
    }
}

async fn metrics_text() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics().render(),
    )
        .into_response()
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

async fn readyz(State(r): State<Arc<Readiness>>) -> (StatusCode, Json<Value>) {
    let mut checks = serde_json::Map::new();
    let mut ready = true;

    let store = match tokio::time::timeout(CHECK_TIMEOUT, r.store.ping()).await {
        Ok(Ok(())) => json!({ "ok": true }),
        Ok(Err(e)) => json!({ "ok": false, "error": e.to_string() }),
        Err(_) => json!({ "ok": false, "error": "the store did not answer within 900 ms" }),
    };
    checks.insert("store".into(), store);

    if let Some(kafka) = &r.kafka {
        let check = match kafka.ping(CHECK_TIMEOUT).await {
            Ok(brokers) => json!({ "ok": true, "brokers": brokers }),
            Err(e) => json!({ "ok": false, "error": e.to_string() }),
        };
        checks.insert("kafka".into(), check);
    }

    if let Some(bound) = r.max_poll_age {
        let last = metrics().last_successful_poll.get();
        let last = DateTime::from_timestamp(last, 0).filter(|_| last > 0);
        let reference = last.unwrap_or(r.started_at);
        let age = (Utc::now() - reference).to_std().unwrap_or_default();
        let ok = age <= bound;
        let mut check = json!({
            "ok": ok,
            "last_successful_poll": last.map(|t| t.to_rfc3339()),
            "age_seconds": age.as_secs(),
            "max_age_seconds": bound.as_secs(),
        });
        if !ok {
            check["error"] = json!(match last {
                Some(_) => format!(
                    "the last successful Federal Register poll is {} s old (bound {} s)",
                    age.as_secs(),
                    bound.as_secs()
                ),
                None => format!(
                    "no successful Federal Register poll in the {} s since start",
                    age.as_secs()
                ),
            });
        }
        checks.insert("watcher".into(), check);
    }

    if let Some(bound) = r.max_stuck {
        let since = metrics().stuck_since.get();
        let stuck = DateTime::from_timestamp(since, 0)
            .filter(|_| since > 0)
            .map(|t| (Utc::now() - t).to_std().unwrap_or_default());
        let ok = stuck.is_none_or(|age| age <= bound);
        let mut check = json!({
            "ok": ok,
            "stuck_seconds": stuck.map_or(0, |a| a.as_secs()),
            "max_stuck_seconds": bound.as_secs(),
        });
        if let Some(age) = stuck.filter(|_| !ok) {
            check["error"] = json!(format!(
                "a rule has failed to fetch for {} s (bound {} s) and holds the watermark: \
                 newer rules are published, but the watermark does not move past it",
                age.as_secs(),
                bound.as_secs()
            ));
        }
        checks.insert("watermark".into(), check);
    }

    for check in checks.values() {
        ready &= check["ok"] == json!(true);
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks,
    });
    (status, Json(body))
}
