//! Entry kinds (issue 12): a list entry carries the kind its source states (the CSL `type`
//! column), suppliers are organisations unless their record says otherwise, and a pair scores
//! by the rules of its kinds, so a person entry never alerts on a company supplier of the same
//! name. Through the binary as a user runs it, on SQLite and PostgreSQL.

use crate::common::{entitywatch, fresh_db, run, suppliers_import, Db, TestDb};
use entitywatch::outcome::DecisionKind;
use entitywatch::screening::Schema;
use entitywatch::store::Store;

/// A real CSL individual: the Foreign Sanctions Evaders row of Evren Kayakiran as the trade.gov
/// consolidated CSV (2025 layout, `watchman_cslustest_consolidated_2025.csv`) has it, with its
/// `type` column as given (`Individual`) or blanked.
fn csl_row(kind: &str) -> String {
    format!(
        "_id,source,entity_number,type,programs,name,title,addresses\n\
         7b0a1d6b,Foreign Sanctions Evaders (FSE) - Treasury Department,24134,{kind},\
         SYRIA-EO13894,Evren KAYAKIRAN,,TR\n"
    )
}

/// A company supplier that happens to bear the individual's name.
const SUPPLIERS: &str = "id,name,country\nS-1,Evren Kayakiran,TR\n";

async fn import(db: &TestDb, kind: &str) -> Vec<(String, DecisionKind)> {
    let list = db.dir.path().join("csl.csv");
    std::fs::write(&list, csl_row(kind)).unwrap();
    let mut cmd = entitywatch();
    cmd.arg("--database-url")
        .arg(&db.url)
        .args(["list", "import", "--source", "FSE"])
        .arg(&list);
    let r = run(cmd).await;
    assert!(r.status.success(), "{}", r.stderr);
    let suppliers = db.dir.path().join("suppliers.csv");
    std::fs::write(&suppliers, SUPPLIERS).unwrap();
    let r = run(suppliers_import(&db.url, &suppliers, &[])).await;
    assert!(r.status.success(), "{}", r.stderr);
    let store = Store::connect(&db.url).await.unwrap();
    let entries = store.listed_entries().await.unwrap();
    assert_eq!(entries.len(), 1);
    let expected = (!kind.is_empty()).then_some(Schema::Person);
    assert_eq!(entries[0].entry.schema, expected, "stored kind");
    let decisions = store
        .decisions()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.supplier_id, d.decision))
        .collect();
    store.close().await;
    decisions
}

async fn person_entry_never_alerts_on_a_company(kind: Db) {
    // Untyped, the same names are one party: the supplier alerts (so the test can fail).
    let db = fresh_db(kind).await;
    let untyped = import(&db, "").await;
    assert_eq!(untyped, [("S-1".to_string(), DecisionKind::Match)]);

    // Typed as the CSL states it, the individual is not the company of the same name.
    let db = fresh_db(kind).await;
    let typed = import(&db, "Individual").await;
    assert!(
        typed.iter().all(|(_, d)| *d != DecisionKind::Match),
        "{typed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn person_entry_never_alerts_on_a_company_sqlite() {
    person_entry_never_alerts_on_a_company(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn person_entry_never_alerts_on_a_company_postgres() {
    person_entry_never_alerts_on_a_company(Db::Postgres).await;
}
