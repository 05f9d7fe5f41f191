//! Black-box tests of `entitywatch watch --once` against the local Federal Register replay
//! server, on SQLite and on PostgreSQL.
//!
//! The server serves the rebuilt Entity List rules of tests/fixtures/federal_register over a
//! search paginated two documents a page, and misbehaves the way the real service does: the
//! second search page fails once with a 500, one rule's XML is refused once with a 429 and
//! `Retry-After: 1`, and one document's XML is malformed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::{entitywatch, fixture, fresh_db, read_events, run, watch_once, Db};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use entitywatch::federal_register::replay::{ReplayConfig, ReplayDocument, ReplayServer};
use serde_json::Value;

/// The malformed document: a real rule's metadata under its own number, with XML cut short.
const MALFORMED_NUMBER: &str = "2020-00001";

struct Faults {
    search_page_2_failures: AtomicUsize,
    throttled_xml: String,
    throttles_left: AtomicUsize,
    requests: Mutex<Vec<String>>,
}

fn documents() -> Vec<ReplayDocument> {
    let mut docs = ReplayDocument::load_dir(&fixture("federal_register")).expect("fixtures load");
    assert!(docs.len() >= 5, "expected at least five rule fixtures");
    // The malformed document reuses the first rule's metadata under another number, since no
    // real malformed rule exists; its XML is tests/fixtures/federal_register/malformed.xml.
    let mut meta = docs[0].metadata.clone();
    let date = meta["publication_date"].as_str().unwrap().to_string();
    let path_date = date.replace('-', "/");
    meta["document_number"] = MALFORMED_NUMBER.into();
    meta["full_text_xml_url"] = format!(
        "https://www.federalregister.gov/documents/full_text/xml/{path_date}/{MALFORMED_NUMBER}.xml"
    )
    .into();
    let xml = std::fs::read(fixture("federal_register/malformed.xml")).unwrap();
    docs.push(ReplayDocument {
        metadata: meta,
        xml,
    });
    docs
}

async fn start_server(faults: Arc<Faults>) -> ReplayServer {
    let f = faults.clone();
    let config = ReplayConfig {
        documents: documents(),
        page_size: 2,
        interceptor: Some(Arc::new(move |req| {
            let uri = req.uri().to_string();
            f.requests.lock().unwrap().push(uri.clone());
            let query = req.uri().query().unwrap_or("");
            if req.uri().path() == "/api/v1/documents.json"
                && query.contains("page=2")
                && f.search_page_2_failures
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            {
                return Some(
                    (StatusCode::INTERNAL_SERVER_ERROR, "upstream failure").into_response(),
                );
            }
            if req.uri().path().ends_with(&f.throttled_xml)
                && f.throttles_left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            {
                let resp: Response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "1")],
                    "slow down",
                )
                    .into_response();
                return Some(resp);
            }
            None
        })),
        ..ReplayConfig::default()
    };
    ReplayServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), config)
        .await
        .expect("replay server starts")
}

fn expected_changes() -> BTreeMap<String, Vec<Value>> {
    let mut out = BTreeMap::new();
    for doc in ReplayDocument::load_dir(&fixture("federal_register")).unwrap() {
        let number = doc.metadata["document_number"]
            .as_str()
            .unwrap()
            .to_string();
        let path = fixture(&format!("federal_register/{number}.expected.json"));
        let expected: Vec<Value> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        out.insert(number, expected);
    }
    out
}

/// The fields the fixture's expected list names, from a published entity event.
fn comparable(event: &Value) -> Value {
    serde_json::json!({
        "action": event["action"],
        "name": event["name"],
        "aliases": event["aliases"],
        "addresses": event["addresses"],
        "country": event["country_name"],
        "license_requirement": event["license_requirement"],
        "license_policy": event["license_policy"],
        "federal_register_citation": event["federal_register_citation"],
    })
}

