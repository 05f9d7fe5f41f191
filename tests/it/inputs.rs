//! Issue 11, "Nothing lost, nothing silent": what a careless or hostile user did to the binary,
//! one test (or pair, SQLite and PostgreSQL) per row of the issue, each through the binary as a
//! user runs it. Each test failed on the code before its fix.

use crate::common;

use std::process::Stdio;

use common::{entitywatch, fixture, fresh_db, run, Db, Run, TestDb};
use entitywatch::store::Store;

const EL_CSV: &str = "csl/EL_only_from_watchman_consolidated_2022-05.csv";

fn cmd(db: &TestDb, args: &[&str]) -> tokio::process::Command {
    let mut c = entitywatch();
    c.arg("--database-url").arg(&db.url).args(args);
    c
}

async fn ok(db: &TestDb, args: &[&str]) -> Run {
    let r = run(cmd(db, args)).await;
    assert!(
        r.status.success(),
        "{args:?} failed: {}\n{}",
        r.status,
        r.stderr
    );
    r
}

fn write(db: &TestDb, name: &str, body: impl AsRef<[u8]>) -> String {
    let path = db.dir.path().join(name);
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

async fn listed(db: &TestDb) -> u64 {
    let store = Store::connect(&db.url).await.unwrap();
    let n = store.listed_entry_count().await.unwrap();
    store.close().await;
    n
}

/// Lines of stderr that are not log lines: what the user is told.
fn told(r: &Run) -> Vec<&str> {
    r.stderr
        .lines()
        .filter(|l| l.starts_with("entitywatch:"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Row 1: an import cut short must not replace the list

async fn list_import_cut_short_is_refused(kind: Db) {
    let db = fresh_db(kind).await;
    let full = fixture(EL_CSV).display().to_string();
    ok(&db, &["list", "import", &full]).await;
    let before = listed(&db).await;
    assert!(before > 1900, "{before}");

    let text = std::fs::read_to_string(fixture(EL_CSV)).unwrap();
    let head: String = text.lines().take(40).map(|l| format!("{l}\n")).collect();
    let cut = write(&db, "cut.csv", head);
    let r = run(cmd(&db, &["list", "import", &cut])).await;
    assert!(
        !r.status.success(),
        "a cut-short file was accepted:\n{}",
        r.stdout
    );
    assert!(r.stderr.contains("would remove"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("of the {before} listed")),
        "{}",
        r.stderr
    );
    assert_eq!(
        listed(&db).await,
        before,
        "a refused import changed the list"
    );

    let one = write(
        &db,
        "one.json",
        r#"{"results":[{"source":"Entity List (EL) - Bureau of Industry and Security","name":"Only One Ltd"}]}"#,
    );
    let r = run(cmd(&db, &["list", "import", &one])).await;
    assert!(!r.status.success(), "a one-entry JSON was accepted");
    assert_eq!(listed(&db).await, before);

    let r = ok(&db, &["list", "import", &cut, "--allow-shrink"]).await;
    let removed = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("removed "))
        .count();
    assert!(
        removed > 1900,
        "the removals are listed: {removed}\n{}",
        r.stdout
    );
    assert!(listed(&db).await < 50);
    eprintln!("row 1 ({kind:?}): {before} listed; a 40-line file refused; --allow-shrink listed {removed} removals");
}

#[tokio::test]
async fn row01_list_import_cut_short_is_refused_sqlite() {
    list_import_cut_short_is_refused(Db::Sqlite).await;
}

#[tokio::test]
async fn row01_list_import_cut_short_is_refused_postgres() {
    list_import_cut_short_is_refused(Db::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// Row 2: no silent in-memory database

#[tokio::test]
async fn row02_sqlite_url_without_a_path_is_refused() {
    let db = fresh_db(Db::Sqlite).await;
    let csv = write(&db, "s.csv", "id,name\n1,Acme\n");
    for url in ["sqlite://", "sqlite:"] {
        let mut c = entitywatch();
        c.current_dir(db.dir.path()).args([
            "--database-url",
            url,
            "suppliers",
            "import",
            &csv,
            "--no-screen",
        ]);
        let r = run(c).await;
        assert_eq!(
            r.status.code(),
            Some(2),
            "{url}: {}\n{}",
            r.stdout,
            r.stderr
        );
        assert!(r.stderr.contains("names no database file"), "{}", r.stderr);
        assert!(!r.stdout.contains("stored"), "{}", r.stdout);
    }
}

// ---------------------------------------------------------------------------------------------
// Row 3: country names people write

async fn countries_as_people_write_them(kind: Db) {
    let db = fresh_db(kind).await;
    let rows = [
        ("United States", "US"),
        ("USA", "US"),
        ("UK", "GB"),
        ("Great Britain", "GB"),
        ("\"Iran, Islamic Republic of\"", "IR"),
        ("Viet Nam", "VN"),
        ("Cote d'Ivoire", "CI"),
        ("Macau", "MO"),
        ("Deutschland", "DE"),
        ("中国", "CN"),
        ("Россия", "RU"),
        ("DEU", "DE"),
    ];
    let mut csv = String::from("id,name,country\n");
    for (i, (country, _)) in rows.iter().enumerate() {
        csv.push_str(&format!("s{i},Supplier {i} Ltd,{country}\n"));
    }
    csv.push_str("atl,Atlantis Trading,Atlantis\n");
    let file = write(&db, "s.csv", csv);
    let r = ok(&db, &["suppliers", "import", &file, "--no-screen"]).await;
    let line = rows.len() + 2;
    assert!(
        r.stderr
            .contains(&format!("line {line} (id \"atl\"): country \"Atlantis\"")),
        "the unknown country is a warning naming its line:\n{}",
        r.stderr
    );
    assert!(r.stdout.contains("0 rejected"), "{}", r.stdout);

    let export = ok(&db, &["suppliers", "export"]).await.stdout;
    let mut reader = csv::Reader::from_reader(export.as_bytes());
    let got: std::collections::BTreeMap<String, String> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[3].to_string())
        })
        .collect();
    for (i, (country, code)) in rows.iter().enumerate() {
        assert_eq!(
            got.get(&format!("s{i}")).map(String::as_str),
            Some(*code),
            "{country}"
        );
    }
    assert_eq!(
        got.get("atl").map(String::as_str),
        Some(""),
        "kept, without a country"
    );

    ok(
        &db,
        &["list", "import", &fixture(EL_CSV).display().to_string()],
    )
    .await;
    let r = ok(
        &db,
        &[
            "screen",
            "Huawei Technologies",
            "--country",
            "United States",
        ],
    )
    .await;
    assert!(r.stdout.contains("Huawei"), "{}", r.stdout);
}

#[tokio::test]
async fn row03_countries_as_people_write_them_sqlite() {
    countries_as_people_write_them(Db::Sqlite).await;
}

#[tokio::test]
async fn row03_countries_as_people_write_them_postgres() {
    countries_as_people_write_them(Db::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// Row 4: a NUL byte costs its row only

async fn nul_byte_costs_only_its_row(kind: Db) {
    let db = fresh_db(kind).await;
    let file = write(&db, "s.csv", b"id,name\n1,Acme\n2,Be\0ta\n3,Gamma\n");
    let r = ok(&db, &["suppliers", "import", &file, "--no-screen"]).await;
    assert!(r.stderr.contains("line 3"), "{}", r.stderr);
    assert!(r.stderr.contains("NUL"), "{}", r.stderr);
    assert!(r.stdout.contains("2 stored"), "{}", r.stdout);
    let export = ok(&db, &["suppliers", "export"]).await.stdout;
    assert!(
        export.contains("Acme") && export.contains("Gamma"),
        "{export}"
    );
}

#[tokio::test]
async fn row04_nul_byte_costs_only_its_row_sqlite() {
    nul_byte_costs_only_its_row(Db::Sqlite).await;
}

#[tokio::test]
async fn row04_nul_byte_costs_only_its_row_postgres() {
    nul_byte_costs_only_its_row(Db::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// Row 5: secrets in URLs

#[tokio::test]
async fn row05_a_password_in_the_query_is_never_printed() {
    for url in [
        "postgres://postgres@127.0.0.1:1/x?password=hunter2",
        "postgres://postgres:hunter2@127.0.0.1:1/x",
        "postgres://postgres@127.0.0.1:1/x?sslmode=disable&password=hunter2",
    ] {
        let mut c = entitywatch();
        c.args(["--database-url", url, "suppliers", "export"]);
        let r = run(c).await;
        assert!(!r.status.success());
        assert!(!r.stderr.contains("hunter2"), "{url}:\n{}", r.stderr);
        assert!(!r.stdout.contains("hunter2"), "{url}:\n{}", r.stdout);
        assert!(r.stderr.contains("***"), "{url}:\n{}", r.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// Row 6: CSV injection

async fn exports_neutralise_formulas(kind: Db) {
    let db = fresh_db(kind).await;
    let file = write(
        &db,
        "s.csv",
        "id,name,aliases,address,note\n\
         1,\"=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",@SUM(1),-2+3,+cmd\n\
         2,Plain Ltd,,,\n",
    );
    ok(&db, &["suppliers", "import", &file, "--no-screen"]).await;
    let export = ok(&db, &["suppliers", "export"]).await.stdout;
    let mut reader = csv::Reader::from_reader(export.as_bytes());
    for row in reader.records() {
        for cell in row.unwrap().iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?} in\n{export}"
            );
        }
    }
    assert!(export.contains("'=HYPERLINK"), "{export}");
    // The export reads back to the same records.
    let again = write(&db, "again.csv", &export);
    ok(&db, &["suppliers", "import", &again, "--no-screen"]).await;
    assert_eq!(ok(&db, &["suppliers", "export"]).await.stdout, export);
}

#[tokio::test]
async fn row06_exports_neutralise_formulas_sqlite() {
    exports_neutralise_formulas(Db::Sqlite).await;
}

#[tokio::test]
async fn row06_exports_neutralise_formulas_postgres() {
    exports_neutralise_formulas(Db::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// Row 7: a closed log pipe

#[tokio::test]
async fn row07_a_closed_log_pipe_does_not_kill_the_command() {
    let db = fresh_db(Db::Sqlite).await;
    let file = write(&db, "s.csv", "id,name\n1,Acme\n2,Beta\n");
    ok(&db, &["suppliers", "import", &file, "--no-screen"]).await;
    let mut c = cmd(&db, &["suppliers", "export"]);
    c.env("ENTITYWATCH_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stderr.take());
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "exit {:?} with stderr closed",
        out.status.code()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Acme"));
}

// ---------------------------------------------------------------------------------------------
// Row 8: size limits on every input

#[tokio::test]
async fn row08_endless_inputs_are_refused_at_the_limit() {
    let db = fresh_db(Db::Sqlite).await;
    let mut c = cmd(
        &db,
        &["--max-document-bytes", "1000000", "parse", "/dev/zero"],
    );
    c.stdout(Stdio::null());
    let r = run(c).await;
    assert!(!r.status.success());
    assert!(
        r.stderr.contains("larger than the limit of 1000000 bytes"),
        "{}",
        r.stderr
    );

    let r = run(cmd(&db, &["match", "--pairs", "/dev/zero"])).await;
    assert!(!r.status.success());
    assert!(r.stderr.contains("larger than"), "{}", r.stderr);

    let r = run(cmd(
        &db,
        &["suppliers", "import", "/dev/zero", "--no-screen"],
    ))
    .await;
    assert!(!r.status.success());
    assert!(r.stderr.contains("header"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// Row 10: interval and timeout floors

#[tokio::test]
async fn row10_tiny_intervals_and_timeouts_are_refused() {
    let db = fresh_db(Db::Sqlite).await;
    for args in [
        &["watch", "--once", "--interval", "0s"][..],
        &["watch", "--once", "--interval", "1ms"],
        &["run", "--interval", "1s"],
        &["run", "--alert-timeout", "0s"],
        &["run", "--alert-claim-lease", "1ms"],
        &["run", "--ready-max-poll-age", "0s"],
        &["--federal-register-timeout", "1ms", "watch", "--once"],
    ] {
        let mut c = cmd(&db, args);
        // Nothing may be contacted: the floor is checked before anything starts.
        c.args(["--federal-register-url", "https://federalregister.invalid"]);
        let r = run(c).await;
        assert_eq!(r.status.code(), Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("shorter than"), "{args:?}: {}", r.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// Row 13: log filters

#[tokio::test]
async fn row13_a_bad_log_filter_is_an_error_at_start() {
    let db = fresh_db(Db::Sqlite).await;
    for filter in ["debg", "entitywatch=[[["] {
        let mut c = cmd(&db, &["suppliers", "export"]);
        c.env("ENTITYWATCH_LOG", filter);
        let r = run(c).await;
        assert_eq!(r.status.code(), Some(2), "{filter}: {}", r.stderr);
        assert!(r.stderr.contains("log"), "{filter}: {}", r.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// Row 16: unknown sources and nameless rows

#[tokio::test]
async fn row16_an_unknown_source_is_an_error_listing_the_known_ones() {
    let db = fresh_db(Db::Sqlite).await;
    let full = fixture(EL_CSV).display().to_string();
    let r = run(cmd(&db, &["list", "import", &full, "--source", "XYZ"])).await;
    assert!(!r.status.success(), "{}", r.stdout);
    assert!(r.stderr.contains("XYZ"), "{}", r.stderr);
    assert!(r.stderr.contains("Entity List (EL)"), "{}", r.stderr);

    let json = write(
        &db,
        "l.json",
        r#"{"results":[
            {"source":"Entity List (EL) - Bureau of Industry and Security","name":"Good Ltd"},
            {"name":"No Source Ltd"},
            {"source":"Specially Designated Nationals (SDN) - Treasury Department"}
        ]}"#,
    );
    let r = ok(&db, &["list", "import", &json]).await;
    assert!(r.stderr.contains("entry 2"), "{}", r.stderr);
    assert!(r.stderr.contains("entry 3"), "{}", r.stderr);
    assert!(
        r.stdout.contains("0 of other lists skipped"),
        "{}",
        r.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// Row 17: malformed pairs

#[tokio::test]
async fn row17_a_one_field_row_in_match_is_an_error_naming_its_line() {
    let db = fresh_db(Db::Sqlite).await;
    let pairs = write(
        &db,
        "p.csv",
        "name1,name2\nAcme Ltd,Acme Limited\nlonely\nBeta GmbH,Beta\n",
    );
    let r = run(cmd(&db, &["match", "--pairs", &pairs])).await;
    assert!(!r.status.success());
    assert!(r.stderr.contains("line 3"), "{}", r.stderr);
    assert!(!r.stdout.contains("0.0000,false"), "{}", r.stdout);
    assert!(r.stdout.contains("Acme Ltd,Acme Limited,"), "{}", r.stdout);
    assert!(r.stdout.contains("Beta GmbH,Beta,"), "{}", r.stdout);
}

// ---------------------------------------------------------------------------------------------
// Row 18: read-only commands

#[tokio::test]
async fn row18_read_only_commands_never_create_a_database() {
    let db = fresh_db(Db::Sqlite).await;
    let typo = db.dir.path().join("entitywtach.db");
    let url = format!("sqlite://{}", typo.display());
    for args in [
        &["suppliers", "export"][..],
        &["dead-letters", "list"],
        &["screen", "Acme"],
    ] {
        let mut c = entitywatch();
        c.arg("--database-url").arg(&url).args(args);
        let r = run(c).await;
        assert!(!r.status.success(), "{args:?}: {}", r.stdout);
        assert!(
            r.stderr.contains("entitywtach.db"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
}

// ---------------------------------------------------------------------------------------------
// Row 19: screen's arguments

#[tokio::test]
async fn row19_screen_refuses_limit_zero_and_an_empty_name() {
    let db = fresh_db(Db::Sqlite).await;
    ok(
        &db,
        &["list", "import", &fixture(EL_CSV).display().to_string()],
    )
    .await;
    let r = run(cmd(&db, &["screen", "Huawei", "--limit", "0"])).await;
    assert!(!r.status.success(), "{}", r.stdout);
    assert!(!r.stdout.contains("no listed entry scores"), "{}", r.stdout);
    assert!(r.stderr.contains("--limit"), "{}", r.stderr);
    let r = run(cmd(&db, &["screen", ""])).await;
    assert!(!r.status.success(), "{}", r.stdout);
    assert!(r.stderr.contains("empty"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// Row 20: one line per error

#[tokio::test]
async fn row20_an_error_is_told_once_with_each_cause_once() {
    let db = fresh_db(Db::Sqlite).await;
    let missing = db.dir.path().join("missing.csv").display().to_string();
    let r = run(cmd(&db, &["list", "import", &missing])).await;
    assert!(!r.status.success());
    let lines = told(&r);
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert_eq!(
        r.stderr.matches("No such file or directory").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains(" ERROR "),
        "logged as well as told:\n{}",
        r.stderr
    );

    // The normal path on PostgreSQL: no migrations notice, no warning.
    let pg = fresh_db(Db::Postgres).await;
    let file = write(&pg, "s.csv", "id,name\n1,Acme\n");
    ok(&pg, &["suppliers", "import", &file, "--no-screen"]).await;
    let r = ok(&pg, &["suppliers", "export"]).await;
    assert!(!r.stderr.contains("already exists"), "{}", r.stderr);
    assert!(!r.stderr.contains(" WARN "), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// Also: suppliers delete, stdin, semicolons, unchanged re-imports

#[tokio::test]
async fn also_suppliers_delete_stdin_semicolons_and_unchanged_reimports() {
    let db = fresh_db(Db::Sqlite).await;
    let mut c = cmd(&db, &["suppliers", "import", "-", "--no-screen"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"id,name\n1,Acme\n2,Beta\n").await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 stored"));

    let r = ok(&db, &["suppliers", "delete", "1"]).await;
    assert!(r.stdout.contains("deleted 1"), "{}", r.stdout);
    let r = run(cmd(&db, &["suppliers", "delete", "nope"])).await;
    assert!(!r.status.success());
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
    let export = ok(&db, &["suppliers", "export"]).await.stdout;
    assert!(
        !export.contains("Acme") && export.contains("Beta"),
        "{export}"
    );

    let semi = write(&db, "semi.csv", "id;name\n3;Gamma\n");
    let r = run(cmd(&db, &["suppliers", "import", &semi, "--no-screen"])).await;
    assert!(!r.status.success());
    assert!(r.stderr.contains("semicolon"), "{}", r.stderr);

    let list = fixture(EL_CSV).display().to_string();
    ok(&db, &["list", "import", &list]).await;
    let again = ok(&db, &["list", "import", &list]).await.stdout;
    assert!(again.contains(" 0 new, 0 updated"), "{again}");
}

// ---------------------------------------------------------------------------------------------
// Row 11: two SQLite writers at once

#[tokio::test]
async fn row11_concurrent_sqlite_writers_wait_their_turn() {
    let db = fresh_db(Db::Sqlite).await;
    let mut csv = String::from("id,name,country\n");
    for i in 0..20_000 {
        csv.push_str(&format!("{i},Supplier {i} Trading Co Ltd,CN\n"));
    }
    let file = write(&db, "s.csv", csv);
    let list = fixture(EL_CSV).display().to_string();
    ok(&db, &["list", "import", &list]).await;
    let imports = (0..3).map(|_| run(cmd(&db, &["suppliers", "import", &file, "--no-screen"])));
    let (suppliers, relist) = tokio::join!(
        futures::future::join_all(imports),
        run(cmd(&db, &["list", "import", &list]))
    );
    for r in suppliers.iter().chain(std::iter::once(&relist)) {
        assert!(
            r.status.success(),
            "a concurrent writer failed:\n{}",
            r.stderr
        );
        assert!(!r.stderr.contains("locked"), "{}", r.stderr);
    }
    assert!(relist.stdout.contains("unchanged"), "{}", relist.stdout);
}

// ---------------------------------------------------------------------------------------------
// Row 12: every flag in the config file

#[tokio::test]
async fn row12_every_flag_can_be_set_in_the_config_file() {
    let db = fresh_db(Db::Sqlite).await;
    let suppliers = write(&db, "s.csv", "id,name\n1,Acme\n");
    let config = write(
        &db,
        "entitywatch.toml",
        format!(
            "database_url = \"{}\"\n\
             slack_webhook_url = \"https://hooks.invalid/services/x\"\n\
             webhook_url = \"https://hooks.invalid/entitywatch\"\n\
             webhook_secret = \"s3cret\"\n\
             alert_max_attempts = 3\n\
             alert_timeout = \"5s\"\n\
             ready_max_poll_age = \"1h\"\n\
             interval = \"1ms\"\n\
             [suppliers.import]\n\
             no_screen = true\n\
             [list.import]\n\
             source = \"XYZ\"\n",
            db.url
        ),
    );
    let mut c = entitywatch();
    c.args(["--config", &config, "suppliers", "import", &suppliers]);
    let r = run(c).await;
    assert!(r.status.success(), "{}", r.stderr);
    assert!(
        !r.stdout.contains("screened"),
        "no_screen from the file:\n{}",
        r.stdout
    );
    assert!(r.stdout.contains("1 stored"), "{}", r.stdout);

    // The file's interval reaches `watch` (and is refused by its floor, before any poll).
    let mut c = entitywatch();
    c.args(["--config", &config, "watch", "--once"]);
    let r = run(c).await;
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("shorter than"), "{}", r.stderr);

    // ... and [list.import] source reaches `list import`.
    let mut c = entitywatch();
    c.args(["--config", &config, "list", "import"])
        .arg(fixture(EL_CSV));
    let r = run(c).await;
    assert!(!r.status.success());
    assert!(r.stderr.contains("XYZ"), "{}", r.stderr);

    let bad = write(
        &db,
        "bad.toml",
        "# entitywatch\n[run]\ninterval = \"5m\"\nslack_webhok_url = \"https://x\"\n",
    );
    let mut c = entitywatch();
    c.args(["--config", &bad, "run"]);
    let r = run(c).await;
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("line 4"), "{}", r.stderr);
    assert!(r.stderr.contains("slack_webhok_url"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// Row 14: PostgreSQL on a closed port

#[tokio::test]
async fn row14_postgres_on_a_closed_port_is_connection_refused() {
    let mut c = entitywatch();
    c.args([
        "--database-url",
        "postgres://postgres@127.0.0.1:1/entitywatch",
        "suppliers",
        "export",
    ]);
    let r = run(c).await;
    assert!(!r.status.success());
    assert!(
        r.stderr.contains("connection refused at 127.0.0.1:1"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("pool timed out"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// Row 9: a webhook that accepts but never answers

/// The three alerts of screening the scenario's suppliers against the 2022 list, sent while
/// the webhook takes every request and never answers: the alert topic and Slack get all three
/// at once, not each after the webhook's retries of the one before; and once the webhook ran
/// out of retries on the first alert, the next ones cost it one attempt each, not three.
#[tokio::test]
async fn row09_a_dead_webhook_holds_neither_slack_nor_the_alert_topic() {
    use common::receiver::{healthy, Kind, Receiver, Reply};
    use std::time::Duration;

    let db = fresh_db(Db::Sqlite).await;
    ok(
        &db,
        &["list", "import", &fixture(EL_CSV).display().to_string()],
    )
    .await;
    let slack = Receiver::start(Kind::Slack, "/services/T/B/X", healthy()).await;
    let secret = "whsec_inputs";
    let webhook = Receiver::start(
        Kind::Webhook {
            secret: secret.to_string(),
        },
        "/hooks/x",
        std::sync::Arc::new(|_, _| Reply::hang(Duration::from_secs(600))),
    )
    .await;
    let suppliers = write(&db, "s.csv", common::scenario::SUPPLIERS);
    let mut c = cmd(
        &db,
        &[
            "suppliers",
            "import",
            &suppliers,
            "--alert-timeout",
            "3s",
            "--alert-max-attempts",
            "3",
            "--alert-min-backoff",
            "1s",
        ],
    );
    c.env("ENTITYWATCH_SLACK_WEBHOOK_URL", slack.url())
        .env("ENTITYWATCH_WEBHOOK_URL", webhook.url())
        .env("ENTITYWATCH_WEBHOOK_SECRET", secret);
    let r = run(c).await;
    assert!(r.status.success(), "{}", r.stderr);

    let keys = ["S-1/listed", "S-2/listed", "S-3/listed"];
    let accepted = slack.accepted();
    assert!(
        keys.iter().all(|k| accepted.get(*k) == Some(&1)),
        "{accepted:?}\n{}",
        r.stderr
    );
    let store = Store::connect(&db.url).await.unwrap();
    let topic = store
        .read_log("entitywatch.alerts.v1", 0, i64::MAX)
        .await
        .unwrap();
    let dead = store
        .read_log("entitywatch.dead-letter.v1", 0, i64::MAX)
        .await
        .unwrap();
    store.close().await;
    assert_eq!(topic.len(), 3, "the alert topic has every alert");
    assert_eq!(
        dead.len(),
        3,
        "each webhook delivery is dead-lettered, none lost"
    );

    // Slack gets an import's alerts once the import's batch is decided (one digest, or
    // singles at or under --slack-digest-over), which is when its screening ended: after the
    // webhook gave up on its first alert (3 attempts), not after each alert's attempts. The
    // other two wait for the webhook's outbox (3 s each); Slack's three singles, a second
    // apart, are all in before the first of those ends.
    let hits = webhook.hits();
    let first = &hits[0].key;
    let given_up = hits
        .iter()
        .filter(|h| &h.key == first)
        .nth(2)
        .expect("the first alert was retried")
        .at
        + Duration::from_secs(3);
    assert!(
        slack
            .hits()
            .iter()
            .all(|h| h.at < given_up + Duration::from_secs(3)),
        "Slack waited on the webhook's retries of more than its first alert"
    );
    let mut attempts: Vec<usize> = keys.iter().map(|k| webhook.attempts(k).len()).collect();
    attempts.sort();
    assert_eq!(
        attempts,
        [1, 1, 3],
        "attempts per alert at the dead webhook"
    );
}

// ---------------------------------------------------------------------------------------------
// Row 15: a stuck watermark

/// Every request for the one rule's full text is refused (403): the poll is no success, the
/// watermark is held, and after `--ready-max-stuck` `/readyz` says so while
/// `entitywatch_watcher_stuck_since_timestamp_seconds` tells the alert rules since when.
#[tokio::test]
async fn row15_a_stuck_watermark_makes_readyz_say_so() {
    use axum::response::IntoResponse;
    use common::service::Service;
    use entitywatch::federal_register::replay::{ReplayConfig, ReplayDocument, ReplayServer};
    use std::time::Duration;

    let db = fresh_db(Db::Sqlite).await;
    let docs: Vec<ReplayDocument> = ReplayDocument::load_dir(&fixture("federal_register"))
        .unwrap()
        .into_iter()
        .filter(|d| d.metadata["document_number"] == "2019-22210")
        .collect();
    let fr = ReplayServer::start(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ReplayConfig {
            documents: docs,
            interceptor: Some(std::sync::Arc::new(|req: &axum::extract::Request| {
                req.uri()
                    .path()
                    .ends_with(".xml")
                    .then(|| (axum::http::StatusCode::FORBIDDEN, "forbidden").into_response())
            })),
            ..ReplayConfig::default()
        },
    )
    .await
    .unwrap();
    let output = db.dir.path().join("events.jsonl");
    let mut c = cmd(
        &db,
        &[
            "watch",
            "--interval",
            "1s",
            "--since",
            "2019-01-01",
            "--no-public-inspection",
        ],
    );
    c.env("ENTITYWATCH_READY_MAX_STUCK", "2s")
        .arg("--output")
        .arg(&output)
        .arg("--federal-register-url")
        .arg(fr.base_url());
    let service = Service::start(c).await;
    let mut last = (0, String::new());
    for _ in 0..60 {
        last = service.get("/readyz").await;
        if last.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let scrape = service.scrape().await;
    let (_, logs) = service.terminate(Duration::from_secs(20)).await;
    assert_eq!(last.0, 503, "/readyz stayed ready: {}\n{logs}", last.1);
    assert!(last.1.contains("watermark"), "{}", last.1);
    assert!(
        scrape.value("entitywatch_watcher_stuck_since_timestamp_seconds") > 0.0,
        "{logs}"
    );
    assert_eq!(
        scrape.value(r#"entitywatch_watcher_polls_total{outcome="success"}"#),
        0.0,
        "a poll whose every rule failed counted as a success"
    );
}
