//! Configuration: command-line flags, `ENTITYWATCH_*` environment variables and an optional TOML
//! file, resolved once at start-up into [`Settings`].
//!
//! Precedence is flag > environment > file > default, so an operator can keep a file in a
//! ConfigMap and override one value per pod. This module reads configuration; it must never
//! connect to anything, and it must never log a value that can hold a secret (database URLs,
//! Kafka credentials, webhook URLs).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::store::SqliteSynchronous;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://entitywatch.db";
pub const DEFAULT_FEDERAL_REGISTER_URL: &str = "https://www.federalregister.gov";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
/// The HTTP API's body limit: a batch of some 20,000 supplier records.
pub const DEFAULT_API_MAX_BODY: usize = 10 * 1024 * 1024;
/// librdkafka settings are passed through from variables with this prefix:
/// `ENTITYWATCH_KAFKA__sasl.mechanism=PLAIN` sets `sasl.mechanism`.
pub const KAFKA_ENV_PREFIX: &str = "ENTITYWATCH_KAFKA__";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML for entitywatch: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}, line {line}: {key}: {message}")]
    Key {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("invalid value for {name}: {message}")]
    Invalid { name: &'static str, message: String },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Flags shared by every subcommand. Each has an environment variable beside it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GlobalArgs {
    /// Optional TOML configuration file (keys as the long flags, with `_` for `-`,
    /// plus a `[kafka]` table of librdkafka settings).
    #[arg(long, env = "ENTITYWATCH_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where state lives: `sqlite://FILE` (embedded default) or `postgres://USER@HOST/DB`.
    /// [default: sqlite://entitywatch.db]
    #[arg(
        long,
        env = "ENTITYWATCH_DATABASE_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// Base URL of the Federal Register API. Only this host is ever contacted.
    /// [default: https://www.federalregister.gov]
    #[arg(
        long,
        env = "ENTITYWATCH_FEDERAL_REGISTER_URL",
        global = true,
        value_name = "URL"
    )]
    pub federal_register_url: Option<String>,

    /// Address of the HTTP endpoint (metrics, health). [default: 127.0.0.1:8080]
    #[arg(
        long,
        env = "ENTITYWATCH_HTTP_ADDR",
        global = true,
        value_name = "ADDR",
        value_parser = parse_socket_addr
    )]
    pub http_addr: Option<SocketAddr>,

    /// Protect GET /metrics: only a token of this scope or above (read, review, admin) may
    /// scrape it. Unset: /metrics is open, like /healthz and /readyz.
    #[arg(
        long,
        env = "ENTITYWATCH_METRICS_SCOPE",
        global = true,
        value_name = "SCOPE"
    )]
    pub metrics_scope: Option<crate::domain::Scope>,

    /// Largest request body the HTTP API accepts, in bytes (a bigger one is answered 413);
    /// `POST /v1/suppliers/batch` is the endpoint it bounds in practice. [default: 10485760]
    #[arg(
        long,
        env = "ENTITYWATCH_API_MAX_BODY",
        global = true,
        value_name = "BYTES"
    )]
    pub api_max_body: Option<usize>,
    /// The review console (at / on the HTTP endpoint) is reached over HTTPS, through a TLS
    /// proxy: mark its cookies `Secure`, so a browser never sends the session over plain HTTP.
    #[arg(long, env = "ENTITYWATCH_CONSOLE_SECURE_COOKIE", global = true)]
    pub console_secure_cookie: bool,

    /// Kafka bootstrap servers, comma-separated. Unset: the embedded in-process bus.
    #[arg(
        long,
        env = "ENTITYWATCH_KAFKA_BROKERS",
        global = true,
        value_name = "HOSTS"
    )]
    pub kafka_brokers: Option<String>,

    /// First part of every Kafka topic name: PREFIX.entity-changes.v1, PREFIX.alerts.v1,
    /// PREFIX.suppliers.v1, PREFIX.dead-letter.v1 (a shared cluster may need its own).
    /// [default: entitywatch]
    #[arg(
        long,
        env = "ENTITYWATCH_KAFKA_TOPIC_PREFIX",
        global = true,
        value_name = "PREFIX"
    )]
    pub kafka_topic_prefix: Option<String>,

    /// Consumer group of the workers. [default: entitywatch-workers]
    #[arg(
        long,
        env = "ENTITYWATCH_KAFKA_GROUP_ID",
        global = true,
        value_name = "GROUP"
    )]
    pub kafka_group_id: Option<String>,

    /// Log format. [default: human]
    #[arg(long, env = "ENTITYWATCH_LOG_FORMAT", global = true, value_enum)]
    pub log_format: Option<LogFormat>,

    /// Log filter in `tracing` syntax, e.g. `info` or `entitywatch=debug`. [default: info]
    #[arg(long, env = "ENTITYWATCH_LOG", global = true, value_name = "FILTER")]
    pub log: Option<String>,

    /// Largest Federal Register document accepted, in bytes. [default: 16777216]
    #[arg(
        long,
        env = "ENTITYWATCH_MAX_DOCUMENT_BYTES",
        global = true,
        value_name = "BYTES"
    )]
    pub max_document_bytes: Option<usize>,

    /// Time limit of one Federal Register request, body included; a request over it is
    /// retried with backoff. [default: 30s]
    #[arg(
        long,
        env = "ENTITYWATCH_FEDERAL_REGISTER_TIMEOUT",
        global = true,
        value_name = "DURATION",
        value_parser = at_least(MIN_FEDERAL_REGISTER_TIMEOUT)
    )]
    pub federal_register_timeout: Option<Duration>,

    /// SQLite durability: `normal` (a commit survives the process dying, the last commits
    /// before a power loss may be lost and are redone from their source) or `full` (every
    /// commit also survives a power loss, one disk flush each). PostgreSQL ignores it.
    /// [default: normal]
    #[arg(
        long,
        env = "ENTITYWATCH_SQLITE_SYNCHRONOUS",
        global = true,
        value_name = "MODE",
        value_parser = parse_sqlite_synchronous
    )]
    pub sqlite_synchronous: Option<SqliteSynchronous>,
}

