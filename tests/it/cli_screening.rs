//! Black-box tests of the screening commands: `list import`, `suppliers import|export`,
//! `screen`, `match --pairs` and `parse`, run as a user would, on SQLite and PostgreSQL.

use crate::common::{entitywatch, fixture, fresh_db, run, suppliers_import, Db, TestDb};

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
    assert!(r.stdout.contains("1970 entries in store"), "{}", r.stdout);
}

/// A supplier master as an ERP exports it: real listed names written the ERP way, unlisted
/// companies, and rows a careless export produces.
fn supplier_csv() -> String {
    let mut s = String::from("id,name,country,address,aliases,cost_centre\n");
    s.push_str(
        "S-1,HANGZHOU HIKVISION DIGITAL TECH CO LTD,CN,\"No. 555 Qianmo Road, Hangzhou\",,4100\n",
    );
    s.push_str("S-2,Zhejiang Dahua Technology Co. Ltd.,China,,,4100\n");
    s.push_str("S-3,Siemens AG,DE,,,4200\n");
    s.push_str("S-4,,CN,,,4300\n"); // empty name
    s.push_str("S-5,Bosch GmbH,Atlantis,,,4300\n"); // unknown country
    s.push_str("S-6,\"Acme, Inc.\",US,,Acme|ACME Corp,4400\n");
    s.push_str("S-7,too,many,fields,here,x,y\n"); // wrong field count
    s.push_str("S-3,Siemens Aktiengesellschaft,DE,,,4200\n"); // duplicate id: last wins
    s
}

