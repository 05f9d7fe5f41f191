//! Spawn helpers for black-box tests: a fresh database per test (a SQLite file in a temporary
//! directory, or a new PostgreSQL database on 127.0.0.1:5432), the binary under test with a
//! clean environment, and the fixture directories.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;

pub mod broker;
pub mod exported;
pub mod kafka;
pub mod receiver;
pub mod scenario;
pub mod service;

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

/// The `entitywatch` binary with no `ENTITYWATCH_*` variable inherited from the caller.
pub fn entitywatch() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_entitywatch"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ENTITYWATCH_") {
            cmd.env_remove(k);
        }
    }
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
