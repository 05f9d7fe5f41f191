//! Flags shared by several commands: alert delivery and readiness.

use std::time::Duration;

use clap::Args;

use crate::alerts::{RetryPolicy, SinkSettings};
use crate::config::{
    at_least, MIN_ALERT_BACKOFF, MIN_ALERT_TIMEOUT, MIN_CLAIM_LEASE, MIN_READY_MAX_POLL_AGE,
};
use crate::ownership::{AffiliateRule, Share};

#[derive(Debug, Args)]
pub struct SinkArgs {
    /// Slack incoming-webhook URL to post alerts to (a secret: never logged).
    #[arg(
        long,
        env = "ENTITYWATCH_SLACK_WEBHOOK_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub slack_webhook_url: Option<String>,
    /// When one document, list sync or supplier import raises more than this many alerts,
    /// Slack gets one digest (counts by kind, the top this many by score, a link to the
    /// console's queue) instead of a message each; the alert topic and the webhook still get
    /// every alert.
    #[arg(long, env = "ENTITYWATCH_SLACK_DIGEST_OVER", value_name = "N", default_value_t = crate::alerts::DEFAULT_DIGEST_OVER, value_parser = digest_over)]
    pub slack_digest_over: usize,
    /// Base URL of the review console, for the links in Slack digests
    /// (`URL/alerts?status=open&document=...`); unset, a digest says how to list its alerts
    /// with `entitywatch alerts list`.
    #[arg(long, env = "ENTITYWATCH_CONSOLE_URL", value_name = "URL", value_parser = console_url)]
    pub console_url: Option<Box<url::Url>>,
    /// Generic webhook URL to POST signed alert JSON to (a secret: never logged).
    #[arg(
        long,
        env = "ENTITYWATCH_WEBHOOK_URL",
        value_name = "URL",
        requires = "webhook_secret",
        hide_env_values = true
    )]
    pub webhook_url: Option<String>,
    /// HMAC-SHA256 key for the X-Entitywatch-Signature header of generic webhooks.
    #[arg(
        long,
        env = "ENTITYWATCH_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,
    /// Delivery attempts per alert and sink, the first included; then the alert is
    /// dead-lettered with the last reason.
    #[arg(long, env = "ENTITYWATCH_ALERT_MAX_ATTEMPTS", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    pub alert_max_attempts: u32,
    /// How long one delivery attempt may take before it counts as failed and is retried.
    #[arg(long, env = "ENTITYWATCH_ALERT_TIMEOUT", default_value = "10s", value_parser = at_least(MIN_ALERT_TIMEOUT))]
    pub alert_timeout: Duration,
    /// First wait between attempts; each next one doubles (with jitter).
    #[arg(long, env = "ENTITYWATCH_ALERT_MIN_BACKOFF", default_value = "500ms", value_parser = at_least(MIN_ALERT_BACKOFF))]
    pub alert_min_backoff: Duration,
    /// Longest wait between attempts, also for a receiver's Retry-After.
    #[arg(long, env = "ENTITYWATCH_ALERT_MAX_BACKOFF", default_value = "60s", value_parser = at_least(MIN_ALERT_BACKOFF))]
    pub alert_max_backoff: Duration,
    /// How long a worker's claim on an alert it is delivering lasts unless renewed (it renews
    /// every third of it). Another worker of the group handed the same event waits on the claim
    /// instead of sending too; if the holder died, the alert is sent again once this ran out.
    #[arg(long, env = "ENTITYWATCH_ALERT_CLAIM_LEASE", default_value = "30s", value_parser = at_least(MIN_CLAIM_LEASE))]
    pub alert_claim_lease: Duration,
    /// Alert on suppliers owned 50 % or more by listed parties (the BIS Affiliates rule,
    /// 90 FR 47201; see the README for its status): `on` or `off`.
    #[arg(long, env = "ENTITYWATCH_AFFILIATES", value_enum, default_value = "on")]
    pub affiliates: OnOff,
    /// The aggregate share, in percent, held by listed and restricted owners from which a
    /// supplier is restricted (the rule says 50).
    #[arg(long, env = "ENTITYWATCH_AFFILIATES_THRESHOLD", default_value = "50", value_parser = affiliates_threshold)]
    pub affiliates_threshold: Share,
}

/// A feature switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

fn digest_over(raw: &str) -> Result<usize, String> {
    raw.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("{raw:?} is not a number of alerts of at least 1"))
}

/// Boxed: the URL is large and these flags sit in every command's arguments.
fn console_url(raw: &str) -> Result<Box<url::Url>, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(Box::new(url)),
        _ => Err("the console URL must be http(s)://HOST[/PATH]".to_string()),
    }
}

fn affiliates_threshold(raw: &str) -> Result<Share, String> {
    raw.trim()
        .trim_end_matches('%')
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|p| *p > 0.0)
        .and_then(Share::from_percent)
        .ok_or_else(|| format!("{raw:?} is not a percentage above 0 and at most 100"))
}

impl SinkArgs {
    /// The sinks and delivery knobs these flags configure.
    pub fn settings(&self) -> SinkSettings {
        SinkSettings {
            slack_webhook_url: self.slack_webhook_url.clone(),
            webhook_url: self.webhook_url.clone(),
            webhook_secret: self.webhook_secret.clone(),
            retry: RetryPolicy {
                max_attempts: self.alert_max_attempts,
                min_backoff: self.alert_min_backoff,
                max_backoff: self.alert_max_backoff.max(self.alert_min_backoff),
                timeout: self.alert_timeout,
            },
            claim_lease: self.alert_claim_lease,
            affiliates: match self.affiliates {
                OnOff::Off => AffiliateRule::Off,
                OnOff::On => AffiliateRule::On {
                    threshold: self.affiliates_threshold,
                },
            },
            digest: Some(crate::alerts::DigestPolicy {
                over: self.slack_digest_over,
                console_url: self.console_url.as_deref().cloned(),
            }),
        }
    }
}

#[derive(Debug, Args)]
pub struct ReadinessArgs {
    /// /readyz fails when the last successful Federal Register poll is older than this
    /// (counted from start until the first poll succeeds).
    #[arg(long, env = "ENTITYWATCH_READY_MAX_POLL_AGE", default_value = "30m", value_parser = at_least(MIN_READY_MAX_POLL_AGE))]
    pub ready_max_poll_age: Duration,
    /// /readyz fails when one rule has failed to fetch (and so held the watermark) for longer
    /// than this; entitywatch_watcher_stuck_since_timestamp_seconds shows it to alert rules.
    #[arg(long, env = "ENTITYWATCH_READY_MAX_STUCK", default_value = "1h", value_parser = at_least(MIN_READY_MAX_POLL_AGE))]
    pub ready_max_stuck: Duration,
}

/// Where the codified list comes from (`list sync`, `list reconcile`, `run`).
#[derive(Debug, Clone, Args)]
pub struct ListSourceArgs {
    /// eCFR host whose versioner API serves Supplement No. 4 to part 744 (only this host is
    /// contacted for it).
    #[arg(long, env = "ENTITYWATCH_ECFR_URL", value_name = "URL", default_value = crate::list_sources::DEFAULT_ECFR_URL)]
    pub ecfr_url: url::Url,
    /// The Consolidated Screening List bulk JSON, fetched conditionally (ETag); only its host
    /// is contacted.
    #[arg(long, env = "ENTITYWATCH_CSL_URL", value_name = "URL", default_value = crate::list_sources::DEFAULT_CSL_URL)]
    pub csl_url: url::Url,
}