async fn suppliers_round_trip(kind: Db) {
    let db = fresh_db(kind).await;
    let path = db.dir.path().join("suppliers.csv");
    std::fs::write(&path, supplier_csv()).unwrap();
    let r = run(suppliers_import(&db.url, &path, &[])).await;
    assert!(r.status.success(), "{}", r.stderr);
    // Every bad row is named with its line and reason; every good row is kept.
    for (line, reason) in [
        ("line 5", "name"),
        ("line 6", "Atlantis"),
        ("line 8", "field"),
        ("line 4", "duplicate id"),
    ] {
        assert!(
            r.stderr
                .lines()
                .any(|l| l.contains(line) && l.to_lowercase().contains(&reason.to_lowercase())),
            "no error for {line} ({reason}):\n{}",
            r.stderr
        );
    }
    // An unknown country keeps its row (stored, screened without a country, with a warning).
    assert!(r.stdout.contains("5 suppliers in store"), "{}", r.stdout);

    let mut cmd = entitywatch();
    cmd.arg("--database-url")
        .arg(&db.url)
        .args(["suppliers", "export"]);
    let r = run(cmd).await;
    assert!(r.status.success(), "{}", r.stderr);
    let rows: Vec<&str> = r.stdout.lines().collect();
    assert!(rows[0].starts_with("id,name"), "{}", r.stdout);
    assert_eq!(rows.len(), 6, "{}", r.stdout);
    assert!(
        rows.iter().any(|r| r.starts_with("S-5,Bosch GmbH,,,")),
        "S-5 kept without a country: {rows:?}"
    );
    assert!(r.stdout.contains("Siemens Aktiengesellschaft"));
    assert!(!r.stdout.contains("Siemens AG,"));
    assert!(r.stdout.contains("cost_centre"), "{}", r.stdout);

    // Screening the imported list ranks the real entry first for the ERP spelling.
    import_list(&db).await;
    let mut cmd = entitywatch();
    cmd.arg("--database-url").arg(&db.url).args([
        "screen",
        "HANGZHOU HIKVISION DIGITAL TECH CO LTD",
        "--json",
    ]);
    let r = run(cmd).await;
    assert!(r.status.success(), "{}", r.stderr);
    let matches: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        matches[0]["listed_name"],
        "Hangzhou Hikvision Digital Technology Co., Ltd."
    );
    assert_eq!(matches[0]["is_match"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn suppliers_and_screen_sqlite() {
    suppliers_round_trip(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn suppliers_and_screen_postgres() {
    suppliers_round_trip(Db::Postgres).await;
}

#[tokio::test]
async fn suppliers_import_refuses_a_file_without_the_required_columns() {
    let db = fresh_db(Db::Sqlite).await;
    let path = db.dir.path().join("bad.csv");
    std::fs::write(&path, "supplier,company\n1,Acme\n").unwrap();
    let r = run(suppliers_import(&db.url, &path, &[])).await;
    assert!(!r.status.success());
    assert!(
        r.stderr.contains("id") && r.stderr.contains("name"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn match_pairs_writes_one_row_per_input_row_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairs.csv");
    std::fs::write(
        &path,
        "name1,name2,extra\n\
         HANGZHOU HIKVISION DIGITAL TECH CO LTD,\"Hangzhou Hikvision Digital Technology Co., Ltd.\",x\n\
         Harbin Institute of Technology,Harbin Engineering University,y\n\
         ,,z\n",
    )
    .unwrap();
    let mut cmd = entitywatch();
    cmd.arg("match").arg("--pairs").arg(&path);
    let r = run(cmd).await;
    assert!(r.status.success(), "{}", r.stderr);
    let mut reader = csv::Reader::from_reader(r.stdout.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["name1", "name2", "score", "is_match"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(&rows[0][0], "HANGZHOU HIKVISION DIGITAL TECH CO LTD");
    assert_eq!(&rows[0][3], "true");
    assert_eq!(&rows[1][3], "false");
    assert_eq!(&rows[2][3], "false");
    for row in &rows {
        let score: f64 = row[2].parse().unwrap();
        assert!((0.0..=1.0).contains(&score));
    }
}

#[tokio::test]
async fn parse_prints_every_change_of_a_fixture() {
    let mut cmd = entitywatch();
    cmd.arg("parse")
        .arg(fixture("federal_register/2019-22210.xml"))
        .arg("--with-document-event");
    let r = run(cmd).await;
    assert!(r.status.success(), "{}", r.stderr);
    let lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected: Vec<serde_json::Value> = serde_json::from_slice(
        &std::fs::read(fixture("federal_register/2019-22210.expected.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(lines.len(), expected.len() + 1);
    for (got, want) in lines.iter().zip(&expected) {
        for field in [
            "action",
            "name",
            "aliases",
            "addresses",
            "license_requirement",
            "license_policy",
            "federal_register_citation",
        ] {
            assert_eq!(got[field], want[field], "{field} of {}", want["name"]);
        }
        assert_eq!(got["country"], "CN");
    }
    let doc = lines.last().unwrap();
    assert_eq!(doc["change_count"], 27);
    assert!(doc["amendatory_text"][0]
        .as_str()
        .unwrap()
        .contains("Supplement No. 4 to part 744"));

    let mut cmd = entitywatch();
    cmd.arg("parse")
        .arg(fixture("federal_register/malformed.xml"));
    let r = run(cmd).await;
    assert!(!r.status.success());
    assert!(r.stderr.contains("malformed.xml"), "{}", r.stderr);

    let mut cmd = entitywatch();
    cmd.args(["--max-document-bytes", "1000", "parse"])
        .arg(fixture("federal_register/2019-22210.xml"));
    let r = run(cmd).await;
    assert!(!r.status.success());
    assert!(r.stderr.to_lowercase().contains("limit"), "{}", r.stderr);
}

/// Suppliers imported after the list are screened against the whole list at once, alerts go
/// out once, and a dismissal suppresses the pair.
#[tokio::test(flavor = "multi_thread")]
async fn imported_suppliers_are_screened_once_and_can_be_dismissed() {
    let db = fresh_db(Db::Sqlite).await;
    import_list(&db).await;
    let path = db.dir.path().join("suppliers.csv");
    std::fs::write(
        &path,
        "id,name,country\nS-1,HANGZHOU HIKVISION DIGITAL TECH CO LTD,CN\nS-2,Siemens AG,DE\n",
    )
    .unwrap();
    let import = || suppliers_import(&db.url, &path, &[]);
    let r = run(import()).await;
    assert!(r.status.success(), "{}", r.stderr);
    assert!(
        r.stdout.contains("1 matches, 1 alerts sent"),
        "{}",
        r.stdout
    );

    let r = run(import()).await;
    assert!(
        r.stdout.contains("0 alerts sent, 1 already sent"),
        "{}",
        r.stdout
    );

    let mut cmd = entitywatch();
    cmd.arg("--database-url").arg(&db.url).args([
        "review",
        "S-1",
        "CN/hangzhou-hikvision-digital-technology-co-ltd",
        "--dismiss",
        "--reason",
        "different legal entity, checked by compliance",
    ]);
    let r = run(cmd).await;
    assert!(r.status.success(), "{}", r.stderr);
    let r = run(import()).await;
    assert!(r.stdout.contains("1 dismissed"), "{}", r.stdout);

    let store = entitywatch::store::Store::connect(&db.url).await.unwrap();
    let alerts = store
        .read_log("entitywatch.alerts.v1", 0, 100)
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].payload.contains("\"S-1\""));
    store.close().await;
}
