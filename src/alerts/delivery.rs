//! Delivery: the last hop of an alert out of the system, with retries.
//!
//! The worker has already decided (from the store's delivery ledger) that this sink has not
//! accepted this alert; [`deliver`] makes that happen despite a flaky receiver: jittered
//! exponential backoff (backon's), the receiver's `Retry-After` honoured up to
//! [`RetryPolicy::max_backoff`], a per-attempt timeout, and an immediate stop on a permanent
//! error. When it gives up, the caller dead-letters the alert with the returned reason.
//!
//! It must never log or return a webhook URL (sinks scrub their reasons; this module logs only
//! sink names, alert ids and reasons), and it never re-sends an alert that a sink accepted: a
//! retry follows only a failed attempt.
//!
//! Also here: the HTTP status and transport-error rules every HTTP sink shares, so Slack and
//! generic webhooks classify failures identically.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, NaiveDateTime, Utc};
use tracing::warn;

use super::{Alert, AlertSink, SecretUrl, SinkError};

/// How hard [`deliver`] tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The first backoff; each following one doubles, plus up to 100 % jitter.
    pub min_backoff: Duration,
    /// No wait is longer, neither a backoff nor a receiver's `Retry-After`: a receiver asking
    /// for an hour must not stall a partition; the alert is dead-lettered instead.
    pub max_backoff: Duration,
    /// Per attempt: an attempt with no answer by then counts as a retryable failure.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

/// A delivered alert: how many attempts it took and how long was spent waiting between them
/// (for metrics: `attempts - 1` retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    pub attempts: u32,
    pub waited: Duration,
}

/// An alert the sink did not take. `reason` is the last attempt's, scrubbed of URLs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sink {sink} refused the alert after {attempts} attempt(s) ({}): {reason}", if *.permanent { "permanent" } else { "retries exhausted" })]
pub struct DeliveryFailure {
    pub sink: String,
    pub attempts: u32,
    pub reason: String,
    /// True when the receiver refused outright (a 4xx); false when retries ran out.
    pub permanent: bool,
    /// True when delivery stopped between attempts because the process is shutting down: the
    /// alert is neither delivered nor undeliverable, and must be tried again after restart.
    pub interrupted: bool,
    pub waited: Duration,
}

/// What [`deliver_with`] tells its observer before each wait.
#[derive(Debug, Clone, Copy)]
pub struct RetryNotice<'a> {
    pub sink: &'a str,
    pub alert_id: &'a str,
    /// The attempt that just failed (1-based).
    pub attempt: u32,
    pub delay: Duration,
    pub reason: &'a str,
}

/// Delivers `alert` to `sink`, retrying per `policy`.
pub async fn deliver(
    sink: &dyn AlertSink,
    alert: &Alert,
    policy: &RetryPolicy,
) -> Result<DeliveryReport, DeliveryFailure> {
    deliver_with(sink, alert, policy, |_| {}).await
}

