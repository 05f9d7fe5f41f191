use super::file::{arg_id, every_command};
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

#[test]
fn sqlite_synchronous_is_normal_unless_set_and_a_bad_value_is_refused() {
    use crate::store::SqliteSynchronous;
    let s = Settings::resolve(&GlobalArgs::default(), Vec::new()).unwrap();
    assert_eq!(s.sqlite_synchronous, SqliteSynchronous::Normal);
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "sqlite_synchronous = \"FULL\"").unwrap();
    let args = GlobalArgs {
        config: Some(f.path().to_path_buf()),
        ..Default::default()
    };
    let s = Settings::resolve(&args, Vec::new()).unwrap();
    assert_eq!(s.sqlite_synchronous, SqliteSynchronous::Full);
    let args = GlobalArgs {
        config: Some(f.path().to_path_buf()),
        sqlite_synchronous: Some(SqliteSynchronous::Normal),
        ..Default::default()
    };
    let s = Settings::resolve(&args, Vec::new()).unwrap();
    assert_eq!(
        s.sqlite_synchronous,
        SqliteSynchronous::Normal,
        "the flag wins"
    );
    let mut bad = tempfile::NamedTempFile::new().unwrap();
    writeln!(bad, "sqlite_synchronous = \"off\"").unwrap();
    let args = GlobalArgs {
        config: Some(bad.path().to_path_buf()),
        ..Default::default()
    };
    let e = Settings::resolve(&args, Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("sqlite_synchronous"), "{e}");
}

#[test]
fn console_cookies_are_secure_only_when_the_flag_or_the_file_says() {
    let s = Settings::resolve(&GlobalArgs::default(), Vec::new()).unwrap();
    assert!(!s.console_secure_cookie);
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "console_secure_cookie = true").unwrap();
    let args = GlobalArgs {
        config: Some(f.path().to_path_buf()),
        ..Default::default()
    };
    assert!(
        Settings::resolve(&args, Vec::new())
            .unwrap()
            .console_secure_cookie
    );
    let args = GlobalArgs {
        console_secure_cookie: true,
        ..Default::default()
    };
    assert!(
        Settings::resolve(&args, Vec::new())
            .unwrap()
            .console_secure_cookie
    );
}
