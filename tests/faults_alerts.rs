//! Issue 6, item 4: Slack and generic-webhook faults, through the real binary.
//!
//! Each fault test runs `entitywatch run` on the embedded default (a SQLite file, the
//! in-process bus) against a local Federal Register replaying 84 FR 54002 (and, where a later
//! rule is needed, 85 FR 44159, which revises the Hikvision and iFlytek entries), with both a
//! Slack receiver and a signature-verifying generic-webhook receiver (`common::receiver`).
//! One alert is faulted at one receiver — 429 with `Retry-After`, 500s, a reply slower than
//! the sink timeout, a permanent 404, 503 until retries run out — and the test counts the
//! attempts at the receiver, measures the waits between them, reads the dead letters from the
//! store's `entitywatch.dead-letter.v1` log (no CLI lists them) and checks that every other
//! alert is delivered exactly once. The dead-lettering tests then clear the fault and restart
//! the service: nothing is sent again and the dead letters are still there.
//!
//! The retry policy cannot be shortened from outside (no flag or variable reaches
//! `RetryPolicy`; `run` uses `RetryPolicy::default()`: 6 attempts, backoff 0.5 s doubling with
//! up to 100 % jitter, 10 s per attempt), so the expectations below are that policy's.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::receiver::{gaps, healthy, show, Kind, Receiver, Reply, Script};
use common::scenario::SUPPLIERS;
use common::{entitywatch, fixture, fresh_db, run, Db, TestDb};
use entitywatch::federal_register::replay::{ReplayConfig, ReplayDocument, ReplayServer};
use serde_json::Value;

const SLACK_PATH: &str = "/services/T000/B000/XSECRETXSECRETXSECRET";
const WEBHOOK_PATH: &str = "/hooks/entitywatch/WHPATHSECRET";
const WEBHOOK_SECRET: &str = "whsec_faults_0123456789abcdef";
const DEAD_LETTER_TOPIC: &str = "entitywatch.dead-letter.v1";
const ALERT_TOPIC: &str = "entitywatch.alerts.v1";

/// `RetryPolicy::default()`, which `run` uses: what the timings below are checked against.
const MAX_ATTEMPTS: usize = 6;
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const SINK_TIMEOUT: Duration = Duration::from_secs(10);

/// 84 FR 54002 (2019-22210) alerts S-2 (Dahua), S-1 (Hikvision), S-3 (iFlytek), in that order.
const FIRST_RULE: [&str; 3] = ["S-2/listed", "S-1/listed", "S-3/listed"];
/// 85 FR 44159 (2020-15827) revises the Hikvision and iFlytek entries.
const LATER_RULE: [&str; 2] = ["S-1/revised", "S-3/revised"];

/// A per-test bound, so a hang fails the test instead of the CI job.
const TEST_BOUND: Duration = Duration::from_secs(60);

fn keys(list: &[&[&str]]) -> BTreeSet<String> {
    list.iter()
        .flat_map(|l| l.iter().map(|k| k.to_string()))
        .collect()
}