async fn watch_once_publishes_each_rule_once(db: Db) {
    let db = fresh_db(db).await;
    let docs = documents();
    let throttled = docs[1].metadata["document_number"]
        .as_str()
        .unwrap()
        .to_string();
    let faults = Arc::new(Faults {
        search_page_2_failures: AtomicUsize::new(1),
        throttled_xml: format!("{throttled}.xml"),
        throttles_left: AtomicUsize::new(1),
        requests: Mutex::new(Vec::new()),
    });
    let server = start_server(faults.clone()).await;
    let out = db.dir.path().join("events.jsonl");

    let base = server.base_url();
    let watch = || {
        watch_once(
            &out,
            &db.url,
            &base,
            &["--since", "2019-01-01", "--no-public-inspection"],
        )
    };

    let first = run(watch()).await;
    assert!(
        first.status.success(),
        "first run failed:\n{}",
        first.stderr
    );
    let events = read_events(&out);

    // Every rule's entity changes, in document order, exactly as the fixture lists them.
    let expected = expected_changes();
    for (number, want) in &expected {
        let got: Vec<Value> = events
            .iter()
            .filter(|e| e["kind"] == "entity" && e["source"]["document_number"] == **number)
            .map(comparable)
            .collect();
        assert_eq!(&got, want, "entity events of {number}");
    }
    // One document event per document, the malformed one among them with its reason.
    let doc_events: Vec<&Value> = events.iter().filter(|e| e["kind"] == "document").collect();
    assert_eq!(
        doc_events.len(),
        expected.len() + 1,
        "one document event per rule"
    );
    let malformed = doc_events
        .iter()
        .find(|e| e["source"]["document_number"] == MALFORMED_NUMBER)
        .expect("the malformed document is still reported");
    assert!(
        malformed["warnings"][0]
            .as_str()
            .unwrap()
            .contains("unreadable"),
        "{malformed}"
    );
    let total_entities: usize = expected.values().map(Vec::len).sum();
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "entity").count(),
        total_entities,
        "no event published twice"
    );
    // Every event carries its key and schema version.
    for e in &events {
        assert_eq!(e["schema_version"], 1);
        assert!(e["key"].as_str().is_some_and(|k| !k.is_empty()));
    }
    // The log says clearly which document was unreadable and that faults were retried.
    assert!(
        first
            .stderr
            .lines()
            .any(|l| l.contains("unreadable") && l.contains(MALFORMED_NUMBER)),
        "no clear log line for the malformed document:\n{}",
        first.stderr
    );
    let requests = faults.requests.lock().unwrap().clone();
    assert!(
        requests.iter().filter(|r| r.contains("page=2")).count() >= 2,
        "the failed page was retried: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .filter(|r| r.ends_with(&format!("{throttled}.xml")))
            .count()
            >= 2,
        "the throttled document was retried: {requests:?}"
    );

    // A second run finds everything in the checkpoint and publishes nothing.
    let second = run(watch()).await;
    assert!(
        second.status.success(),
        "second run failed:\n{}",
        second.stderr
    );
    assert_eq!(
        read_events(&out).len(),
        events.len(),
        "second run published"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_once_sqlite() {
    watch_once_publishes_each_rule_once(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_once_postgres() {
    watch_once_publishes_each_rule_once(Db::Postgres).await;
}

/// A document that cannot be fetched (404 every time) is not checkpointed: the next poll
/// tries it again, and once it is served it is published.
#[tokio::test(flavor = "multi_thread")]
async fn unfetchable_rule_is_retried_on_the_next_poll() {
    let db = fresh_db(Db::Sqlite).await;
    let docs = documents();
    let missing = docs[0].metadata["document_number"]
        .as_str()
        .unwrap()
        .to_string();
    let serve = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = serve.clone();
    let m = format!("{missing}.xml");
    let config = ReplayConfig {
        documents: docs,
        interceptor: Some(Arc::new(move |req| {
            (!s.load(Ordering::SeqCst) && req.uri().path().ends_with(&m))
                .then(|| (StatusCode::NOT_FOUND, "not yet").into_response())
        })),
        ..ReplayConfig::default()
    };
    let server = ReplayServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), config)
        .await
        .unwrap();
    let out = db.dir.path().join("events.jsonl");
    let base = server.base_url();
    let watch = || {
        watch_once(
            &out,
            &db.url,
            &base,
            &["--since", "2019-01-01", "--no-public-inspection"],
        )
    };
    let first = run(watch()).await;
    assert!(first.status.success(), "{}", first.stderr);
    let of_missing = |events: &[Value]| {
        events
            .iter()
            .filter(|e| e["source"]["document_number"] == *missing)
            .count()
    };
    assert_eq!(of_missing(&read_events(&out)), 0);
    assert!(first.stderr.contains(&missing), "{}", first.stderr);

    serve.store(true, Ordering::SeqCst);
    // No --since: the checkpoint's watermark must not have passed the missing document.
    let second = run(watch_once(
        &out,
        &db.url,
        &server.base_url(),
        &["--no-public-inspection"],
    ))
    .await;
    assert!(second.status.success(), "{}", second.stderr);
    assert!(of_missing(&read_events(&out)) > 0, "{}", second.stderr);
}

/// Public-inspection filings by BIS about the Entity List are published once, as early
/// warnings.
#[tokio::test(flavor = "multi_thread")]
async fn public_inspection_filings_are_early_warnings() {
    let db = fresh_db(Db::Sqlite).await;
    let bis = serde_json::json!({
        "raw_name": "DEPARTMENT OF COMMERCE",
        "name": "Industry and Security Bureau",
        "id": 241,
        "url": "https://www.federalregister.gov/agencies/industry-and-security-bureau",
        "json_url": "https://www.federalregister.gov/api/v1/agencies/241.json",
        "parent_id": 54,
        "slug": "industry-and-security-bureau"
    });
    let filing = |number: &str, title: &str, agency: Value| {
        serde_json::json!({
            "document_number": number,
            "title": title,
            "type": "Rule",
            "filing_type": "regular",
            "filed_at": "2019-10-07T08:45:00.000-04:00",
            "publication_date": "2019-10-09",
            "pdf_url": format!("https://public-inspection.federalregister.gov/{number}.pdf"),
            "html_url": format!("https://www.federalregister.gov/public-inspection/{number}"),
            "agencies": [agency],
        })
    };
    let config = ReplayConfig {
        public_inspection: vec![
            filing(
                "2019-22210",
                "Addition of Certain Entities to the Entity List",
                bis.clone(),
            ),
            filing(
                "2019-22000",
                "Civil Monetary Penalty Adjustments",
                serde_json::json!({"raw_name": "DEPARTMENT OF JUSTICE", "name": "Justice Department", "slug": "justice-department", "id": 268, "parent_id": null}),
            ),
        ],
        ..ReplayConfig::default()
    };
    let server = ReplayServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), config)
        .await
        .unwrap();
    let out = db.dir.path().join("events.jsonl");
    for _ in 0..2 {
        let r = run(watch_once(&out, &db.url, &server.base_url(), &[])).await;
        assert!(r.status.success(), "{}", r.stderr);
    }
    let events = read_events(&out);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["stage"], "public_inspection");
    assert_eq!(events[0]["source"]["document_number"], "2019-22210");
}

/// Flags are explained, and bad configuration is refused with a clear message.
#[tokio::test]
async fn help_and_configuration_errors() {
    for args in [
        vec!["--help"],
        vec!["watch", "--help"],
        vec!["parse", "--help"],
    ] {
        let mut cmd = entitywatch();
        cmd.args(&args);
        let r = run(cmd).await;
        assert!(r.status.success());
        assert!(r.stdout.contains("Usage"), "{}", r.stdout);
    }
    let mut cmd = entitywatch();
    cmd.args(["watch", "--once", "--database-url", "mysql://x"]);
    let r = run(cmd).await;
    assert!(!r.status.success());
    assert!(r.stderr.contains("database_url"), "{}", r.stderr);
}
