//! Durable state: the watcher's checkpoint today; suppliers, the list snapshot and decisions as
//! they arrive. One [`Store`] speaks to SQLite (the embedded default, a file) or PostgreSQL,
//! chosen by the URL, through sqlx's `Any` driver and one set of migrations written in their
//! common SQL.
//!
//! Every statement binds its values as parameters (`$1`, `$2`, ...): no value is ever spliced
//! into SQL text. This module stores and loads; it must never decide what a change means.

mod checkpoint;
mod entity_list;
mod suppliers;
mod worker_state;

pub use checkpoint::ProcessedDocument;
pub use entity_list::{
    AppliedChange, ChangeOutcome, EntryChangeRecord, SnapshotCounts, StoredEntry,
};
pub use suppliers::UpsertCounts;
pub use worker_state::{Claim, Decision, Delivery, LoggedMessage};

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot migrate the store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("stored value {name} is corrupt: {value:?}")]
    Corrupt { name: String, value: String },
}

/// Which database is behind the pool; the few statements that differ look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens (creating the SQLite file if needed) and migrates the store at `url`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let redacted = crate::config::redact_url(url);
        let (url, backend) = if url.starts_with("sqlite:") {
            (sqlite_url_creating_file(url), Backend::Sqlite)
        } else {
            (url.to_string(), Backend::Postgres)
        };
        let options = AnyConnectOptions::from_str(&url).map_err(|source| StoreError::Connect {
            url: redacted.clone(),
            source,
        })?;
        // SQLite serialises writers anyway; one connection avoids "database is locked" between
        // our own tasks, and an in-memory database must stay on one connection to exist at all.
        let max = if backend == Backend::Sqlite { 1 } else { 8 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                url: redacted,
                source,
            })?;
        if backend == Backend::Sqlite {
            // WAL lets readers (the HTTP endpoint, a second process) proceed during writes.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
            sqlx::query("PRAGMA busy_timeout = 5000")
                .execute(&pool)
                .await?;
        }
        sqlx::migrate!("./migrations").run(&pool).await?;
        let store = Store { pool, backend };
        store.migrate_entity_keys().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Cheap liveness check for readiness probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Sizes and latest change times of the supplier table and the list snapshot, for the
    /// operator's gauges.
    pub async fn snapshot_stats(&self) -> Result<SnapshotStats, StoreError> {
        use sqlx::Row;
        let time = |v: Option<String>| {
            v.and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&chrono::Utc))
        };
        let suppliers =
            sqlx::query("SELECT COUNT(*) AS n, MAX(updated_at) AS latest FROM suppliers")
                .fetch_one(&self.pool)
                .await?;
        let entries = sqlx::query(
            "SELECT COUNT(removed_at) AS removed, COUNT(*) AS n, MAX(updated_at) AS latest \
             FROM listed_entries",
        )
        .fetch_one(&self.pool)
        .await?;
        let all: i64 = entries.try_get("n")?;
        let removed: i64 = entries.try_get("removed")?;
        Ok(SnapshotStats {
            suppliers: u64::try_from(suppliers.try_get::<i64, _>("n")?).unwrap_or(0),
            suppliers_last_change: time(suppliers.try_get("latest")?),
            entity_list_entries: u64::try_from(all - removed).unwrap_or(0),
            entity_list_last_change: time(entries.try_get("latest")?),
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// See [`Store::snapshot_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStats {
    pub suppliers: u64,
    pub suppliers_last_change: Option<chrono::DateTime<chrono::Utc>>,
    pub entity_list_entries: u64,
    pub entity_list_last_change: Option<chrono::DateTime<chrono::Utc>>,
}

/// `sqlite://entitywatch.db` must create the file on first use, as a user running the embedded
/// default for the first time expects; sqlx only does so with `mode=rwc`.
fn sqlite_url_creating_file(url: &str) -> String {
    if url.contains(":memory:") || url.contains("mode=") {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}mode=rwc")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_their_file() {
        assert_eq!(
            sqlite_url_creating_file("sqlite://x.db"),
            "sqlite://x.db?mode=rwc"
        );
        assert_eq!(
            sqlite_url_creating_file("sqlite://x.db?mode=ro"),
            "sqlite://x.db?mode=ro"
        );
        assert_eq!(
            sqlite_url_creating_file("sqlite::memory:"),
            "sqlite::memory:"
        );
    }
}
