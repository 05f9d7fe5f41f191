//! Federal Register faults, injected into the local replay server and survived by the real
//! binary (`entitywatch watch`), on top of what tests/it/watch.rs already covers (one 500 on
//! a search page, one 429 `Retry-After: 1`, one malformed document, one 404).
//!
//! Every test states what it injected and what it counted in one `eprintln!` line, and proves
//! the watcher's promise for its fault: a rule that could not be processed is retried or
//! skipped with a warning, the checkpoint's watermark never passes it, the next poll after the
//! fault clears publishes it exactly once, and the process never crashes.
//!
//! Timings follow the client's defaults (five retries with jittered backoff from 0.5 s), so the
//! "retries exhausted" tests wait one real backoff series; the timeout test sets
//! `--federal-register-timeout 2s`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::wait::wait_until;
use crate::common::{
    entitywatch, fixture, fresh_db, no_panic, read_events, run, watch_once, Db, Run, TestDb,
};
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use entitywatch::federal_register::client::ClientConfig;
use entitywatch::federal_register::replay::{ReplayConfig, ReplayDocument, ReplayServer};
use entitywatch::store::Store;
use serde_json::Value;

const SEARCH_PATH: &str = "/api/v1/documents.json";

// ---------------------------------------------------------------------------------------------
// Fault injection

/// Which request a fault applies to.
#[derive(Debug, Clone)]
enum Target {
    /// Every page of the documents search.
    Search,
    /// One page of the documents search (1-based; the first page has no `page` parameter).
    SearchPage(usize),
    /// The full-text XML of one document.
    Xml(String),
}

impl Target {
    fn matches(&self, path: &str, query: &str) -> bool {
        match self {
            Target::Search => path == SEARCH_PATH,
            Target::SearchPage(n) => path == SEARCH_PATH && page_of(query) == *n,
            Target::Xml(number) => path.ends_with(&format!("/{number}.xml")),
        }
    }
}

fn page_of(query: &str) -> usize {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(1)
}

/// What the server answers instead of the real response.
#[derive(Clone)]
enum Fault {
    /// An error status, with `Retry-After` when given.
    Status {
        status: u16,
        retry_after: Option<&'static str>,
    },
    /// A 429 whose `Retry-After` is an HTTP date this many seconds after the response.
    ThrottleUntil { seconds: i64 },
    /// A 200 whose headers come at once and whose body arrives only after `delay`.
    Stall { delay: Duration, body: Bytes },
    /// A 200 with this body: with Content-Length, or chunked without one. With `gzip`, the
    /// body is already gzip-encoded (sent with `Content-Encoding: gzip`) and `gzip` holds its
    /// decoded length.
    Body {
        body: Bytes,
        chunked: bool,
        gzip: Option<usize>,
    },
    /// Each request gets the next fault of the list, round robin.
    Cycle(Vec<Fault>, Arc<AtomicUsize>),
}

impl Fault {
    fn status(status: u16, retry_after: Option<&'static str>) -> Fault {
        Fault::Status {
            status,
            retry_after,
        }
    }

    fn body(body: impl Into<Bytes>) -> Fault {
        Fault::Body {
            body: body.into(),
            chunked: false,
            gzip: None,
        }
    }

    fn gzip_bomb(decoded: &[u8]) -> Fault {
        Fault::Body {
            body: gzip_bytes(decoded).into(),
            chunked: false,
            gzip: Some(decoded.len()),
        }
    }

    fn respond(&self) -> (Response, String) {
        match self {
            Fault::Status {
                status,
                retry_after,
            } => {
                let code = StatusCode::from_u16(*status).expect("a valid status");
                let mut r = (code, format!("injected {status}")).into_response();
                if let Some(ra) = retry_after {
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, ra.parse().expect("header value"));
                }
                let label = match retry_after {
                    Some(ra) => format!("HTTP {status} Retry-After {ra}"),
                    None => format!("HTTP {status}"),
                };
                (r, label)
            }
            Fault::ThrottleUntil { seconds } => {
                let when = chrono::Utc::now() + chrono::Duration::seconds(*seconds);
                let date = when.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                let r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, date.clone())],
                    "slow down",
                )
                    .into_response();
                (r, format!("HTTP 429 Retry-After {date}"))
            }
            Fault::Stall { delay, body } => {
                let (delay, body) = (*delay, body.clone());
                let stream = futures::stream::once(async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, std::io::Error>(body)
                });
                let r = Response::builder()
                    .header(header::CONTENT_TYPE, "text/xml; charset=utf-8")
                    .body(Body::from_stream(stream))
                    .expect("response");
                (r, format!("body stalled {} s", delay.as_secs()))
            }
            Fault::Body {
                body,
                chunked,
                gzip,
            } => {
                let mut b = Response::builder().header(header::CONTENT_TYPE, "text/xml");
                if gzip.is_some() {
                    b = b.header(header::CONTENT_ENCODING, "gzip");
                }
                let response = if *chunked {
                    let chunks: Vec<Result<Bytes, std::io::Error>> = body
                        .chunks(8 * 1024)
                        .map(|c| Ok(Bytes::copy_from_slice(c)))
                        .collect();
                    b.body(Body::from_stream(futures::stream::iter(chunks)))
                } else {
                    b.body(Body::from(body.clone()))
                }
                .expect("response");
                let label = match gzip {
                    Some(decoded) => {
                        format!("200 gzip, {} bytes decoding to {decoded}", body.len())
                    }
                    None if *chunked => format!("200 chunked, {} bytes", body.len()),
                    None => format!("200 with {} bytes", body.len()),
                };
                (response, label)
            }
            Fault::Cycle(faults, next) => {
                let i = next.fetch_add(1, Ordering::SeqCst) % faults.len();
                faults[i].respond()
            }
        }
    }
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

