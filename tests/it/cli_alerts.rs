//! Issue 15, item 3: alerts and the audit trail on the command line, on SQLite and PostgreSQL.
//!
//! The 2022 Entity List is imported and the scenario's suppliers screened against it (three
//! alerts: Hikvision, Dahua, iFlytek); then `alerts list|show|review` and `audit export` are
//! run as a user would, and what they print is checked against the store.

use serde_json::Value;

use crate::common::{self, entitywatch, fixture, fresh_db, run, Db, Run, TestDb};
use entitywatch::store::Store;

const EL_CSV: &str = "csl/EL_only_from_watchman_consolidated_2022-05.csv";

fn cmd(db: &TestDb, args: &[&str]) -> tokio::process::Command {
    let mut c = entitywatch();
    c.arg("--database-url").arg(&db.url).args(args);
    c
}

async fn ok(db: &TestDb, args: &[&str]) -> Run {
    let r = run(cmd(db, args)).await;
    assert!(r.status.success(), "{args:?}: {}\n{}", r.status, r.stderr);
    r
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

async fn alerts(db: &TestDb, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["alerts", "list", "--json"];
    args.extend_from_slice(extra);
    json_lines(&ok(db, &args).await.stdout)
}

async fn screened(kind: Db) -> TestDb {
    let db = fresh_db(kind).await;
    ok(
        &db,
        &["list", "import", &fixture(EL_CSV).display().to_string()],
    )
    .await;
    let path = db.dir.path().join("suppliers.csv");
    std::fs::write(&path, common::scenario::SUPPLIERS).unwrap();
    ok(&db, &["suppliers", "import", &path.display().to_string()]).await;
    db
}

on_both!(alerts_are_listed_reviewed_and_audited);

async fn alerts_are_listed_reviewed_and_audited(kind: Db) {
    let db = screened(kind).await;
    let all = alerts(&db, &[]).await;
    let mut suppliers: Vec<&str> = all
        .iter()
        .map(|a| a["supplier"]["id"].as_str().unwrap())
        .collect();
    suppliers.sort();
    assert_eq!(suppliers, ["S-1", "S-2", "S-3"], "{all:#?}");
    assert!(all
        .iter()
        .all(|a| a["status"] == "open" && a["kind"] == "listed"));
    let table = ok(&db, &["alerts", "list"]).await.stdout;
    assert_eq!(
        table.lines().count(),
        4,
        "a header and three rows:\n{table}"
    );
    assert!(
        table.contains("HANGZHOU HIKVISION") && table.contains("open"),
        "{table}"
    );

    let dahua = all.iter().find(|a| a["supplier"]["id"] == "S-2").unwrap();
    let id = dahua["alert_id"].as_str().unwrap().to_string();
    let entity = dahua["entry"]["entity_key"].as_str().unwrap().to_string();
    let version = dahua["entry"]["version"].as_i64().unwrap();

    // A dismissal, by the short id the logs and Slack show.
    let r = ok(
        &db,
        &[
            "alerts",
            "review",
            &id[..12],
            "--dismiss",
            "--reason",
            "a logistics firm of the \
             same name",
            "--reviewer",
            "ana",
        ],
    )
    .await;
    assert!(r.stdout.contains("dismissed S-2"), "{}", r.stdout);
    assert_eq!(alerts(&db, &["--status", "open"]).await.len(), 2);
    let dismissed = alerts(&db, &["--status", "dismissed"]).await;
    assert_eq!(dismissed.len(), 1);
    assert_eq!(dismissed[0]["alert_id"], id.as_str());
    let store = Store::connect(&db.url).await.unwrap();
    assert!(
        store.is_dismissed("S-2", &entity, version).await.unwrap(),
        "screening stays quiet about the dismissed pair"
    );
    store.close().await;

    // Escalated after all: the dismissal of the pair is lifted, the latest review decides.
    ok(
        &db,
        &[
            "alerts",
            "review",
            &id,
            "--escalate",
            "--reason",
            "same address as the listing",
            "--reviewer",
            "bo",
        ],
    )
    .await;
    assert_eq!(alerts(&db, &["--status", "escalated"]).await.len(), 1);
    let store = Store::connect(&db.url).await.unwrap();
    assert!(!store.is_dismissed("S-2", &entity, version).await.unwrap());
    store.close().await;

    let shown: Value =
        serde_json::from_str(&ok(&db, &["alerts", "show", &id, "--json"]).await.stdout).unwrap();
    assert_eq!(shown["status"], "escalated");
    let reviews = shown["reviews"].as_array().unwrap();
    assert_eq!(reviews.len(), 2);
    assert_eq!(
        (
            reviews[0]["decision"].as_str(),
            reviews[0]["reviewer"].as_str()
        ),
        (Some("dismiss"), Some("ana"))
    );
    assert_eq!(reviews[1]["decision"], "escalate");
    assert!(
        shown["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["sink"] == "alert-topic" && d["state"] == "delivered"),
        "{shown:#}"
    );
    let text = ok(&db, &["alerts", "show", &id]).await.stdout;
    assert!(
        text.contains("review    dismiss by ana") && text.contains("84 FR 54002"),
        "{text}"
    );

    // The audit trail: every decision, then the two reviews, in time order.
    let audit = json_lines(
        &ok(&db, &["audit", "export", "--format", "jsonl"])
            .await
            .stdout,
    );
    let store = Store::connect(&db.url).await.unwrap();
    let decisions = store.decisions().await.unwrap().len();
    store.close().await;
    assert_eq!(audit.len(), decisions + 2, "{audit:#?}");
    assert!(decisions >= 3);
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = audit
        .iter()
        .map(|r| chrono::DateTime::parse_from_rfc3339(r["at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "in time order: {times:?}"
    );
    let last: Vec<(&str, &str)> = audit[audit.len() - 2..]
        .iter()
        .map(|r| {
            (
                r["record"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(last, [("review", "dismiss"), ("review", "escalate")]);
    assert_eq!(audit.last().unwrap()["reviewer"], "bo");
    let csv_out = ok(&db, &["audit", "export", "--format", "csv"])
        .await
        .stdout;
    let mut reader = csv::Reader::from_reader(csv_out.as_bytes());
    assert_eq!(&reader.headers().unwrap()[0], "at");
    assert_eq!(reader.records().count(), decisions + 2);
    let future = ok(&db, &["audit", "export", "--since", "2999-01-01"]).await;
    assert!(future.stdout.is_empty(), "{}", future.stdout);

    // Mistakes are named, and change nothing.
    let r = run(cmd(
        &db,
        &[
            "alerts",
            "review",
            "0000000000ff",
            "--confirm",
            "--reason",
            "x",
        ],
    ))
    .await;
    assert_eq!(r.status.code(), Some(1));
    assert!(
        r.stderr.contains("no alert with id \"0000000000ff\""),
        "{}",
        r.stderr
    );
    let r = run(cmd(
        &db,
        &["alerts", "review", &id, "--confirm", "--reason", "  "],
    ))
    .await;
    assert_eq!(r.status.code(), Some(1));
    assert!(r.stderr.contains("--reason must say why"), "{}", r.stderr);
    let r = run(cmd(&db, &["alerts", "review", &id, "--reason", "x"])).await;
    assert_eq!(
        r.status.code(),
        Some(2),
        "a decision is required: {}",
        r.stderr
    );
    let r = run(cmd(&db, &["alerts", "list", "--status", "closed"])).await;
    assert_eq!(r.status.code(), Some(2));
    assert!(
        r.stderr.contains("unknown alert status \"closed\""),
        "{}",
        r.stderr
    );
    let r = run(cmd(&db, &["audit", "export", "--since", "last week"])).await;
    assert_eq!(r.status.code(), Some(2));
    assert!(r.stderr.contains("neither a date"), "{}", r.stderr);
    assert_eq!(alerts(&db, &["--status", "escalated"]).await.len(), 1);
}
