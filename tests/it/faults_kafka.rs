//! Fault tests of the Kafka deployment (issue 6, items 1, 2 and 5), black-box: the real
//! `entitywatch` binary (`watch`, `work`) against a real Kafka-protocol broker (a private tansu
//! per test, see `common::broker`), PostgreSQL, the local Federal Register replay serving
//! 84 FR 54002 and local Slack and signed-webhook receivers.
//!
//! 1. `broker_restarts_lose_and_double_nothing`: the broker is stopped while the watcher
//!    publishes the rule, and killed for 12 s while two workers are half-way through it with
//!    alerts in flight; every change event arrives and is handled, every expected alert is
//!    emitted exactly once (alert topic, Slack, webhook).
//! 2. `sigkilled_worker_is_taken_over_exactly_once`: one of two `work` processes of the group is
//!    SIGKILLed while its Slack post is in flight; the group (survivor plus a replacement
//!    process) finishes the batch and no alert is lost or doubled.
//! 3. `two_workers_on_the_same_events_send_each_alert_once`: the race a rebalance can make
//!    (the same events in two workers' hands at once), forced with two workers of the library
//!    on one PostgreSQL store: each change applied once, each alert sent once.
//! 4. `poison_change_events_are_dead_lettered_and_passed`: malformed change events (invalid
//!    JSON, unknown schema version, unknown type, ...) ahead of good ones on the same
//!    partitions are dead-lettered with their reason, the group's offsets move past them and
//!    the good events still alert.
//!
//! Every test gets its own broker because the binary uses the default topic and group names;
//! it would otherwise share them with other tests on the shared broker. Every wait is bounded
//! and fails with the processes' logs; each test prints one summary line on stderr (`fault:
//! ...`), before its assertions.
//!
//! "Accepted" at a receiver means the receiver answered 200 to a live client. A request whose
//! client died before the answer (a SIGKILLed worker) is counted as abandoned: the sender never
//! learnt it was delivered, so sending it again is the promise, not a duplicate. A duplicate is
//! the same alert accepted twice.
//!
//! For a look after a run: `ENTITYWATCH_TEST_KEEP_LOGS=1` keeps the logs and the broker's
//! storage, `ENTITYWATCH_TEST_RDKAFKA_DEBUG=cgrp,fetch` adds librdkafka's debug contexts to the
//! worker logs, `ENTITYWATCH_TEST_TANSU_LOG=info` sets the broker's log filter.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::broker::PrivateBroker;
use crate::common::scenario::{expected, pairs, SUPPLIERS};
use crate::common::wait::{bounded, poll_until, wait_until};
use crate::common::{fixture, fresh_db, Db, TestDb};
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use entitywatch::alerts::webhook::{DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use entitywatch::bus::kafka::WORKER_GROUP;
use entitywatch::bus::kafka::{
    KafkaConsumer, KafkaProducer, KafkaSettings, OutgoingRecord, ReceivedMessage, ALERTS_TOPIC,
    DEAD_LETTER_TOPIC, ENTITY_CHANGES_TOPIC,
};
use entitywatch::dead_letter::DEAD_LETTER_REASON_HEADER;
use entitywatch::federal_register::replay::{
    ReplayConfig, ReplayDocument, ReplayServer, OFFICIAL_BASE,
};
use entitywatch::store::Store;
use entitywatch::suppliers::{read_suppliers, ReadLimits};
use serde_json::Value;

const DOCUMENT: &str = "2019-22210";
/// 27 entity changes and one document event.
const RULE_EVENTS: usize = 28;
const ENTITY_CHANGES: u64 = 27;
const WEBHOOK_SECRET: &str = "fault-test-webhook-secret";
/// What a worker logs when another holds the claim on an alert it is about to send, and when
/// it takes a claim over (released, or its lease ran out).
const CLAIM_WAIT: &str = "waiting for it instead of sending too";
const CLAIM_TAKEN: &str = "delivery claim taken over";
const OUTBOX_ADOPTED: &str = "adopting an alert another worker parked and left";

/// With [`Session::Short`], a dead member leaves the group after 6 s instead of librdkafka's
/// 45 s, so a takeover fits in the test's time budget; passed to the binary through the
/// librdkafka pass-through variables.
const GROUP_ENV: [(&str, &str); 2] = [
    ("ENTITYWATCH_KAFKA__session.timeout.ms", "6000"),
    ("ENTITYWATCH_KAFKA__heartbeat.interval.ms", "1000"),
];

// ---------------------------------------------------------------------------------------------
// Processes and their logs
// ---------------------------------------------------------------------------------------------

/// Log files of everything a test started, for failure messages.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<(String, PathBuf)>>>);

impl Logs {
    fn add(&self, name: &str, path: PathBuf) {
        self.0.lock().unwrap().push((name.to_string(), path));
    }

    /// Every line of every log that contains `needle`, prefixed with the log's name.
    fn grep(&self, needle: &str) -> String {
        let mut out = String::new();
        for (name, path) in self.0.lock().unwrap().iter() {
            for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
                if line.contains(needle) {
                    out.push_str(&format!("{name}: {line}\n"));
                }
            }
        }
        out
    }

    /// The last lines of every log.
    fn tails(&self) -> String {
        let mut out = String::new();
        for (name, path) in self.0.lock().unwrap().iter() {
            out.push_str(&format!(
                "\n----- last lines of {name} ({}) -----\n",
                path.display()
            ));
            out.push_str(&tail(path, 25));
        }
        out
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One `entitywatch` process with its stdout and stderr in a log file.
struct Proc {
    name: String,
    child: tokio::process::Child,
    log: PathBuf,
    /// Where its /metrics endpoint listens (the `--http-addr` it was given).
    http: Option<std::net::SocketAddr>,
}

impl Proc {
    fn spawn(name: &str, dir: &Path, logs: &Logs, args: &[String], env: &[(&str, &str)]) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = common::entitywatch();
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file);
        // Plain text in the log files (tracing-subscriber honours NO_COLOR).
        cmd.env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("the entitywatch binary starts");
        logs.add(name, log.clone());
        let http = args
            .iter()
            .position(|a| a == "--http-addr")
            .and_then(|i| args.get(i + 1))
            .and_then(|a| a.parse().ok());
        Proc {
            name: name.to_string(),
            child,
            log,
            http,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until the log contains `needle`.
    async fn wait_log(&mut self, needle: &str, max: Duration, logs: &Logs) {
        let started = Instant::now();
        while !self.log_text().contains(needle) {
            if !self.alive() {
                panic!(
                    "{} exited before logging {needle:?}: {:?}{}",
                    self.name,
                    self.child.try_wait(),
                    logs.tails()
                );
            }
            if started.elapsed() > max {
                panic!(
                    "{} did not log {needle:?} within {max:?}{}",
                    self.name,
                    logs.tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Scrapes the process's /metrics, at the address it was given.
    async fn scrape(&self) -> common::service::Scrape {
        let addr = self
            .http
            .unwrap_or_else(|| panic!("{} was started without --http-addr", self.name));
        let body = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("/metrics answers")
            .text()
            .await
            .expect("/metrics body");
        common::service::Scrape::parse(&body)
    }

    /// SIGKILL: no shutdown path runs, nothing is committed.
    async fn sigkill(&mut self) {
        self.child.start_kill().expect("SIGKILL delivered");
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// SIGTERM, then the exit status (the graceful path: finish, commit, leave the group).
    async fn sigterm(&mut self, max: Duration, logs: &Logs) -> std::process::ExitStatus {
        let pid = self.child.id().expect("the process is running");
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        match tokio::time::timeout(max, self.child.wait()).await {
            Ok(status) => status.expect("exit status"),
            Err(_) => panic!(
                "{} did not stop within {max:?} of SIGTERM{}",
                self.name,
                logs.tails()
            ),
        }
    }
}

fn worker_args(name: &str, broker: &PrivateBroker, db: &TestDb, rx: &Receivers) -> Vec<String> {
    [
        "work",
        "--kafka-brokers",
        &broker.brokers(),
        "--database-url",
        &db.url,
        // The metrics/health endpoint on a free port: parallel processes would collide on the
        // default 127.0.0.1:8080.
        "--http-addr",
        &common::service::free_http_addr().to_string(),
        "--slack-webhook-url",
        &rx.slack_url(name),
        "--webhook-url",
        &rx.webhook_url(name),
        // A SIGKILLed worker's claim on the alert it was sending runs out after this, and the
        // group sends the alert again; 10 s instead of the default 30 s keeps the test short.
        "--alert-claim-lease",
        "10s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The consumer-group session a worker runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Session {
    /// What a deployment gets without tuning (librdkafka's 45 s session timeout).
    Default,
    /// 6 s, see [`GROUP_ENV`].
    Short,
}

fn spawn_worker(
    name: &str,
    session: Session,
    dir: &Path,
    logs: &Logs,
    broker: &PrivateBroker,
    db: &TestDb,
    rx: &Receivers,
) -> Proc {
    let mut env: Vec<(&str, String)> = Vec::new();
    if session == Session::Short {
        env.extend(GROUP_ENV.iter().map(|(k, v)| (*k, v.to_string())));
    }
    env.push(("ENTITYWATCH_WEBHOOK_SECRET", WEBHOOK_SECRET.to_string()));
    // librdkafka's own debug contexts (e.g. `cgrp,fetch`) into the worker logs, for a look.
    if let Ok(debug) = std::env::var("ENTITYWATCH_TEST_RDKAFKA_DEBUG") {
        env.push(("ENTITYWATCH_KAFKA__debug", debug));
        env.push((
            "ENTITYWATCH_LOG",
            "info,entitywatch=debug,librdkafka=debug,rdkafka=debug".to_string(),
        ));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Proc::spawn(name, dir, logs, &worker_args(name, broker, db, rx), &env)
}

fn watch_args(broker: &PrivateBroker, db: &TestDb, fr: &ReplayServer, once: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "watch",
        "--since",
        "2019-01-01",
        "--no-public-inspection",
        "--kafka-brokers",
        &broker.brokers(),
        "--database-url",
        &db.url,
        "--federal-register-url",
        &fr.base_url(),
        "--http-addr",
        &common::service::free_http_addr().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if once {
        args.push("--once".into());
    } else {
        args.extend(["--interval".to_string(), "1s".to_string()]);
    }
    args
}

/// A temporary directory for the processes' logs, kept with `ENTITYWATCH_TEST_KEEP_LOGS=1`.
fn log_dir() -> tempfile::TempDir {
    let mut dir = tempfile::tempdir().expect("temporary directory");
    dir.disable_cleanup(common::broker::keep_logs());
    dir
}

/// Waits until `done` holds; fails with `what` and the logs after `max`.
async fn wait_or_dump(what: &str, max: Duration, logs: &Logs, done: impl FnMut() -> bool) {
    if !wait_until(max, done).await {
        panic!("{what}: not reached within {max:?}{}", logs.tails());
    }
}

// ---------------------------------------------------------------------------------------------
// Slack and webhook receivers
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HitState {
    /// The receiver is still "working" on the request (the configured delay).
    InFlight,
    /// Answered 200 to a client that was still there.
    Accepted,
    /// The client went away before the answer (its process was killed).
    Abandoned,
    /// Refused: the webhook signature did not verify.
    Refused,
}

#[derive(Debug, Clone)]
struct Hit {
    sink: &'static str,
    /// The path segment: which worker process was configured with this URL.
    worker: String,
    supplier: String,
    /// `X-Entitywatch-Delivery` (webhook only).
    delivery: Option<String>,
    state: HitState,
}

/// A Slack incoming webhook at `/services/T000/B000/{worker}` and a signed generic webhook at
/// `/hooks/{worker}` on one local server; each answers after `delay`. Every worker gets its own
/// path so a request tells which process sent it; the sinks are still named `slack` and
/// `webhook` in every worker, so they share one delivery ledger, as one channel would.
#[derive(Clone)]
struct Receivers {
    hits: Arc<Mutex<Vec<Hit>>>,
    delay: Duration,
    addr: SocketAddr,
    /// While false, requests are held (after being recorded) until [`Receivers::release`].
    open: tokio::sync::watch::Receiver<bool>,
    release: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Marks a hit abandoned if the handler is dropped before it answered: hyper drops the
/// handler's future when the client closes the connection mid-request.
struct Answer {
    hits: Arc<Mutex<Vec<Hit>>>,
    index: usize,
    answered: bool,
}

impl Answer {
    fn answer(mut self, state: HitState) {
        self.hits.lock().unwrap()[self.index].state = state;
        self.answered = true;
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if !self.answered {
            self.hits.lock().unwrap()[self.index].state = HitState::Abandoned;
        }
    }
}

impl Receivers {
    /// Receivers answering every request after `delay`.
    async fn start(delay: Duration) -> Receivers {
        Self::start_with(delay, true).await
    }

    /// Receivers holding every request until [`Receivers::release`], then answering after
    /// `delay`.
    async fn start_held(delay: Duration) -> Receivers {
        Self::start_with(delay, false).await
    }

    async fn start_with(delay: Duration, open: bool) -> Receivers {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (release, open) = tokio::sync::watch::channel(open);
        let rx = Receivers {
            hits: Arc::default(),
            delay,
            addr: listener.local_addr().unwrap(),
            open,
            release: Arc::new(release),
        };
        let app = Router::new()
            .route("/services/T000/B000/:worker", post(slack))
            .route("/hooks/:worker", post(webhook))
            .with_state(rx.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        rx
    }

    /// Lets held and future requests through.
    fn release(&self) {
        self.release.send_replace(true);
    }

    /// Holds a request while the receivers are held, then waits the configured delay.
    async fn answer_delay(&self) {
        let mut open = self.open.clone();
        let _ = open.wait_for(|o| *o).await;
        tokio::time::sleep(self.delay).await;
    }

    fn slack_url(&self, worker: &str) -> String {
        format!("http://{}/services/T000/B000/{worker}", self.addr)
    }

    fn webhook_url(&self, worker: &str) -> String {
        format!("http://{}/hooks/{worker}", self.addr)
    }

    fn arrive(&self, hit: Hit) -> Answer {
        let mut hits = self.hits.lock().unwrap();
        hits.push(hit);
        Answer {
            hits: self.hits.clone(),
            index: hits.len() - 1,
            answered: false,
        }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn count(&self, sink: &str, state: HitState) -> usize {
        self.hits()
            .iter()
            .filter(|h| h.sink == sink && h.state == state)
            .count()
    }

    /// Supplier ids of the accepted requests of `sink`, sorted, repeats kept.
    fn accepted(&self, sink: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .hits()
            .into_iter()
            .filter(|h| h.sink == sink && h.state == HitState::Accepted)
            .map(|h| h.supplier)
            .collect();
        v.sort();
        v
    }

    /// How many accepted requests of `sink` repeat an alert already accepted.
    fn duplicates(&self, sink: &str) -> usize {
        let hits: Vec<Hit> = self
            .hits()
            .into_iter()
            .filter(|h| h.sink == sink && h.state == HitState::Accepted)
            .collect();
        let distinct: BTreeSet<(String, Option<String>)> = hits
            .iter()
            .map(|h| (h.supplier.clone(), h.delivery.clone()))
            .collect();
        hits.len() - distinct.len()
    }
}

/// The scenario supplier a Slack message or alert names.
fn supplier_in(text: &str) -> String {
    ["S-1", "S-2", "S-3", "L-1", "L-2", "L-3", "L-4", "L-5"]
        .iter()
        .find(|id| text.contains(*id))
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("unknown: {text}"))
}

async fn slack(
    State(rx): State<Receivers>,
    UrlPath(worker): UrlPath<String>,
    body: String,
) -> &'static str {
    let answer = rx.arrive(Hit {
        sink: "slack",
        worker,
        supplier: supplier_in(&body),
        delivery: None,
        state: HitState::InFlight,
    });
    rx.answer_delay().await;
    answer.answer(HitState::Accepted);
    "ok"
}

async fn webhook(
    State(rx): State<Receivers>,
    UrlPath(worker): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let verified = entitywatch::alerts::verify_signature(
        WEBHOOK_SECRET.as_bytes(),
        &header(TIMESTAMP_HEADER),
        &body,
        &header(SIGNATURE_HEADER),
        Duration::from_secs(300),
        chrono::Utc::now(),
    );
    let alert: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let delivery = header(DELIVERY_HEADER);
    let consistent = alert["alert_id"].as_str() == Some(delivery.as_str());
    let answer = rx.arrive(Hit {
        sink: "webhook",
        worker,
        supplier: alert["supplier"]["id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("unknown: {alert}")),
        delivery: Some(delivery),
        state: HitState::InFlight,
    });
    if verified.is_err() || !consistent {
        answer.answer(HitState::Refused);
        return StatusCode::UNAUTHORIZED;
    }
    rx.answer_delay().await;
    answer.answer(HitState::Accepted);
    StatusCode::OK
}

// ---------------------------------------------------------------------------------------------
// Kafka, store and Federal Register helpers
// ---------------------------------------------------------------------------------------------

/// A store on `db` holding the scenario's eight suppliers.
async fn store_with_suppliers(db: &TestDb) -> Store {
    let store = Store::connect(&db.url).await.expect("PostgreSQL store");
    let import = read_suppliers(SUPPLIERS.as_bytes(), ReadLimits::default()).unwrap();
    assert_eq!(import.records.len(), 8);
    store.upsert_suppliers(&import.records).await.unwrap();
    store
}

fn rule_document() -> ReplayDocument {
    ReplayDocument::load_dir(&fixture("federal_register"))
        .expect("fixtures load")
        .into_iter()
        .find(|d| d.metadata["document_number"] == DOCUMENT)
        .expect("the 2019-22210 fixture is present")
}

/// The rule's full-text XML is held back until `gate` opens; `fetches` counts the requests
/// for it. The search answers at once.
async fn gated_rule_server(
    gate: tokio::sync::watch::Receiver<bool>,
    fetches: Arc<AtomicUsize>,
) -> ReplayServer {
    let doc = rule_document();
    let xml_path = doc.metadata["full_text_xml_url"]
        .as_str()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.path().to_string())
        .expect("the fixture has a full_text_xml_url");
    assert!(doc.metadata["full_text_xml_url"]
        .as_str()
        .unwrap()
        .starts_with(OFFICIAL_BASE));
    let xml = Bytes::from(doc.xml.clone());
    let interceptor: entitywatch::federal_register::replay::Interceptor =
        Arc::new(move |request: &axum::extract::Request| {
            if request.uri().path() != xml_path {
                return None;
            }
            fetches.fetch_add(1, Ordering::SeqCst);
            let mut gate = gate.clone();
            let xml = xml.clone();
            let body = futures::stream::once(async move {
                let _ = gate.wait_for(|open| *open).await;
                Ok::<Bytes, std::convert::Infallible>(xml)
            });
            Some(
                Response::builder()
                    .header("content-type", "application/xml")
                    .body(Body::from_stream(body))
                    .unwrap(),
            )
        });
    ReplayServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        ReplayConfig {
            documents: vec![doc],
            interceptor: Some(interceptor),
            ..ReplayConfig::default()
        },
    )
    .await
    .expect("replay server starts")
}

/// Every message on `topic` from the beginning: waits for at least `at_least` (up to `max`),
/// then until 3 s pass without another.
async fn read_topic(
    settings: &KafkaSettings,
    topic: &str,
    at_least: usize,
    max: Duration,
) -> Vec<ReceivedMessage> {
    let reader = KafkaConsumer::subscribe(
        settings,
        &format!("fault-test-reader-{}", uuid::Uuid::new_v4().simple()),
        &[topic],
    )
    .expect("reader subscribes");
    let started = Instant::now();
    let mut out = Vec::new();
    while started.elapsed() < max {
        let wait = if out.len() >= at_least {
            Duration::from_secs(3)
        } else {
            max.saturating_sub(started.elapsed())
        };
        match tokio::time::timeout(wait, reader.recv()).await {
            Ok(Ok(m)) => out.push(m),
            Ok(Err(e)) => panic!("reading {topic}: {e}"),
            Err(_) => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(15), reader.close()).await;
    out
}

fn json(m: &ReceivedMessage) -> Value {
    serde_json::from_slice(m.payload.as_deref().unwrap_or_default()).unwrap_or(Value::Null)
}

/// Per partition of `topic`: (partition, offset committed by `group`, end offset). Read with
/// a plain OffsetFetch, without joining the group.
async fn group_offsets(
    brokers: String,
    group: &'static str,
    topic: &'static str,
) -> Vec<(i32, Option<i64>, i64)> {
    tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("offset reader");
        let timeout = Duration::from_secs(10);
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .expect("topic metadata");
        let partitions = metadata.topics()[0].partitions().len() as i32;
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let committed = consumer
            .committed_offsets(tpl, timeout)
            .expect("committed offsets");
        let mut out = Vec::new();
        for e in committed.elements() {
            let (_, high) = consumer
                .fetch_watermarks(topic, e.partition(), timeout)
                .expect("watermarks");
            let offset = match e.offset() {
                rdkafka::Offset::Offset(o) => Some(o),
                _ => None,
            };
            out.push((e.partition(), offset, high));
        }
        drop(committed);
        drop(consumer);
        out
    })
    .await
    .expect("offset reader task")
}

/// Messages of the worker group not committed yet, over all partitions of the change topic.
async fn worker_group_lag(broker: &PrivateBroker) -> (i64, Vec<(i32, Option<i64>, i64)>) {
    let offsets = group_offsets(broker.brokers(), WORKER_GROUP, ENTITY_CHANGES_TOPIC).await;
    let lag = offsets
        .iter()
        .map(|(_, committed, end)| end - committed.unwrap_or(0))
        .sum();
    (lag, offsets)
}

/// The alert topic: (messages, distinct alert ids).
fn alert_counts(messages: &[ReceivedMessage]) -> (usize, usize) {
    let ids: BTreeSet<String> = messages
        .iter()
        .map(|m| json(m)["alert_id"].as_str().unwrap_or_default().to_string())
        .collect();
    (messages.len(), ids.len())
}

/// Fails unless the alert topic holds each expected alert exactly once. A repeat is reported
/// with the workers' log lines about retried alert-topic sends, its likely cause.
fn assert_alert_topic_exactly_once(messages: &[ReceivedMessage], logs: &Logs) {
    let alerts: Vec<Value> = messages.iter().map(json).collect();
    let mut distinct = pairs(&alerts);
    distinct.dedup();
    assert_eq!(
        distinct,
        expected(),
        "alerts lost or unexpected on the alert topic{}",
        logs.tails()
    );
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for a in &alerts {
        let id = format!(
            "{} ({})",
            a["alert_id"].as_str().unwrap_or_default(),
            a["supplier"]["id"].as_str().unwrap_or_default()
        );
        *copies.entry(id).or_default() += 1;
    }
    let repeated: Vec<String> = copies
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| format!("{id} x{n}"))
        .collect();
    assert!(
        repeated.is_empty(),
        "duplicate alerts on the alert topic: {repeated:?} ({} messages for {} alerts). \
         Retried alert-topic sends in the worker logs:\n{}\nLikely cause: an alert-topic \
         attempt abandoned by the sink timeout (RetryPolicy.timeout, 10 s) stays queued in \
         librdkafka (message.timeout.ms, 60 s) and is delivered as well as the retry's copy.",
        alerts.len(),
        copies.len(),
        logs.grep("retrying sink=\"alert-topic\"")
    );
}

/// Fails unless `sink` accepted each expected alert exactly once. A repeat is reported with the
/// workers that sent each copy.
fn assert_receiver_exactly_once(rx: &Receivers, sink: &str, logs: &Logs) {
    let accepted: Vec<Hit> = rx
        .hits()
        .into_iter()
        .filter(|h| h.sink == sink && h.state == HitState::Accepted)
        .collect();
    let mut by_supplier: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for h in &accepted {
        by_supplier
            .entry(h.supplier.clone())
            .or_default()
            .push(h.worker.clone());
    }
    let suppliers: Vec<String> = by_supplier.keys().cloned().collect();
    assert_eq!(
        suppliers,
        expected_suppliers(),
        "alerts lost or unexpected at the {sink} receiver: {by_supplier:?}{}",
        logs.tails()
    );
    let repeated: BTreeMap<&String, &Vec<String>> =
        by_supplier.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(
        repeated.is_empty(),
        "the {sink} receiver accepted an alert more than once, sent by {repeated:?}. When two \
         workers sent the copies, both handled the same change event at the same time (its \
         partition moved to another member while the first still had it in hand) and the \
         delivery claim did not hold the second back.{}",
        logs.tails()
    );
}

fn expected_suppliers() -> Vec<String> {
    vec!["S-1".into(), "S-2".into(), "S-3".into()]
}

// ---------------------------------------------------------------------------------------------
// 1. Broker stopped and restarted
// ---------------------------------------------------------------------------------------------

/// The broker goes away twice: stopped (SIGTERM) while the watcher publishes the rule, and
/// killed (SIGKILL) while the two workers are half-way through screening it. It comes back on
/// the same port and storage after 3 s, then after 12 s (longer than an alert-sink attempt's
/// 10 s timeout, as a real broker restart often is). Every change event must be on the topic
/// and handled, each of the three alerts emitted exactly once to the alert topic, Slack and the
/// webhook, and no process may give up. The crash makes the group rebalance while an alert is
/// in flight, so the same event can be in two workers' hands at once: the delivery claim must
/// make the second one wait instead of sending too (it did send too before claims existed,
/// in about half the runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_restarts_lose_and_double_nothing() {
    bounded(
        "broker_restarts_lose_and_double_nothing",
        Duration::from_secs(150),
        async {
            let outage = Duration::from_secs(3);
            // The crash lasts longer than one alert-sink attempt may take (10 s by default), as a
            // real broker restart often does: an alert produced during it outlives an attempt.
            let crash = entitywatch::alerts::RetryPolicy::default().timeout + Duration::from_secs(2);
            let logs = Logs::default();
            let mut broker = PrivateBroker::start().await;
            logs.add("tansu", broker.log_path());
            let settings = broker.settings();
            let db = fresh_db(Db::Postgres).await;
            let store = store_with_suppliers(&db).await;
            let (gate, gate_rx) = tokio::sync::watch::channel(false);
            let fetches = Arc::new(AtomicUsize::new(0));
            let fr = gated_rule_server(gate_rx, fetches.clone()).await;
            let rx = Receivers::start_held(Duration::from_millis(500)).await;
            let dir = log_dir();

            let mut workers = vec![
                spawn_worker("worker-a", Session::Short, dir.path(), &logs, &broker, &db, &rx),
                spawn_worker("worker-b", Session::Short, dir.path(), &logs, &broker, &db, &rx),
            ];
            for w in &mut workers {
                w.wait_log("worker running on Kafka", Duration::from_secs(30), &logs)
                    .await;
            }
            let mut watcher = Proc::spawn(
                "watcher",
                dir.path(),
                &logs,
                &watch_args(&broker, &db, &fr, false),
                &[],
            );
            // The watcher found the rule and is fetching its text: the events are not out yet.
            wait_or_dump(
                "the watcher asks for the rule's full text",
                Duration::from_secs(30),
                &logs,
                || fetches.load(Ordering::SeqCst) > 0,
            )
            .await;

            // Outage 1: the broker stops, then the watcher gets the text and publishes.
            let graceful = broker.stop().await;
            let down1 = Instant::now();
            gate.send(true).unwrap();
            watcher
                .wait_log("parsed Entity List rule", Duration::from_secs(30), &logs)
                .await;
            tokio::time::sleep(outage.saturating_sub(down1.elapsed())).await;
            assert_eq!(
                rx.hits().len(),
                0,
                "an alert went out while no change event could have been published"
            );
            broker.start_again().await;
            let outage1 = down1.elapsed();

            // Outage 2: the Slack receiver holds the first posts, so the workers are in the
            // middle of the batch with alerts in flight when the broker crashes; then the posts
            // are answered and the workers go on, with the broker down, with the events they
            // had already fetched.
            let slack_posts = || rx.hits().iter().filter(|h| h.sink == "slack").count();
            wait_or_dump(
                "a first alert is posted to Slack after the broker came back",
                Duration::from_secs(60),
                &logs,
                || slack_posts() >= 1,
            )
            .await;
            // Time for the other worker to reach its first alert, and for both to fetch.
            let settle = Instant::now();
            while slack_posts() < 2 && settle.elapsed() < Duration::from_secs(3) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let applied_at_crash = store.listed_entry_count().await.unwrap();
            let in_flight_at_crash: Vec<String> = rx
                .hits()
                .iter()
                .filter(|h| h.sink == "slack")
                .map(|h| h.supplier.clone())
                .collect();
            broker.kill().await;
            rx.release();
            let down2 = Instant::now();
            tokio::time::sleep(crash).await;
            broker.start_again().await;
            let outage2 = down2.elapsed();

            wait_or_dump(
                "all three alerts accepted by Slack and the webhook after the second restart",
                Duration::from_secs(60),
                &logs,
                || rx.accepted("slack").len() >= 3 && rx.accepted("webhook").len() >= 3,
            )
            .await;
            // Every change event handled: the workers applied all 27 entity changes.
            let all_applied = poll_until(Duration::from_secs(30), || async {
                store.listed_entry_count().await.unwrap() == ENTITY_CHANGES
            })
            .await;
            // Time for a repeat to show up, and for the watcher to poll a few more times.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let mut exited = Vec::new();
            for p in workers.iter_mut().chain(std::iter::once(&mut watcher)) {
                if !p.alive() {
                    exited.push(format!("{} ({:?})", p.name, p.child.try_wait()));
                }
            }

            // Every change event is on the topic, once each by id; the alerts on theirs.
            let (changes, on_topic) = tokio::join!(
                read_topic(
                    &settings,
                    ENTITY_CHANGES_TOPIC,
                    RULE_EVENTS,
                    Duration::from_secs(30)
                ),
                read_topic(&settings, ALERTS_TOPIC, 3, Duration::from_secs(30)),
            );
            let change_ids: BTreeSet<String> = changes
                .iter()
                .map(|m| json(m)["id"].as_str().unwrap_or_default().to_string())
                .collect();
            let checkpointed = store.is_processed(DOCUMENT).await.unwrap();
            let applied = store.listed_entry_count().await.unwrap();
            let (topic_alerts, topic_distinct) = alert_counts(&on_topic);
            let slack = rx.accepted("slack");
            let hooks = rx.accepted("webhook");
            let duplicates =
                (topic_alerts - topic_distinct) + rx.duplicates("slack") + rx.duplicates("webhook");

            // The group committed past every change event once the workers stop.
            let mut stopped = Vec::new();
            for w in &mut workers {
                if w.alive() {
                    stopped.push((w.name.clone(), w.sigterm(Duration::from_secs(30), &logs).await));
                }
            }
            let (lag, offsets) = worker_group_lag(&broker).await;

            eprintln!(
                "fault: broker stopped (SIGTERM{}) before the watcher published the {RULE_EVENTS} \
                 events of {DOCUMENT}, back after {:.1} s; broker killed (SIGKILL) with \
                 {applied_at_crash} of {ENTITY_CHANGES} entity changes applied and Slack posts \
                 for {in_flight_at_crash:?} in flight, back after {:.1} s; counted {} change events on the topic \
                 ({} distinct), {applied} of {ENTITY_CHANGES} changes applied, {topic_alerts} \
                 alerts on topic ({topic_distinct} distinct), {} at Slack, {} at the webhook, \
                 {duplicates} duplicates, group lag {lag}; {} waits on another worker's \
                 delivery claim, {} claims taken over; broker started {} times",
                if graceful { "" } else { ", then SIGKILL" },
                outage1.as_secs_f64(),
                outage2.as_secs_f64(),
                changes.len(),
                change_ids.len(),
                slack.len(),
                hooks.len(),
                logs.grep(CLAIM_WAIT).lines().count(),
                logs.grep(CLAIM_TAKEN).lines().count(),
                broker.starts,
            );
            assert!(exited.is_empty(), "exited during the outages: {exited:?}{}", logs.tails());
            assert_eq!(
                change_ids.len(),
                RULE_EVENTS,
                "distinct change events on the topic{}",
                logs.tails()
            );
            assert!(checkpointed, "the watcher did not checkpoint {DOCUMENT}");
            assert!(
                all_applied,
                "only {applied} of {ENTITY_CHANGES} entity changes applied 30 s after the last \
                 alert: change events stuck{}",
                logs.tails()
            );
            assert_alert_topic_exactly_once(&on_topic, &logs);
            assert_receiver_exactly_once(&rx, "slack", &logs);
            assert_receiver_exactly_once(&rx, "webhook", &logs);
            assert_eq!(duplicates, 0);
            assert_eq!(rx.count("webhook", HitState::Refused), 0, "bad signatures");
            for (name, status) in &stopped {
                assert!(status.success(), "{name} stopped with {status}{}", logs.tails());
            }
            assert_eq!(lag, 0, "uncommitted change events: {offsets:?}");
            store.close().await;
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// 2. A worker SIGKILLed mid-batch
// ---------------------------------------------------------------------------------------------

/// Two `work` processes share the group. The Slack receiver takes 1.5 s per message, so alerts
/// are in flight for a while; 300 ms into the second Slack post, the worker that sent it is
/// SIGKILLed (its stored offsets since the last auto-commit are lost with it). Once the broker
/// evicted the dead member, a replacement process joins the group, and the group handles what
/// the dead worker left: each alert must be accepted exactly once by Slack and the webhook and
/// be on the alert topic once.
///
/// On Apache Kafka the survivor alone would take the partitions over when the session expires;
/// tansu 0.6.0 does not reassign them until a member joins (see the comment in the test), so
/// the test starts the replacement that a deployment's orchestrator would start anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkilled_worker_is_taken_over_exactly_once() {
    bounded(
        "sigkilled_worker_is_taken_over_exactly_once",
        Duration::from_secs(150),
        async {
            let logs = Logs::default();
            let broker = PrivateBroker::start().await;
            logs.add("tansu", broker.log_path());
            let settings = broker.settings();
            let db = fresh_db(Db::Postgres).await;
            let store = store_with_suppliers(&db).await;
            let fr = common::scenario::rule_server().await;
            let rx = Receivers::start(Duration::from_millis(1500)).await;
            let dir = log_dir();

            let mut workers: BTreeMap<String, Proc> = BTreeMap::new();
            for name in ["worker-a", "worker-b"] {
                let mut w =
                    spawn_worker(name, Session::Short, dir.path(), &logs, &broker, &db, &rx);
                w.wait_log("worker running on Kafka", Duration::from_secs(30), &logs)
                    .await;
                workers.insert(name.to_string(), w);
            }
            // Let the second member join before the events arrive, so both hold partitions.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let watch = common::run({
                let mut cmd = common::entitywatch();
                cmd.args(watch_args(&broker, &db, &fr, true));
                cmd
            })
            .await;
            assert!(watch.status.success(), "watch --once: {}", watch.stderr);

            wait_or_dump(
                "a second Slack post is in flight",
                Duration::from_secs(60),
                &logs,
                || rx.hits().iter().filter(|h| h.sink == "slack").count() >= 2,
            )
            .await;
            let in_flight = rx
                .hits()
                .into_iter()
                .filter(|h| h.sink == "slack")
                .nth(1)
                .unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let applied_at_kill = store.listed_entry_count().await.unwrap();
            let accepted_at_kill = rx.accepted("slack").len();
            let victim_name = in_flight.worker.clone();
            let mut victim = workers.remove(&victim_name).expect("a worker of ours");
            victim.sigkill().await;
            let killed = Instant::now();
            let (survivor_name, survivor) = workers.pop_first().unwrap();

            // tansu 0.6.0 evicts the dead member once its session expires, but hands the
            // survivor its old assignment again (the generation is not bumped), so the dead
            // member's partitions stay orphaned until a member joins. Start the replacement an
            // orchestrator would start, after the eviction, as a new member of the same group.
            wait_or_dump(
                "tansu evicts the killed member (missed heartbeat)",
                Duration::from_secs(30),
                &logs,
                || broker.log_text().contains("missed heartbeat for"),
            )
            .await;
            let evicted = killed.elapsed();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let replacement = spawn_worker(
                "worker-c",
                Session::Short,
                dir.path(),
                &logs,
                &broker,
                &db,
                &rx,
            );
            let mut members = vec![survivor, replacement];

            wait_or_dump(
                "the group delivers the rest: three alerts each at Slack and the webhook",
                Duration::from_secs(60),
                &logs,
                || rx.accepted("slack").len() >= 3 && rx.accepted("webhook").len() >= 3,
            )
            .await;
            let takeover = killed.elapsed();
            tokio::time::sleep(Duration::from_secs(5)).await;
            for m in &mut members {
                assert!(m.alive(), "{} exited{}", m.name, logs.tails());
            }
            let after_kill: BTreeMap<String, usize> = rx
                .hits()
                .iter()
                .filter(|h| h.worker != victim_name && h.state == HitState::Accepted)
                .fold(BTreeMap::new(), |mut m, h| {
                    *m.entry(h.worker.clone()).or_default() += 1;
                    m
                });

            let on_topic = read_topic(&settings, ALERTS_TOPIC, 3, Duration::from_secs(30)).await;
            let (topic_alerts, topic_distinct) = alert_counts(&on_topic);
            let slack = rx.accepted("slack");
            let hooks = rx.accepted("webhook");
            let abandoned =
                rx.count("slack", HitState::Abandoned) + rx.count("webhook", HitState::Abandoned);
            let duplicates =
                (topic_alerts - topic_distinct) + rx.duplicates("slack") + rx.duplicates("webhook");
            let applied = store.listed_entry_count().await.unwrap();
            for m in &mut members {
                let status = m.sigterm(Duration::from_secs(30), &logs).await;
                assert!(
                    status.success(),
                    "{} stopped with {status}{}",
                    m.name,
                    logs.tails()
                );
            }
            let (lag, offsets) = worker_group_lag(&broker).await;

            eprintln!(
                "fault: SIGKILL {victim_name} 0.3 s into its Slack post for {} ({accepted_at_kill} \
                 of 3 alerts accepted, {applied_at_kill} of {ENTITY_CHANGES} entity changes \
                 applied); tansu evicted it after {:.1} s, replacement worker-c joined \
                 {survivor_name}, batch finished {:.1} s after the kill; counted {topic_alerts} \
                 alerts on topic ({topic_distinct} distinct), {} at Slack, {} at the webhook \
                 (accepted after the kill, by worker: {after_kill:?}), {abandoned} abandoned by \
                 the killed worker, {duplicates} duplicates, {applied} of {ENTITY_CHANGES} \
                 changes applied, group lag {lag}; {} waits on the killed worker's delivery \
                 claim, {} claims taken over after the lease ran out",
                in_flight.supplier,
                evicted.as_secs_f64(),
                takeover.as_secs_f64(),
                slack.len(),
                hooks.len(),
                logs.grep(CLAIM_WAIT).lines().count(),
                logs.grep(CLAIM_TAKEN).lines().count(),
            );
            assert_alert_topic_exactly_once(&on_topic, &logs);
            assert_receiver_exactly_once(&rx, "slack", &logs);
            assert_receiver_exactly_once(&rx, "webhook", &logs);
            assert_eq!(duplicates, 0);
            assert!(
                abandoned >= 1,
                "the killed worker's Slack post should have been abandoned: {:?}",
                rx.hits()
            );
            // The post the killed worker left in flight was claimed: it was sent again only
            // once that claim had run out, by the worker that took it over — from the event
            // (its claim taken over) or, since Slack alerts go out when their batch is decided
            // (Slack digests), from the outbox (the dead worker's parked alert adopted).
            let taken = format!("{}\n{}", logs.grep(CLAIM_TAKEN), logs.grep(OUTBOX_ADOPTED));
            assert!(
                taken.contains("sink=slack") || taken.contains("sink=\"slack\""),
                "no worker took over the killed worker's Slack claim{}",
                logs.tails()
            );
            assert_eq!(rx.count("webhook", HitState::Refused), 0, "bad signatures");
            assert_eq!(applied, ENTITY_CHANGES, "every entity change applied");
            assert_eq!(lag, 0, "uncommitted change events: {offsets:?}");
            store.close().await;
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// 4. The race a rebalance makes, forced
// ---------------------------------------------------------------------------------------------

/// Two workers handle the same 28 change events of the rule at the same moment, against one
/// PostgreSQL store and receivers that take 0.5 s per post: what a rebalance does when it hands
/// a partition to a second member while the first is still sending its alerts. The broker
/// tests above reach this only when the broker's timing makes them; here it is certain. Each
/// entity change must be applied once (one version, so one alert id), and each alert accepted
/// once by Slack and the webhook: the worker that claims a delivery sends it, the other waits
/// on the claim and counts it as already delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_on_the_same_events_send_each_alert_once() {
    use entitywatch::alerts::{
        AlertSink, RetryPolicy, SecretUrl, SlackSink, WebhookSecret, WebhookSink,
    };
    use entitywatch::worker::{EventOutcome, Worker};

    async fn handle_all(w: &Worker, events: &[entitywatch::events::ChangeEvent]) -> EventOutcome {
        let mut total = EventOutcome::default();
        for event in events {
            let o = w.handle(event).await.expect("the event is handled");
            total.alerts_delivered += o.alerts_delivered;
            total.alerts_already_delivered += o.alerts_already_delivered;
        }
        total
    }
    bounded(
        "two_workers_on_the_same_events_send_each_alert_once",
        Duration::from_secs(60),
        async {
            let logs = Logs::default();
            let db = fresh_db(Db::Postgres).await;
            let store = store_with_suppliers(&db).await;
            let rx = Receivers::start(Duration::from_millis(500)).await;
            let doc = rule_document();
            let events = entitywatch::federal_register::amendment::parse_rule(
                &doc.xml,
                None,
                &entitywatch::federal_register::amendment::ParseLimits::default(),
            )
            .expect("the fixture parses")
            .into_events();
            assert_eq!(events.len(), RULE_EVENTS);
            let worker = |name: &str| {
                let slack = SlackSink::new(SecretUrl::parse(&rx.slack_url(name)).unwrap()).unwrap();
                let webhook = WebhookSink::new(
                    SecretUrl::parse(&rx.webhook_url(name)).unwrap(),
                    WebhookSecret::new(WEBHOOK_SECRET),
                )
                .unwrap();
                let sinks: Vec<Arc<dyn AlertSink>> = vec![Arc::new(slack), Arc::new(webhook)];
                let dead_letters = entitywatch::bus::InProcessBus::new(
                    store.clone(),
                    format!("dead-letters-{name}"),
                );
                Worker::new(
                    store.clone(),
                    sinks,
                    Arc::new(dead_letters),
                    RetryPolicy::default(),
                )
            };
            let (a, b) = (worker("worker-a"), worker("worker-b"));
            let started = Instant::now();
            let (done_a, done_b) = tokio::join!(handle_all(&a, &events), handle_all(&b, &events));
            let took = started.elapsed();

            let versions: BTreeMap<String, i64> = store
                .listed_entries()
                .await
                .unwrap()
                .into_iter()
                .map(|e| (e.entry.entity_key.as_str().to_string(), e.version))
                .collect();
            let above_one = versions.values().filter(|v| **v != 1).count();
            let delivered = done_a.alerts_delivered + done_b.alerts_delivered;
            let already = done_a.alerts_already_delivered + done_b.alerts_already_delivered;
            eprintln!(
                "fault: two workers handled the same {RULE_EVENTS} events at once (posts take \
                 0.5 s); counted {} entries applied, {above_one} at a version other than 1, \
                 {} at Slack, {} at the webhook, {} duplicates; sends by worker-a {} / worker-b \
                 {}, found delivered (after waiting on the other's claim or not) {already}; \
                 {:.1} s",
                versions.len(),
                rx.accepted("slack").len(),
                rx.accepted("webhook").len(),
                rx.duplicates("slack") + rx.duplicates("webhook"),
                done_a.alerts_delivered,
                done_b.alerts_delivered,
                took.as_secs_f64()
            );
            assert_eq!(versions.len() as u64, ENTITY_CHANGES);
            assert_eq!(above_one, 0, "a change applied twice: {versions:?}");
            assert_receiver_exactly_once(&rx, "slack", &logs);
            assert_receiver_exactly_once(&rx, "webhook", &logs);
            assert_eq!(
                delivered, 6,
                "3 alerts × 2 sinks sent, by one worker or the other"
            );
            assert_eq!(already, 6, "and found delivered by the other");
            store.close().await;
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// 5. Poison change events
// ---------------------------------------------------------------------------------------------

/// A poison message: the key it is produced with, its payload (`None`: a tombstone) and the
/// reason code the worker must dead-letter it with.
struct Poison {
    label: &'static str,
    key: String,
    payload: Option<Vec<u8>>,
    reason: &'static str,
}

/// The CloudEvents of the rule as the watcher publishes them, by partition key.
fn rule_cloud_events() -> BTreeMap<String, Value> {
    let doc = rule_document();
    let rule = entitywatch::federal_register::amendment::parse_rule(
        &doc.xml,
        None,
        &entitywatch::federal_register::amendment::ParseLimits::default(),
    )
    .expect("the fixture parses");
    rule.into_events()
        .iter()
        .map(|e| {
            (
                e.key(),
                serde_json::to_value(entitywatch::bus::to_cloud_event(e)).unwrap(),
            )
        })
        .collect()
}

fn poison_messages() -> Vec<Poison> {
    let events = rule_cloud_events();
    let event = |key: &str| {
        events
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("the rule has an event keyed {key}"))
    };
    let bytes = |v: Value| Some(serde_json::to_vec(&v).unwrap());
    let hikvision = "CN/hangzhou-hikvision-digital-technology-co-ltd";
    let dahua = "CN/dahua-technology";
    let iflytek = "CN/iflytek";
    let mut v2 = event(hikvision);
    v2["dataschema"] = Value::String(
        "https://github.com/entitywatch/entitywatch/schemas/entity-change.v2.json".into(),
    );
    let mut unknown_type = event(dahua);
    unknown_type["type"] = Value::String("entitywatch.entity.merged".into());
    let mut spec = event(iflytek);
    spec["specversion"] = Value::String("2.0".into());
    vec![
        Poison {
            label: "invalid JSON",
            key: hikvision.into(),
            payload: Some(b"{this is not json".to_vec()),
            reason: "invalid_json",
        },
        Poison {
            label: "unknown schema version (entity-change.v2)",
            key: hikvision.into(),
            payload: bytes(v2),
            reason: "unknown_schema_version",
        },
        Poison {
            label: "unknown event type",
            key: dahua.into(),
            payload: bytes(unknown_type),
            reason: "unknown_type",
        },
        Poison {
            label: "CloudEvents specversion 2.0",
            key: iflytek.into(),
            payload: bytes(spec),
            reason: "unsupported_specversion",
        },
        Poison {
            label: "JSON that is no CloudEvent",
            key: iflytek.into(),
            payload: bytes(serde_json::json!({"specversion": "1.0", "hello": "world"})),
            reason: "invalid_envelope",
        },
        Poison {
            label: "tombstone",
            key: format!("document/{DOCUMENT}"),
            payload: None,
            reason: "invalid_json",
        },
    ]
}

/// Poison change events go onto the change topic ahead of the rule's good events, with the
/// keys of Hikvision, Dahua and iFlytek so that they sit in front of those events in the same
/// partitions. The `work` binary must dead-letter each with its reason and move on: the three
/// alerts still go out. A restarted worker of the same group then sees only a new message (a
/// sentinel), none of the poison again: the group's offsets moved past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_change_events_are_dead_lettered_and_passed() {
    bounded(
        "poison_change_events_are_dead_lettered_and_passed",
        Duration::from_secs(150),
        async {
            let logs = Logs::default();
            let broker = PrivateBroker::start().await;
            logs.add("tansu", broker.log_path());
            let settings = broker.settings();
            let db = fresh_db(Db::Postgres).await;
            let store = store_with_suppliers(&db).await;
            let fr = common::scenario::rule_server().await;
            let rx = Receivers::start(Duration::ZERO).await;
            let dir = log_dir();

            let mut worker = spawn_worker(
                "worker-a",
                Session::Default,
                dir.path(),
                &logs,
                &broker,
                &db,
                &rx,
            );
            // The worker creates the topics before it says it runs.
            worker
                .wait_log("worker running on Kafka", Duration::from_secs(30), &logs)
                .await;
            let poison = poison_messages();
            let producer = KafkaProducer::new(&settings).expect("producer");
            let records: Vec<OutgoingRecord> = poison
                .iter()
                .map(|p| OutgoingRecord {
                    topic: ENTITY_CHANGES_TOPIC.to_string(),
                    key: p.key.clone(),
                    payload: p.payload.clone(),
                    headers: Vec::new(),
                })
                .collect();
            tokio::time::timeout(Duration::from_secs(30), producer.send_all(&records))
                .await
                .expect("poison produced within 30 s")
                .expect("poison produced");
            let watch = common::run({
                let mut cmd = common::entitywatch();
                cmd.args(watch_args(&broker, &db, &fr, true));
                cmd
            })
            .await;
            assert!(watch.status.success(), "watch --once: {}", watch.stderr);

            wait_or_dump(
                "three alerts at Slack after the poison",
                Duration::from_secs(60),
                &logs,
                || rx.accepted("slack").len() >= 3,
            )
            .await;
            let dead = read_topic(
                &settings,
                DEAD_LETTER_TOPIC,
                poison.len(),
                Duration::from_secs(30),
            )
            .await;
            let letters: Vec<Value> = dead.iter().map(json).collect();
            assert_eq!(
                letters.len(),
                poison.len(),
                "one dead letter per poison message: {letters:#?}{}",
                logs.tails()
            );
            for p in &poison {
                let payload = String::from_utf8_lossy(p.payload.as_deref().unwrap_or_default());
                let found = dead.iter().zip(&letters).find(|(m, l)| {
                    m.key_str() == Some(p.key.as_str()) && l["payload"].as_str() == Some(&payload)
                });
                let Some((m, letter)) = found else {
                    panic!("no dead letter for the {} message: {letters:#?}", p.label);
                };
                let reason = letter["reason"].as_str().unwrap_or_default();
                assert!(
                    reason.starts_with(p.reason),
                    "the {} message is dead-lettered as {reason:?}, not {}",
                    p.label,
                    p.reason
                );
                assert!(
                    reason.contains(&format!("(from {ENTITY_CHANGES_TOPIC}/")),
                    "the reason names where the message came from: {reason}"
                );
                assert_eq!(
                    m.header(DEAD_LETTER_REASON_HEADER),
                    Some(reason.as_bytes()),
                    "the reason header of the {} message",
                    p.label
                );
                assert!(letter["dead_lettered_at"].is_string());
            }
            let on_topic = read_topic(&settings, ALERTS_TOPIC, 3, Duration::from_secs(30)).await;
            let (topic_alerts, _) = alert_counts(&on_topic);
            assert_alert_topic_exactly_once(&on_topic, &logs);
            assert_receiver_exactly_once(&rx, "slack", &logs);
            assert_receiver_exactly_once(&rx, "webhook", &logs);
            assert_eq!(
                store.listed_entry_count().await.unwrap(),
                ENTITY_CHANGES,
                "every good entity change applied"
            );

            // The dead letters show on the worker's /metrics.
            let scrape = worker.scrape().await;
            let dead_metric = scrape.value(r#"entitywatch_dead_letters_total{kind="event"}"#);
            let dead_events =
                scrape.value(r#"entitywatch_worker_events_total{outcome="dead_lettered"}"#);
            eprintln!(
                "fault: {} poison messages → metrics dead_letters{{event}} {dead_metric}, \
                 worker_events{{dead_lettered}} {dead_events}",
                poison.len()
            );
            assert_eq!(dead_metric, poison.len() as f64, "{}", scrape.text);
            assert_eq!(dead_events, poison.len() as f64, "{}", scrape.text);

            // Offsets moved on: stop the worker, add one more bad message, start a new member.
            let status = worker.sigterm(Duration::from_secs(30), &logs).await;
            assert!(
                status.success(),
                "the worker stopped with {status}{}",
                logs.tails()
            );
            let (lag_after_stop, offsets) = worker_group_lag(&broker).await;
            assert_eq!(lag_after_stop, 0, "uncommitted change events: {offsets:?}");
            producer
                .send_all(&[OutgoingRecord {
                    topic: ENTITY_CHANGES_TOPIC.to_string(),
                    key: "sentinel".into(),
                    payload: Some(b"sentinel: not an event".to_vec()),
                    headers: Vec::new(),
                }])
                .await
                .expect("sentinel produced");
            let mut again = spawn_worker(
                "worker-b",
                Session::Default,
                dir.path(),
                &logs,
                &broker,
                &db,
                &rx,
            );
            again
                .wait_log(
                    "poison change event dead-lettered",
                    Duration::from_secs(60),
                    &logs,
                )
                .await;
            let dead_after = read_topic(
                &settings,
                DEAD_LETTER_TOPIC,
                poison.len() + 1,
                Duration::from_secs(30),
            )
            .await;
            let new_letters: Vec<Value> = dead_after.iter().map(json).collect();
            let redelivered = new_letters.len() as i64 - poison.len() as i64 - 1;
            let status = again.sigterm(Duration::from_secs(30), &logs).await;
            assert!(
                status.success(),
                "the second worker stopped with {status}{}",
                logs.tails()
            );
            let (lag, _) = worker_group_lag(&broker).await;
            let redead = again
                .log_text()
                .matches("poison change event dead-lettered")
                .count();

            eprintln!(
                "fault: {} poison change events ({}) ahead of the {RULE_EVENTS} good ones on the \
                 same partitions; counted {} dead letters with matching reasons, {topic_alerts} \
                 alerts on topic, {} at Slack, {} of {ENTITY_CHANGES} changes applied, group lag \
                 {lag_after_stop}; restarted member dead-lettered {redead} message (the sentinel), \
                 {redelivered} poison redelivered, group lag {lag}",
                poison.len(),
                poison
                    .iter()
                    .map(|p| format!("{} → {}", p.label, p.reason))
                    .collect::<Vec<_>>()
                    .join(", "),
                letters.len(),
                rx.accepted("slack").len(),
                store.listed_entry_count().await.unwrap(),
            );
            assert_eq!(
                redead, 1,
                "the restarted member dead-lettered only the sentinel"
            );
            assert_eq!(redelivered, 0, "poison redelivered: {new_letters:#?}");
            assert_eq!(
                rx.accepted("slack"),
                expected_suppliers(),
                "no alert again after the restart"
            );
            assert_eq!(lag, 0);
            store.close().await;
        },
    )
    .await;
}
