//! Spawn helpers for black-box tests: a fresh database per test (a SQLite file in a temporary
//! directory, or a new PostgreSQL database on 127.0.0.1:5432), the binary under test with a
//! clean environment, the commands several tests run, and the fixture directories. The
//! submodules hold the rest of what the test modules share; a helper only one module needs
//! lives in that module (except the bounded waits, kept together in [`wait`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use sqlx::Connection;

pub mod app;
pub mod broker;
pub mod exported;
pub mod kafka;
pub mod mutation;
pub mod receiver;
pub mod scenario;
pub mod service;
pub mod wait;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(FIXTURES).join(path)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
}

/// The server the PostgreSQL tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("ENTITYWATCH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

pub async fn fresh_db(kind: Db) -> TestDb {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = match kind {
        Db::Sqlite => format!("sqlite://{}", dir.path().join("entitywatch.db").display()),
        Db::Postgres => {
            let name = format!(
                "entitywatch_test_{}_{}_{}",
                std::process::id(),
                chrono::Utc::now().timestamp_micros(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let admin = postgres_admin_url();
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL must run at {admin}: {e}"));
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            format!("{base}/{name}")
        }
    };
    TestDb { url, dir }
}

/// The `entitywatch` binary with no `ENTITYWATCH_*` variable inherited from the caller, as a
/// blocking command (for a test that samples the child while it runs); set the log level.
pub fn entitywatch_std() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_entitywatch"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ENTITYWATCH_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// The `entitywatch` binary with no `ENTITYWATCH_*` variable inherited from the caller, debug
/// logs, a free port for its HTTP endpoint, and killed when dropped.
pub fn entitywatch() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(entitywatch_std());
    cmd.env("ENTITYWATCH_LOG", "info,entitywatch=debug");
    // Tests run side by side: each long-running process takes a free port for its metrics
    // endpoint instead of the default 8080.
    cmd.env("ENTITYWATCH_HTTP_ADDR", "127.0.0.1:0");
    cmd.kill_on_drop(true);
    cmd
}

/// Output of a finished run, with stdout and stderr as text.
pub struct Run {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

pub async fn run(mut cmd: tokio::process::Command) -> Run {
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("the command finished within 120 s")
        .expect("the command started");
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `watch --once` appending its events to `out`, on `db_url`, against the Federal Register at
/// `base`, plus `extra`.
pub fn watch_once(out: &Path, db_url: &str, base: &str, extra: &[&str]) -> tokio::process::Command {
    let mut cmd = entitywatch();
    cmd.args(["watch", "--once"])
        .args(extra)
        .arg("--output")
        .arg(out)
        .arg("--database-url")
        .arg(db_url)
        .arg("--federal-register-url")
        .arg(base);
    cmd
}

/// The events a watcher wrote to its `--output` file, one JSON object a line (none when there
/// is no file yet).
pub fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is a JSON event"))
        .collect()
}

/// The binary did not panic, whatever else it did.
pub fn no_panic(stderr: &str) {
    assert!(
        !stderr.contains("panicked"),
        "the binary panicked:\n{stderr}"
    );
}

/// `suppliers import FILE` on `db_url`, with `extra` flags.
pub fn suppliers_import(db_url: &str, file: &Path, extra: &[&str]) -> tokio::process::Command {
    let mut cmd = entitywatch();
    cmd.arg("--database-url")
        .arg(db_url)
        .args(["suppliers", "import"])
        .args(extra)
        .arg(file);
    cmd
}

/// The alerts on the embedded store's alert topic, in order.
pub async fn alert_topic(db: &TestDb) -> Vec<Value> {
    let store = entitywatch::store::Store::connect(&db.url).await.unwrap();
    let topic = store
        .read_log("entitywatch.alerts.v1", 0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(&m.payload).unwrap())
        .collect();
    store.close().await;
    topic
}

/// `entitywatch run` on `db_url` (the embedded bus), polling the Federal Register at `fr` every
/// second for rules since 2019; the caller adds its sinks.
pub fn run_embedded(db_url: &str, fr: &str) -> tokio::process::Command {
    let mut cmd = entitywatch();
    cmd.args(["run", "--interval", "1s", "--since", "2019-01-01"])
        .arg("--database-url")
        .arg(db_url)
        .arg("--federal-register-url")
        .arg(fr);
    cmd
}
