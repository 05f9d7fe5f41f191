//! Transport: one GET with its redirects (each hop passing the URL policy), the status check, a
//! bounded body read, and the retry loop around it.
//!
//! It never decides what a URL means or what a body says beyond "JSON or not"; the caller does.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, ACCEPT, ETAG, IF_NONE_MATCH, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use url::Url;

use super::api::collapse;
use super::url_policy::loggable;
use super::{ClientError, ClientStats, FederalRegisterClient, Upstream};

/// Redirects followed within one attempt. The API itself does not redirect today; a handful
/// covers an http→https or trailing-slash hop without letting a loop spin.
pub(super) const MAX_REDIRECTS: usize = 5;

/// How much of an error body is kept for the error message.
pub(super) const BODY_EXCERPT_CHARS: usize = 300;

impl FederalRegisterClient {
    /// GET `url` and decode its JSON body, retrying as the module docs describe. Returns the
    /// URL finally read (after redirects), against which relative URLs in the body resolve.
    pub(super) async fn get_json<T: DeserializeOwned>(
        &self,
        url: &Url,
    ) -> Result<(T, Url), ClientError> {
        self.with_retries(url, || async {
            let fetched = self.fetch_once(url, "application/json", None).await?;
            match serde_json::from_slice::<T>(&fetched.body) {
                Ok(v) => Ok((v, fetched.url)),
                Err(e) => {
                    // A cut-off or garbled body is a transport or server fault and may be fine
                    // next time; well-formed JSON of the wrong shape means the API changed.
                    let retryable = !e.is_data();
                    Err(Failure {
                        error: ClientError::Decode {
                            url: loggable(&fetched.url),
                            message: e.to_string(),
                        },
                        retryable,
                        retry_after: None,
                        status: None,
                    })
                }
            }
        })
        .await
    }

