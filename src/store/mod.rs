//! Durable state: the watcher's checkpoint today; suppliers, the list snapshot and decisions as
//! they arrive. One [`Store`] speaks to SQLite (the embedded default, a file) or PostgreSQL,
//! chosen by the URL, through sqlx's `Any` driver and one set of migrations written in their
//! common SQL.
//!
//! Every statement binds its values as parameters (`$1`, `$2`, ...): no value is ever spliced
//! into SQL text. This module stores and loads; it must never decide what a change means.

mod alerts;
mod change_feed;
mod checkpoint;
mod digests;
mod entity_list;
mod ownership;
mod sessions;
mod suppliers;
mod tokens;
mod worker_state;

pub use alerts::{AlertQuery, AlertReview, AuditRecord, ReviewError, StoredAlert};
pub use change_feed::{FeedChange, FeedPosition};
pub use checkpoint::ProcessedDocument;
pub use digests::{HeldDelivery, StoredDigest};
pub use entity_list::{
    AppliedChange, ChangeOutcome, EntryChangeRecord, SnapshotCounts, SnapshotPlan, StoredEntry,
};
pub use ownership::{AffiliateState, Holding, ListedMatch, Owner, OwnershipCounts};
pub use sessions::{ConsoleSession, OpenedSession, SessionSecret};
pub use suppliers::UpsertCounts;
pub use tokens::{ApiToken, TokenError};
pub use worker_state::{Claim, Decision, Delivery, LoggedMessage, QueuedDelivery};

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;
use sqlx::ConnectOptions as _;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("connection refused at {address}: is PostgreSQL running there?")]
    Refused { address: String },
    #[error("cannot migrate the store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error(
        "no database at {path}: check --database-url (a command that only reads never creates one)"
    )]
    Missing { path: String },
    #[error("stored value {name} is corrupt: {value:?}")]
    Corrupt { name: String, value: String },
}

/// How a SQLite commit is made durable (`PRAGMA synchronous`, with the journal in WAL mode).
///
/// * `Normal` (the default): a commit is durable against the process dying at any point
///   (SIGKILL, a panic, an OOM kill): WAL frames reach the operating system before the commit
///   returns, and the next open replays them. It syncs the WAL to disk only at checkpoints, so
///   a power loss or kernel crash may lose the last transactions committed before it (never
///   corrupting the database: it opens at an earlier consistent state). An alert already sent
///   whose ledger row was lost is then sent again (at least once), and an import or event
///   whose commit was lost is redone from the source, since its input was acknowledged only
///   after the commit.
/// * `Full`: every commit also fsyncs the WAL before returning, so a committed transaction
///   survives a power loss too, at the cost of one disk flush per commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqliteSynchronous {
    #[default]
    Normal,
    Full,
}

impl SqliteSynchronous {
    /// The spelling of the setting and of the pragma's value.
    pub fn as_str(self) -> &'static str {
        match self {
            SqliteSynchronous::Normal => "normal",
            SqliteSynchronous::Full => "full",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "normal" => Some(SqliteSynchronous::Normal),
            "full" => Some(SqliteSynchronous::Full),
            _ => None,
        }
    }
}