struct Rule {
    target: Target,
    fault: Fault,
    /// How many requests get the fault; `None`: every one.
    times: Option<usize>,
}

fn always(target: Target, fault: Fault) -> Rule {
    Rule {
        target,
        fault,
        times: None,
    }
}

fn times(n: usize, target: Target, fault: Fault) -> Rule {
    Rule {
        target,
        fault,
        times: Some(n),
    }
}

/// One request the server saw, and the fault it got, if any.
#[derive(Debug, Clone)]
struct Hit {
    at: Instant,
    path: String,
    query: String,
    injected: Option<String>,
}

/// The faults in force (the test changes them between polls) and every request seen.
#[derive(Default)]
struct Injector {
    rules: Mutex<Vec<Rule>>,
    hits: Mutex<Vec<Hit>>,
}

impl Injector {
    fn set(&self, rules: Vec<Rule>) {
        *self.rules.lock().unwrap() = rules;
    }

    fn clear(&self) {
        self.set(Vec::new());
    }

    fn intercept(&self, req: &Request) -> Option<Response> {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let mut answer = None;
        for rule in self.rules.lock().unwrap().iter_mut() {
            if !rule.target.matches(&path, &query) {
                continue;
            }
            match &mut rule.times {
                Some(0) => continue,
                Some(n) => *n -= 1,
                None => {}
            }
            answer = Some(rule.fault.respond());
            break;
        }
        self.hits.lock().unwrap().push(Hit {
            at: Instant::now(),
            path,
            query,
            injected: answer.as_ref().map(|(_, label)| label.clone()),
        });
        answer.map(|(r, _)| r)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn count(&self, target: &Target) -> usize {
        self.hits()
            .iter()
            .filter(|h| target.matches(&h.path, &h.query))
            .count()
    }

    fn injected(&self) -> usize {
        self.hits().iter().filter(|h| h.injected.is_some()).count()
    }

    /// "N× label" for every kind of fault injected so far.
    fn injected_summary(&self) -> String {
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        for h in self.hits() {
            if let Some(label) = h.injected {
                let what = if h.path == SEARCH_PATH {
                    format!("search page {}", page_of(&h.query))
                } else {
                    h.path.rsplit('/').next().unwrap_or("").to_string()
                };
                *by.entry(format!("{label} on {what}")).or_default() += 1;
            }
        }
        by.iter()
            .map(|(k, n)| format!("{n}× {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn start_server(
    docs: Vec<ReplayDocument>,
    page_size: usize,
    injector: Arc<Injector>,
) -> ReplayServer {
    let config = ReplayConfig {
        documents: docs,
        page_size,
        interceptor: Some(Arc::new(move |req| injector.intercept(req))),
        ..ReplayConfig::default()
    };
    ReplayServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), config)
        .await
        .expect("replay server starts")
}

// ---------------------------------------------------------------------------------------------
// The rules, what they must produce, and what the binary did

fn rules() -> Vec<ReplayDocument> {
    let docs = ReplayDocument::load_dir(&fixture("federal_register")).expect("fixtures load");
    assert_eq!(docs.len(), 6, "six rule fixtures");
    docs
}

fn number(doc: &ReplayDocument) -> String {
    doc.metadata["document_number"]
        .as_str()
        .unwrap()
        .to_string()
}

fn publication_date(doc: &ReplayDocument) -> NaiveDate {
    doc.metadata["publication_date"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn xml_of(docs: &[ReplayDocument], number: &str) -> Bytes {
    Bytes::from(
        docs.iter()
            .find(|d| d.metadata["document_number"] == number)
            .expect("document")
            .xml
            .clone(),
    )
}

/// Entity changes each fixture rule must yield.
fn expected_changes() -> BTreeMap<String, usize> {
    rules()
        .iter()
        .map(|d| {
            let n = number(d);
            let path = fixture(&format!("federal_register/{n}.expected.json"));
            let list: Vec<Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            (n, list.len())
        })
        .collect()
}

/// Per document number: (entity events, document events).
fn published(events: &[Value]) -> BTreeMap<String, (usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for e in events {
        let n = e["source"]["document_number"].as_str().unwrap().to_string();
        let slot = out.entry(n).or_default();
        match e["kind"].as_str() {
            Some("entity") => slot.0 += 1,
            Some("document") => slot.1 += 1,
            other => panic!("unexpected event kind {other:?}: {e}"),
        }
    }
    out
}

/// Each of `numbers` was published exactly once: all its entity changes and one document event.
fn assert_published_once(events: &[Value], numbers: &[String], context: &str) {
    let expected = expected_changes();
    let got = published(events);
    for n in numbers {
        assert_eq!(
            got.get(n).copied(),
            Some((expected[n], 1)),
            "{n}: (entity events, document events) after {context}"
        );
    }
}

fn assert_not_published(events: &[Value], numbers: &[String], context: &str) {
    let got = published(events);
    for n in numbers {
        assert_eq!(
            got.get(n),
            None,
            "{n} must not be published after {context}"
        );
    }
}

/// `watch --once` on the published rules only (no public-inspection requests to fault).
fn watch_published_once(
    out: &Path,
    db_url: &str,
    base: &str,
    extra: &[&str],
) -> tokio::process::Command {
    let mut cmd = watch_once(out, db_url, base, extra);
    cmd.arg("--no-public-inspection");
    cmd
}

/// The checkpoint: the watermark and the documents recorded as processed (with outcome).
async fn checkpoint(db_url: &str) -> (Option<NaiveDate>, BTreeMap<String, String>) {
    let store = Store::connect(db_url).await.expect("store opens");
    let watermark = store.watermark().await.unwrap();
    let processed = store
        .processed_documents()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.document_number, d.outcome.to_string()))
        .collect();
    store.close().await;
    (watermark, processed)
}

fn numbers(docs: &[ReplayDocument]) -> Vec<String> {
    docs.iter().map(number).collect()
}

fn except(all: &[String], gone: &[&String]) -> Vec<String> {
    all.iter().filter(|n| !gone.contains(n)).cloned().collect()
}

/// What each `watch --once` fault test polls: its store, the rules on the replay server behind
/// the test's injector, and the watcher's events file.
struct Polled {
    db: TestDb,
    server: ReplayServer,
    out: PathBuf,
}

impl Polled {
    async fn start(
        db: TestDb,
        docs: Vec<ReplayDocument>,
        page_size: usize,
        injector: &Arc<Injector>,
    ) -> Polled {
        let server = start_server(docs, page_size, injector.clone()).await;
        let out = db.dir.path().join("events.jsonl");
        Polled { db, server, out }
    }

    /// One `watch --once` on the published rules, with `extra` flags.
    async fn poll(&self, extra: &[&str]) -> Run {
        run(watch_published_once(
            &self.out,
            &self.db.url,
            &self.server.base_url(),
            extra,
        ))
        .await
    }

    /// The events published so far.
    fn events(&self) -> Vec<Value> {
        read_events(&self.out)
    }
}

// ---------------------------------------------------------------------------------------------
// watch --once: one fault at a time

/// A rule's XML whose body arrives later than the client's whole-request timeout: the attempt
/// times out, is retried, and the rule is published once in the same poll.
#[tokio::test(flavor = "multi_thread")]
async fn xml_slower_than_the_client_timeout_is_retried() {
    let started = Instant::now();
    let db = fresh_db(Db::Sqlite).await;
    let docs = rules();
    let all = numbers(&docs);
    let slow = all[1].clone();
    let timeout = Duration::from_secs(2);
    let injector = Arc::new(Injector::default());
    injector.set(vec![times(
        1,
        Target::Xml(slow.clone()),
        Fault::Stall {
            delay: timeout + Duration::from_secs(5),
            body: xml_of(&docs, &slow),
        },
    )]);
    let w = Polled::start(db, docs, 20, &injector).await;

    let first = w
        .poll(&["--since", "2019-01-01", "--federal-register-timeout", "2s"])
        .await;
    no_panic(&first.stderr);
    assert!(first.status.success(), "{}", first.stderr);
    let events = w.events();
    assert_published_once(&events, &all, "a poll with one timed-out attempt");
    let attempts = injector.count(&Target::Xml(slow.clone()));
    assert_eq!(attempts, 2, "one timed-out attempt, one retry");
    assert!(
        first.stderr.lines().any(
            |l| l.contains("did not answer within the configured timeout")
                && l.contains("retrying")
        ),
        "no warning naming the timeout:\n{}",
        first.stderr
    );
    let (watermark, processed) = checkpoint(&w.db.url).await;
    assert_eq!(processed.len(), all.len());

    let second = w.poll(&[]).await;
    assert!(second.status.success(), "{}", second.stderr);
    assert_eq!(w.events().len(), events.len(), "second poll published");

    eprintln!(
        "xml_slower_than_the_client_timeout_is_retried: injected {} (client timeout {} s); \
         counted {attempts} requests for {slow}.xml, {} events for {} rules each published once, \
         watermark {watermark:?}, 0 events from a second poll; {:.1} s",
        injector.injected_summary(),
        timeout.as_secs(),
        events.len(),
        all.len(),
        started.elapsed().as_secs_f64()
    );
}

/// A rule's XML answers 500 on every attempt: the client gives up after its retries, the
/// watcher publishes the other rules, leaves this one unprocessed and holds the watermark at its
/// date; when the 500s stop, the next poll (from the checkpoint, no --since) publishes it once.
#[tokio::test(flavor = "multi_thread")]
async fn persistent_500s_hold_the_checkpoint_until_they_clear() {
    let started = Instant::now();
    let db = fresh_db(Db::Sqlite).await;
    let docs = rules();
    let all = numbers(&docs);
    // The oldest rule: a watermark that passed it would put it outside the next search.
    let failing = all[0].clone();
    let failing_date = publication_date(&docs[0]);
    let injector = Arc::new(Injector::default());
    injector.set(vec![always(
        Target::Xml(failing.clone()),
        Fault::status(500, None),
    )]);
    let w = Polled::start(db, docs, 20, &injector).await;

    let first = w.poll(&["--since", "2019-01-01"]).await;
    no_panic(&first.stderr);
    assert!(first.status.success(), "{}", first.stderr);
    let attempts = injector.count(&Target::Xml(failing.clone()));
    assert_eq!(
        attempts,
        ClientConfig::default().max_retries + 1,
        "the first attempt and every retry"
    );
    let events = w.events();
    assert_not_published(&events, std::slice::from_ref(&failing), "persistent 500s");
    assert_published_once(&events, &except(&all, &[&failing]), "persistent 500s");
    assert!(
        first.stderr.lines().any(|l| l.contains(&failing)
            && l.contains("gave up")
            && l.contains("retried next poll")),
        "no warning that {failing} is left for the next poll:\n{}",
        first.stderr
    );
    let (watermark, processed) = checkpoint(&w.db.url).await;
    assert_eq!(
        watermark,
        Some(failing_date),
        "watermark held at the failed rule"
    );
    assert!(!processed.contains_key(&failing));

    injector.clear();
    let second = w.poll(&[]).await;
    no_panic(&second.stderr);
    assert!(second.status.success(), "{}", second.stderr);
    let after = w.events();
    assert_published_once(&after, &all, "the 500s cleared");
    let (watermark_after, processed) = checkpoint(&w.db.url).await;
    assert_eq!(processed.len(), all.len());

    eprintln!(
        "persistent_500s_hold_the_checkpoint_until_they_clear: injected {}; counted run 1: \
         {} events, {failing} unpublished, watermark {watermark:?}; run 2 (fault cleared, no \
         --since): {} new events, {failing} published once ({} changes), watermark \
         {watermark_after:?}; {:.1} s",
        injector.injected_summary(),
        events.len(),
        after.len() - events.len(),
        expected_changes()[&failing],
        started.elapsed().as_secs_f64()
    );
}

/// 429 with `Retry-After` as an HTTP date is waited out; a rule throttled (503 `Retry-After:
/// 0`) on every attempt is given up after the retries, left unprocessed, and published once
/// when the throttling stops.
#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_waited_out_or_left_for_the_next_poll() {
    let started = Instant::now();
    let db = fresh_db(Db::Sqlite).await;
    let docs = rules();
    let all = numbers(&docs);
    let throttled = all[1].clone();
    let injector = Arc::new(Injector::default());
    injector.set(vec![
        times(
            1,
            Target::SearchPage(1),
            Fault::ThrottleUntil { seconds: 3 },
        ),
        always(
            Target::Xml(throttled.clone()),
            Fault::status(503, Some("0")),
        ),
    ]);
    let w = Polled::start(db, docs, 20, &injector).await;

    let first = w.poll(&["--since", "2019-01-01"]).await;
    no_panic(&first.stderr);
    assert!(first.status.success(), "{}", first.stderr);
    // The HTTP-date Retry-After was honoured: the retry came no sooner than the date allowed
    // (the date has whole seconds, so at least 2 of the 3 seconds remain).
    let searches: Vec<Instant> = injector
        .hits()
        .iter()
        .filter(|h| h.path == SEARCH_PATH)
        .map(|h| h.at)
        .collect();
    assert!(searches.len() >= 2, "the throttled search was retried");
    let waited = searches[1] - searches[0];
    assert!(
        waited >= Duration::from_millis(1500),
        "Retry-After date not honoured: retried after {waited:?}"
    );
    let attempts = injector.count(&Target::Xml(throttled.clone()));
    assert_eq!(attempts, ClientConfig::default().max_retries + 1);
    let events = w.events();
    assert_not_published(&events, std::slice::from_ref(&throttled), "throttling");
    assert_published_once(&events, &except(&all, &[&throttled]), "throttling");
    let (watermark, _) = checkpoint(&w.db.url).await;
    assert_eq!(watermark, Some(publication_date(&rules()[1])));

    injector.clear();
    let second = w.poll(&[]).await;
    assert!(second.status.success(), "{}", second.stderr);
    let after = w.events();
    assert_published_once(&after, &all, "the throttling stopped");

    eprintln!(
        "throttling_is_waited_out_or_left_for_the_next_poll: injected {}; counted a {:.1} s wait \
         for the HTTP-date Retry-After, {attempts} attempts at {throttled}.xml then given up \
         (watermark held at {watermark:?}), run 2 published it once: {} events in all; {:.1} s",
        injector.injected_summary(),
        waited.as_secs_f64(),
        after.len(),
        started.elapsed().as_secs_f64()
    );
}

/// The complete search answer, as the replay server writes it, to cut short.
async fn real_search_body(docs: Vec<ReplayDocument>) -> Bytes {
    let clean = ReplayServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        ReplayConfig {
            documents: docs,
            ..ReplayConfig::default()
        },
    )
    .await
    .unwrap();
    let url = format!(
        "{}{SEARCH_PATH}?conditions%5Bpublication_date%5D%5Bgte%5D=2019-01-01&per_page=100",
        clean.base_url()
    );
    let body = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&body).is_ok());
    body
}