/// As [`deliver`], calling `on_retry` before each wait (retry counters, tests).
pub async fn deliver_with(
    sink: &dyn AlertSink,
    alert: &Alert,
    policy: &RetryPolicy,
    on_retry: impl FnMut(&RetryNotice<'_>),
) -> Result<DeliveryReport, DeliveryFailure> {
    deliver_until(sink, alert, policy, on_retry, std::future::pending()).await
}

/// As [`deliver_with`], giving up between attempts once `stop` resolves (shutdown), with an
/// `interrupted` failure. An attempt in flight is never abandoned: the receiver may already
/// have acted on it, and an alert we cannot record as delivered would be sent again.
pub async fn deliver_until(
    sink: &dyn AlertSink,
    alert: &Alert,
    policy: &RetryPolicy,
    on_retry: impl FnMut(&RetryNotice<'_>),
    stop: impl std::future::Future<Output = ()>,
) -> Result<DeliveryReport, DeliveryFailure> {
    retry_until(sink, &alert.alert_id, policy, on_retry, stop, || {
        sink.send(alert)
    })
    .await
}

/// The retry loop of [`deliver_until`] around any one-attempt `attempt` to `sink` (an alert,
/// a digest), `subject` naming it in logs. Each attempt first takes the sink's turn (pacing),
/// which does not count against the attempt's timeout and is given up on a stop.
pub async fn retry_until<F, Fut>(
    sink: &dyn AlertSink,
    subject: &str,
    policy: &RetryPolicy,
    mut on_retry: impl FnMut(&RetryNotice<'_>),
    stop: impl std::future::Future<Output = ()>,
    mut attempt_once: F,
) -> Result<DeliveryReport, DeliveryFailure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), SinkError>>,
{
    tokio::pin!(stop);
    let max_attempts = policy.max_attempts.max(1);
    let max_backoff = policy.max_backoff.max(policy.min_backoff);
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(policy.min_backoff)
        .with_max_delay(max_backoff)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    let mut waited = Duration::ZERO;
    let mut attempt = 0u32;
    let interrupted = |attempt: u32, reason: String, waited: Duration| DeliveryFailure {
        sink: sink.name().to_string(),
        attempts: attempt,
        reason,
        permanent: false,
        interrupted: true,
        waited,
    };
    loop {
        attempt += 1;
        let attempt_limit = if sink.bounds_its_own_attempts() {
            // The sink ends every attempt itself (the producer's message.timeout.ms).
            Duration::MAX
        } else {
            policy.timeout
        };
        let turn = tokio::select! {
            t = sink.turn() => t,
            _ = &mut stop => {
                return Err(interrupted(
                    attempt - 1,
                    "shutdown while waiting for the sink's turn (pacing)".to_string(),
                    waited,
                ));
            }
        };
        let outcome = match tokio::time::timeout(attempt_limit, attempt_once()).await {
            Ok(r) => r,
            Err(_) => Err(SinkError::retryable(format!(
                "no answer within {} ms",
                policy.timeout.as_millis()
            ))),
        };
        if let Some(turn) = turn {
            turn.record(&outcome, max_backoff);
        }
        let (reason, retry_after) = match outcome {
            Ok(()) => {
                return Ok(DeliveryReport {
                    attempts: attempt,
                    waited,
                })
            }
            Err(SinkError::Permanent { reason }) => {
                return Err(DeliveryFailure {
                    sink: sink.name().to_string(),
                    attempts: attempt,
                    reason,
                    permanent: true,
                    interrupted: false,
                    waited,
                })
            }
            Err(SinkError::Retryable {
                reason,
                retry_after,
            }) => (reason, retry_after),
        };
        if attempt >= max_attempts {
            return Err(DeliveryFailure {
                sink: sink.name().to_string(),
                attempts: attempt,
                reason,
                permanent: false,
                interrupted: false,
                waited,
            });
        }
        // backon's jitter adds up to 100 % on top of the step, which can overshoot the cap.
        let step = backoff.next().unwrap_or(max_backoff).min(max_backoff);
        // Retry-After is the receiver's minimum; our backoff still applies if it is longer.
        let delay = retry_after.map_or(step, |ra| ra.max(step)).min(max_backoff);
        warn!(
            sink = sink.name(),
            alert_id = %subject,
            attempt,
            delay_ms = delay.as_millis() as u64,
            reason = %reason,
            "alert delivery failed; retrying"
        );
        on_retry(&RetryNotice {
            sink: sink.name(),
            alert_id: subject,
            attempt,
            delay,
            reason: &reason,
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = &mut stop => {
                return Err(interrupted(
                    attempt,
                    format!("shutdown during retries; last failure: {reason}"),
                    waited,
                ));
            }
        }
        waited += delay;
    }
}

/// A `Retry-After` value: delay-seconds, or an HTTP-date (IMF-fixdate, RFC 850 or asctime)
/// taken relative to `now`. A date in the past means "now" (zero).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = DateTime::parse_from_rfc2822(v)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(v, "%A, %d-%b-%y %H:%M:%S GMT")
                .or_else(|_| NaiveDateTime::parse_from_str(v, "%a %b %e %H:%M:%S %Y"))
                .ok()
                .map(|n| n.and_utc())
        })?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// The HTTP client every HTTP sink uses by default. Redirects are not followed: a webhook
/// that moved should be reconfigured, not have a signed alert re-sent wherever a 3xx points.
pub(crate) fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        // A backstop for callers that use a sink without `deliver` (whose timeout is shorter).
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("entitywatch/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends a prepared request and classifies the outcome by the rules all HTTP sinks share:
/// 2xx accepted; 408, 429 and 5xx retryable (with `Retry-After`); 3xx and other 4xx
/// permanent; transport failures retryable unless the request could not even be built.
pub(crate) async fn send_http(
    request: reqwest::RequestBuilder,
    url: &SecretUrl,
) -> Result<(), SinkError> {
    let response = request.send().await.map_err(|e| transport_error(e, url))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, Utc::now()));
    let snippet = body_snippet(response).await;
    let mut reason = format!("HTTP {status}");
    if !snippet.is_empty() {
        reason.push_str(": ");
        reason.push_str(&snippet);
    }
    let reason = url.redact(&reason);
    let code = status.as_u16();
    if code == 408 || code == 429 || status.is_server_error() {
        Err(SinkError::Retryable {
            reason,
            retry_after,
        })
    } else if status.is_redirection() {
        Err(SinkError::permanent(format!(
            "{reason} (redirects are not followed; configure the final URL)"
        )))
    } else {
        Err(SinkError::permanent(reason))
    }
}