    pub(super) async fn with_retries<T, F, Fut>(
        &self,
        url: &Url,
        mut op: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let attempts = AtomicUsize::new(0);
        let max_backoff = self.config.max_backoff;
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.config.min_backoff)
            .with_max_delay(self.config.max_backoff)
            .with_max_times(self.config.max_retries);
        let result = (|| {
            attempts.fetch_add(1, Ordering::Relaxed);
            op()
        })
        .retry(backoff)
        .when(|f: &Failure| f.retryable)
        .adjust(|f: &Failure, next: Option<Duration>| {
            // `next` is None once retries are used up; Retry-After never buys an extra one.
            next.map(|computed| f.retry_after.unwrap_or(computed).min(max_backoff))
        })
        .notify(|f: &Failure, delay: Duration| {
            ClientStats::add(&self.stats.retries, 1);
            let upstream = self.config.upstream;
            if upstream == Upstream::FederalRegister {
                crate::metrics::metrics().federal_register_retries.inc();
                // The error names the URL already: once per line is enough.
                tracing::warn!(
                    attempt = attempts.load(Ordering::Relaxed),
                    status = f.status,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    error = %f.error,
                    "Federal Register request failed; retrying"
                );
            } else {
                tracing::warn!(
                    upstream = upstream.as_str(),
                    attempt = attempts.load(Ordering::Relaxed),
                    status = f.status,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    error = %f.error,
                    "list source request failed; retrying"
                );
            }
        })
        .await;
        if self.config.upstream == Upstream::FederalRegister {
            let outcome = if result.is_ok() { "success" } else { "failure" };
            crate::metrics::metrics()
                .federal_register_requests
                .with_label_values(&[outcome])
                .inc();
        }
        result.map_err(|f| {
            ClientStats::add(&self.stats.failures, 1);
            if f.retryable {
                ClientError::RetriesExhausted {
                    url: loggable(url),
                    attempts: attempts.load(Ordering::Relaxed),
                    last: f.error.to_string(),
                }
            } else {
                f.error
            }
        })
    }

    /// One attempt: the request, any redirects, the status check and the bounded body read.
    /// With `if_none_match` the request is conditional, and a 304 is an empty [`Fetched`]
    /// marked `not_modified`.
    pub(super) async fn fetch_once(
        &self,
        start: &Url,
        accept: &'static str,
        if_none_match: Option<&str>,
    ) -> Result<Fetched, Failure> {
        let mut url = start.clone();
        for _ in 0..=MAX_REDIRECTS {
            ClientStats::add(&self.stats.requests, 1);
            let mut request = self.http.get(url.clone()).header(ACCEPT, accept);
            if let Some(tag) = if_none_match {
                request = request.header(IF_NONE_MATCH, tag);
            }
            let response = request
                .send()
                .await
                .map_err(|e| Failure::transport(&url, e))?;
            let status = response.status();
            let etag = response
                .headers()
                .get(ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if status == StatusCode::NOT_MODIFIED && if_none_match.is_some() {
                return Ok(Fetched {
                    url,
                    body: Vec::new(),
                    etag: etag.or_else(|| if_none_match.map(str::to_owned)),
                    not_modified: true,
                });
            }
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match location {
                    Some(location) => {
                        url = self.resolve(&location, &url).map_err(Failure::fatal)?;
                        continue;
                    }
                    None => {
                        return Err(Failure::fatal(ClientError::Http {
                            url: loggable(&url),
                            status: status.as_u16(),
                            body_excerpt: "redirect without a Location header".into(),
                        }))
                    }
                }
            }
            if !status.is_success() {
                return Err(self.status_failure(&url, response).await);
            }
            let body = self.read_limited(&url, response).await?;
            ClientStats::add(&self.stats.bytes_received, body.len() as u64);
            return Ok(Fetched {
                url,
                body,
                etag,
                not_modified: false,
            });
        }
        Err(Failure::fatal(ClientError::Http {
            url: loggable(start),
            status: 310,
            body_excerpt: format!("more than {MAX_REDIRECTS} redirects"),
        }))
    }

    pub(super) async fn status_failure(
        &self,
        url: &Url,
        mut response: reqwest::Response,
    ) -> Failure {
        let status = response.status();
        let retry_after = if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::SERVICE_UNAVAILABLE
        {
            retry_after(response.headers(), Utc::now())
        } else {
            None
        };
        // Only the start of an error body is read: it is for a human, and it is untrusted.
        let mut head = Vec::new();
        while head.len() < 4 * BODY_EXCERPT_CHARS {
            match response.chunk().await {
                Ok(Some(chunk)) => head.extend_from_slice(&chunk),
                _ => break,
            }
        }
        Failure {
            error: ClientError::Http {
                url: loggable(url),
                status: status.as_u16(),
                body_excerpt: excerpt(&head),
            },
            retryable: status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
            retry_after,
            status: Some(status.as_u16()),
        }
    }

    pub(super) async fn read_limited(
        &self,
        url: &Url,
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, Failure> {
        let limit = self.config.max_document_bytes;
        let too_large = || {
            Failure::fatal(ClientError::TooLarge {
                url: loggable(url),
                limit,
            })
        };
        let announced = response.content_length();
        if announced.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let capacity = announced.map_or(0, |n| usize::try_from(n).unwrap_or(limit).min(limit));
        let mut body = Vec::with_capacity(capacity);
        // Counted as it arrives: Content-Length can be absent (chunked) or describe the
        // compressed size, and neither bounds what decompression produces.
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Failure::transport(url, e))?
        {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// What one attempt produced when it failed, and whether another attempt may help.
pub(super) struct Failure {
    error: ClientError,
    retryable: bool,
    retry_after: Option<Duration>,
    status: Option<u16>,
}

impl Failure {
    pub(super) fn fatal(error: ClientError) -> Self {
        Failure {
            error,
            retryable: false,
            retry_after: None,
            status: None,
        }
    }

    pub(super) fn transport(url: &Url, e: reqwest::Error) -> Self {
        let url_s = loggable(url);
        let message = error_chain(&e);
        let (error, retryable) = if e.is_timeout() {
            (ClientError::Timeout { url: url_s }, true)
        } else if e.is_connect() {
            (
                ClientError::Connect {
                    url: url_s,
                    message,
                },
                true,
            )
        } else if e.is_builder() {
            (
                ClientError::Transport {
                    url: url_s,
                    message,
                },
                false,
            )
        } else {
            (
                ClientError::Transport {
                    url: url_s,
                    message,
                },
                true,
            )
        };
        Failure {
            error,
            retryable,
            retry_after: None,
            status: None,
        }
    }
}

pub(super) struct Fetched {
    pub(super) url: Url,
    pub(super) body: Vec<u8>,
    /// The response's `ETag`, for a later conditional request.
    pub(super) etag: Option<String>,
    /// A 304 to a conditional request: `body` is empty, the caller's copy is current.
    pub(super) not_modified: bool,
}

/// `Retry-After` as a wait: delta-seconds or an HTTP date (a date in the past means now).
pub(super) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

pub(super) fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(BODY_EXCERPT_CHARS)
        .collect();
    collapse(&cleaned)
}
