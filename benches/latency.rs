//! `cargo bench --bench latency`: how long from the poll that sees a rule to the Slack
//! receiver's request, on the embedded default (SQLite file, in-process bus).
//!
//! Each run starts a fresh store with three suppliers, a local Federal Register replay serving
//! 84 FR 54002 and a local Slack receiver, then times one watcher poll followed by the worker
//! draining the change topic, as `entitywatch run` does. Prints a table with the median of the
//! runs (`BENCH_RUNS`, default 7). A benchmark driver: it may touch files and sockets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use entitywatch::alerts::{topic::AlertTopicSink, RetryPolicy, SecretUrl, SlackSink};
use entitywatch::bus::InProcessBus;
use entitywatch::federal_register::client::{ClientConfig, FederalRegisterClient};
use entitywatch::federal_register::replay::{ReplayConfig, ReplayDocument, ReplayServer};
use entitywatch::federal_register::watcher::{Watcher, WatcherConfig};
use entitywatch::store::Store;
use entitywatch::suppliers::{read_suppliers, ReadLimits};
use entitywatch::worker::Worker;

const SUPPLIERS: &str = "id,name,country\n\
S-1,HANGZHOU HIKVISION DIGITAL TECHNOLOGY CO LTD,CN\n\
S-2,\"Zhejiang Dahua Technology Co., Ltd.\",CN\n\
S-3,\"iFlytek Co., Ltd.\",CN\n";

struct Timing {
    first_alert: Duration,
    all_alerts: Duration,
}

async fn one_run(docs: Vec<ReplayDocument>) -> Timing {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("latency.db").display()
    ))
    .await
    .unwrap();
    // The whole 2022 Entity List as the snapshot, and the three suppliers among 10,000, so the
    // worker's per-event work (screener over the list, index over the suppliers) is realistic.
    let list = entitywatch::csl::read_csl_path(
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/csl/EL_only_from_watchman_consolidated_2022-05.csv"
        )),
        &entitywatch::csl::SourceFilter::default(),
    )
    .unwrap();
    store
        .replace_entity_list_snapshot(&entitywatch::csl::snapshot(&list.entries).entries)
        .await
        .unwrap();
    let mut csv = SUPPLIERS.to_string();
    let words = [
        "Northern", "Pacific", "Alpine", "Harbour", "Granite", "Meadow", "Summit",
    ];
    let trades = [
        "Logistics",
        "Foods",
        "Textiles",
        "Plastics",
        "Printing",
        "Timber",
    ];
    for i in 0..9_997 {
        csv.push_str(&format!(
            "F-{i},{} {} {} Ltd,GB\n",
            words[i % words.len()],
            words[(i / 7) % words.len()],
            trades[i % trades.len()]
        ));
    }
    let import = read_suppliers(csv.as_bytes(), ReadLimits::default()).unwrap();
    store.upsert_suppliers(&import.records).await.unwrap();

    let server = ReplayServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        ReplayConfig {
            documents: docs,
            ..ReplayConfig::default()
        },
    )
    .await
    .unwrap();
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let a = arrivals.clone();
    let app = Router::new().route(
        "/services/T/B/X",
        post(move || {
            let a = a.clone();
            async move {
                a.lock().unwrap().push(Instant::now());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slack = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let changes = InProcessBus::new(store.clone(), "entitywatch.entity-changes.v1");
    let client = FederalRegisterClient::new(ClientConfig {
        base_url: url::Url::parse(&server.base_url()).unwrap(),
        ..ClientConfig::default()
    })
    .unwrap();
    let watcher = Watcher::new(
        client,
        store.clone(),
        Arc::new(changes.clone()),
        WatcherConfig {
            public_inspection: false,
            ..WatcherConfig::default()
        },
    );
    let slack_sink =
        SlackSink::new(SecretUrl::parse(&format!("http://{slack}/services/T/B/X")).unwrap())
            .unwrap();
    let worker = Worker::new(
        store.clone(),
        vec![
            Arc::new(slack_sink),
            Arc::new(AlertTopicSink::new(InProcessBus::new(
                store.clone(),
                "entitywatch.alerts.v1",
            ))),
        ],
        Arc::new(InProcessBus::new(
            store.clone(),
            "entitywatch.dead-letter.v1",
        )),
        RetryPolicy::default(),
    );
    let consumer = changes.consumer("entitywatch-workers");

    let start = Instant::now();
    watcher
        .poll_once(chrono::NaiveDate::from_ymd_opt(2019, 1, 1))
        .await
        .unwrap();
    entitywatch::worker::consume::consume(
        &worker,
        Box::new(entitywatch::worker::consume::LogSource::new(consumer)),
        entitywatch::worker::consume::ConsumeOptions {
            until: entitywatch::worker::consume::Until::Idle,
            ..Default::default()
        },
        std::future::pending::<()>(),
    )
    .await
    .unwrap();
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 3, "expected three Slack alerts");
    store.close().await;
    Timing {
        first_alert: arrivals[0] - start,
        all_alerts: arrivals[2] - start,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let runs: usize = if std::env::args().any(|a| a == "--bench") {
        std::env::var("BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(7)
    } else {
        1 // `cargo test --all-targets`: one smoke run.
    };
    let docs: Vec<ReplayDocument> = ReplayDocument::load_dir(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/federal_register"
    )))
    .unwrap()
    .into_iter()
    .filter(|d| d.metadata["document_number"] == "2019-22210")
    .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let timings: Vec<Timing> = (0..runs)
        .map(|_| rt.block_on(one_run(docs.clone())))
        .collect();
    let fmt = |d: Duration| format!("{:.3} s", d.as_secs_f64());
    let firsts: Vec<Duration> = timings.iter().map(|t| t.first_alert).collect();
    let alls: Vec<Duration> = timings.iter().map(|t| t.all_alerts).collect();
    println!("latency: poll that sees 84 FR 54002 (27 entries) -> Slack receiver, embedded default, 10,000 suppliers, 1,970-entry list snapshot, {runs} runs");
    println!(
        "{:<40} {:>10} {:>10} {:>10}",
        "measure", "median", "min", "max"
    );
    for (name, v) in [
        ("first Slack alert", firsts),
        ("all three Slack alerts", alls),
    ] {
        println!(
            "{:<40} {:>10} {:>10} {:>10}",
            name,
            fmt(median(v.clone())),
            fmt(*v.iter().min().unwrap()),
            fmt(*v.iter().max().unwrap())
        );
    }
}