/// The global keys of the optional TOML file, as [`Settings::resolve`] reads them. Every key of
/// the file (these, `[kafka]` and the flags of each command) is checked, with its line, by
/// [`ConfigFile::apply`] when the command line is parsed.
#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    database_url: Option<String>,
    federal_register_url: Option<String>,
    federal_register_timeout: Option<String>,
    http_addr: Option<SocketAddr>,
    metrics_scope: Option<String>,
    api_max_body: Option<usize>,
    console_secure_cookie: Option<bool>,
    kafka_brokers: Option<String>,
    kafka_topic_prefix: Option<String>,
    kafka_group_id: Option<String>,
    log_format: Option<LogFormat>,
    log: Option<String>,
    max_document_bytes: Option<usize>,
    sqlite_synchronous: Option<String>,
    #[serde(default)]
    kafka: BTreeMap<String, toml::Value>,
}

/// Resolved configuration.
#[derive(Clone)]
pub struct Settings {
    pub database_url: String,
    pub federal_register_url: url::Url,
    pub federal_register_timeout: Duration,
    pub http_addr: SocketAddr,
    /// The scope a token needs to read /metrics; `None`: open.
    pub metrics_scope: Option<crate::domain::Scope>,
    /// Largest request body of the HTTP API, in bytes.
    pub api_max_body: usize,
    /// Whether the console's cookies are `Secure` (it is served over HTTPS).
    pub console_secure_cookie: bool,
    pub kafka_brokers: Option<String>,
    pub kafka_topic_prefix: String,
    pub kafka_group_id: String,
    /// librdkafka pass-through settings from the `[kafka]` table and `ENTITYWATCH_KAFKA__*`.
    pub kafka_settings: BTreeMap<String, String>,
    pub log_format: LogFormat,
    pub log: String,
    pub max_document_bytes: usize,
    pub sqlite_synchronous: SqliteSynchronous,
}

