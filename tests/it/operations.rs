//! What an operator relies on, black-box against the binary: the counters on `/metrics` move by
//! exactly what one rule did, the exposition passes `promtool check metrics`, `/healthz` and
//! `/readyz` say what is wrong, and SIGTERM in the middle of delivering alerts loses and
//! duplicates nothing.

use crate::common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::scenario::{
    expected, import_suppliers, pairs, rule_server, slow_slack_receiver, SLACK_PATH,
};
use crate::common::service::Service;
use crate::common::wait::wait_for;
use crate::common::{alert_topic, entitywatch, fresh_db, run, run_embedded, Db, TestDb};
use serde_json::Value;

/// Entries 84 FR 54002 adds (all of its changes are additions).
const RULE_ENTRIES: f64 = 27.0;

fn run_command(db: &TestDb, fr: &str, slack: SocketAddr) -> tokio::process::Command {
    let mut cmd = run_embedded(&db.url, fr);
    cmd.env(
        "ENTITYWATCH_SLACK_WEBHOOK_URL",
        format!("http://{slack}{SLACK_PATH}"),
    );
    cmd
}

/// Alert id prefixes at a Slack receiver: the Block Kit context line ends in "alert `<first
/// 12 characters of the id>`".
fn slack_alert_ids(received: &Mutex<Vec<Value>>) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .map(|m| {
            let text = m.to_string();
            let at = text.find("alert `").expect("alert id in the Slack message") + 7;
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect()
        })
        .collect()
}

