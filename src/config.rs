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
            .field(
                "federal_register_url",
                &redact_url(self.federal_register_url.as_str()),
            )
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

// ---------------------------------------------------------------------------------------------
// Every flag in the file

/// The configuration file as the command line sees it: every flag of every command can be set
/// in it, by its long name with `_` (or `-`) between words.
///
/// * At the top level, a global flag (`database_url`), or a flag of one or more commands
///   (`interval` sets `run --interval` and `watch --interval`; `slack_webhook_url` every
///   command that sends alerts).
/// * In a table named after a command (`[run]`, `[watch]`, `[suppliers.import]`,
///   `[dead-letters.redrive]`), a flag of that command only; it wins over the top level.
/// * `[kafka]`: librdkafka settings, passed through.
///
/// A file value becomes the flag's default, so the precedence stays flag, then environment,
/// then file, then built-in default. A key that is no flag, or a value the flag refuses, is an error naming
/// the file, the line and the key.
pub struct ConfigFile {
    path: PathBuf,
    text: String,
}

/// One value of the file, for one command (`None`: the top level).
struct FileValue {
    line: usize,
    key: String,
    value: String,
    table: Option<Vec<String>>,
}

impl ConfigFile {
    /// The file the command line (`--config FILE`, `--config=FILE`) or `ENTITYWATCH_CONFIG`
    /// names, before clap has parsed anything: its values are needed to build the parser.
    pub fn named_by(
        args: &[std::ffi::OsString],
        env: Option<std::ffi::OsString>,
    ) -> Option<PathBuf> {
        let mut it = args.iter().skip(1);
        while let Some(a) = it.next() {
            let a = a.to_string_lossy();
            if a == "--" {
                break;
            }
            if a == "--config" {
                return it.next().map(PathBuf::from);
            }
            if let Some(v) = a.strip_prefix("--config=") {
                return Some(PathBuf::from(v));
            }
        }
        env.filter(|v| !v.is_empty()).map(PathBuf::from)
    }

    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(ConfigFile {
            path: path.to_path_buf(),
            text,
        })
    }

    /// `command` with each flag the file sets defaulting to the file's value.
    pub fn apply(&self, mut command: clap::Command) -> Result<clap::Command, ConfigError> {
        for v in self.values()? {
            let commands = self.commands_with(&command, &v)?;
            for path in commands {
                let id = arg_id(&command, &path, &v.key).expect("found above");
                command = set_default(command, &path, &id, v.value.clone());
            }
        }
        Ok(command)
    }

    fn key_error(&self, line: usize, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            path: self.path.clone(),
            line,
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// Every value of the file but the `[kafka]` table, with its line.
    fn values(&self) -> Result<Vec<FileValue>, ConfigError> {
        let doc =
            toml_edit::ImDocument::parse(self.text.as_str()).map_err(|e| ConfigError::Parse {
                path: self.path.clone(),
                message: toml_error(&self.text, e.message(), e.span()),
            })?;
        let mut out = Vec::new();
        self.collect(doc.as_table(), &mut Vec::new(), &mut out)?;
        Ok(out)
    }

    fn collect(
        &self,
        table: &toml_edit::Table,
        path: &mut Vec<String>,
        out: &mut Vec<FileValue>,
    ) -> Result<(), ConfigError> {
        for (key, item) in table.iter() {
            let line = table
                .key(key)
                .and_then(|k| k.span())
                .or_else(|| item.span())
                .map_or(0, |s| line_of(&self.text, s.start));
            if path.is_empty() && key == "kafka" {
                continue;
            }
            if let Some(sub) = item.as_table() {
                path.push(key.to_string());
                self.collect(sub, path, out)?;
                path.pop();
                continue;
            }
            let value = match item.as_value() {
                Some(toml_edit::Value::String(s)) => s.value().clone(),
                Some(toml_edit::Value::Integer(i)) => i.value().to_string(),
                Some(toml_edit::Value::Float(f)) => f.value().to_string(),
                Some(toml_edit::Value::Boolean(b)) => b.value().to_string(),
                _ => {
                    return Err(self.key_error(
                        line,
                        key,
                        "expected a string, number or true/false (a command's flags go in a \
                         [table])",
                    ))
                }
            };
            out.push(FileValue {
                line,
                key: key.replace('-', "_"),
                value,
                table: (!path.is_empty()).then(|| path.clone()),
            });
        }
        Ok(())
    }

    /// The commands (paths of subcommand names; empty for the top level) whose flag `v` sets,
    /// with the value checked by the flag's own parser.
    fn commands_with(
        &self,
        command: &clap::Command,
        v: &FileValue,
    ) -> Result<Vec<Vec<String>>, ConfigError> {
        let paths: Vec<Vec<String>> = match &v.table {
            Some(table) => {
                let Some(sub) = find_command(command, table) else {
                    return Err(self.key_error(
                        v.line,
                        &table.join("."),
                        format!(
                            "no command {:?}; commands: {}",
                            table.join(" "),
                            command_list(command)
                        ),
                    ));
                };
                if arg_id(command, table, &v.key).is_none() {
                    return Err(self.key_error(
                        v.line,
                        &format!("{}.{}", table.join("."), v.key),
                        format!(
                            "`{}` has no flag --{}",
                            sub.get_name(),
                            v.key.replace('_', "-")
                        ),
                    ));
                }
                vec![table.clone()]
            }
            None => {
                if arg_id(command, &[], &v.key).is_some() {
                    vec![Vec::new()]
                } else {
                    let mut found = Vec::new();
                    every_command(command, &mut Vec::new(), &mut |path, _| {
                        if !path.is_empty() && arg_id(command, path, &v.key).is_some() {
                            found.push(path.to_vec());
                        }
                    });
                    if found.is_empty() {
                        return Err(self.key_error(
                            v.line,
                            &v.key,
                            "no command has this flag (keys are long flag names with _ for -)",
                        ));
                    }
                    found
                }
            }
        };
        for path in &paths {
            let id = arg_id(command, path, &v.key).expect("checked");
            let cmd = find_command(command, path).expect("checked");
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_id() == id.as_str())
                .or_else(|| command.get_arguments().find(|a| a.get_id() == id.as_str()))
                .expect("checked");
            check_value(arg, &v.value).map_err(|m| self.key_error(v.line, &v.key, m))?;
        }
        Ok(paths)
    }
}

