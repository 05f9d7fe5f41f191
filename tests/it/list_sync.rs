//! The codified list as a source (issue 13, items 3–6): `list sync` and `run` against a local
//! eCFR/CSL replay fill and update the snapshot through change events, `list reconcile` names
//! what the rules and the list disagree on, and faults never half-apply a list. SQLite and
//! PostgreSQL where the store is involved.

use crate::common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use common::scenario::{slack_receiver, slack_suppliers, SLACK_PATH, SUPPLIERS};
use common::service::Service;
use common::{entitywatch, fixture, fresh_db, run, Db, TestDb};
use entitywatch::federal_register::replay::{
    CodifiedReplay, Interceptor, ReplayConfig, ReplayDocument, ReplayServer, CSL_BULK_PATH,
};
use entitywatch::store::Store;

const CHANGES: &str = "entitywatch.entity-changes.v1";

fn read(path: &str) -> Vec<u8> {
    std::fs::read(fixture(path)).unwrap()
}

/// The eCFR of the six fixture rules' state (2025-01-21), or its variant with Riol-Chemie
/// (2021-04505) dropped (2025-02-03), and the CSL bulk file.
fn codified(dropped: bool) -> CodifiedReplay {
    let mut supplements = BTreeMap::new();
    supplements.insert(
        "2025-01-21".to_string(),
        read("ecfr/supplement-4-part-744.xml"),
    );
    let versions = if dropped {
        supplements.insert(
            "2025-02-03".to_string(),
            read("ecfr/supplement-4-part-744.dropped.xml"),
        );
        read("ecfr/versions.dropped.json")
    } else {
        read("ecfr/versions.json")
    };
    CodifiedReplay {
        ecfr_versions: Some(versions),
        ecfr_supplements: supplements,
        csl_bulk: Some(read("csl/consolidated_bulk.json")),
    }
}

async fn server(
    documents: Vec<ReplayDocument>,
    codified: CodifiedReplay,
    interceptor: Option<Interceptor>,
) -> ReplayServer {
    ReplayServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        ReplayConfig {
            documents,
            codified,
            interceptor,
            ..ReplayConfig::default()
        },
    )
    .await
    .expect("replay starts")
}

fn rules() -> Vec<ReplayDocument> {
    ReplayDocument::load_dir(&fixture("federal_register")).expect("fixtures load")
}

async fn import_suppliers(db: &TestDb) {
    let csv = db.dir.path().join("suppliers.csv");
    std::fs::write(&csv, SUPPLIERS).unwrap();
    let mut cmd = entitywatch();
    cmd.arg("--database-url")
        .arg(&db.url)
        .args(["suppliers", "import"])
        .arg(&csv);
    let r = run(cmd).await;
    assert!(r.status.success(), "{}", r.stderr);
}

async fn list(db: &TestDb, args: &[&str], server: &ReplayServer) -> common::Run {
    let mut cmd = entitywatch();
    cmd.arg("--database-url")
        .arg(&db.url)
        .arg("list")
        .args(args)
        .arg("--ecfr-url")
        .arg(server.base_url())
        .arg("--csl-url")
        .arg(format!("{}{CSL_BULK_PATH}", server.base_url()));
    run(cmd).await
}

async fn change_count(db: &TestDb) -> usize {
    let store = Store::connect(&db.url).await.unwrap();
    let n = store.read_log(CHANGES, 0, i64::MAX).await.unwrap().len();
    store.close().await;
    n
}

/// Replays the six fixture rules through `run` (no list sync) until the worker has recorded
/// all 81 of their changes in the entry history.
async fn replay_rules(db: &TestDb, replay: &ReplayServer) {
    let store = Store::connect(&db.url).await.unwrap();
    let mut cmd = entitywatch();
    cmd.args(["run", "--interval", "1h", "--since", "2019-01-01"])
        .args(["--list-sync-interval", "0s", "--no-public-inspection"])
        .arg("--database-url")
        .arg(&db.url)
        .arg("--federal-register-url")
        .arg(replay.base_url());
    let service = Service::start(cmd).await;
    let start = std::time::Instant::now();
    loop {
        let recorded: usize = store
            .all_entry_histories()
            .await
            .unwrap()
            .values()
            .map(Vec::len)
            .sum();
        if recorded >= 81 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{recorded} of 81 changes recorded:\n{}",
            service.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, logs) = service.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{logs}");
    store.close().await;
}

