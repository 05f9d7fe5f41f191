//! Bounded waits: every wait in the tests polls a condition until it holds or a bound passes, so
//! a hang fails its test (with what it was waiting for) instead of the CI job.

use std::future::Future;
use std::time::{Duration, Instant};

/// Checks `done` every 50 ms until it holds or `max` passed; says whether it held. A check may
/// panic to fail at once (say, when the process it waits on exits).
pub async fn wait_until(max: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > max {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Runs the async `check` every 200 ms (it asks a broker or a store, not memory) until it holds
/// or `max` passed; says whether it held.
pub async fn poll_until<F, Fut>(max: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if started.elapsed() > max {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Awaits `f`, failing with `what` if it is not done within `max`.
pub async fn bounded<T>(what: &str, max: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(max, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {max:?} (a wait hung)"))
}

/// [`wait_until`], failing with `what` if `done` does not hold within `max`.
pub async fn wait_for(what: &str, max: Duration, done: impl FnMut() -> bool) {
    assert!(
        wait_until(max, done).await,
        "{what}: not reached within {max:?}"
    );
}
