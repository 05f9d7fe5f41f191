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

pub const DEFAULT_DATABASE_URL: &str = "sqlite://entitywatch.db";
pub const DEFAULT_FEDERAL_REGISTER_URL: &str = "https://www.federalregister.gov";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
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
        value_name = "ADDR"
    )]
    pub http_addr: Option<SocketAddr>,

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
        value_parser = parse_duration
    )]
    pub federal_register_timeout: Option<Duration>,
}

/// The optional TOML file. Every key is optional; unknown keys are refused so a typo is not
/// silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    federal_register_url: Option<String>,
    federal_register_timeout: Option<String>,
    http_addr: Option<SocketAddr>,
    kafka_brokers: Option<String>,
    kafka_topic_prefix: Option<String>,
    kafka_group_id: Option<String>,
    log_format: Option<LogFormat>,
    log: Option<String>,
    max_document_bytes: Option<usize>,
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
    pub kafka_brokers: Option<String>,
    pub kafka_topic_prefix: String,
    pub kafka_group_id: String,
    /// librdkafka pass-through settings from the `[kafka]` table and `ENTITYWATCH_KAFKA__*`.
    pub kafka_settings: BTreeMap<String, String>,
    pub log_format: LogFormat,
    pub log: String,
    pub max_document_bytes: usize,
}

/// Secrets stay out of `{:?}` so that a debug log of the settings cannot leak them.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field("federal_register_url", &self.federal_register_url.as_str())
            .field("federal_register_timeout", &self.federal_register_timeout)
            .field("http_addr", &self.http_addr)
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
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid {
                name: "database_url",
                message: format!(
                    "{} must start with sqlite: or postgres://",
                    redact_url(&database_url)
                ),
            });
        }

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
                    parse_duration(&raw).map_err(|message| ConfigError::Invalid {
                        name: "federal_register_timeout",
                        message,
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

        Ok(Settings {
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
            log: args
                .log
                .clone()
                .or(file.log)
                .unwrap_or_else(|| "info".to_string()),
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
        message: e.message().to_string(),
    })
}

/// Hides the password of a URL (`postgres://user:secret@host/db` → `postgres://user:***@host/db`).
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => raw.to_string(),
        Err(_) => "<unparseable url>".to_string(),
    }
}

/// Parses durations written as `60s`, `5m`, `1h`, `500ms` or a bare number of seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let t = raw.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| t.split_at(i))
        .unwrap_or((t, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration like 60s, 5m, 1h or 500ms"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {raw:?}")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{raw:?} is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn defaults_apply_without_flags_or_file() {
        let s = Settings::resolve(&GlobalArgs::default(), Vec::new()).unwrap();
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(
            s.federal_register_url.as_str(),
            "https://www.federalregister.gov/"
        );
        assert_eq!(s.http_addr.to_string(), DEFAULT_HTTP_ADDR);
        assert!(s.kafka_brokers.is_none());
    }

    #[test]
    fn flags_override_file_and_kafka_settings_pass_through() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "database_url = \"sqlite://from-file.db\"\nkafka_brokers = \"a:9092\"\n[kafka]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"SCRAM\""
        )
        .unwrap();
        let args = GlobalArgs {
            config: Some(f.path().to_path_buf()),
            kafka_brokers: Some("b:9092".into()),
            ..Default::default()
        };
        let env = vec![(
            "ENTITYWATCH_KAFKA__sasl.mechanism".to_string(),
            "PLAIN".to_string(),
        )];
        let s = Settings::resolve(&args, env).unwrap();
        assert_eq!(s.database_url, "sqlite://from-file.db");
        assert_eq!(s.kafka_brokers.as_deref(), Some("b:9092"));
        assert_eq!(s.kafka_settings["sasl.mechanism"], "PLAIN");
        assert_eq!(s.kafka_settings["security.protocol"], "SASL_SSL");
    }

    #[test]
    fn unknown_file_keys_and_bad_urls_are_refused() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "databse_url = \"x\"").unwrap();
        let args = GlobalArgs {
            config: Some(f.path().to_path_buf()),
            ..Default::default()
        };
        assert!(matches!(
            Settings::resolve(&args, Vec::new()),
            Err(ConfigError::Parse { .. })
        ));
        let args = GlobalArgs {
            federal_register_url: Some("ftp://x".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&args, Vec::new()).is_err());
        let args = GlobalArgs {
            database_url: Some("mysql://x".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&args, Vec::new()).is_err());
    }

    #[test]
    fn secrets_are_redacted_from_debug() {
        let args = GlobalArgs {
            database_url: Some("postgres://u:hunter2@db/x".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&args, Vec::new()).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