/// The search answers with JSON cut off mid-way. On page 2, every time: the poll fails as a
/// whole (exit non-zero), publishing nothing of page 1 either and setting no watermark. Once
/// per page afterwards: retried within the poll, and every rule published once.
#[tokio::test(flavor = "multi_thread")]
async fn truncated_search_json_is_retried_and_never_half_applied() {
    let started = Instant::now();
    let db = fresh_db(Db::Sqlite).await;
    let docs = rules();
    let all = numbers(&docs);
    let full = real_search_body(docs.clone()).await;
    let truncated = full.slice(..full.len() / 2);
    let injector = Arc::new(Injector::default());
    injector.set(vec![always(
        Target::SearchPage(2),
        Fault::body(truncated.clone()),
    )]);
    // Two rules a page: three pages.
    let w = Polled::start(db, docs, 2, &injector).await;

    let first = w.poll(&["--since", "2019-01-01"]).await;
    no_panic(&first.stderr);
    assert!(
        !first.status.success(),
        "a search that cannot be read must fail the poll:\n{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("not the expected JSON"),
        "{}",
        first.stderr
    );
    let page2 = injector.count(&Target::SearchPage(2));
    assert_eq!(page2, ClientConfig::default().max_retries + 1);
    let events_1 = w.events().len();
    assert_eq!(events_1, 0, "nothing published from a half-read search");
    let (watermark, processed) = checkpoint(&w.db.url).await;
    assert_eq!((watermark, processed.len()), (None, 0));

    // Now each page is cut once (and page 1 also once as an empty 200), then served whole.
    injector.set(vec![
        times(1, Target::SearchPage(1), Fault::body(Bytes::new())),
        times(1, Target::Search, Fault::body(truncated.clone())),
        times(1, Target::SearchPage(2), Fault::body(truncated.clone())),
        times(1, Target::SearchPage(3), Fault::body(truncated)),
    ]);
    let second = w.poll(&["--since", "2019-01-01"]).await;
    no_panic(&second.stderr);
    assert!(second.status.success(), "{}", second.stderr);
    let events = w.events();
    assert_published_once(&events, &all, "truncated pages retried");

    eprintln!(
        "truncated_search_json_is_retried_and_never_half_applied: injected {} (bodies of {} of \
         {} bytes, or empty); counted run 1: {page2} attempts at page 2, exit {:?}, {events_1} \
         events, no watermark; run 2: {} events, every rule once; {:.1} s",
        injector.injected_summary(),
        full.len() / 2,
        full.len(),
        first.status.code(),
        events.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Rule documents over --max-document-bytes (announced by Content-Length, streamed chunked
/// without one, and a gzip bomb that is small on the wire) are refused without being buffered
/// whole and without retrying in a loop; they stay unprocessed and are published once they are
/// served at a normal size.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_documents_are_refused_and_retried_next_poll() {
    let started = Instant::now();
    let db = fresh_db(Db::Sqlite).await;
    let docs = rules();
    let all = numbers(&docs);
    let limit: usize = 64 * 1024;
    let limit_arg = limit.to_string();
    let padded = |n: &str, size: usize| -> Bytes {
        // A real rule with a long XML comment after it: well-formed, just too big.
        let mut xml = xml_of(&docs, n).to_vec();
        xml.extend_from_slice(b"\n<!-- ");
        xml.resize(size, b'x');
        xml.extend_from_slice(b" -->\n");
        xml.into()
    };
    let (announced, chunked, bomb) = (all[0].clone(), all[1].clone(), all[2].clone());
    let injector = Arc::new(Injector::default());
    injector.set(vec![
        always(
            Target::Xml(announced.clone()),
            Fault::body(padded(&announced, 4 * limit)),
        ),
        always(
            Target::Xml(chunked.clone()),
            Fault::Body {
                body: padded(&chunked, 4 * limit),
                chunked: true,
                gzip: None,
            },
        ),
        always(
            Target::Xml(bomb.clone()),
            Fault::gzip_bomb(&padded(&bomb, 16 * 1024 * 1024)),
        ),
    ]);
    let w = Polled::start(db, docs.clone(), 20, &injector).await;
    let huge = [announced.clone(), chunked.clone(), bomb.clone()];

    let first = w
        .poll(&["--since", "2019-01-01", "--max-document-bytes", &limit_arg])
        .await;
    no_panic(&first.stderr);
    assert!(first.status.success(), "{}", first.stderr);
    for n in &huge {
        assert_eq!(
            injector.count(&Target::Xml(n.clone())),
            1,
            "{n}: a document over the limit is not fetched again within the poll"
        );
        assert!(
            first.stderr.lines().any(
                |l| l.contains(n.as_str()) && l.contains(&format!("larger than {limit} bytes"))
            ),
            "no warning that {n} is too large:\n{}",
            first.stderr
        );
    }
    let events = w.events();
    assert_not_published(&events, &huge, "oversized documents");
    let rest = except(&all, &huge.iter().collect::<Vec<_>>());
    assert_published_once(&events, &rest, "oversized documents");
    let (watermark, processed) = checkpoint(&w.db.url).await;
    assert_eq!(watermark, Some(publication_date(&docs[0])));
    assert!(huge.iter().all(|n| !processed.contains_key(n)));

    injector.clear();
    let second = w.poll(&["--max-document-bytes", &limit_arg]).await;
    no_panic(&second.stderr);
    assert!(second.status.success(), "{}", second.stderr);
    let after = w.events();
    assert_published_once(&after, &all, "normal-size documents served again");

    eprintln!(
        "oversized_documents_are_refused_and_retried_next_poll: injected {} against a limit of \
         {limit} bytes; counted 1 request each, 3 rules unpublished and watermark {watermark:?} \
         after run 1; run 2 published them once ({} events in all); {:.1} s",
        injector.injected_summary(),
        after.len(),
        started.elapsed().as_secs_f64()
    );
}

fn billion_laughs() -> Vec<u8> {
    let mut s = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE RULE [\n <!ENTITY lol \"lol\">\n");
    for i in 1..=9 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        s.push_str(&format!(
            " <!ENTITY lol{i} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    s.push_str("]>\n<RULE><REGTEXT PART=\"744\"><AMDPAR>&lol9;</AMDPAR></REGTEXT></RULE>\n");
    s.into_bytes()
}

/// Bytes that are neither XML nor UTF-8 (a fixed pseudo-random sequence).
fn garbage(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8 | 0x80
        })
        .collect()
}

