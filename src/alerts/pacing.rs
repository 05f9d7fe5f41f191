//! Pacing posts to one receiver: Slack takes about one message per second per incoming
//! webhook and answers 429 with `Retry-After` beyond that.
//!
//! Every post to one URL takes a [`Turn`] first, so posts go one at a time, at least the
//! interval apart, from every task of the process (the event in hand, the outbox dispatcher,
//! the digest dispatcher) and every sink built on the same URL. A 429's `Retry-After` holds
//! the next turn back as long as it asks, for every alert, not only the one refused. A post
//! that failed otherwise (5xx, a timeout) put no message in the channel, so it does not
//! delay the next one: its retry waits its own backoff.
//!
//! What this must never do: hold a turn across a retry's backoff (the turn is one attempt),
//! or hold anything that names the URL in a log (the key is only a map key).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

use super::SinkError;

/// Slack's rate for incoming webhooks: one message per second.
pub const SLACK_POST_INTERVAL: Duration = Duration::from_secs(1);

/// The earliest time of the next post to one URL (`None`: at once).
type Slot = Arc<tokio::sync::Mutex<Option<Instant>>>;

/// The turns of every paced URL of the process.
#[derive(Default)]
pub struct Pacer {
    slots: Mutex<HashMap<String, Slot>>,
}

static SLACK_PACER: LazyLock<Pacer> = LazyLock::new(Pacer::default);

/// The process's pacer for Slack webhooks.
pub fn slack_pacer() -> &'static Pacer {
    &SLACK_PACER
}

impl Pacer {
    /// Waits until a post to `key` may go, `interval` after the last accepted one (or when a
    /// 429 said), and holds the turn until the returned [`Turn`] is recorded or dropped.
    pub async fn turn(&self, key: &str, interval: Duration) -> Turn {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(key.to_string()).or_default().clone()
        };
        let guard = slot.lock_owned().await;
        if let Some(at) = *guard {
            tokio::time::sleep_until(at).await;
        }
        Turn { guard, interval }
    }
}

/// One post's turn at a paced URL.
pub struct Turn {
    guard: OwnedMutexGuard<Option<Instant>>,
    interval: Duration,
}

impl Turn {
    /// Records how the post went: accepted, the next waits the interval; refused with 429
    /// `Retry-After`, the next waits that long (at least the interval).
    pub fn record(mut self, outcome: &Result<(), SinkError>) {
        let now = Instant::now();
        match outcome {
            Ok(()) => *self.guard = Some(now + self.interval),
            Err(SinkError::Retryable {
                retry_after: Some(after),
                ..
            }) => *self.guard = Some(now + (*after).max(self.interval)),
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn accepted_posts_are_an_interval_apart_and_retry_after_holds_the_next() {
        let pacer = Pacer::default();
        let start = Instant::now();
        pacer.turn("u", SLACK_POST_INTERVAL).await.record(&Ok(()));
        assert_eq!(start.elapsed(), Duration::ZERO);
        pacer
            .turn("u", SLACK_POST_INTERVAL)
            .await
            .record(&Err(SinkError::Retryable {
                reason: "429".into(),
                retry_after: Some(Duration::from_secs(3)),
            }));
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        // Another URL is not held back.
        let other = Instant::now();
        pacer.turn("v", SLACK_POST_INTERVAL).await.record(&Ok(()));
        assert_eq!(other.elapsed(), Duration::ZERO);
        pacer
            .turn("u", SLACK_POST_INTERVAL)
            .await
            .record(&Err(SinkError::retryable("HTTP 500")));
        assert_eq!(start.elapsed(), Duration::from_secs(4));
        // A 500 posted nothing: the next goes at once.
        pacer.turn("u", SLACK_POST_INTERVAL).await.record(&Ok(()));
        assert_eq!(start.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_posts_take_turns() {
        let pacer = Arc::new(Pacer::default());
        let start = Instant::now();
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let p = pacer.clone();
                tokio::spawn(async move {
                    let t = p.turn("u", SLACK_POST_INTERVAL).await;
                    let at = start.elapsed();
                    t.record(&Ok(()));
                    at
                })
            })
            .collect();
        let mut at = Vec::new();
        for t in tasks {
            at.push(t.await.unwrap());
        }
        at.sort();
        assert_eq!(
            at,
            [0, 1, 2].map(Duration::from_secs).to_vec(),
            "one post per second"
        );
    }
}