/// A fresh `run` with no snapshot fills it from the eCFR and alerts the three listed suppliers
/// once; a sync of the same list publishes nothing; a list with one entry gone publishes
/// exactly one change.
async fn bootstrap_then_resync(kind: Db) {
    let db = fresh_db(kind).await;
    import_suppliers(&db).await;
    let replay = server(Vec::new(), codified(false), None).await;
    let (slack, received) = slack_receiver().await;
    let mut cmd = entitywatch();
    cmd.args(["run", "--interval", "1h", "--list-sync-interval", "24h"])
        .arg("--database-url")
        .arg(&db.url)
        .arg("--federal-register-url")
        .arg(replay.base_url())
        .arg("--ecfr-url")
        .arg(replay.base_url())
        .env(
            "ENTITYWATCH_SLACK_WEBHOOK_URL",
            format!("http://{slack}{SLACK_PATH}"),
        );
    let mut service = Service::start(cmd).await;
    service
        .wait_for_log("initial screening", Duration::from_secs(60))
        .await;
    let start = std::time::Instant::now();
    // Every one of the 75 additions screened, and the three alerts delivered.
    loop {
        let handled = service
            .scrape()
            .await
            .value("entitywatch_worker_events_total{outcome=\"processed\"}");
        if handled >= 75.0 && received.lock().unwrap().len() >= 3 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{handled} of 75 handled:\n{}",
            service.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let any duplicate arrive if it were going to.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let scrape = service.scrape().await;
    let (status, logs) = service.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{logs}");
    assert_eq!(slack_suppliers(&received), ["S-1", "S-2", "S-3"], "{logs}");
    assert_eq!(
        scrape.value("entitywatch_list_syncs_total{outcome=\"changed\"}"),
        1.0
    );
    // Nothing a rule made yet, so all of it is unexplained, and nothing is unreflected.
    assert_eq!(scrape.value("entitywatch_list_unexplained_entries"), 75.0);
    assert_eq!(
        scrape.value("entitywatch_list_unreflected_rule_entries"),
        0.0
    );

    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(store.listed_entry_count().await.unwrap(), 75);
    let alerts = store
        .read_log("entitywatch.alerts.v1", 0, 1000)
        .await
        .unwrap();
    assert_eq!(alerts.len(), 3);
    for a in &alerts {
        let v: serde_json::Value = serde_json::from_str(&a.payload).unwrap();
        assert_eq!(v["kind"], "listed");
        assert_eq!(v["entry"]["document_number"], "ecfr-2025-01-21");
    }
    store.close().await;

    let before = change_count(&db).await;
    assert_eq!(before, 75);
    let r = list(&db, &["sync"], &replay).await;
    assert!(r.status.success(), "{}", r.stderr);
    assert!(
        r.stdout
            .contains("unchanged; 0 added, 0 revised, 0 removed"),
        "{}",
        r.stdout
    );
    assert_eq!(
        change_count(&db).await,
        before,
        "an unchanged list published"
    );

    let changed = server(Vec::new(), codified(true), None).await;
    let r = list(&db, &["sync"], &changed).await;
    assert!(r.status.success(), "{}", r.stderr);
    assert!(
        r.stdout
            .contains("ecfr-2025-02-03: changed; 0 added, 0 revised, 1 removed"),
        "{}",
        r.stdout
    );
    assert_eq!(change_count(&db).await, before + 1);
}

#[tokio::test]
async fn bootstrap_then_resync_sqlite() {
    bootstrap_then_resync(Db::Sqlite).await;
}

#[tokio::test]
async fn bootstrap_then_resync_postgres() {
    bootstrap_then_resync(Db::Postgres).await;
}

/// The CSL is fetched conditionally: the second sync sends the ETag, gets a 304 and publishes
/// nothing.
async fn csl_sync_honours_304(kind: Db) {
    let db = fresh_db(kind).await;
    let conditional = Arc::new(AtomicUsize::new(0));
    let seen = conditional.clone();
    let interceptor: Interceptor = Arc::new(move |req| {
        if req.uri().path() == CSL_BULK_PATH && req.headers().contains_key(header::IF_NONE_MATCH) {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        None
    });
    let replay = server(Vec::new(), codified(false), Some(interceptor)).await;
    let r = list(&db, &["sync", "--from", "csl"], &replay).await;
    assert!(r.status.success(), "{}", r.stderr);
    assert!(r.stdout.contains("changed; 75 added"), "{}", r.stdout);
    assert_eq!(change_count(&db).await, 75);
    let r = list(&db, &["sync", "--from", "csl"], &replay).await;
    assert!(r.status.success(), "{}", r.stderr);
    assert!(
        r.stdout.contains("(not modified): unchanged"),
        "{}",
        r.stdout
    );
    assert_eq!(conditional.load(Ordering::SeqCst), 1);
    assert_eq!(change_count(&db).await, 75);
}

#[tokio::test]
async fn csl_sync_honours_304_sqlite() {
    csl_sync_honours_304(Db::Sqlite).await;
}

#[tokio::test]
async fn csl_sync_honours_304_postgres() {
    csl_sync_honours_304(Db::Postgres).await;
}

/// The six rules replayed, then reconciled: the agreeing list explains everything; the list
/// without Riol-Chemie names it and its rule, and a running service's gauge shows 1.
async fn reconcile_replayed_history(kind: Db) {
    let db = fresh_db(kind).await;
    let replay = server(rules(), codified(false), None).await;
    replay_rules(&db, &replay).await;

    let r = list(&db, &["reconcile"], &replay).await;
    assert!(r.status.success(), "{}", r.stderr);
    assert!(
        r.stdout
            .contains("75 codified entries; 0 unexplained, 0 unreflected"),
        "{}",
        r.stdout
    );

    let dropped = server(Vec::new(), codified(true), None).await;
    let r = list(&db, &["reconcile", "--json"], &dropped).await;
    assert!(r.status.success(), "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["source"], "ecfr-2025-02-03");
    let unreflected = report["unreflected"].as_array().unwrap();
    assert_eq!(unreflected.len(), 1, "{}", r.stdout);
    assert_eq!(unreflected[0]["name"], "Riol-Chemie");
    assert_eq!(unreflected[0]["document_number"], "2021-04505");
    assert_eq!(unreflected[0]["action"], "added");
    assert_eq!(report["unexplained"].as_array().unwrap().len(), 0);

    let mut cmd = entitywatch();
    cmd.args(["run", "--interval", "1h", "--list-sync-interval", "24h"])
        .arg("--database-url")
        .arg(&db.url)
        .arg("--federal-register-url")
        .arg(dropped.base_url())
        .arg("--ecfr-url")
        .arg(dropped.base_url());
    let mut service = Service::start(cmd).await;
    service
        .wait_for_log("list reconciled", Duration::from_secs(60))
        .await;
    let scrape = service.scrape().await;
    let (status, logs) = service.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{logs}");
    assert_eq!(
        scrape.value("entitywatch_list_unreflected_rule_entries"),
        1.0,
        "{logs}"
    );
    assert!(
        logs.contains("a rule's change is not in the codified list"),
        "{logs}"
    );
}

#[tokio::test]
async fn reconcile_replayed_history_sqlite() {
    reconcile_replayed_history(Db::Sqlite).await;
}

#[tokio::test]
async fn reconcile_replayed_history_postgres() {
    reconcile_replayed_history(Db::Postgres).await;
}

/// eCFR 503 with Retry-After while it processes the title: retried, then synced.
#[tokio::test]
async fn ecfr_503_with_retry_after_is_retried() {
    let db = fresh_db(Db::Sqlite).await;
    let refusals = Arc::new(AtomicUsize::new(0));
    let count = refusals.clone();
    let interceptor: Interceptor = Arc::new(move |req| {
        if req.uri().path().starts_with("/api/versioner/v1/full/")
            && count.fetch_add(1, Ordering::SeqCst) < 2
        {
            return Some(
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "1")],
                    r#"{"error":"Title 15 is being processed"}"#,
                )
                    .into_response(),
            );
        }
        None
    });
    let replay = server(Vec::new(), codified(false), Some(interceptor)).await;
    let r = list(&db, &["sync"], &replay).await;
    assert!(r.status.success(), "{}", r.stderr);
    assert_eq!(refusals.load(Ordering::SeqCst), 3);
    assert_eq!(
        r.stderr
            .matches("list source request failed; retrying")
            .count(),
        2,
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("changed; 75 added"), "{}", r.stdout);
}

