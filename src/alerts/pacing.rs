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
    /// Records how the post went: accepted, the next waits the interval; refused with
    /// `Retry-After`, the next waits that long (at least the interval, at most `cap`: the
    /// longest wait delivery allows, so a receiver asking for an hour cannot stall every
    /// alert behind it for that long).
    pub fn record(mut self, outcome: &Result<(), SinkError>, cap: Duration) {
        let now = Instant::now();
        match outcome {
            Ok(()) => *self.guard = Some(now + self.interval),
            Err(SinkError::Retryable {
                retry_after: Some(after),
                ..
            }) => *self.guard = Some(now + (*after).min(cap).max(self.interval)),
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Short, so the test runs on the real clock; the floors are what is asserted.
    const STEP: Duration = Duration::from_millis(200);
    const CAP: Duration = Duration::from_secs(60);
    /// Scheduling slack on a busy machine.
    const SLACK: Duration = Duration::from_millis(150);

    fn about(elapsed: Duration, want: Duration) -> bool {
        elapsed >= want && elapsed < want + SLACK
    }

    #[tokio::test]
    async fn accepted_posts_are_an_interval_apart_and_retry_after_holds_the_next() {
        let pacer = Pacer::default();
        let start = Instant::now();
        pacer.turn("u", STEP).await.record(&Ok(()), CAP);
        assert!(about(start.elapsed(), Duration::ZERO));
        pacer.turn("u", STEP).await.record(
            &Err(SinkError::Retryable {
                reason: "429".into(),
                retry_after: Some(STEP * 3),
            }),
            CAP,
        );
        let after_one = start.elapsed();
        assert!(about(after_one, STEP), "{after_one:?}");
        // Another URL is not held back.
        let other = Instant::now();
        pacer.turn("v", STEP).await.record(&Ok(()), CAP);
        assert!(about(other.elapsed(), Duration::ZERO));
        pacer
            .turn("u", STEP)
            .await
            .record(&Err(SinkError::retryable("HTTP 500")), CAP);
        let after_429 = start.elapsed() - after_one;
        assert!(about(after_429, STEP * 3), "{after_429:?}");
        // A 500 posted nothing: the next goes at once.
        let then = Instant::now();
        pacer.turn("u", STEP).await.record(&Ok(()), CAP);
        assert!(about(then.elapsed(), Duration::ZERO));
    }

    #[tokio::test]
    async fn retry_after_is_capped() {
        let pacer = Pacer::default();
        pacer.turn("u", STEP).await.record(
            &Err(SinkError::Retryable {
                reason: "503".into(),
                retry_after: Some(Duration::from_secs(3600)),
            }),
            STEP * 2,
        );
        let start = Instant::now();
        pacer.turn("u", STEP).await.record(&Ok(()), CAP);
        assert!(about(start.elapsed(), STEP * 2), "{:?}", start.elapsed());
    }

    #[tokio::test]
    async fn concurrent_posts_take_turns() {
        let pacer = Arc::new(Pacer::default());
        let start = Instant::now();
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let p = pacer.clone();
                tokio::spawn(async move {
                    let t = p.turn("u", STEP).await;
                    let at = start.elapsed();
                    t.record(&Ok(()), CAP);
                    at
                })
            })
            .collect();
        let mut at = Vec::new();
        for t in tasks {
            at.push(t.await.unwrap());
        }
        at.sort();
        for (i, a) in at.iter().enumerate() {
            assert!(about(*a, STEP * i as u32), "post {i} at {a:?}: {at:?}");
        }
    }
}
