//! Which sinks an alert goes to, and how hard each delivery tries: the alerting half of the
//! configuration, resolved once and used by every command that delivers (`run`, `work`,
//! `demo`, `suppliers import`, `dead-letters redrive`).
//!
//! It never holds a secret in anything that prints: the URLs and the webhook key stay behind
//! `Debug` redaction here and in [`SecretUrl`].

use std::sync::Arc;
use std::time::Duration;

use super::{
    AlertSink, RetryPolicy, SecretUrl, SecretUrlError, SlackSink, WebhookSecret, WebhookSink,
};

/// The sinks outside the bus (Slack, a signed webhook) and the delivery knobs; the alert topic
/// sink comes from the bus the worker runs on.
#[derive(Clone, Default)]
pub struct SinkSettings {
    pub slack_webhook_url: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub retry: RetryPolicy,
    /// How long a worker's claim on a delivery lasts unless renewed (renewed every third).
    pub claim_lease: Duration,
    /// Whether the worker alerts on affiliates (the 50 % rule), and at which threshold. Here
    /// because these settings are what every command that builds a worker carries.
    pub affiliates: crate::ownership::AffiliateRule,
    /// Slack digests: `None` sends every alert to Slack on its own.
    pub digest: Option<DigestPolicy>,
}

/// When a batch's alerts reach Slack as one digest, and where its link points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestPolicy {
    /// A batch (one document, list sync or supplier import) raising more than this many
    /// alerts for a Slack sink sends one digest, showing this many at the top.
    pub over: usize,
    /// The console's base URL, for the digest's link to the filtered queue.
    pub console_url: Option<url::Url>,
}

impl Default for DigestPolicy {
    fn default() -> Self {
        DigestPolicy {
            over: DEFAULT_DIGEST_OVER,
            console_url: None,
        }
    }
}

/// `--slack-digest-over`'s default.
pub const DEFAULT_DIGEST_OVER: usize = 5;

impl std::fmt::Debug for SinkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkSettings")
            .field("slack", &self.slack_webhook_url.is_some())
            .field("webhook", &self.webhook_url.is_some())
            .field("retry", &self.retry)
            .field("claim_lease", &self.claim_lease)
            .field("affiliates", &self.affiliates)
            .field("digest", &self.digest)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SinkSettingsError {
    #[error("--slack-webhook-url: {0}")]
    SlackUrl(SecretUrlError),
    #[error("--webhook-url: {0}")]
    WebhookUrl(SecretUrlError),
    #[error("cannot build the HTTP client of the {sink} sink: {source}")]
    Client {
        sink: &'static str,
        source: reqwest::Error,
    },
}

impl SinkSettings {
    /// The Slack and webhook sinks these settings configure. An empty value (as docker-compose
    /// passes an unset variable) means "not configured".
    pub fn external_sinks(&self) -> Result<Vec<Arc<dyn AlertSink>>, SinkSettingsError> {
        let configured = |v: &Option<String>| v.clone().filter(|u| !u.trim().is_empty());
        let mut sinks: Vec<Arc<dyn AlertSink>> = Vec::new();
        if let Some(url) = configured(&self.slack_webhook_url) {
            let url = SecretUrl::parse(&url).map_err(SinkSettingsError::SlackUrl)?;
            sinks.push(Arc::new(SlackSink::new(url).map_err(|source| {
                SinkSettingsError::Client {
                    sink: "slack",
                    source,
                }
            })?));
        }
        if let (Some(url), Some(secret)) = (
            configured(&self.webhook_url),
            configured(&self.webhook_secret),
        ) {
            let url = SecretUrl::parse(&url).map_err(SinkSettingsError::WebhookUrl)?;
            sinks.push(Arc::new(
                WebhookSink::new(url, WebhookSecret::new(&secret)).map_err(|source| {
                    SinkSettingsError::Client {
                        sink: "webhook",
                        source,
                    }
                })?,
            ));
        }
        Ok(sinks)
    }
}