/// Truncated XML, a file over the size limit and a CSL redirected to another host: the sync
/// fails, publishes nothing, and a running service keeps running.
async fn faults_publish_nothing(kind: Db) {
    let db = fresh_db(kind).await;
    let xml = read("ecfr/supplement-4-part-744.xml");
    let cut = xml[..xml.len() / 2].to_vec();
    let interceptor: Interceptor = Arc::new(move |req| {
        let path = req.uri().path();
        if path.starts_with("/api/versioner/v1/full/") {
            return Some(
                ([(header::CONTENT_TYPE, "application/xml")], cut.clone()).into_response(),
            );
        }
        if path == CSL_BULK_PATH {
            return Some(
                (
                    StatusCode::FOUND,
                    [(
                        header::LOCATION,
                        "http://csl.example.invalid/consolidated.json",
                    )],
                    "",
                )
                    .into_response(),
            );
        }
        None
    });
    let broken = server(Vec::new(), codified(false), Some(interceptor)).await;
    let r = list(&db, &["sync"], &broken).await;
    assert!(
        !r.status.success(),
        "truncated XML was synced: {}",
        r.stdout
    );
    assert!(r.stderr.contains("not well-formed XML"), "{}", r.stderr);
    let r = list(&db, &["sync", "--from", "csl"], &broken).await;
    assert!(
        !r.status.success(),
        "a foreign CSL was synced: {}",
        r.stdout
    );
    assert!(r.stderr.contains("csl.example.invalid"), "{}", r.stderr);
    assert!(r.stderr.contains("refusing to fetch"), "{}", r.stderr);

    let good = server(Vec::new(), codified(false), None).await;
    let mut cmd = entitywatch();
    cmd.arg("--max-document-bytes").arg("20000");
    cmd.arg("--database-url")
        .arg(&db.url)
        .args(["list", "sync", "--ecfr-url"])
        .arg(good.base_url());
    let r = run(cmd).await;
    assert!(
        !r.status.success(),
        "an oversized file was synced: {}",
        r.stdout
    );
    assert!(r.stderr.contains("larger than 20000 bytes"), "{}", r.stderr);
    assert_eq!(change_count(&db).await, 0, "a failed sync published");

    // The service keeps running through a failed sync, and the failure is counted.
    let mut cmd = entitywatch();
    cmd.args(["run", "--interval", "1h", "--list-sync-interval", "24h"])
        .arg("--database-url")
        .arg(&db.url)
        .arg("--federal-register-url")
        .arg(broken.base_url())
        .arg("--ecfr-url")
        .arg(broken.base_url());
    let mut service = Service::start(cmd).await;
    service
        .wait_for_log("initial screening postponed", Duration::from_secs(60))
        .await;
    let (code, _) = service.get("/healthz").await;
    assert_eq!(code, 200);
    let scrape = service.scrape().await;
    // The bootstrap's attempt, and perhaps already the interval loop's retry.
    assert!(scrape.value("entitywatch_list_syncs_total{outcome=\"failed\"}") >= 1.0);
    let (status, logs) = service.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{logs}");
    assert_eq!(change_count(&db).await, 0, "a failed sync published");
}