/// Secrets stay out of `{:?}` so that a debug log of the settings cannot leak them.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field(
                "federal_register_url",
                &redact_url(self.federal_register_url.as_str()),
            )
            .field("federal_register_timeout", &self.federal_register_timeout)
            .field("http_addr", &self.http_addr)
            .field("metrics_scope", &self.metrics_scope)
            .field("api_max_body", &self.api_max_body)
            .field("console_secure_cookie", &self.console_secure_cookie)
            .field("kafka_brokers", &self.kafka_brokers)
            .field("kafka_topic_prefix", &self.kafka_topic_prefix)
            .field("kafka_group_id", &self.kafka_group_id)
            .field(
                "kafka_settings",
                &self.kafka_settings.keys().collect::<Vec<_>>(),
            )
            .field("log_format", &self.log_format)
            .field("log", &self.log)
            .field("max_document_bytes", &self.max_document_bytes)
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .finish()
    }
}

impl Settings {
    /// Resolves flags (which already carry their environment variables, through clap) over the
    /// file named by `--config` over defaults. `env` is the process environment, passed in so
    /// tests need not mutate the real one.
    pub fn resolve(
        args: &GlobalArgs,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };

        let federal_register_url_raw = args
            .federal_register_url
            .clone()
            .or(file.federal_register_url)
            .unwrap_or_else(|| DEFAULT_FEDERAL_REGISTER_URL.to_string());
        let federal_register_url = url::Url::parse(&federal_register_url_raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| ConfigError::Invalid {
                name: "federal_register_url",
                message: format!("{federal_register_url_raw:?} is not an http(s) URL with a host"),
            })?;

        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        check_database_url(&database_url)?;
        let log = args
            .log
            .clone()
            .or(file.log)
            .unwrap_or_else(|| "info".to_string());
        check_log_filter(&log)?;

        let mut kafka_settings = BTreeMap::new();
        for (k, v) in file.kafka {
            let value = match v {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            kafka_settings.insert(k, value);
        }
        for (k, v) in env {
            if let Some(name) = k.strip_prefix(KAFKA_ENV_PREFIX) {
                if !name.is_empty() {
                    kafka_settings.insert(name.to_string(), v);
                }
            }
        }

        let max_document_bytes = args
            .max_document_bytes
            .or(file.max_document_bytes)
            .unwrap_or(16 * 1024 * 1024);
        if max_document_bytes == 0 {
            return Err(ConfigError::Invalid {
                name: "max_document_bytes",
                message: "must be greater than zero".into(),
            });
        }

        let federal_register_timeout =
            match (args.federal_register_timeout, file.federal_register_timeout) {
                (Some(t), _) => t,
                (None, Some(raw)) => {
                    at_least(MIN_FEDERAL_REGISTER_TIMEOUT)(&raw).map_err(|message| {
                        ConfigError::Invalid {
                            name: "federal_register_timeout",
                            message,
                        }
                    })?
                }
                (None, None) => Duration::from_secs(30),
            };
        if federal_register_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                name: "federal_register_timeout",
                message: "must be greater than zero".into(),
            });
        }

        let sqlite_synchronous = match (args.sqlite_synchronous, file.sqlite_synchronous) {
            (Some(s), _) => s,
            (None, Some(raw)) => {
                parse_sqlite_synchronous(&raw).map_err(|message| ConfigError::Invalid {
                    name: "sqlite_synchronous",
                    message,
                })?
            }
            (None, None) => SqliteSynchronous::default(),
        };

        let metrics_scope = match (args.metrics_scope, file.metrics_scope) {
            (Some(s), _) => Some(s),
            (None, Some(raw)) => Some(raw.parse().map_err(
                |e: crate::domain::token::UnknownScope| ConfigError::Invalid {
                    name: "metrics_scope",
                    message: e.to_string(),
                },
            )?),
            (None, None) => None,
        };

        let api_max_body = args
            .api_max_body
            .or(file.api_max_body)
            .unwrap_or(DEFAULT_API_MAX_BODY);
        if api_max_body == 0 {
            return Err(ConfigError::Invalid {
                name: "api_max_body",
                message: "must be greater than zero".into(),
            });
        }

        Ok(Settings {
            metrics_scope,
            api_max_body,
            console_secure_cookie: args.console_secure_cookie
                || file.console_secure_cookie.unwrap_or(false),
            sqlite_synchronous,
            database_url,
            federal_register_url,
            federal_register_timeout,
            http_addr: args.http_addr.or(file.http_addr).unwrap_or_else(|| {
                DEFAULT_HTTP_ADDR
                    .parse()
                    .expect("the default address is a valid socket address")
            }),
            kafka_brokers: args
                .kafka_brokers
                .clone()
                .or(file.kafka_brokers)
                .filter(|b| !b.trim().is_empty()),
            kafka_topic_prefix: non_empty(
                "kafka_topic_prefix",
                args.kafka_topic_prefix.clone().or(file.kafka_topic_prefix),
                "entitywatch",
            )?,
            kafka_group_id: non_empty(
                "kafka_group_id",
                args.kafka_group_id.clone().or(file.kafka_group_id),
                "entitywatch-workers",
            )?,
            kafka_settings,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            log,
            max_document_bytes,
        })
    }
}