/// How the store is opened, beside its URL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// SQLite only; PostgreSQL's durability is the server's (`synchronous_commit`).
    pub sqlite_synchronous: SqliteSynchronous,
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
        Self::open(url, true, StoreOptions::default()).await
    }

    /// [`Store::connect`] with options (the SQLite durability setting).
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        Self::open(url, true, options).await
    }

    /// Opens the store at `url` only if it exists: for commands that only read (`suppliers
    /// export`, `dead-letters list`, `screen`), where a mistyped SQLite path must be an error
    /// naming it, not a new empty database that makes the command "succeed".
    pub async fn connect_existing(url: &str) -> Result<Store, StoreError> {
        if let Some(path) = sqlite_file(url) {
            if !std::path::Path::new(path).exists() {
                return Err(StoreError::Missing {
                    path: path.to_string(),
                });
            }
        }
        Self::open(url, false, StoreOptions::default()).await
    }

    async fn open(url: &str, create: bool, opts: StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let redacted = crate::config::redact_url(url);
        let (url, backend) = if url.starts_with("sqlite:") {
            let url = if create {
                sqlite_url_creating_file(url)
            } else {
                url.to_string()
            };
            (url, Backend::Sqlite)
        } else {
            (url.to_string(), Backend::Postgres)
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|source| StoreError::Connect {
                url: redacted.clone(),
                source,
            })?
            // A long export or import is slow by nature; sqlx would warn on each statement
            // over a second, on the normal path.
            .log_slow_statements(log::LevelFilter::Debug, std::time::Duration::from_secs(1));
        if backend == Backend::Postgres {
            // One plain attempt first: the pool retries a refused connection until its acquire
            // timeout (30 s) and then says only "pool timed out", hiding the cause.
            first_connection(&url, &options, &redacted).await?;
        }
        // SQLite serialises writers anyway; one connection avoids "database is locked" between
        // our own tasks, and an in-memory database must stay on one connection to exist at all.
        // PostgreSQL: the work is one writer per batch (an import, a worker's event) plus the
        // sinks' ledger writes in parallel and the HTTP probes; one connection per core for
        // the parallel part, at least 8, covers it without queueing on the pool.
        let max = match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => std::thread::available_parallelism()
                .map_or(8, |n| n.get() as u32 * 2)
                .max(8),
        };
        let synchronous = opts.sqlite_synchronous.as_str();
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Every connection, not only the first: a writer that waits for
                        // another process (an import beside `run`) waits this long for its
                        // turn instead of failing with "database is locked".
                        sqlx::query(&format!(
                            "PRAGMA busy_timeout = {}",
                            SQLITE_BUSY_TIMEOUT.as_millis()
                        ))
                        .execute(&mut *conn)
                        .await?;
                        // Per connection, like busy_timeout: see SqliteSynchronous for what
                        // each value promises. With the default FULL every commit of an
                        // import batch or an event waited for a disk flush.
                        sqlx::query(&format!("PRAGMA synchronous = {synchronous}"))
                            .execute(&mut *conn)
                            .await?;
                        // 64 MiB of page cache (the default is 2 MiB): a million-supplier
                        // upsert walks the primary-key B-tree at random.
                        sqlx::query("PRAGMA cache_size = -65536")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
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
        }
        sqlx::migrate!("./migrations").run(&pool).await?;
        let store = Store { pool, backend };
        store.migrate_entity_keys().await?;
        Ok(store)
    }

    /// A transaction that will write. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so it waits its turn behind another process's writer under the busy
    /// timeout; a plain `BEGIN` that reads first and writes later would instead fail at once
    /// with "database is locked" when another writer got in between.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
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

/// Connects once, within [`FIRST_CONNECTION_TIMEOUT`], to report a server that is not there
/// as such ("connection refused at HOST:PORT") within a second or two.
async fn first_connection(
    url: &str,
    options: &AnyConnectOptions,
    redacted: &str,
) -> Result<(), StoreError> {
    use sqlx::{ConnectOptions, Connection};
    let address = || {
        url::Url::parse(url)
            .ok()
            .map(|u| {
                format!(
                    "{}:{}",
                    u.host_str().unwrap_or("localhost"),
                    u.port().unwrap_or(5432)
                )
            })
            .unwrap_or_else(|| redacted.to_string())
    };
    match tokio::time::timeout(FIRST_CONNECTION_TIMEOUT, options.connect()).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(sqlx::Error::Io(e))) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(StoreError::Refused { address: address() })
        }
        Ok(Err(source)) => Err(StoreError::Connect {
            url: redacted.to_string(),
            source,
        }),
        Err(_) => Err(StoreError::Connect {
            url: redacted.to_string(),
            source: sqlx::Error::PoolTimedOut,
        }),
    }
}

/// How long a SQLite writer waits for another writer (another process) to finish.
const SQLITE_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// How long the first connection to PostgreSQL may take.
const FIRST_CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The file a SQLite URL names, or `None` for PostgreSQL and in-memory databases.
fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory = path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory");
    (!in_memory && !path.is_empty()).then_some(path)
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
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_file("sqlite://x.db?mode=rwc"), Some("x.db"));
        assert_eq!(sqlite_file("sqlite:///tmp/x.db"), Some("/tmp/x.db"));
        assert_eq!(sqlite_file("sqlite:x.db"), Some("x.db"));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }

    #[tokio::test]
    async fn a_missing_sqlite_file_is_not_created_by_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("typo.db");
        let url = format!("sqlite://{}", path.display());
        let e = Store::connect_existing(&url).await.err().expect("refused");
        assert!(e.to_string().contains("typo.db"), "{e}");
        assert!(!path.exists());
        Store::connect(&url).await.unwrap().close().await;
        Store::connect_existing(&url).await.unwrap().close().await;
    }

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
