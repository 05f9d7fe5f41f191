//! Shutdown: one request to stop, fanned out to every part of a long-running service.
//!
//! A [`Shutdown`] is handed to the parts (the watcher, the worker, the HTTP endpoint) as a
//! future that resolves once stopping was requested; each finishes the work in hand and
//! returns. [`Shutdown::on_signal`] requests it on SIGTERM or SIGINT (what Kubernetes sends
//! before killing a pod) and bounds stopping: past [`SHUTDOWN_BOUND`], or on a second signal,
//! the process exits at once with status 1. Exiting there is still safe (nothing is committed
//! ahead of its effects); it only means some work is redone by the next start.
//! [`Shutdown::manual`] is for a service embedded in another program or a test.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

/// How long a long-running command may take to stop after SIGTERM: finish the event in hand,
/// commit, flush. Kubernetes' default grace period is 30 s; the manifests give 45 s.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(30);

/// A request to stop, observed by any number of parts.
#[derive(Clone)]
pub struct Shutdown {
    requested: watch::Receiver<bool>,
}

/// Requests the shutdown of a [`Shutdown::manual`].
#[derive(Clone)]
pub struct ShutdownTrigger {
    tx: std::sync::Arc<watch::Sender<bool>>,
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

impl Shutdown {
    /// A shutdown requested by the returned trigger only.
    pub fn manual() -> (Shutdown, ShutdownTrigger) {
        let (tx, requested) = watch::channel(false);
        (
            Shutdown { requested },
            ShutdownTrigger {
                tx: std::sync::Arc::new(tx),
            },
        )
    }

    /// A shutdown requested by SIGTERM or SIGINT, with the exit bound described above. Must be
    /// called inside a Tokio runtime.
    pub fn on_signal() -> Shutdown {
        let (shutdown, trigger) = Shutdown::manual();
        tokio::spawn(async move {
            signal().await;
            info!(
                bound_s = SHUTDOWN_BOUND.as_secs(),
                "shutdown requested: finishing the work in hand"
            );
            trigger.trigger();
            tokio::select! {
                _ = signal() => warn!("second signal: exiting now"),
                _ = tokio::time::sleep(SHUTDOWN_BOUND) => tracing::error!(
                    "did not stop within {} s; exiting", SHUTDOWN_BOUND.as_secs()
                ),
            }
            std::process::exit(1);
        });
        shutdown
    }

    /// Resolves once shutdown was requested; any number of these may be made.
    pub fn requested(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.requested.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    pub fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trigger_reaches_every_observer() {
        let (shutdown, trigger) = Shutdown::manual();
        let a = shutdown.requested();
        let b = shutdown.clone().requested();
        assert!(!shutdown.is_requested());
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(1), async { tokio::join!(a, b) })
            .await
            .expect("both observers see the request");
        assert!(shutdown.is_requested());
    }
}