/// Rule XML that cannot be read (an entity-expansion bomb, an external entity pointing at a
/// local file, bytes that are not XML, an empty body, a truncated document) is reported once as
/// a document event with the reason and a log line, the poll goes on with the other rules, and
/// a second poll publishes nothing again. The external entity's file is never read into output.
#[tokio::test(flavor = "multi_thread")]
async fn unreadable_documents_are_reported_once_and_skipped() {
    let started = Instant::now();
    let db = fresh_db(Db::Sqlite).await;
    let docs = rules();
    let all = numbers(&docs);
    let canary = format!("XXE-CANARY-{}", uuid::Uuid::new_v4());
    let canary_path: PathBuf = db.dir.path().join("secret.txt");
    std::fs::write(&canary_path, &canary).unwrap();
    let xxe = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE RULE [<!ENTITY xxe SYSTEM \"file://{}\">]>\n\
         <RULE><REGTEXT PART=\"744\"><AMDPAR>2. Supplement No. 4 to part 744 is amended by \
         adding under CHINA, PEOPLE'S REPUBLIC OF, in alphabetical order, an entry for \
         “&xxe;”</AMDPAR></REGTEXT></RULE>\n",
        canary_path.display()
    );
    let truncated = std::fs::read(fixture("federal_register/malformed.xml")).unwrap();
    let bad: Vec<(String, &str, Vec<u8>)> = vec![
        (all[0].clone(), "billion laughs", billion_laughs()),
        (all[1].clone(), "external entity", xxe.into_bytes()),
        (all[2].clone(), "not XML", garbage(4096)),
        (all[3].clone(), "empty body", Vec::new()),
        (all[4].clone(), "truncated XML", truncated),
    ];
    let injector = Arc::new(Injector::default());
    injector.set(
        bad.iter()
            .map(|(n, _, body)| always(Target::Xml(n.clone()), Fault::body(body.clone())))
            .collect(),
    );
    let w = Polled::start(db, docs, 20, &injector).await;

    let first = w.poll(&["--since", "2019-01-01"]).await;
    no_panic(&first.stderr);
    assert!(first.status.success(), "{}", first.stderr);
    let events = w.events();
    let got = published(&events);
    for (n, what, _) in &bad {
        assert_eq!(
            got.get(n),
            Some(&(0, 1)),
            "{n} ({what}): one document event"
        );
        let doc = events
            .iter()
            .find(|e| e["source"]["document_number"] == *n)
            .unwrap();
        let warning = doc["warnings"][0].as_str().unwrap_or("");
        assert!(warning.contains("unreadable"), "{what}: {doc}");
        assert!(
            first
                .stderr
                .lines()
                .any(|l| l.contains("unreadable") && l.contains(n.as_str())),
            "no log line for {n} ({what}):\n{}",
            first.stderr
        );
    }
    let dtd_refused = events
        .iter()
        .filter(|e| e["warnings"].to_string().contains("DTD"))
        .count();
    assert_eq!(
        dtd_refused, 2,
        "the bomb and the external entity: DTD refused"
    );
    assert_published_once(&events, &all[5..], "unreadable neighbours");
    let everything = format!("{}{}{}", first.stdout, first.stderr, read_to_string(&w.out));
    assert!(
        !everything.contains(&canary),
        "the external entity was read"
    );
    let (_, processed) = checkpoint(&w.db.url).await;
    for (n, _, _) in &bad {
        assert_eq!(processed.get(n).map(String::as_str), Some("unreadable"));
    }

    let second = w.poll(&[]).await;
    no_panic(&second.stderr);
    assert!(second.status.success(), "{}", second.stderr);
    assert_eq!(w.events().len(), events.len(), "second poll published");

    eprintln!(
        "unreadable_documents_are_reported_once_and_skipped: injected {}; counted 5 document \
         events with an 'unreadable' warning ({dtd_refused} DTD refusals), 0 entity events for \
         them, {} events for the readable rule, canary file never echoed, 0 events from a \
         second poll; {:.1} s",
        bad.iter()
            .map(|(n, what, body)| format!("{what} ({} bytes) as {n}", body.len()))
            .collect::<Vec<_>>()
            .join(", "),
        published(&events)[&all[5]].0 + 1,
        started.elapsed().as_secs_f64()
    );
}

