//! A streaming `suppliers import` killed (SIGKILL) in the middle of a large import, then run
//! again, as an operator would after a crash: nothing is lost and no alert is doubled.
//!
//! The file holds 45,000 suppliers (more than four import batches), 225 of them listed names,
//! against the 2022 Entity List fixture. The first import is killed as soon as its first
//! batch is committed (its alerts being delivered, the next batch being read and screened);
//! the re-run completes. Then every supplier is stored, every planted supplier was alerted,
//! each alert is once on the alert topic and once per sink in the ledger, and the alerts are
//! exactly those of a reference import that was never killed. On SQLite and PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{entitywatch, fixture, fresh_db, run, suppliers_import, Db, TestDb};
use entitywatch::store::Store;

const ROWS: usize = 45_000;
/// Every this many rows is a listed name.
const PLANT_EVERY: usize = 200;
const LISTED: &[&str] = &[
    "Hangzhou Hikvision Digital Technology Co., Ltd.",
    "Zhejiang Dahua Technology Co., Ltd.",
    "iFLYTEK",
];

fn write_file(path: &Path) -> BTreeSet<String> {
    use std::io::Write;
    let mut planted = BTreeSet::new();
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(w, "id,name,country").unwrap();
    for i in 0..ROWS {
        let id = format!("S{i:06}");
        if i % PLANT_EVERY == 7 {
            writeln!(w, "{id},\"{}\",CN", LISTED[i / PLANT_EVERY % LISTED.len()]).unwrap();
            planted.insert(id);
        } else {
            // Words no listed name has, so that only the planted rows match.
            writeln!(w, "{id},Quillmoor Widget Works {i},DE").unwrap();
        }
    }
    w.flush().unwrap();
    planted
}

async fn import_list(db: &TestDb) {
    let mut cmd = entitywatch();
    cmd.arg("--database-url")
        .arg(&db.url)
        .args(["list", "import"])
        .arg(fixture(
            "csl/EL_only_from_watchman_consolidated_2022-05.csv",
        ));
    let r = run(cmd).await;
    assert!(r.status.success(), "{}", r.stderr);
}

/// The stored supplier count, read over a plain connection (no migrations, no write lock) while
/// the import runs; `None` while the database or its table does not exist yet.
async fn supplier_count(url: &str) -> Option<i64> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.ok()?;
    let n = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM suppliers")
        .fetch_one(&mut conn)
        .await
        .ok();
    let _ = conn.close().await;
    n
}

/// What the alerts came to: alert id → (records on the alert topic, ledger rows by sink).
struct Alerts {
    topic: BTreeMap<String, usize>,
    ledger: BTreeMap<(String, String), usize>,
    suppliers: BTreeSet<String>,
}

async fn alerts(db: &TestDb) -> Alerts {
    let store = Store::connect(&db.url).await.unwrap();
    let mut topic = BTreeMap::new();
    let mut suppliers = BTreeSet::new();
    let mut after = 0;
    loop {
        let page = store
            .read_log("entitywatch.alerts.v1", after, 1000)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        for m in &page {
            let v: serde_json::Value = serde_json::from_str(&m.payload).unwrap();
            *topic
                .entry(v["alert_id"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
            suppliers.insert(v["supplier"]["id"].as_str().unwrap().to_string());
        }
    }
    let mut ledger = BTreeMap::new();
    for d in store.deliveries().await.unwrap() {
        *ledger.entry((d.alert_id, d.sink)).or_insert(0) += 1;
    }
    store.close().await;
    Alerts {
        topic,
        ledger,
        suppliers,
    }
}

async fn killed_mid_import_loses_nothing_and_doubles_nothing(kind: Db) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("suppliers.csv");
    let planted = write_file(&file);

    // The reference: the same file imported once, never killed.
    let reference = fresh_db(kind).await;
    import_list(&reference).await;
    let r = run(suppliers_import(&reference.url, &file, &[])).await;
    assert!(r.status.success(), "{}", r.stderr);
    let expected = alerts(&reference).await;
    assert_eq!(expected.suppliers, planted, "every listed name alerted");

    let db = fresh_db(kind).await;
    import_list(&db).await;
    let mut child = suppliers_import(&db.url, &file, &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let stored_at_kill = loop {
        if let Some(n) = supplier_count(&db.url).await.filter(|n| *n > 0) {
            break n;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import finished before it could be killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no batch was ever stored"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "killed, not finished");
    let after_kill = supplier_count(&db.url).await.unwrap_or(0);
    assert!(
        (after_kill as usize) < ROWS,
        "killed mid-import: {after_kill} of {ROWS} stored"
    );
    // A batch is stored whole or not at all.
    assert_eq!(after_kill % 10_000, 0, "whole batches only: {after_kill}");
    let before_rerun = alerts(&db).await;

    let r = run(suppliers_import(&db.url, &file, &[])).await;
    assert!(r.status.success(), "{}", r.stderr);
    let after = alerts(&db).await;
    assert_eq!(
        supplier_count(&db.url).await,
        Some(ROWS as i64),
        "every supplier stored after the re-run"
    );
    assert!(
        after.topic.values().all(|n| *n == 1),
        "an alert twice on the alert topic: {:?}",
        after
            .topic
            .iter()
            .filter(|(_, n)| **n > 1)
            .collect::<Vec<_>>()
    );
    assert!(after.ledger.values().all(|n| *n == 1));
    let ids = |a: &Alerts| a.topic.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(
        ids(&after),
        ids(&expected),
        "the alerts of an import never killed"
    );
    assert_eq!(after.suppliers, planted);
    assert_eq!(
        after
            .ledger
            .keys()
            .map(|(a, _)| a.clone())
            .collect::<BTreeSet<_>>(),
        ids(&expected),
        "one delivered ledger row per alert"
    );
    eprintln!(
        "killed after {stored_at_kill} stored ({after_kill} at exit, {} alerts sent by then); \
         re-run: {} suppliers, {} alerts once each (reference {})",
        before_rerun.topic.len(),
        ROWS,
        after.topic.len(),
        expected.topic.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_import_loses_nothing_and_doubles_nothing_sqlite() {
    killed_mid_import_loses_nothing_and_doubles_nothing(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_import_loses_nothing_and_doubles_nothing_postgres() {
    killed_mid_import_loses_nothing_and_doubles_nothing(Db::Postgres).await;
}