/// A local Federal Register serving these documents.
async fn rule_server(numbers: &[&str]) -> ReplayServer {
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

/// A fresh SQLite store with the scenario's suppliers imported through the CLI.
async fn store_with_suppliers() -> TestDb {
    let db = fresh_db(Db::Sqlite).await;
    let csv = db.dir.path().join("suppliers.csv");
    std::fs::write(&csv, SUPPLIERS).unwrap();
    let mut cmd = entitywatch();
    cmd.arg("--database-url")
        .arg(&db.url)
        .args(["suppliers", "import"])
        .arg(&csv);
    let r = run(cmd).await;
    assert!(r.status.success(), "suppliers import failed: {}", r.stderr);
    db
}

/// The two receivers every test runs with.
async fn receivers(slack: Script, webhook: Script) -> (Receiver, Receiver) {
    (
        Receiver::start(Kind::Slack, SLACK_PATH, slack).await,
        Receiver::start(
            Kind::Webhook {
                secret: WEBHOOK_SECRET.to_string(),
            },
            WEBHOOK_PATH,
            webhook,
        )
        .await,
    )
}

/// `entitywatch run` on the embedded bus with both sinks.
fn start_service(
    db: &TestDb,
    fr: &ReplayServer,
    slack: &Receiver,
    webhook: &Receiver,
) -> tokio::process::Child {
    let mut cmd = entitywatch();
    cmd.args(["run", "--interval", "1s", "--since", "2019-01-01"])
        .arg("--database-url")
        .arg(&db.url)
        .arg("--federal-register-url")
        .arg(fr.base_url())
        .env("ENTITYWATCH_SLACK_WEBHOOK_URL", slack.url())
        .env("ENTITYWATCH_WEBHOOK_URL", webhook.url())
        .env("ENTITYWATCH_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd.spawn().expect("run starts")
}

/// SIGTERM (to the child we started, by its pid) and its output once it exited.
async fn stop_service(child: tokio::process::Child) -> common::Run {
    let pid = child.id().expect("pid");
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("run exits within 20 s of SIGTERM")
        .unwrap();
    let run = common::Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(run.status.success(), "run failed:\n{}", run.stderr);
    for secret in ["XSECRETXSECRET", "WHPATHSECRET", WEBHOOK_SECRET] {
        assert!(
            !run.stderr.contains(secret),
            "secret in logs:\n{}",
            run.stderr
        );
    }
    run
}

async fn wait_until(done: impl Fn() -> bool, max: Duration) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > max {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// True once `receiver` accepted exactly `want` (and nothing else).
fn accepted_exactly(receiver: &Receiver, want: &BTreeSet<String>) -> bool {
    receiver.accepted().keys().cloned().collect::<BTreeSet<_>>() == *want
}

/// A dead letter as stored in embedded mode: key, reason and the original payload.
#[derive(Debug, Clone)]
struct DeadLetter {
    key: String,
    reason: String,
    alert: entitywatch::alerts::Alert,
}

/// What the store holds after a run.
struct Stored {
    dead_letters: Vec<DeadLetter>,
    alert_topic: Vec<Value>,
    /// (alert id, sink) pairs in the delivery ledger.
    ledger: BTreeSet<(String, String)>,
}

async fn read_store(db: &TestDb) -> Stored {
    let store = entitywatch::store::Store::connect(&db.url).await.unwrap();
    let dead_letters = store
        .read_log(DEAD_LETTER_TOPIC, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            let v: Value = serde_json::from_str(&m.payload).expect("dead letter is JSON");
            DeadLetter {
                key: m.key,
                reason: v["reason"].as_str().expect("reason").to_string(),
                alert: serde_json::from_str(v["payload"].as_str().expect("payload"))
                    .expect("the dead letter's payload is the whole alert"),
            }
        })
        .collect();
    let alert_topic = store
        .read_log(ALERT_TOPIC, 0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(&m.payload).unwrap())
        .collect();
    let ledger = store
        .deliveries()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.alert_id, d.sink))
        .collect();
    store.close().await;
    Stored {
        dead_letters,
        alert_topic,
        ledger,
    }
}

fn alert_key(a: &entitywatch::alerts::Alert) -> String {
    format!("{}/{}", a.supplier.id, a.kind)
}

/// Every alert on the alert topic, each exactly once (the topic sink is never faulted).
fn assert_topic_holds(stored: &Stored, want: &BTreeSet<String>) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for a in &stored.alert_topic {
        let k = format!(
            "{}/{}",
            a["supplier"]["id"].as_str().unwrap(),
            a["kind"].as_str().unwrap()
        );
        *counts.entry(k).or_default() += 1;
    }
    assert_eq!(
        counts.keys().cloned().collect::<BTreeSet<_>>(),
        *want,
        "alert topic"
    );
    assert!(counts.values().all(|&n| n == 1), "alert topic: {counts:?}");
}

