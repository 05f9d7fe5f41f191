//! The 84 FR 54002 scenario shared by the end-to-end tests: a supplier master with three listed
//! companies in ERP spelling and five look-alikes, the alert set it must produce, and a local
//! Slack receiver that records what it was sent.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use entitywatch::federal_register::replay::{ReplayConfig, ReplayDocument, ReplayServer};
use serde_json::Value;

use super::{fixture, run, suppliers_import, TestDb};

pub const SLACK_PATH: &str = "/services/T000/B000/XSECRETXSECRETXSECRET";

pub type Received = Arc<Mutex<Vec<Value>>>;

/// A Slack receiver that records the messages it is sent.
pub async fn slack_receiver() -> (SocketAddr, Received) {
    let (addr, received, _) = slow_slack_receiver(Duration::ZERO).await;
    (addr, received)
}

/// A Slack receiver that takes `delay` to answer each request and records the messages it
/// accepted (not one whose sender left during the delay); while the switch it returns is on,
/// it answers 500 and accepts nothing.
pub async fn slow_slack_receiver(delay: Duration) -> (SocketAddr, Received, Arc<AtomicBool>) {
    let received: Received = Arc::default();
    let failing = Arc::new(AtomicBool::new(false));
    let app = Router::new()
        .route(
            SLACK_PATH,
            post(
                move |State((r, failing)): State<(Received, Arc<AtomicBool>)>,
                      body: String| async move {
                    tokio::time::sleep(delay).await;
                    if failing.load(Ordering::SeqCst) {
                        return (StatusCode::INTERNAL_SERVER_ERROR, "down");
                    }
                    r.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                    (StatusCode::OK, "ok")
                },
            ),
        )
        .with_state((received.clone(), failing.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received, failing)
}

pub const SUPPLIERS: &str = "\
id,name,country
S-1,HANGZHOU HIKVISION DIGITAL TECHNOLOGY CO LTD,CN
S-2,\"Zhejiang Dahua Technology Co., Ltd.\",CN
S-3,\"iFlytek Co., Ltd.\",CN
L-1,Hangzhou Robam Appliances Co Ltd,CN
L-2,Dahua Logistics (Shenzhen) Co Ltd,CN
L-3,Hefei Wangjiang Road Printing Co,CN
L-4,Zhejiang Technology Institute of Economy,CN
L-5,Siemens AG,DE
";

/// (supplier id, entity key) of each alert, sorted.
pub fn pairs(alerts: &[Value]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = alerts
        .iter()
        .map(|a| {
            (
                a["supplier"]["id"].as_str().unwrap().to_string(),
                a["entry"]["entity_key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

pub fn expected() -> Vec<(String, String)> {
    [
        ("S-1", "CN/hangzhou-hikvision-digital-technology-co-ltd"),
        ("S-2", "CN/dahua-technology"),
        ("S-3", "CN/iflytek"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

/// Supplier ids named in the Slack messages (the fallback text carries the supplier id).
pub fn slack_suppliers(received: &Received) -> Vec<String> {
    let mut ids: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|m| {
            let text = m.to_string();
            ["S-1", "S-2", "S-3", "L-1", "L-2", "L-3", "L-4", "L-5"]
                .iter()
                .find(|id| text.contains(*id))
                .map(|s| s.to_string())
                .unwrap_or_else(|| format!("unknown: {text}"))
        })
        .collect();
    ids.sort();
    ids
}

/// Imports [`SUPPLIERS`] into `db` with `entitywatch suppliers import`.
pub async fn import_suppliers(db: &TestDb) {
    let csv = db.dir.path().join("suppliers.csv");
    std::fs::write(&csv, SUPPLIERS).unwrap();
    let r = run(suppliers_import(&db.url, &csv, &[])).await;
    assert!(r.status.success(), "suppliers import failed: {}", r.stderr);
}

/// A local Federal Register serving only 84 FR 54002 (FR Doc. 2019-22210).
pub async fn rule_server() -> ReplayServer {
    rules_server(&["2019-22210"]).await
}

/// A local Federal Register serving the fixture rules with these document numbers.
pub async fn rules_server(numbers: &[&str]) -> ReplayServer {
    let docs: Vec<ReplayDocument> = ReplayDocument::load_dir(&fixture("federal_register"))
        .expect("fixtures load")
        .into_iter()
        .filter(|d| numbers.iter().any(|n| d.metadata["document_number"] == *n))
        .collect();
    assert_eq!(docs.len(), numbers.len(), "fixtures {numbers:?} present");
    ReplayServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        ReplayConfig {
            documents: docs,
            ..ReplayConfig::default()
        },
    )
    .await
    .expect("replay server starts")
}