/// A Kafka name: the default when unset, refused when blank or not a legal topic/group name.
fn non_empty(
    name: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    let v = value.unwrap_or_else(|| default.to_string());
    let v = v.trim();
    let legal = !v.is_empty()
        && v.len() <= 200
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if legal {
        Ok(v.to_string())
    } else {
        Err(ConfigError::Invalid {
            name,
            message: format!("{v:?} must be 1-200 characters of a-z, A-Z, 0-9, '.', '_', '-'"),
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: toml_error(&text, e.message(), e.span()),
    })
}

/// A TOML error with the line it is on.
fn toml_error(text: &str, message: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => format!("line {}: {}", line_of(text, span.start), message.trim()),
        None => message.trim().to_string(),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Query parameters whose value is a secret when their name contains one of these
/// (`password`, `sslpassword`, `token`, `api_key`, `sig`, ...).
const SECRET_QUERY_WORDS: &[&str] = &[
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "sig",
    "credential",
];

/// Hides every secret of a URL, wherever it sits: the password of the user-info
/// (`postgres://user:secret@host/db` → `postgres://user:***@host/db`) and the value of any query
/// parameter named like a secret (`?password=secret` → `?password=***`).
pub fn redact_url(raw: &str) -> String {
    let Ok(mut u) = url::Url::parse(raw) else {
        return "<unparseable url>".to_string();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let name = k.to_ascii_lowercase();
                let secret = SECRET_QUERY_WORDS.iter().any(|w| name.contains(w));
                (
                    k.into_owned(),
                    if secret {
                        "***".to_string()
                    } else {
                        v.into_owned()
                    },
                )
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// Refuses a database URL that is not SQLite or PostgreSQL, and a SQLite URL that names no file:
/// sqlx would open a throw-away in-memory database for `sqlite:` or `sqlite://` (an unset
/// `$VAR` in a script), and everything imported would vanish at exit without a word. An
/// in-memory database is still there for whoever asks for it by name (`sqlite::memory:`).
fn parse_sqlite_synchronous(raw: &str) -> Result<SqliteSynchronous, String> {
    SqliteSynchronous::parse(raw).ok_or_else(|| format!("{raw:?} is neither `normal` nor `full`"))
}

fn check_database_url(url: &str) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        name: "database_url",
        message,
    };
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let in_memory = path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory");
        if path.trim().is_empty() && !in_memory {
            return Err(invalid(format!(
                "{url:?} names no database file (it would be a throw-away in-memory database); \
                 write sqlite://FILE, or sqlite::memory: if that is what you want"
            )));
        }
        return Ok(());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(());
    }
    Err(invalid(format!(
        "{} must start with sqlite: or postgres://",
        redact_url(url)
    )))
}

/// Levels a bare log directive may name.
const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// Refuses a log filter that `tracing` would take in a way nobody means: a bare word is a
/// target at TRACE level, so `debg` silently turned every other log off, errors included, and
/// a directive it cannot parse at all was dropped. A bare word must be a level or an
/// `entitywatch` target; anything else must be `TARGET=LEVEL`.
fn check_log_filter(filter: &str) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        name: "log",
        message,
    };
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare = !directive.contains(['=', '[', '{']);
        let level = LOG_LEVELS.contains(&directive.to_ascii_lowercase().as_str());
        if bare && !level && directive != "entitywatch" && !directive.starts_with("entitywatch::") {
            let within = if directive == filter.trim() {
                String::new()
            } else {
                format!(" in {filter:?}")
            };
            return Err(invalid(format!(
                "{directive:?}{within} is neither a level ({}) nor TARGET=LEVEL; nothing would \
                 be logged but that target",
                LOG_LEVELS.join(", ")
            )));
        }
        if let Err(e) = directive.parse::<tracing_subscriber::filter::Directive>() {
            return Err(invalid(format!("{directive:?} in {filter:?}: {e}")));
        }
    }
    Ok(())
}