/// Nothing answered 2xx twice, and every webhook request carried a valid signature.
fn assert_once_and_signed(slack: &Receiver, webhook: &Receiver) {
    for (name, r) in [("slack", slack), ("webhook", webhook)] {
        let twice: Vec<_> = r.accepted().into_iter().filter(|(_, n)| *n > 1).collect();
        assert!(twice.is_empty(), "{name} accepted twice: {twice:?}");
    }
    assert!(
        webhook.unverified().is_empty(),
        "webhook requests failing verification: {:?}",
        webhook.unverified()
    );
    assert!(
        webhook.hits().iter().all(|h| h.key != "unknown")
            && slack.hits().iter().all(|h| h.key != "unknown"),
        "a request the receivers could not attribute to an alert"
    );
}

/// Clears the fault, restarts the service for a few seconds and checks that nothing is sent
/// again and that the dead letters are still there, unchanged.
async fn fault_clears_and_restart_sends_nothing(
    db: &TestDb,
    fr: &ReplayServer,
    slack: &Receiver,
    webhook: &Receiver,
    before: &Stored,
) {
    slack.set_script(healthy());
    webhook.set_script(healthy());
    let hits_before = (slack.hits().len(), webhook.hits().len());
    let child = start_service(db, fr, slack, webhook);
    // Long enough for the watcher to poll twice and the worker to read its position.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = stop_service(child).await;
    assert!(
        second.stderr.contains("entitywatch running"),
        "{}",
        second.stderr
    );
    assert_eq!(
        (slack.hits().len(), webhook.hits().len()),
        hits_before,
        "the restart sent something again:\n{}",
        second.stderr
    );
    let after = read_store(db).await;
    assert_eq!(after.ledger, before.ledger, "ledger changed on restart");
    assert_eq!(after.alert_topic.len(), before.alert_topic.len());
    let ids = |s: &Stored| {
        s.dead_letters
            .iter()
            .map(|d| (d.key.clone(), d.reason.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&after), ids(before), "dead letters changed on restart");
}

/// 429 with `Retry-After: 2` twice, then 200, at Slack for one alert. The waits between the
/// attempts are at least the 2 s asked for (the backoff alone would be under 1 s, then under
/// 2 s), the alert is then delivered once, and nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread")]
async fn slack_429_retry_after_is_honoured_then_delivered() {
    tokio::time::timeout(TEST_BOUND, async {
        let started = Instant::now();
        let db = store_with_suppliers().await;
        let fr = rule_server(&["2019-22210"]).await;
        let faulted = "S-2/listed";
        let (slack, webhook) = receivers(
            Arc::new(move |key, attempt| {
                if key == faulted && attempt <= 2 {
                    Reply::status(429)
                        .header("retry-after", "2")
                        .body("rate_limited")
                } else {
                    Reply::ok()
                }
            }),
            healthy(),
        )
        .await;
        let want = keys(&[&FIRST_RULE]);
        let child = start_service(&db, &fr, &slack, &webhook);
        let done = wait_until(
            || accepted_exactly(&slack, &want) && accepted_exactly(&webhook, &want),
            Duration::from_secs(40),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let out = stop_service(child).await;
        assert!(done, "not all alerts delivered:\n{}", out.stderr);

        let attempts = slack.attempts(faulted);
        let statuses: Vec<u16> = attempts.iter().map(|h| h.status).collect();
        assert_eq!(statuses, [429, 429, 200], "{}", out.stderr);
        let waits = gaps(&attempts);
        for w in &waits {
            assert!(
                *w >= Duration::from_secs(2),
                "Retry-After 2 not honoured: {waits:?}"
            );
            assert!(
                *w < Duration::from_secs(4),
                "waited far too long: {waits:?}"
            );
        }
        assert_once_and_signed(&slack, &webhook);
        let stored = read_store(&db).await;
        assert!(stored.dead_letters.is_empty(), "{:?}", stored.dead_letters);
        assert_topic_holds(&stored, &want);
        assert_eq!(stored.ledger.len(), 9, "3 alerts × (topic, slack, webhook)");
        eprintln!(
            "fault: slack 429 Retry-After 2 ×2 then 200 for {faulted}; attempts {}, waits {} \
             (≥ 2.0 s each), waited {:.2} s in all; delivered slack {} webhook {}, \
             dead-lettered 0; {:.1} s",
            attempts.len(),
            show(&waits),
            waits.iter().sum::<Duration>().as_secs_f64(),
            slack.accepted().len(),
            webhook.accepted().len(),
            started.elapsed().as_secs_f64()
        );
    })
    .await
    .expect("test finished within 60 s");
}

/// 500 three times, then 200, at the generic webhook. The waits grow exponentially from the
/// 0.5 s minimum (at least 0.5, 1 and 2 s, at most double that with jitter), every attempt is
/// signed afresh and verifies, all carry the same delivery id, and the alert is delivered once.
#[tokio::test(flavor = "multi_thread")]
async fn webhook_500s_are_retried_with_backoff_then_delivered() {
    tokio::time::timeout(TEST_BOUND, async {
        let started = Instant::now();
        let db = store_with_suppliers().await;
        let fr = rule_server(&["2019-22210"]).await;
        let faulted = "S-1/listed";
        let (slack, webhook) = receivers(
            healthy(),
            Arc::new(move |key, attempt| {
                if key == faulted && attempt <= 3 {
                    Reply::status(500).body("internal error")
                } else {
                    Reply::ok()
                }
            }),
        )
        .await;
        let want = keys(&[&FIRST_RULE]);
        let child = start_service(&db, &fr, &slack, &webhook);
        let done = wait_until(
            || accepted_exactly(&slack, &want) && accepted_exactly(&webhook, &want),
            Duration::from_secs(40),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let out = stop_service(child).await;
        assert!(done, "not all alerts delivered:\n{}", out.stderr);

        let attempts = webhook.attempts(faulted);
        let statuses: Vec<u16> = attempts.iter().map(|h| h.status).collect();
        assert_eq!(statuses, [500, 500, 500, 200], "{}", out.stderr);
        let waits = gaps(&attempts);
        for (n, w) in waits.iter().enumerate() {
            let floor = MIN_BACKOFF * 2u32.pow(n as u32);
            assert!(
                *w >= floor && *w < floor * 2 + Duration::from_millis(500),
                "backoff {n} out of [{floor:?}, 2×{floor:?}): {waits:?}"
            );
        }
        let ids: BTreeSet<_> = attempts.iter().map(|h| h.delivery_id.clone()).collect();
        assert_eq!(ids.len(), 1, "one delivery id across retries: {ids:?}");
        let stamps: Vec<i64> = attempts.iter().map(|h| h.timestamp.unwrap()).collect();
        assert!(
            stamps.windows(2).all(|w| w[0] <= w[1]) && stamps[3] - stamps[0] >= 3,
            "each attempt is signed when sent: {stamps:?}"
        );
        assert_once_and_signed(&slack, &webhook);
        let stored = read_store(&db).await;
        assert!(stored.dead_letters.is_empty(), "{:?}", stored.dead_letters);
        assert_topic_holds(&stored, &want);
        assert_eq!(stored.ledger.len(), 9, "3 alerts × (topic, slack, webhook)");
        eprintln!(
            "fault: webhook 500 ×3 then 200 for {faulted}; attempts {}, backoff waits {} \
             (≥ 0.5/1/2 s), all {} signed requests verified, one delivery id; delivered slack \
             {} webhook {}, dead-lettered 0; {:.1} s",
            attempts.len(),
            show(&waits),
            webhook.hits().len(),
            slack.accepted().len(),
            webhook.accepted().len(),
            started.elapsed().as_secs_f64()
        );
    })
    .await
    .expect("test finished within 60 s");
}

/// Slack does not answer the first attempt for 15 s, longer than the sink's 10 s per-attempt
/// timeout (`RetryPolicy::timeout`; no flag sets it): the sender gives up at 10 s, backs off
/// and retries, without waiting for the slow answer, and the alert is delivered once.
#[tokio::test(flavor = "multi_thread")]
async fn slack_timeout_is_retried_then_delivered() {
    tokio::time::timeout(TEST_BOUND, async {
        let started = Instant::now();
        let db = store_with_suppliers().await;
        let fr = rule_server(&["2019-22210"]).await;
        let faulted = "S-3/listed";
        let hang = Duration::from_secs(15);
        let (slack, webhook) = receivers(
            Arc::new(move |key, attempt| {
                if key == faulted && attempt == 1 {
                    Reply::hang(hang)
                } else {
                    Reply::ok()
                }
            }),
            healthy(),
        )
        .await;
        let want = keys(&[&FIRST_RULE]);
        let child = start_service(&db, &fr, &slack, &webhook);
        let done = wait_until(
            || accepted_exactly(&slack, &want) && accepted_exactly(&webhook, &want),
            Duration::from_secs(40),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let out = stop_service(child).await;
        assert!(done, "not all alerts delivered:\n{}", out.stderr);

        let attempts = slack.attempts(faulted);
        assert_eq!(attempts.len(), 2, "{}", out.stderr);
        assert!(!attempts[0].accepted() && attempts[1].accepted());
        let wait = attempts[1].at - attempts[0].at;
        assert!(
            wait >= SINK_TIMEOUT + MIN_BACKOFF && wait < hang - Duration::from_secs(1),
            "timed out at the sink timeout, then backed off: {wait:?}"
        );
        assert!(
            out.stderr.contains("no answer within 10000 ms"),
            "{}",
            out.stderr
        );
        assert_once_and_signed(&slack, &webhook);
        let stored = read_store(&db).await;
        assert!(stored.dead_letters.is_empty(), "{:?}", stored.dead_letters);
        assert_topic_holds(&stored, &want);
        assert_eq!(stored.ledger.len(), 9, "3 alerts × (topic, slack, webhook)");
        eprintln!(
            "fault: slack silent for {} s (sink timeout 10 s) on attempt 1 of {faulted}, then \
             200; attempts {}, retried after {:.2} s; delivered slack {} webhook {}, \
             dead-lettered 0; {:.1} s",
            hang.as_secs(),
            attempts.len(),
            wait.as_secs_f64(),
            slack.accepted().len(),
            webhook.accepted().len(),
            started.elapsed().as_secs_f64()
        );
    })
    .await
    .expect("test finished within 60 s");
}

/// A permanent 404 at Slack for one alert and at the webhook for another: each is tried once,
/// not retried, and dead-lettered with the receiver's reason; every other alert of the rule and
/// of a later rule is delivered once to both. After the fault clears a restart sends nothing
/// again, and the two dead letters are still there, whole.
#[tokio::test(flavor = "multi_thread")]
async fn permanent_404_is_dead_lettered_at_once_and_later_rules_still_delivered() {
    tokio::time::timeout(TEST_BOUND, async {
        let started = Instant::now();
        let db = store_with_suppliers().await;
        let fr = rule_server(&["2019-22210", "2020-15827"]).await;
        let (slack_fault, webhook_fault) = ("S-2/listed", "S-3/listed");
        let (slack, webhook) = receivers(
            Arc::new(move |key, _| {
                if key == slack_fault {
                    Reply::status(404).body("no_service")
                } else {
                    Reply::ok()
                }
            }),
            Arc::new(move |key, _| {
                if key == webhook_fault {
                    Reply::status(404).body("unknown hook")
                } else {
                    Reply::ok()
                }
            }),
        )
        .await;
        let all = keys(&[&FIRST_RULE, &LATER_RULE]);
        let without = |k: &str| all.iter().filter(|x| *x != k).cloned().collect();
        let (slack_want, webhook_want) = (without(slack_fault), without(webhook_fault));
        let child = start_service(&db, &fr, &slack, &webhook);
        let done = wait_until(
            || accepted_exactly(&slack, &slack_want) && accepted_exactly(&webhook, &webhook_want),
            Duration::from_secs(30),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let out = stop_service(child).await;
        assert!(
            done,
            "slack {:?} webhook {:?}:\n{}",
            slack.accepted(),
            webhook.accepted(),
            out.stderr
        );

        assert_eq!(slack.attempts(slack_fault).len(), 1, "a 404 is not retried");
        assert_eq!(
            webhook.attempts(webhook_fault).len(),
            1,
            "a 404 is not retried"
        );
        assert_once_and_signed(&slack, &webhook);

        let stored = read_store(&db).await;
        assert_topic_holds(&stored, &all);
        let by_key: BTreeMap<String, &DeadLetter> = stored
            .dead_letters
            .iter()
            .map(|d| (alert_key(&d.alert), d))
            .collect();
        assert_eq!(stored.dead_letters.len(), 2, "{:?}", stored.dead_letters);
        for (key, sink, other, body) in [
            (slack_fault, "slack", "webhook", "no_service"),
            (webhook_fault, "webhook", "slack", "unknown hook"),
        ] {
            let d = by_key
                .get(key)
                .unwrap_or_else(|| panic!("{key} not dead-lettered: {by_key:?}"));
            assert_eq!(d.key, d.alert.alert_id, "keyed by the alert id");
            assert!(
                d.reason.starts_with(&format!("sink {sink}:"))
                    && d.reason.contains("404")
                    && d.reason.contains(body),
                "reason: {}",
                d.reason
            );
            assert!(
                !d.reason.contains("SECRET"),
                "secret in reason: {}",
                d.reason
            );
            // The ledger says what was not delivered, so nothing claims it was.
            let id = d.alert.alert_id.clone();
            assert!(!stored.ledger.contains(&(id.clone(), sink.to_string())));
            assert!(stored.ledger.contains(&(id.clone(), other.to_string())));
            assert!(stored.ledger.contains(&(id, "alert-topic".to_string())));
        }
        assert_eq!(
            stored.ledger.len(),
            5 * 3 - 2,
            "5 alerts × 3 sinks, minus the 2"
        );

        fault_clears_and_restart_sends_nothing(&db, &fr, &slack, &webhook, &stored).await;
        eprintln!(
            "fault: slack 404 no_service for {slack_fault}, webhook 404 for {webhook_fault}; \
             attempts 1 + 1, dead-lettered 2 (reasons {:?}); delivered slack {} webhook {} \
             (incl. 2 revised alerts of the later rule 2020-15827); after the fault cleared a \
             restart re-sent 0 and the 2 dead letters remain (no automatic redrive); {:.1} s",
            stored
                .dead_letters
                .iter()
                .map(|d| d.reason.as_str())
                .collect::<Vec<_>>(),
            slack.accepted().len(),
            webhook.accepted().len(),
            started.elapsed().as_secs_f64()
        );
    })
    .await
    .expect("test finished within 60 s");
}

/// 503 on every attempt at the webhook for the first alert of the rule: 6 attempts with
/// exponential backoff (≥ 0.5, 1, 2, 4, 8 s), then dead-lettered with the last reason, while
/// the alerts after it — the same rule's and a later rule's — are delivered once to both sinks.
/// After the fault clears a restart sends nothing again and the dead letter remains.
#[tokio::test(flavor = "multi_thread")]
async fn webhook_503_until_retries_run_out_is_dead_lettered_and_service_keeps_going() {
    tokio::time::timeout(TEST_BOUND, async {
        let started = Instant::now();
        let db = store_with_suppliers().await;
        let fr = rule_server(&["2019-22210", "2020-15827"]).await;
        let faulted = FIRST_RULE[0];
        let (slack, webhook) = receivers(
            healthy(),
            Arc::new(move |key, _| {
                if key == faulted {
                    Reply::status(503).body("down for maintenance")
                } else {
                    Reply::ok()
                }
            }),
        )
        .await;
        let all = keys(&[&FIRST_RULE, &LATER_RULE]);
        let webhook_want: BTreeSet<String> =
            all.iter().filter(|k| *k != faulted).cloned().collect();
        let child = start_service(&db, &fr, &slack, &webhook);
        let done = wait_until(
            || accepted_exactly(&slack, &all) && accepted_exactly(&webhook, &webhook_want),
            Duration::from_secs(45),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let out = stop_service(child).await;
        assert!(
            done,
            "slack {:?} webhook {:?}:\n{}",
            slack.accepted(),
            webhook.accepted(),
            out.stderr
        );

        let attempts = webhook.attempts(faulted);
        assert_eq!(attempts.len(), MAX_ATTEMPTS, "{}", out.stderr);
        assert!(attempts.iter().all(|h| h.status == 503));
        let waits = gaps(&attempts);
        for (n, w) in waits.iter().enumerate() {
            let floor = MIN_BACKOFF * 2u32.pow(n as u32);
            assert!(
                *w >= floor && *w < floor * 2 + Duration::from_millis(500),
                "backoff {n} out of [{floor:?}, 2×{floor:?}): {waits:?}"
            );
        }
        // The alerts after the faulted one were sent after it was given up on.
        let given_up = attempts.last().unwrap().at;
        let later: Vec<_> = webhook
            .hits()
            .into_iter()
            .filter(|h| h.key != faulted)
            .collect();
        assert!(later.iter().all(|h| h.at > given_up));
        assert_once_and_signed(&slack, &webhook);

        let stored = read_store(&db).await;
        assert_topic_holds(&stored, &all);
        assert_eq!(stored.dead_letters.len(), 1, "{:?}", stored.dead_letters);
        let d = &stored.dead_letters[0];
        assert_eq!(alert_key(&d.alert), faulted);
        assert_eq!(d.key, d.alert.alert_id);
        assert!(
            d.reason.starts_with("sink webhook:")
                && d.reason.contains("503")
                && d.reason.contains("down for maintenance"),
            "reason: {}",
            d.reason
        );
        assert!(!stored
            .ledger
            .contains(&(d.alert.alert_id.clone(), "webhook".to_string())));
        assert!(stored
            .ledger
            .contains(&(d.alert.alert_id.clone(), "slack".to_string())));
        assert_eq!(
            stored.ledger.len(),
            5 * 3 - 1,
            "5 alerts × 3 sinks, minus 1"
        );

        fault_clears_and_restart_sends_nothing(&db, &fr, &slack, &webhook, &stored).await;
        eprintln!(
            "fault: webhook 503 on every attempt for {faulted}; attempts {}, backoff waits {} \
             ({:.1} s in all); dead-lettered 1 ({:?}); then delivered webhook {} / slack {} \
             (incl. 2 revised alerts of the later rule 2020-15827); after the fault cleared a \
             restart re-sent 0 and the dead letter remains; {:.1} s",
            attempts.len(),
            show(&waits),
            waits.iter().sum::<Duration>().as_secs_f64(),
            d.reason,
            webhook.accepted().len(),
            slack.accepted().len(),
            started.elapsed().as_secs_f64()
        );
    })
    .await
    .expect("test finished within 60 s");
}

/// 500 five times, then no answer within the 10 s sink timeout on the sixth and last attempt,
/// at Slack: the alert is dead-lettered with the timeout as its reason and the next alert goes
/// out. (Timing out on all six attempts would take 6 × 10 s plus ≥ 15.5 s of backoff, over this
/// test's bound, as long as the retry policy cannot be shortened from outside.)
#[tokio::test(flavor = "multi_thread")]
async fn slack_timeout_on_the_last_attempt_is_dead_lettered_with_the_reason() {
    tokio::time::timeout(TEST_BOUND, async {
        let started = Instant::now();
        let db = store_with_suppliers().await;
        let fr = rule_server(&["2019-22210"]).await;
        let faulted = "S-1/listed";
        let (slack, webhook) = receivers(
            Arc::new(move |key, attempt| {
                if key != faulted {
                    Reply::ok()
                } else if attempt < MAX_ATTEMPTS {
                    Reply::status(500).body("internal_error")
                } else {
                    Reply::hang(Duration::from_secs(15))
                }
            }),
            healthy(),
        )
        .await;
        let all = keys(&[&FIRST_RULE]);
        let slack_want: BTreeSet<String> = all.iter().filter(|k| *k != faulted).cloned().collect();
        let child = start_service(&db, &fr, &slack, &webhook);
        let done = wait_until(
            || accepted_exactly(&slack, &slack_want) && accepted_exactly(&webhook, &all),
            Duration::from_secs(50),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let out = stop_service(child).await;
        assert!(
            done,
            "slack {:?} webhook {:?}:\n{}",
            slack.accepted(),
            webhook.accepted(),
            out.stderr
        );

        let attempts = slack.attempts(faulted);
        assert_eq!(attempts.len(), MAX_ATTEMPTS, "{}", out.stderr);
        // The next alert reached Slack once the sixth attempt had timed out.
        let next = slack
            .hits()
            .into_iter()
            .find(|h| h.key == "S-3/listed")
            .expect("S-3 alerted");
        let timed_out_after = next.at - attempts.last().unwrap().at;
        assert!(
            timed_out_after >= SINK_TIMEOUT && timed_out_after < Duration::from_secs(14),
            "{timed_out_after:?}"
        );
        assert_once_and_signed(&slack, &webhook);

        let stored = read_store(&db).await;
        assert_topic_holds(&stored, &all);
        assert_eq!(stored.dead_letters.len(), 1, "{:?}", stored.dead_letters);
        let d = &stored.dead_letters[0];
        assert_eq!(alert_key(&d.alert), faulted);
        assert!(
            d.reason.starts_with("sink slack:") && d.reason.contains("no answer within 10000 ms"),
            "reason: {}",
            d.reason
        );
        assert!(!stored
            .ledger
            .contains(&(d.alert.alert_id.clone(), "slack".to_string())));
        eprintln!(
            "fault: slack 500 ×5 then silent past the 10 s timeout for {faulted}; attempts {}, \
             waits {}, gave up {:.2} s after the last; dead-lettered 1 ({:?}); delivered slack \
             {} webhook {}; {:.1} s",
            attempts.len(),
            show(&gaps(&attempts)),
            timed_out_after.as_secs_f64(),
            d.reason,
            slack.accepted().len(),
            webhook.accepted().len(),
            started.elapsed().as_secs_f64()
        );
    })
    .await
    .expect("test finished within 60 s");
}

/// The webhook receiver's verification is real: a request signed by the crate with the shared
/// secret passes, one signed with another secret, one whose body was altered after signing and
/// one with a stale timestamp are answered 401 (and would fail the tests above).
#[tokio::test]
async fn webhook_receiver_rejects_forged_or_stale_signatures() {
    let webhook = Receiver::start(
        Kind::Webhook {
            secret: WEBHOOK_SECRET.to_string(),
        },
        WEBHOOK_PATH,
        healthy(),
    )
    .await;
    let body = serde_json::json!({
        "alert_id": "0c0801d87c5b", "kind": "listed", "supplier": {"id": "S-9"}
    })
    .to_string();
    let now = chrono::Utc::now().timestamp();
    let client = reqwest::Client::new();
    let post = |secret: &str, ts: i64, sent: String| {
        let signature = entitywatch::alerts::sign(secret.as_bytes(), ts, body.as_bytes());
        client
            .post(webhook.url())
            .header("X-Entitywatch-Event", "alert.listed")
            .header("X-Entitywatch-Delivery", "0c0801d87c5b")
            .header("X-Entitywatch-Timestamp", ts.to_string())
            .header("X-Entitywatch-Signature", signature)
            .body(sent)
            .send()
    };
    let tampered = body.replace("S-9", "S-8");
    let cases = [
        (
            "signed with the shared secret",
            WEBHOOK_SECRET,
            now,
            body.clone(),
            200,
        ),
        ("another secret", "not-the-secret", now, body.clone(), 401),
        (
            "body altered after signing",
            WEBHOOK_SECRET,
            now,
            tampered,
            401,
        ),
        (
            "ten minutes old",
            WEBHOOK_SECRET,
            now - 600,
            body.clone(),
            401,
        ),
    ];
    for (what, secret, ts, sent, want) in cases {
        let status = post(secret, ts, sent).await.unwrap().status().as_u16();
        assert_eq!(status, want, "{what}");
    }
    assert_eq!(webhook.unverified().len(), 3, "{:?}", webhook.unverified());
    eprintln!(
        "receiver check: crate-signed request accepted; wrong secret, altered body, stale \
         timestamp rejected with 401 (3 of 4 unverified)"
    );
}