#[tokio::test]
async fn faults_publish_nothing_sqlite() {
    faults_publish_nothing(Db::Sqlite).await;
}

#[tokio::test]
async fn faults_publish_nothing_postgres() {
    faults_publish_nothing(Db::Postgres).await;
}

/// Issue 13 item 2 acceptance: the 2022 CSL snapshot imported, a supplier alerted on the BARC
/// entry (its CSL name carries the bracketed alias), then a rule that revises (renaming) one
/// imported entry and removes BARC: one entry revised, one removed, the supplier gets a
/// `cleared` notice, and no entry is stored twice.
async fn a_rule_revises_and_removes_imported_entries(kind: Db) {
    let db = fresh_db(kind).await;
    let mut cmd = entitywatch();
    cmd.arg("--database-url")
        .arg(&db.url)
        .args(["list", "import"])
        .arg(fixture(
            "csl/EL_only_from_watchman_consolidated_2022-05.csv",
        ));
    let r = run(cmd).await;
    assert!(r.status.success(), "{}", r.stderr);
    let csv = db.dir.path().join("suppliers.csv");
    std::fs::write(
        &csv,
        "id,name,country\nS-BARC,Department of Atomic Energy Bhabha Atomic Research Center,IN\n\
         L-1,Hangzhou Robam Appliances Co Ltd,CN\n",
    )
    .unwrap();
    let mut cmd = entitywatch();
    cmd.arg("--database-url")
        .arg(&db.url)
        .args(["suppliers", "import"])
        .arg(&csv);
    assert!(run(cmd).await.status.success());
    let mut cmd = entitywatch();
    cmd.arg("--database-url").arg(&db.url).arg("rescreen");
    let r = run(cmd).await;
    assert!(r.status.success(), "{}", r.stderr);

    let store = Store::connect(&db.url).await.unwrap();
    let before = store.listed_entry_count().await.unwrap();
    let barc = entitywatch::events::EntityKey::parse(
        "IN/department-of-atomic-energy-entity-bhabha-atomic-research-center",
    )
    .unwrap();
    assert!(
        store.listed_entry(&barc).await.unwrap().is_some(),
        "BARC imported under its key"
    );
    assert_eq!(
        store.suppliers_alerted_on(barc.as_str()).await.unwrap(),
        ["S-BARC"]
    );

    let docs = ReplayDocument::load_dir(&fixture("federal_register_identity")).unwrap();
    assert_eq!(docs.len(), 1);
    let replay = server(docs, CodifiedReplay::default(), None).await;
    let mut cmd = entitywatch();
    cmd.args(["run", "--interval", "1h", "--since", "2025-01-01"])
        .args(["--list-sync-interval", "0s", "--no-public-inspection"])
        .arg("--database-url")
        .arg(&db.url)
        .arg("--federal-register-url")
        .arg(replay.base_url());
    let service = Service::start(cmd).await;
    let start = std::time::Instant::now();
    while store
        .all_entry_histories()
        .await
        .unwrap()
        .values()
        .map(Vec::len)
        .sum::<usize>()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{}",
            service.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, logs) = service.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{logs}");

    let histories = store.all_entry_histories().await.unwrap();
    let mut actions: Vec<(String, String, String)> = histories
        .iter()
        .flat_map(|(k, h)| {
            h.iter()
                .map(move |r| (k.clone(), r.action.clone(), r.matched_by.clone()))
        })
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            (
                "IN/department-of-atomic-energy-entity-bhabha-atomic-research-center".to_string(),
                "removed".to_string(),
                "key".to_string()
            ),
            (
                "IN/department-of-atomic-energy-facilities-nuclear-reactors-including-power-plants-not-under-international-atomic-energy-agency-iaea-safeguards".to_string(),
                "revised".to_string(),
                "key".to_string()
            ),
        ],
        "{logs}"
    );
    // The rename moved the imported row; the removal took one: one fewer, nothing doubled.
    assert_eq!(store.listed_entry_count().await.unwrap(), before - 1);
    let current = store.listed_entries().await.unwrap();
    let named = |needle: &str| {
        current
            .iter()
            .filter(|e| e.entry.name.as_str().contains(needle))
            .count()
    };
    assert_eq!(
        named("Department of Atomic Energy entity: Nuclear reactors"),
        0
    );
    assert_eq!(
        named("Department of Atomic Energy facilities: Nuclear reactors"),
        1
    );
    assert_eq!(named("Bhabha"), 0);
    let revised = current
        .iter()
        .find(|e| {
            e.entry
                .name
                .as_str()
                .contains("Atomic Energy facilities: Nuclear reactors")
        })
        .unwrap();
    assert_eq!(revised.version, 2);
    assert_eq!(revised.last_document.as_deref(), Some("2025-99001"));

    let cleared: Vec<serde_json::Value> = store
        .read_log("entitywatch.alerts.v1", 0, i64::MAX)
        .await
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(&m.payload).unwrap())
        .filter(|a: &serde_json::Value| a["kind"] == "cleared")
        .collect();
    assert_eq!(cleared.len(), 1, "{cleared:#?}");
    assert_eq!(cleared[0]["supplier"]["id"], "S-BARC");
    assert_eq!(cleared[0]["entry"]["document_number"], "2025-99001");
    store.close().await;
}