fn find_command<'c>(command: &'c clap::Command, path: &[String]) -> Option<&'c clap::Command> {
    let mut c = command;
    for name in path {
        c = c.find_subcommand(name)?;
    }
    Some(c)
}

fn every_command(
    command: &clap::Command,
    path: &mut Vec<String>,
    visit: &mut dyn FnMut(&[String], &clap::Command),
) {
    visit(path, command);
    for sub in command.get_subcommands() {
        path.push(sub.get_name().to_string());
        every_command(sub, path, visit);
        path.pop();
    }
}

fn command_list(command: &clap::Command) -> String {
    let mut names = Vec::new();
    every_command(command, &mut Vec::new(), &mut |path, _| {
        if !path.is_empty() {
            names.push(path.join("."));
        }
    });
    names.join(", ")
}

/// The id of the flag `key` names on the command at `path` (global flags only at the top).
fn arg_id(command: &clap::Command, path: &[String], key: &str) -> Option<String> {
    let cmd = find_command(command, path)?;
    let long = key.replace('_', "-");
    cmd.get_arguments()
        .filter(|a| path.is_empty() || !a.is_global_set())
        .find(|a| a.get_long() == Some(long.as_str()) && long != "config" && long != "help")
        .map(|a| a.get_id().to_string())
}

fn set_default(command: clap::Command, path: &[String], id: &str, value: String) -> clap::Command {
    match path.split_first() {
        None => command.mut_arg(id, |a| a.default_value(value)),
        Some((first, rest)) => {
            let rest = rest.to_vec();
            let id = id.to_string();
            command.mut_subcommand(first, move |sub| set_default(sub, &rest, &id, value))
        }
    }
}

