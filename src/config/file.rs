//! The configuration file as the command line sees it: every flag of every command can be
//! set in it; a file value becomes the flag's default, so precedence stays flag > environment
//! > file > default. It reads; it never connects anywhere or logs a value.

use super::*;

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

pub(super) fn every_command(
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
pub(super) fn arg_id(command: &clap::Command, path: &[String], key: &str) -> Option<String> {
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