/// Runs promtool on a scrape; CI installs it (Debian package `prometheus`).
fn promtool_check_metrics(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect(
            "promtool must be installed (Debian package `prometheus`; scripts/services.sh start \
             installs it)",
        );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_rule_moves_the_counters_by_what_it_did() {
    let db = fresh_db(Db::Sqlite).await;
    import_suppliers(&db).await;
    let server = rule_server().await;
    let (slack, received, _) = slow_slack_receiver(Duration::ZERO).await;

    let service = Service::start(run_command(&db, &server.base_url(), slack)).await;
    let (status, body) = service.get("/healthz").await;
    assert_eq!(status, 200, "{body}");

    wait_for("three Slack alerts", Duration::from_secs(30), || {
        received.lock().unwrap().len() >= 3
    })
    .await;
    // Every change handled, and a second poll done, before the counts are read.
    let start = Instant::now();
    let m = loop {
        let m = service.scrape().await;
        if m.value("entitywatch_worker_events_total{outcome=\"processed\"}") >= RULE_ENTRIES + 1.0
            && m.value("entitywatch_watcher_polls_total{outcome=\"success\"}") >= 2.0
        {
            break m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the worker did not catch up:\n{}",
            m.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let expect = |series: &str, value: f64| {
        assert_eq!(m.value(series), value, "{series}\n{}", m.text);
    };
    expect(
        "entitywatch_watcher_documents_total{outcome=\"parsed\"}",
        1.0,
    );
    expect(
        "entitywatch_watcher_documents_total{outcome=\"unreadable\"}",
        0.0,
    );
    expect(
        "entitywatch_watcher_documents_total{outcome=\"fetch_failed\"}",
        0.0,
    );
    assert!(m.value("entitywatch_watcher_documents_total{outcome=\"already_processed\"}") >= 1.0);
    expect(
        "entitywatch_change_events_published_total{action=\"added\"}",
        RULE_ENTRIES,
    );
    expect(
        "entitywatch_change_events_published_total{action=\"removed\"}",
        0.0,
    );
    expect("entitywatch_document_events_published_total", 1.0);
    expect("entitywatch_publish_failures_total", 0.0);
    expect("entitywatch_watcher_polls_total{outcome=\"failure\"}", 0.0);
    expect(
        "entitywatch_worker_events_total{outcome=\"processed\"}",
        RULE_ENTRIES + 1.0,
    );
    expect("entitywatch_worker_events_total{outcome=\"failed\"}", 0.0);
    expect("entitywatch_matches_total{decision=\"alert\"}", 3.0);
    expect(
        "entitywatch_alerts_total{outcome=\"delivered\",sink=\"slack\"}",
        3.0,
    );
    expect(
        "entitywatch_alerts_total{outcome=\"delivered\",sink=\"alert-topic\"}",
        3.0,
    );
    expect(
        "entitywatch_alert_delivery_retries_total{sink=\"slack\"}",
        0.0,
    );
    expect("entitywatch_dead_letters_total{kind=\"event\"}", 0.0);
    expect("entitywatch_dead_letters_total{kind=\"alert\"}", 0.0);
    expect("entitywatch_suppliers", 8.0);
    expect("entitywatch_entity_list_entries", RULE_ENTRIES);
    expect(
        "entitywatch_consumer_lag{partition=\"0\",topic=\"entitywatch.entity-changes.v1\"}",
        0.0,
    );
    expect("entitywatch_screening_duration_seconds_count", RULE_ENTRIES);
    assert!(m.value("entitywatch_suppliers_screened_total") >= 3.0);
    let now = chrono::Utc::now().timestamp() as f64;
    let last_poll = m.value("entitywatch_watcher_last_successful_poll_timestamp_seconds");
    assert!((now - last_poll).abs() < 30.0, "last poll at {last_poll}");
    assert!(m.value("entitywatch_federal_register_requests_total{outcome=\"success\"}") >= 3.0);
    assert!(m.has(&format!(
        "entitywatch_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(m.value("process_resident_memory_bytes") > 0.0);
    // No label carries a secret or an unbounded value.
    assert!(!m.text.contains("XSECRET"), "{}", m.text);
    assert!(!m.text.contains("hikvision"), "{}", m.text);
    promtool_check_metrics(&m.text);
    // The names the rules, dashboard and README may use are exactly what is exported.
    let exported: Vec<String> = m
        .names()
        .into_iter()
        .filter(|n| n.starts_with("entitywatch_"))
        .collect();
    let mut listed: Vec<String> = common::exported::METRICS
        .iter()
        .map(|s| s.to_string())
        .collect();
    listed.sort();
    assert_eq!(
        exported, listed,
        "tests/it/common/exported.rs is out of date"
    );
    for h in common::exported::HISTOGRAMS {
        assert!(m.text.contains(&format!("# TYPE {h} histogram")), "{h}");
    }

    let (status, body) = service.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["store"]["ok"], true);
    assert_eq!(ready["checks"]["watcher"]["ok"], true);

    let (status, logs) = service.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "{logs}");
    eprintln!(
        "metrics: one rule ({RULE_ENTRIES} entries) → 27 added events, 28 processed, 3 matches, \
         3 Slack + 3 topic deliveries; promtool check metrics passed ({} families)",
        m.names().len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_says_what_is_wrong() {
    let db = fresh_db(Db::Sqlite).await;
    // Nothing listens there: every poll fails.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let mut cmd = entitywatch();
    cmd.args(["watch", "--interval", "1s", "--ready-max-poll-age", "2s"])
        .arg("--database-url")
        .arg(&db.url)
        .arg("--federal-register-url")
        .arg(&dead_url)
        .arg("--output")
        .arg(db.dir.path().join("events.jsonl"));
    let service = Service::start(cmd).await;
    let (status, body) = service.get("/readyz").await;
    assert_eq!(status, 200, "within the bound after start: {body}");

    let start = Instant::now();
    let body = loop {
        let (status, body) = service.get("/readyz").await;
        if status == 503 {
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "not_ready");
    assert_eq!(v["checks"]["store"]["ok"], true, "{body}");
    assert_eq!(v["checks"]["watcher"]["ok"], false, "{body}");
    let error = v["checks"]["watcher"]["error"].as_str().unwrap();
    assert!(
        error.contains("no successful Federal Register poll"),
        "{error}"
    );
    let (status, _) = service.get("/healthz").await;
    assert_eq!(status, 200, "alive even when not ready");
    let m = service.scrape().await;
    // The poll is still in its retries; they show.
    assert!(
        m.value("entitywatch_federal_register_retries_total") >= 1.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.value("entitywatch_watcher_last_successful_poll_timestamp_seconds"),
        0.0
    );
    // No document is in hand during the search's retries: the poll is dropped at once rather
    // than given the 20 s grace a document being published gets.
    let (status, logs) = service.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{logs}");
    assert!(logs.contains("no document in hand"), "{logs}");
    eprintln!("readyz: Federal Register unreachable → 503 after the 2 s bound: {error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taken_port_fails_at_start_with_a_clear_error() {
    let db = fresh_db(Db::Sqlite).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut cmd = entitywatch();
    cmd.arg("--database-url")
        .arg(&db.url)
        .args(["work", "--http-addr"])
        .arg(addr.to_string());
    let r = run(cmd).await;
    assert!(!r.status.success());
    assert!(
        r.stderr.contains(&format!("cannot listen on {addr}")),
        "{}",
        r.stderr
    );
}

/// SIGTERM while alerts are being delivered: the process finishes the event in hand, exits 0,
/// and a restart delivers the rest; every alert reaches Slack and the alert topic exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_delivery_loses_and_duplicates_nothing() {
    let db = fresh_db(Db::Sqlite).await;
    import_suppliers(&db).await;
    let server = rule_server().await;
    // Each Slack post takes 1.5 s, so the alerts are in flight when the signal comes.
    let (slack, received, _) = slow_slack_receiver(Duration::from_millis(1500)).await;

    let mut service = Service::start(run_command(&db, &server.base_url(), slack)).await;
    service
        .wait_for_log("\"sink\":\"alert-topic\"", Duration::from_secs(30))
        .await
        .to_string();
    // The first Slack request is on its way: stop now.
    let signalled = Instant::now();
    let (status, logs) = service.terminate(Duration::from_secs(35)).await;
    let stop_took = signalled.elapsed();
    assert!(status.success(), "exit status {status}:\n{logs}");
    let after_first = received.lock().unwrap().len();
    assert!(after_first < 3, "the signal came too late to test anything");

    // A restart delivers what is left, and nothing twice.
    let service = Service::start(run_command(&db, &server.base_url(), slack)).await;
    wait_for("three Slack alerts", Duration::from_secs(40), || {
        received.lock().unwrap().len() >= 3
    })
    .await;
    // Room for a duplicate to show up if one were coming.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, logs) = service.terminate(Duration::from_secs(35)).await;
    assert!(status.success(), "{logs}");

    let ids = slack_alert_ids(&received);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &ids {
        *counts.entry(id).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "three distinct alerts at Slack: {ids:?}");
    assert!(counts.values().all(|n| *n == 1), "duplicates: {counts:?}");
    let topic = alert_topic(&db).await;
    assert_eq!(pairs(&topic), expected(), "the alert topic holds each once");
    let topic_ids: Vec<&str> = topic
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap())
        .collect();
    for id in counts.keys() {
        assert!(
            topic_ids.iter().any(|t| t.starts_with(id)),
            "{id} at Slack but not on the topic"
        );
    }
    eprintln!(
        "sigterm: signalled during the first Slack delivery, exit 0 after {:.1} s with {} of 3 \
         at Slack; restart delivered the rest: Slack {} distinct / {} received, topic {}",
        stop_took.as_secs_f64(),
        after_first,
        counts.len(),
        ids.len(),
        topic.len()
    );
}

/// SIGTERM while an alert waits between delivery attempts: the process stops at once (it does
/// not sit out the backoff), dead-letters nothing, and the restart delivers the alert once.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_between_retries_leaves_the_alert_for_the_restart() {
    let db = fresh_db(Db::Sqlite).await;
    import_suppliers(&db).await;
    let server = rule_server().await;
    let (slack, received, failing) = slow_slack_receiver(Duration::ZERO).await;
    failing.store(true, Ordering::SeqCst);

    let mut cmd = run_command(&db, &server.base_url(), slack);
    cmd.args(["--alert-min-backoff", "20s", "--alert-max-backoff", "20s"]);
    let mut service = Service::start(cmd).await;
    service
        .wait_for_log("alert delivery failed; retrying", Duration::from_secs(30))
        .await;
    let signalled = Instant::now();
    let (status, logs) = service.terminate(Duration::from_secs(15)).await;
    let stop_took = signalled.elapsed();
    assert!(status.success(), "exit status {status}:\n{logs}");
    assert!(
        stop_took < Duration::from_secs(10),
        "stopping sat out the 20 s backoff ({stop_took:?})"
    );
    assert!(
        logs.contains("delivery left for after the restart"),
        "{logs}"
    );
    assert!(!logs.contains("alert dead-lettered"), "{logs}");

    failing.store(false, Ordering::SeqCst);
    let service = Service::start(run_command(&db, &server.base_url(), slack)).await;
    wait_for("three Slack alerts", Duration::from_secs(40), || {
        received.lock().unwrap().len() >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, logs) = service.terminate(Duration::from_secs(35)).await;
    assert!(status.success(), "{logs}");
    let ids = slack_alert_ids(&received);
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{ids:?}");
    assert_eq!(ids.len(), 3, "duplicates at Slack: {ids:?}");
    assert_eq!(pairs(&alert_topic(&db).await), expected());
    let store = entitywatch::store::Store::connect(&db.url).await.unwrap();
    let dead = store
        .read_log("entitywatch.dead-letter.v1", 0, 100)
        .await
        .unwrap();
    store.close().await;
    assert!(dead.is_empty(), "dead letters: {dead:?}");
    eprintln!(
        "sigterm: Slack 500 with a 20 s backoff; SIGTERM between attempts → exit 0 after \
         {:.1} s, 0 dead letters; restart with Slack healthy → {} alerts, each once",
        stop_took.as_secs_f64(),
        ids.len()
    );
}

/// The same on Kafka through `run --kafka-brokers`: SIGTERM while the first alert is at Slack,
/// exit 0 (the consumer commits and leaves the group), a restart in the same group delivers the
/// rest; Slack and the alert topic hold each alert once. `/readyz` checks the broker, and the
/// lag of the change topic's partitions is exported.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_run_sigterm_during_delivery_loses_and_duplicates_nothing() {
    let settings = common::kafka::kafka_settings();
    let db = fresh_db(Db::Postgres).await;
    import_suppliers(&db).await;
    let server = rule_server().await;
    let (slack, received, _) = slow_slack_receiver(Duration::from_millis(1500)).await;
    let prefix = format!("ops-{}", uuid::Uuid::new_v4().simple());
    let kafka_run = || {
        let mut cmd = run_command(&db, &server.base_url(), slack);
        cmd.arg("--kafka-brokers")
            .arg(&settings.brokers)
            .arg("--kafka-topic-prefix")
            .arg(&prefix)
            .arg("--kafka-group-id")
            .arg(format!("{prefix}-workers"));
        cmd
    };

    let mut service = Service::start(kafka_run()).await;
    let (status, body) = service.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["checks"]["kafka"]["ok"], true, "{body}");
    service
        .wait_for_log("\"sink\":\"alert-topic\"", Duration::from_secs(60))
        .await;
    let signalled = Instant::now();
    let (status, logs) = service.terminate(Duration::from_secs(35)).await;
    let stop_took = signalled.elapsed();
    assert!(status.success(), "exit status {status}:\n{logs}");
    let after_first = received.lock().unwrap().len();
    assert!(after_first < 3, "the signal came too late to test anything");

    let service = Service::start(kafka_run()).await;
    wait_for("three Slack alerts", Duration::from_secs(60), || {
        received.lock().unwrap().len() >= 3
    })
    .await;
    let changes = format!("{prefix}.entity-changes.v1");
    let start = Instant::now();
    let lag = loop {
        let m = service.scrape().await;
        let series: Vec<f64> = (0..3)
            .map(|p| {
                m.value(&format!(
                    "entitywatch_consumer_lag{{partition=\"{p}\",topic=\"{changes}\"}}"
                ))
            })
            .collect();
        let exported = (0..3).any(|p| {
            m.has(&format!(
                "entitywatch_consumer_lag{{partition=\"{p}\",topic=\"{changes}\"}}"
            ))
        });
        if exported && series.iter().all(|v| *v == 0.0) {
            break series;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no drained lag for {changes}:\n{}",
            m.text
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (status, logs) = service.terminate(Duration::from_secs(35)).await;
    assert!(status.success(), "{logs}");

    let ids = slack_alert_ids(&received);
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!((distinct.len(), ids.len()), (3, 3), "Slack: {ids:?}");

    let reader = entitywatch::bus::KafkaConsumer::subscribe(
        &settings,
        &format!("{prefix}-reader"),
        &[format!("{prefix}.alerts.v1").as_str()],
    )
    .unwrap();
    let mut topic = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = if topic.len() >= 3 {
            Duration::from_secs(3)
        } else {
            left
        };
        match tokio::time::timeout(wait, reader.recv()).await {
            Ok(Ok(m)) => {
                topic.push(serde_json::from_slice::<Value>(m.payload.as_deref().unwrap()).unwrap())
            }
            Ok(Err(e)) => panic!("reading the alert topic: {e}"),
            Err(_) => break,
        }
    }
    assert_eq!(pairs(&topic), expected(), "the alert topic holds each once");
    eprintln!(
        "sigterm (Kafka): exit 0 {:.1} s after SIGTERM with {after_first} of 3 at Slack; the \
         restart delivered the rest: Slack {} alerts each once, alert topic {}; lag {lag:?}",
        stop_took.as_secs_f64(),
        ids.len(),
        topic.len()
    );
}

/// The runbook's recovery path: alerts dead-lettered while Slack was down are listed with their
/// reason and, once Slack is back, `dead-letters redrive` delivers each once; a second redrive
/// sends nothing.
#[tokio::test(flavor = "multi_thread")]
async fn dead_lettered_alerts_are_listed_and_redriven_once() {
    let db = fresh_db(Db::Sqlite).await;
    import_suppliers(&db).await;
    let server = rule_server().await;
    let (slack, received, failing) = slow_slack_receiver(Duration::ZERO).await;
    failing.store(true, Ordering::SeqCst);
    let slack_url = format!("http://{slack}{SLACK_PATH}");

    let mut cmd = run_command(&db, &server.base_url(), slack);
    cmd.args(["--alert-max-attempts", "1"]);
    let service = Service::start(cmd).await;
    let start = Instant::now();
    loop {
        let m = service.scrape().await;
        if m.value("entitywatch_alerts_total{outcome=\"dead_lettered\",sink=\"slack\"}") >= 3.0 {
            assert_eq!(
                m.value("entitywatch_dead_letters_total{kind=\"alert\"}"),
                3.0
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{}", m.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, logs) = service.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "{logs}");

    let mut list = entitywatch();
    list.arg("--database-url")
        .arg(&db.url)
        .args(["dead-letters", "list", "--json"]);
    let r = run(list).await;
    assert!(r.status.success(), "{}", r.stderr);
    let letters: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 3, "{}", r.stdout);
    for l in &letters {
        let reason = l["reason"].as_str().unwrap();
        assert!(reason.starts_with("sink slack: HTTP 500"), "{reason}");
        assert!(
            !reason.contains("XSECRET"),
            "the webhook URL leaked: {reason}"
        );
    }

    failing.store(false, Ordering::SeqCst);
    let redrive = || {
        let mut cmd = entitywatch();
        cmd.arg("--database-url")
            .arg(&db.url)
            .args(["dead-letters", "redrive"])
            .env("ENTITYWATCH_SLACK_WEBHOOK_URL", &slack_url);
        cmd
    };
    let first = run(redrive()).await;
    assert!(first.status.success(), "{}", first.stderr);
    assert!(
        first
            .stdout
            .contains("3 alerts redriven (3 deliveries made"),
        "{}",
        first.stdout
    );
    let second = run(redrive()).await;
    assert!(second.status.success(), "{}", second.stderr);
    assert!(
        second.stdout.contains("(0 deliveries made"),
        "{}",
        second.stdout
    );
    let ids = slack_alert_ids(&received);
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!((distinct.len(), ids.len()), (3, 3), "{ids:?}");
    assert_eq!(pairs(&alert_topic(&db).await), expected());
    eprintln!(
        "dead letters: Slack 500 with 1 attempt → 3 dead-lettered (listed with reasons); Slack \
         back → redrive delivered {}, a second redrive 0",
        ids.len()
    );
}

/// `dead-letters list` on Kafka reads the whole dead-letter topic without joining a group.
#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_listed_from_kafka() {
    let settings = common::kafka::kafka_settings();
    let db = fresh_db(Db::Sqlite).await;
    let prefix = format!("dl-{}", uuid::Uuid::new_v4().simple());
    let mut config = entitywatch::bus::kafka::KafkaConfig::new(settings.clone());
    config.topics = entitywatch::bus::kafka::Topics::with_prefix(&prefix);
    config.ensure_topics().await.unwrap();
    let producer = entitywatch::bus::KafkaProducer::new(&settings).unwrap();
    for (key, reason) in [
        ("k-1", "invalid_json: expected value (from x/0@1)"),
        (
            "k-2",
            "unknown_type: entitywatch.entity.merged (from x/1@7)",
        ),
    ] {
        let body = serde_json::json!({"reason": reason, "payload": "{", "dead_lettered_at": "2026-11-28T15:00:00Z"});
        producer
            .send_json(&config.topics.dead_letter, key, &body)
            .await
            .unwrap();
    }
    let mut cmd = entitywatch();
    cmd.arg("--database-url")
        .arg(&db.url)
        .arg("--kafka-brokers")
        .arg(&settings.brokers)
        .arg("--kafka-topic-prefix")
        .arg(&prefix)
        .args(["dead-letters", "list", "--json"]);
    let r = run(cmd).await;
    assert!(r.status.success(), "{}", r.stderr);
    let mut keys: Vec<String> = r
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    keys.sort();
    assert_eq!(keys, ["k-1", "k-2"], "{}", r.stdout);
}