/// Runs the flag's own parser on a file value, so that a bad value is reported with its line
/// rather than later, by clap, as if it had been typed.
fn check_value(arg: &clap::Arg, value: &str) -> Result<(), String> {
    let long = arg.get_long().unwrap_or("value");
    let takes_value = arg.get_action().takes_values();
    if !takes_value {
        return match value {
            "true" | "false" => Ok(()),
            other => Err(format!(
                "--{long} is a switch: write true or false, not {other:?}"
            )),
        };
    }
    let probe = clap::Command::new("entitywatch").no_binary_name(true).arg(
        clap::Arg::new("probe")
            .long(long.to_string())
            .value_name(
                arg.get_value_names()
                    .and_then(|names| names.first())
                    .map_or_else(|| long.to_uppercase(), |n| n.to_string()),
            )
            .action(arg.get_action().clone())
            .value_parser(arg.get_value_parser().clone()),
    );
    probe
        .try_get_matches_from([format!("--{long}={value}")])
        .map(|_| ())
        .map_err(|e| {
            let shown = e.kind().as_str().unwrap_or("invalid value").to_string();
            let rendered = e.render().to_string();
            let detail = rendered
                .lines()
                .next()
                .unwrap_or(&shown)
                .trim_start_matches("error: ")
                .to_string();
            detail
        })
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
        // Keys are checked against the command line when it is parsed.
        assert!(matches!(
            parse_with_file("databse_url = \"x\"\n", &["run"]),
            Err(ConfigError::Key { line: 1, .. })
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
        assert!(parse_duration("-1").is_err());
    }

    fn parse_with_file(toml: &str, argv: &[&str]) -> Result<crate::cli::Cli, ConfigError> {
        use clap::{CommandFactory, FromArgMatches};
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(toml.as_bytes()).unwrap();
        let file = ConfigFile::read(f.path())?;
        let command = file.apply(crate::cli::Cli::command())?;
        let matches = command
            .try_get_matches_from(std::iter::once("entitywatch").chain(argv.iter().copied()))
            .unwrap();
        Ok(crate::cli::Cli::from_arg_matches(&matches).unwrap())
    }

    fn run_args(cli: crate::cli::Cli) -> crate::cli::run::RunArgs {
        match cli.command {
            crate::cli::Command::Run(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_flag_of_every_command_can_be_set_in_the_file() {
        use clap::CommandFactory;
        let cli = crate::cli::Cli::command();
        let mut missing = Vec::new();
        let mut count = 0;
        every_command(&cli, &mut Vec::new(), &mut |path, cmd| {
            for a in cmd.get_arguments() {
                let Some(long) = a.get_long() else { continue };
                if matches!(long, "help" | "version" | "config")
                    || (!path.is_empty() && a.is_global_set())
                {
                    continue;
                }
                count += 1;
                if arg_id(&cli, path, &long.replace('-', "_")).is_none() {
                    missing.push(format!("{} --{long}", path.join(" ")));
                }
            }
        });
        assert!(count > 40, "{count}");
        assert!(missing.is_empty(), "{missing:?}");
    }

    #[test]
    fn file_values_are_defaults_flags_still_win_and_tables_beat_the_top_level() {
        let toml = "interval = \"5m\"\nslack_webhook_url = \"https://hooks.invalid/x\"\n\
                    alert_timeout = \"3s\"\n[watch]\ninterval = \"2h\"\n";
        let run = run_args(parse_with_file(toml, &["run"]).unwrap());
        assert_eq!(run.interval, Duration::from_secs(300));
        assert_eq!(run.sinks.alert_timeout, Duration::from_secs(3));
        assert_eq!(
            run.sinks.slack_webhook_url.as_deref(),
            Some("https://hooks.invalid/x")
        );
        match parse_with_file(toml, &["watch"]).unwrap().command {
            crate::cli::Command::Watch(w) => assert_eq!(w.interval, Duration::from_secs(7200)),
            other => panic!("{other:?}"),
        }
        let run = run_args(parse_with_file(toml, &["run", "--interval", "90s"]).unwrap());
        assert_eq!(run.interval, Duration::from_secs(90));
        let cli = parse_with_file("database_url = \"sqlite://f.db\"\n", &["run"]).unwrap();
        assert_eq!(cli.global.database_url.as_deref(), Some("sqlite://f.db"));
        let cli = parse_with_file(
            "[suppliers.import]\nstrict = true\n",
            &["suppliers", "import", "x.csv"],
        )
        .unwrap();
        match cli.command {
            crate::cli::Command::Suppliers(crate::cli::suppliers::SuppliersCommand::Import(a)) => {
                assert!(a.strict)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn file_errors_name_the_line_and_the_key() {
        let e = parse_with_file("interval = \"5m\"\n\nintervall = \"5m\"\n", &["run"])
            .err()
            .unwrap();
        let shown = e.to_string();
        assert!(
            shown.contains("line 3") && shown.contains("intervall"),
            "{shown}"
        );
        let e = parse_with_file("# c\n[run]\nalert_timeout = \"0s\"\n", &["run"])
            .err()
            .unwrap();
        let shown = e.to_string();
        assert!(
            shown.contains("line 3") && shown.contains("alert_timeout"),
            "{shown}"
        );
        assert!(shown.contains("shorter than"), "{shown}");
        let e = parse_with_file("[run]\nsince_when = 1\n", &["run"])
            .err()
            .unwrap();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = parse_with_file("[runn]\ninterval = \"1m\"\n", &["run"])
            .err()
            .unwrap();
        assert!(e.to_string().contains("runn"), "{e}");
        let e = parse_with_file("interval = \n", &["run"]).err().unwrap();
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn compound_durations_and_days_parse() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("2h 15m").unwrap(), Duration::from_secs(8100));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
    }

    #[test]
    fn tiny_durations_are_refused_by_floored_flags() {
        let floor = at_least(Duration::from_secs(1));
        assert!(floor("0s").is_err());
        assert!(floor("1ms").is_err());
        assert_eq!(floor("1s").unwrap(), Duration::from_secs(1));
        let remote = Settings::resolve(&GlobalArgs::default(), Vec::new()).unwrap();
        assert!(remote.check_poll_interval(Duration::ZERO).is_err());
        assert!(remote.check_poll_interval(Duration::from_secs(1)).is_err());
        assert!(remote.check_poll_interval(MIN_POLL_INTERVAL).is_ok());
        let local = Settings::resolve(
            &GlobalArgs {
                federal_register_url: Some("http://127.0.0.1:9/".into()),
                ..Default::default()
            },
            Vec::new(),
        )
        .unwrap();
        assert!(local.check_poll_interval(Duration::from_millis(1)).is_err());
        assert!(local.check_poll_interval(Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn secrets_anywhere_in_a_url_are_redacted() {
        for (raw, secret) in [
            ("postgres://u:hunter2@db/x", "hunter2"),
            (
                "postgres://u@db/x?password=hunter2&sslmode=require",
                "hunter2",
            ),
            ("postgres://db/x?sslpassword=hunter2", "hunter2"),
            ("https://h/x?token=hunter2", "hunter2"),
            ("https://h/x?api_key=hunter2", "hunter2"),
        ] {
            let shown = redact_url(raw);
            assert!(!shown.contains(secret), "{raw} -> {shown}");
            assert!(shown.contains("***"), "{raw} -> {shown}");
        }
        assert!(redact_url("postgres://db/x?sslmode=require").contains("sslmode=require"));
    }

    #[test]
    fn empty_sqlite_paths_are_refused_unless_in_memory_is_asked_for() {
        for url in ["sqlite:", "sqlite://", "sqlite://?mode=rwc", "sqlite: "] {
            assert!(check_database_url(url).is_err(), "{url}");
        }
        for url in [
            "sqlite::memory:",
            "sqlite://x.db",
            "sqlite:x.db",
            "sqlite://x?mode=memory",
        ] {
            assert!(check_database_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn log_filters_that_turn_logs_off_by_mistake_are_refused() {
        for bad in ["debg", "entitywatch=[[[", "info,verbose"] {
            assert!(check_log_filter(bad).is_err(), "{bad}");
        }
        for good in [
            "info",
            "DEBUG",
            "info,entitywatch=debug",
            "entitywatch",
            "sqlx=warn",
        ] {
            assert!(check_log_filter(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn listen_addresses_may_name_localhost() {
        assert_eq!(
            parse_socket_addr("localhost:9000").unwrap(),
            "127.0.0.1:9000".parse::<SocketAddr>().unwrap()
        );
        assert!(parse_socket_addr("localhost").is_err());
        assert!(parse_socket_addr("127.0.0.1:0").is_ok());
    }
}