fn read_to_string(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// A long-running watcher

fn count_lines(path: &Path, needle: &str) -> usize {
    read_to_string(path)
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// Waits until `done()` holds, failing if the process exits or `max` passes first.
async fn wait_while_running(
    child: &mut tokio::process::Child,
    stderr: &Path,
    what: &str,
    max: Duration,
    done: impl Fn() -> bool,
) {
    let held = wait_until(max, || {
        done() || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "the watcher exited ({status}) while waiting for {what}:\n{}",
                    read_to_string(stderr)
                );
            }
            false
        }
    })
    .await;
    assert!(
        held,
        "timed out after {max:?} waiting for {what}:\n{}",
        read_to_string(stderr)
    );
}

/// `watch --interval 1s` on PostgreSQL survives polls whose search fails (503 and 429 with
/// `Retry-After: 0`, truncated JSON, round robin), then polls where one rule is too large and
/// one is throttled on every attempt, keeps its watermark at the oldest unprocessed rule, and
/// publishes both exactly once when the faults clear; SIGTERM stops it cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn long_running_watch_survives_faulty_polls() {
    let started = Instant::now();
    let db = fresh_db(Db::Postgres).await;
    let docs = rules();
    let all = numbers(&docs);
    let full = real_search_body(docs.clone()).await;
    let limit: usize = 64 * 1024;
    let injector = Arc::new(Injector::default());
    injector.set(vec![always(
        Target::Search,
        Fault::Cycle(
            vec![
                Fault::status(503, Some("0")),
                Fault::status(429, Some("0")),
                Fault::body(full.slice(..full.len() / 3)),
            ],
            Arc::default(),
        ),
    )]);
    let server = start_server(docs.clone(), 20, injector.clone()).await;
    let out = db.dir.path().join("events.jsonl");
    let err_path = db.dir.path().join("stderr.log");

    let http = crate::common::service::free_http_addr();
    let mut cmd = entitywatch();
    cmd.args(["watch", "--interval", "1s", "--since", "2019-01-01"])
        .args(["--no-public-inspection", "--http-addr", &http.to_string()])
        .args(["--max-document-bytes", &limit.to_string()])
        .arg("--output")
        .arg(&out)
        .arg("--database-url")
        .arg(&db.url)
        .arg("--federal-register-url")
        .arg(server.base_url())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let mut child = cmd.spawn().expect("watch starts");

    // Phase 1: the search fails on every attempt; polls fail and the loop goes on.
    let failed_polls = "poll failed; retrying at the next interval";
    wait_while_running(
        &mut child,
        &err_path,
        "two failed polls",
        Duration::from_secs(60),
        || count_lines(&err_path, failed_polls) >= 2,
    )
    .await;
    assert!(read_events(&out).is_empty());
    let phase1_injected = injector.injected();

    // Phase 2: the search works; the oldest rule is too large, the next one always throttled.
    let (huge, throttled) = (all[0].clone(), all[1].clone());
    let mut padded = xml_of(&docs, &huge).to_vec();
    padded.extend_from_slice(b"<!-- ");
    padded.resize(2 * limit, b'x');
    padded.extend_from_slice(b" -->");
    injector.set(vec![
        always(Target::Xml(huge.clone()), Fault::body(padded)),
        always(
            Target::Xml(throttled.clone()),
            Fault::status(503, Some("0")),
        ),
    ]);
    let huge_hits = injector.count(&Target::Xml(huge.clone()));
    wait_while_running(
        &mut child,
        &err_path,
        "two polls that met the faulty rules",
        Duration::from_secs(60),
        || injector.count(&Target::Xml(huge.clone())) >= huge_hits + 2,
    )
    .await;
    let events = read_events(&out);
    let faulty = [huge.clone(), throttled.clone()];
    assert_not_published(&events, &faulty, "faulty rules");
    assert_published_once(&events, &all[2..], "phase 2");
    let (watermark, _) = checkpoint(&db.url).await;
    assert_eq!(
        watermark,
        Some(publication_date(&docs[0])),
        "the watermark must not pass the oldest unprocessed rule"
    );
    let polls_failed = count_lines(&err_path, failed_polls);

    // Phase 3: the faults clear; both rules are published, once, and later polls add nothing.
    injector.clear();
    wait_while_running(
        &mut child,
        &err_path,
        "the faulty rules to be published",
        Duration::from_secs(60),
        || {
            let got = published(&read_events(&out));
            faulty.iter().all(|n| got.get(n).is_some_and(|c| c.1 == 1))
        },
    )
    .await;
    let searches = injector.count(&Target::Search);
    wait_while_running(
        &mut child,
        &err_path,
        "two more polls",
        Duration::from_secs(30),
        || injector.count(&Target::Search) >= searches + 2,
    )
    .await;

    // What an operator sees: the failed polls, the retries and the documents left for the
    // next poll are on /metrics.
    let scrape = reqwest::get(format!("http://{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metric = |series: &str| -> f64 {
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing:\n{scrape}"))
    };
    let failed_metric = metric("entitywatch_watcher_polls_total{outcome=\"failure\"} ");
    assert!(failed_metric >= polls_failed as f64, "{scrape}");
    assert!(metric("entitywatch_federal_register_retries_total ") >= 1.0);
    assert!(metric("entitywatch_watcher_documents_total{outcome=\"fetch_failed\"} ") >= 2.0);
    assert_eq!(
        metric("entitywatch_watcher_documents_total{outcome=\"parsed\"} "),
        all.len() as f64
    );

    let pid = child.id().expect("running");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("watch exits within 15 s of SIGTERM")
        .unwrap();
    let stderr = read_to_string(&err_path);
    no_panic(&stderr);
    assert!(status.success(), "exit after SIGTERM: {status}\n{stderr}");
    let events = read_events(&out);
    assert_published_once(&events, &all, "the faults cleared");
    let total_expected: usize = expected_changes().values().sum::<usize>() + all.len();
    assert_eq!(events.len(), total_expected, "no event published twice");

    eprintln!(
        "long_running_watch_survives_faulty_polls: injected {} ({phase1_injected} of them while \
         every search failed); counted {polls_failed} failed polls survived, {} requests served, \
         watermark held at {watermark:?} while {huge} and {throttled} failed, then {} events = \
         every rule once, clean exit on SIGTERM; metrics: {failed_metric} failed polls, \
         fetch_failed and retries counted; {:.1} s",
        injector.injected_summary(),
        injector.hits().len(),
        events.len(),
        started.elapsed().as_secs_f64()
    );
}
