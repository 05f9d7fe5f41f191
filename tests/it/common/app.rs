//! The service in-process, as `main` starts it: [`spawn_app`] builds an [`App`] from settings
//! (a fresh database, the local Federal Register, HTTP on port 0), runs it on a task and hands
//! back its bound address — read from the app, never from a log line — and a shutdown.
//!
//! For tests that need no process boundary. Metrics are process-wide, so a test that asserts
//! exact counts runs the binary instead (`super::service::Service`).

use std::net::SocketAddr;
use std::time::Duration;

use entitywatch::app::{App, AppError, RunReport, ServiceSpec};
use entitywatch::config::{GlobalArgs, Settings};
use entitywatch::shutdown::{Shutdown, ShutdownTrigger};

/// Settings as a command line with no flags and no environment would resolve them, pointed at
/// `database_url` and the Federal Register at `federal_register_url`, HTTP on a free port.
pub fn settings(database_url: &str, federal_register_url: &str) -> Settings {
    let mut settings =
        Settings::resolve(&GlobalArgs::default(), Vec::new()).expect("default settings resolve");
    settings.database_url = database_url.to_string();
    settings.federal_register_url =
        url::Url::parse(federal_register_url).expect("a Federal Register URL");
    settings.http_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    settings
}

/// A running in-process service.
pub struct TestApp {
    /// Where `/metrics`, `/healthz` and `/readyz` answer.
    pub http: SocketAddr,
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<Result<RunReport, AppError>>,
}

/// Builds the service `spec` describes and runs it until [`TestApp::stop`].
pub async fn spawn_app(settings: &Settings, spec: ServiceSpec) -> TestApp {
    let spec = ServiceSpec { http: true, ..spec };
    let app = App::build(settings, spec).await.expect("the app builds");
    let http = app.http_addr().expect("the app serves HTTP");
    let (shutdown, trigger) = Shutdown::manual();
    let task = tokio::spawn(app.run_until_stopped(shutdown));
    super::service::wait_healthy(http, Duration::from_secs(10), "the in-process app").await;
    TestApp {
        http,
        trigger,
        task,
    }
}

impl TestApp {
    /// Requests shutdown and waits (bounded) for every part to finish the work in hand.
    pub async fn stop(self) -> RunReport {
        self.trigger.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the app stops within 30 s of the shutdown request")
            .expect("the app task did not panic")
            .expect("the app ran without error")
    }
}