#[tokio::test]
async fn a_rule_revises_and_removes_imported_entries_sqlite() {
    a_rule_revises_and_removes_imported_entries(Db::Sqlite).await;
}

#[tokio::test]
async fn a_rule_revises_and_removes_imported_entries_postgres() {
    a_rule_revises_and_removes_imported_entries(Db::Postgres).await;
}

/// The reduced identity rule parses to exactly its expected changes (the parse fixture test
/// reads only `federal_register/`, whose six rules other tests count).
#[tokio::test]
async fn the_identity_rule_fixture_parses_to_its_expected_changes() {
    let mut cmd = entitywatch();
    cmd.arg("parse")
        .arg(fixture("federal_register_identity/2025-99001.xml"));
    let r = run(cmd).await;
    assert!(r.status.success(), "{}", r.stderr);
    let fields = [
        "action",
        "name",
        "aliases",
        "addresses",
        "license_requirement",
        "license_policy",
        "federal_register_citation",
    ];
    let parsed: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let mut o = serde_json::Map::new();
            for f in fields {
                o.insert(f.into(), v[f].clone());
            }
            o.insert("country".into(), v["country_name"].clone());
            serde_json::Value::Object(o)
        })
        .collect();
    let expected: Vec<serde_json::Value> =
        serde_json::from_slice(&read("federal_register_identity/2025-99001.expected.json"))
            .unwrap();
    assert_eq!(parsed, expected);
}