/// Parses a listen address: `HOST:PORT` with an IP or `localhost`, or a name the resolver
/// knows (the first address it gives).
pub fn parse_socket_addr(raw: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let t = raw.trim();
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = t.rsplit_once(':').ok_or_else(|| {
        format!("{raw:?} is not HOST:PORT (e.g. 127.0.0.1:8080 or localhost:8080)")
    })?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} in {raw:?} is not a port number"))?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("{host:?} in {raw:?} is not an address or a known host name"))
}

/// Parses durations: `60s`, `5m`, `1h30m`, `1d`, `500ms`, `2h 15m`, or a bare number of
/// seconds (`90`, `0.5`).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let t = raw.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("{raw:?} is not a positive duration"));
        }
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{raw:?} is not a duration like 60s, 5m, 1h30m, 1d or 500ms ({e})"))
}

/// Shortest poll interval against the public Federal Register: shorter would hammer a public
/// API for nothing, as rules appear once a day.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// Shortest poll interval against a Federal Register on this machine (the replay server of the
/// demo and tests).
pub const MIN_LOCAL_POLL_INTERVAL: Duration = Duration::from_millis(100);
pub const MIN_FEDERAL_REGISTER_TIMEOUT: Duration = Duration::from_secs(1);
pub const MIN_ALERT_TIMEOUT: Duration = Duration::from_millis(100);
pub const MIN_ALERT_BACKOFF: Duration = Duration::from_millis(10);
pub const MIN_CLAIM_LEASE: Duration = Duration::from_secs(1);
pub const MIN_READY_MAX_POLL_AGE: Duration = Duration::from_secs(1);

/// A duration parser refusing anything shorter than `min`, for a flag where a tiny value
/// (`0s`, `1ms`) is a typo that would spin a loop.
pub fn at_least(
    min: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |raw| {
        let d = parse_duration(raw)?;
        if d < min {
            return Err(format!(
                "{raw:?} is shorter than the shortest accepted, {}",
                humantime::format_duration(min)
            ));
        }
        Ok(d)
    }
}

impl Settings {
    /// Refuses a watcher interval under the floor: [`MIN_POLL_INTERVAL`] for a remote Federal
    /// Register, [`MIN_LOCAL_POLL_INTERVAL`] for one on a loopback address.
    pub fn check_poll_interval(&self, interval: Duration) -> Result<(), ConfigError> {
        let local = match self.federal_register_url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        let min = if local {
            MIN_LOCAL_POLL_INTERVAL
        } else {
            MIN_POLL_INTERVAL
        };
        if interval < min {
            return Err(ConfigError::Invalid {
                name: "interval",
                message: format!(
                    "{} is shorter than the shortest accepted for {}, {}",
                    humantime::format_duration(interval),
                    self.federal_register_url,
                    humantime::format_duration(min)
                ),
            });
        }
        Ok(())
    }
}

mod file;
#[cfg(test)]
mod tests;

pub use file::ConfigFile;