/// The start of an error body (Slack says why in it: `invalid_payload`, `no_service`), read
/// only so far: a receiver's error page can be large.
async fn body_snippet(mut response: reqwest::Response) -> String {
    const LIMIT: usize = 300;
    let mut buf = Vec::new();
    while buf.len() < LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&buf[..buf.len().min(LIMIT)]);
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.chars().take(200).collect()
}

/// A reqwest error as a reason without the URL: reqwest puts the full URL (the secret) into
/// its `Display`, so it is removed first and the whole chain scrubbed again after.
pub(crate) fn transport_error(e: reqwest::Error, url: &SecretUrl) -> SinkError {
    let permanent = e.is_builder() || e.is_redirect();
    let timeout = e.is_timeout();
    let e = e.without_url();
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !reason.contains(&s_text) {
            reason.push_str(": ");
            reason.push_str(&s_text);
        }
        source = s.source();
    }
    if timeout && !reason.contains("timed out") {
        reason.push_str(" (timed out)");
    }
    let reason = url.redact(&reason);
    if permanent {
        SinkError::permanent(reason)
    } else {
        SinkError::retryable(reason)
    }
}

/// A scripted local HTTP receiver for the sink tests: answers each request with the next
/// scripted reply (200 "ok" once the script is used up) and records what it received.
#[cfg(test)]
pub(crate) mod test_receiver {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};

    #[derive(Debug, Clone)]
    pub(crate) struct Reply {
        pub status: u16,
        pub headers: Vec<(&'static str, String)>,
        pub body: String,
        pub delay: Duration,
    }

    impl Reply {
        pub fn status(status: u16) -> Self {
            Reply {
                status,
                headers: Vec::new(),
                body: String::new(),
                delay: Duration::ZERO,
            }
        }
        pub fn body(mut self, body: impl Into<String>) -> Self {
            self.body = body.into();
            self
        }
        pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
            self.headers.push((name, value.into()));
            self
        }
        pub fn delay(mut self, delay: Duration) -> Self {
            self.delay = delay;
            self
        }
    }

    #[derive(Debug, Clone)]
    pub(crate) struct Recorded {
        pub path: String,
        pub headers: HeaderMap,
        pub body: Bytes,
        pub at: Instant,
    }

    #[derive(Default)]
    struct Inner {
        script: VecDeque<Reply>,
        requests: Vec<Recorded>,
    }

    pub(crate) struct Receiver {
        /// `http://127.0.0.1:PORT`, no trailing slash.
        pub base: String,
        inner: Arc<Mutex<Inner>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Receiver {
        pub async fn start(script: Vec<Reply>) -> Receiver {
            let inner = Arc::new(Mutex::new(Inner {
                script: script.into(),
                requests: Vec::new(),
            }));
            let app = axum::Router::new()
                .fallback(handle)
                .with_state(inner.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            Receiver { base, inner, task }
        }

        pub fn requests(&self) -> Vec<Recorded> {
            self.inner.lock().unwrap().requests.clone()
        }
    }

    impl Drop for Receiver {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn handle(
        State(inner): State<Arc<Mutex<Inner>>>,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let reply = {
            let mut g = inner.lock().unwrap();
            g.requests.push(Recorded {
                path: uri.path().to_string(),
                headers,
                body,
                at: Instant::now(),
            });
            g.script
                .pop_front()
                .unwrap_or_else(|| Reply::status(200).body("ok"))
        };
        tokio::time::sleep(reply.delay).await;
        let mut response =
            (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
        for (name, value) in reply.headers {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use chrono::TimeZone;

    use super::test_receiver::{Receiver, Reply};
    use super::*;
    use crate::alerts::tests::sample_alert;
    use crate::alerts::{AlertKind, SlackSink, WebhookSecret, WebhookSink};

    const SECRET_PATH: &str = "/services/T000/B000/SECRET";

    fn fast_policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 6,
            min_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            timeout: Duration::from_secs(5),
        }
    }

    fn slack_at(r: &Receiver) -> SlackSink {
        SlackSink::new(SecretUrl::parse(&format!("{}{SECRET_PATH}", r.base)).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn too_many_requests_waits_for_retry_after_then_delivers() {
        let r = Receiver::start(vec![Reply::status(429)
            .header("retry-after", "1")
            .body("rate_limited")])
        .await;
        let sink = slack_at(&r);
        let policy = RetryPolicy {
            max_backoff: Duration::from_secs(2),
            ..fast_policy()
        };
        let started = Instant::now();
        let report = deliver(&sink, &sample_alert(AlertKind::Listed), &policy)
            .await
            .unwrap();
        assert_eq!(report.attempts, 2);
        assert!(report.waited >= Duration::from_secs(1), "{report:?}");
        let reqs = r.requests();
        assert_eq!(reqs.len(), 2);
        assert!(reqs[1].at - reqs[0].at >= Duration::from_secs(1));
        assert!(started.elapsed() >= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn retry_after_is_capped_at_max_backoff() {
        let r = Receiver::start(vec![Reply::status(503).header("retry-after", "3600")]).await;
        let sink = slack_at(&r);
        let report = deliver(&sink, &sample_alert(AlertKind::Listed), &fast_policy())
            .await
            .unwrap();
        assert_eq!(report.attempts, 2);
        assert!(report.waited <= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn server_errors_are_retried_until_success() {
        let r = Receiver::start(vec![Reply::status(500), Reply::status(500)]).await;
        let sink = slack_at(&r);
        let mut notices = Vec::new();
        let report = deliver_with(
            &sink,
            &sample_alert(AlertKind::Listed),
            &fast_policy(),
            |n| notices.push((n.attempt, n.delay, n.reason.to_string())),
        )
        .await
        .unwrap();
        assert_eq!(report.attempts, 3);
        assert_eq!(r.requests().len(), 3);
        assert_eq!(notices.len(), 2);
        assert_eq!(notices[0].0, 1);
        assert!(notices[0].2.contains("500"), "{notices:?}");
        for (_, delay, _) in &notices {
            assert!(*delay >= Duration::from_millis(5) && *delay <= Duration::from_millis(50));
        }
    }

    #[tokio::test]
    async fn a_timed_out_attempt_is_retried() {
        let r = Receiver::start(vec![Reply::status(200)
            .body("ok")
            .delay(Duration::from_millis(1500))])
        .await;
        let sink = slack_at(&r);
        let policy = RetryPolicy {
            timeout: Duration::from_millis(200),
            ..fast_policy()
        };
        let started = Instant::now();
        let report = deliver(&sink, &sample_alert(AlertKind::Listed), &policy)
            .await
            .unwrap();
        assert_eq!(report.attempts, 2);
        assert!(started.elapsed() < Duration::from_millis(1400));
    }

    #[tokio::test]
    async fn a_permanent_error_stops_at_once() {
        let r = Receiver::start(vec![Reply::status(404).body("no_service")]).await;
        let sink = slack_at(&r);
        let failure = deliver(&sink, &sample_alert(AlertKind::Listed), &fast_policy())
            .await
            .unwrap_err();
        assert!(failure.permanent);
        assert_eq!(failure.attempts, 1);
        assert_eq!(failure.sink, "slack");
        assert!(failure.reason.contains("404"), "{}", failure.reason);
        assert!(failure.reason.contains("no_service"), "{}", failure.reason);
        assert_eq!(r.requests().len(), 1);
    }

    #[tokio::test]
    async fn exhausted_retries_fail_with_the_last_reason() {
        let r = Receiver::start(vec![Reply::status(503).body("down"); 4]).await;
        let sink = WebhookSink::new(
            SecretUrl::parse(&format!("{}/hook", r.base)).unwrap(),
            WebhookSecret::new("s3cr3t"),
        )
        .unwrap();
        let policy = RetryPolicy {
            max_attempts: 3,
            ..fast_policy()
        };
        let failure = deliver(&sink, &sample_alert(AlertKind::Listed), &policy)
            .await
            .unwrap_err();
        assert!(!failure.permanent);
        assert_eq!(failure.attempts, 3);
        assert!(failure.reason.contains("503"), "{}", failure.reason);
        assert_eq!(r.requests().len(), 3);
    }

    #[tokio::test]
    async fn redirects_are_permanent_and_not_followed() {
        let r = Receiver::start(vec![Reply::status(307).header("location", "/elsewhere")]).await;
        let sink = slack_at(&r);
        let failure = deliver(&sink, &sample_alert(AlertKind::Listed), &fast_policy())
            .await
            .unwrap_err();
        assert!(failure.permanent);
        assert_eq!(r.requests().len(), 1);
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = Utc.with_ymd_and_hms(1994, 11, 6, 8, 49, 30).unwrap();
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(date, now),
                Some(Duration::from_secs(7)),
                "{date}"
            );
        }
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    /// Collects formatted log output in memory.
    #[derive(Clone, Default)]
    struct LogBuffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for LogBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
        type Writer = LogBuffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[tokio::test]
    async fn webhook_urls_never_reach_logs_or_errors() {
        let logs = LogBuffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        // A receiver that echoes the path in its error pages, as many frameworks do.
        let echo = format!("Cannot POST {SECRET_PATH}");
        let r = Receiver::start(vec![
            Reply::status(500).body(echo.clone()),
            Reply::status(404).body(echo.clone()),
        ])
        .await;
        let slack = slack_at(&r);
        let alert = sample_alert(AlertKind::Listed);
        let failure = deliver(&slack, &alert, &fast_policy()).await.unwrap_err();
        assert!(failure.permanent);

        // A closed port: the connection error comes from reqwest, which embeds the URL.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let url = SecretUrl::parse(&format!("http://{closed}{SECRET_PATH}?token=SECRET")).unwrap();
        let unreachable = SlackSink::new(url.clone())
            .unwrap()
            .named("slack:unreachable");
        let policy = RetryPolicy {
            max_attempts: 2,
            ..fast_policy()
        };
        let failure2 = deliver(&unreachable, &alert, &policy).await.unwrap_err();
        assert!(!failure2.permanent);
        let direct = unreachable.send(&alert).await.unwrap_err();

        let hook = WebhookSink::new(url, WebhookSecret::new("whsec")).unwrap();
        let failure3 = deliver(&hook, &alert, &policy).await.unwrap_err();

        let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(
            logged.contains("retrying"),
            "logs were not captured: {logged}"
        );
        assert!(logged.contains(&alert.alert_id));
        // Both paths were exercised: an echoed error page and a transport error.
        assert!(logged.contains("Cannot POST [redacted]"), "{logged}");
        assert!(failure2.reason.contains("onnect"), "{}", failure2.reason);
        for text in [
            logged,
            failure.to_string(),
            format!("{failure:?}"),
            failure2.to_string(),
            format!("{failure2:?}"),
            direct.to_string(),
            format!("{slack:?}"),
            format!("{unreachable:?}"),
            format!("{hook:?}"),
            failure3.to_string(),
        ] {
            assert!(!text.contains("T000/B000"), "leaked: {text}");
            assert!(!text.contains("SECRET"), "leaked: {text}");
            assert!(!text.contains("whsec"), "leaked: {text}");
        }
    }
}
