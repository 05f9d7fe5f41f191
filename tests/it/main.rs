//! The one integration test binary: every black-box and library-level test outside `src/`,
//! one module per area, sharing the helpers in [`common`] (fresh databases, the binary under
//! test, a long-running service, alert receivers, the 84 FR 54002 scenario, brokers, waits).
//!
//! One binary links the crate once instead of once per test file, and lets the helpers be
//! defined once. Tests run side by side in one process, so none may touch process-wide state:
//! no `std::env::set_var`, no fixed ports (every server and service binds port 0), a fresh
//! database, temporary directory and (on Kafka) fresh topics and groups per test. Tests that must
//! observe a process from outside — SIGTERM, SIGKILL, exit codes, peak memory — run the
//! `entitywatch` binary.
//!
//! Filter by module: `cargo test --test it faults_alerts::`; everything that needs no Kafka
//! broker: `cargo test --test it -- --skip kafka`.

/// `on_both!(name, ...)`: each `async fn name(kind: Db)` of the module runs as two tests,
/// `name::sqlite` and `name::postgres` (the module must have `Db` in scope). Defined before the
/// modules so that every one of them can use it.
macro_rules! on_both {
    ($($body:ident),* $(,)?) => {$(
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body(super::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body(super::Db::Postgres).await
            }
        }
    )*};
}

mod common;

mod api;
mod cli_alerts;
mod cli_screening;
mod console;
mod deploy;
mod entry_kinds;
mod faults_alerts;
mod faults_federal_register;
mod faults_kafka;
mod faults_suppliers;
mod import_crash;
mod inputs;
mod kafka_bus;
mod list_sync;
mod operations;
mod ownership;
mod parse_fixtures;
mod parse_shapes;
mod pipeline_embedded;
mod pipeline_kafka;
mod security;
mod slack_digests;
mod store;
mod tokens;
mod watch;
