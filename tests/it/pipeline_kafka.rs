//! End-to-end on the real broker (tansu, `scripts/kafka.sh start`; override with
//! `ENTITYWATCH_TEST_KAFKA_BROKERS`) and PostgreSQL: the local Federal Register replay publishes
//! 84 FR 54002, the watcher publishes it to Kafka, the worker group re-screens the suppliers and
//! alerts to the alert topic and a local Slack receiver. Asserts the exact alert set on both,
//! that a poison message ends on the dead-letter topic without stopping the worker, and that a
//! fresh worker group replaying the change topic from offset 0 sends no alert again.
//!
//! Drives the library rather than the binary so that every test has its own topics; every wait
//! is bounded, and an unreachable broker fails the test with the command to start one.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::kafka::kafka_settings;
use crate::common::scenario::{
    expected, pairs, rule_server, slack_receiver, slack_suppliers, SLACK_PATH, SUPPLIERS,
};
use crate::common::{fixture, fresh_db, Db};
use chrono::NaiveDate;
use entitywatch::alerts::{AlertSink, RetryPolicy, SecretUrl, SlackSink};
use entitywatch::app::Bus;
use entitywatch::bus::kafka::KafkaConfig;
use entitywatch::bus::kafka::{
    KafkaConsumer, KafkaSettings, OutgoingRecord, ReceivedMessage, Topics,
};
use entitywatch::dead_letter::DEAD_LETTER_REASON_HEADER;
use entitywatch::federal_register::client::{ClientConfig, FederalRegisterClient};
use entitywatch::federal_register::watcher::{Watcher, WatcherConfig};
use entitywatch::store::Store;
use entitywatch::suppliers::{read_suppliers, ReadLimits};
use entitywatch::worker::consume::{consume, ConsumeOptions, KafkaSource, MessageSource, Until};
use entitywatch::worker::{Worker, DEFAULT_CLAIM_LEASE};
use serde_json::Value;

/// 27 entity changes and one document event for 84 FR 54002, plus the poison message.
const MESSAGES: usize = 29;

fn unique_topics() -> Topics {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let name = |t: &str| format!("entitywatch.test.{t}.{suffix}");
    Topics {
        entity_changes: name("entity-changes"),
        alerts: name("alerts"),
        suppliers: name("suppliers"),
        dead_letter: name("dead-letter"),
        ownership: name("ownership"),
    }
}

/// The Kafka parts of one `entitywatch run` process, built from the library as the app builds
/// them: the bus (topics created), a watcher publishing to it, a worker and its group member.
struct Pipeline {
    bus: Bus,
    watcher: Watcher,
    worker: Worker,
    source: Box<dyn MessageSource>,
}

async fn start(
    config: &KafkaConfig,
    store: &Store,
    client: FederalRegisterClient,
    retry: &RetryPolicy,
    sinks: Vec<Arc<dyn AlertSink>>,
) -> Pipeline {
    let bus = tokio::time::timeout(Duration::from_secs(60), Bus::kafka(config.clone()))
        .await
        .expect("topics created and clients built within 60 s")
        .expect("the Kafka bus starts");
    let watcher = Watcher::new(
        client,
        store.clone(),
        bus.change_publisher(),
        WatcherConfig::default(),
    );
    let worker = bus.worker_with(store, retry.clone(), DEFAULT_CLAIM_LEASE, sinks);
    let source = bus.worker_source_in(&config.group_id).expect("subscribed");
    Pipeline {
        bus,
        watcher,
        worker,
        source,
    }
}

/// A member of `group` on the change and suppliers topics.
fn member(config: &KafkaConfig, group: &str) -> Box<dyn MessageSource> {
    Box::new(KafkaSource::new(config.subscribe_worker(group).unwrap()))
}

/// Consumes until `n` messages were handled (a failed one is retried every 200 ms).
fn until(n: usize, suppliers_topic: Option<String>) -> ConsumeOptions {
    ConsumeOptions {
        until: Until::Handled(n),
        retry_delay: Duration::from_millis(200),
        suppliers_topic,
        ownership_topic: None,
    }
}

fn slack_sink(addr: SocketAddr) -> Arc<dyn AlertSink> {
    let url = SecretUrl::parse(&format!("http://{addr}{SLACK_PATH}")).unwrap();
    Arc::new(SlackSink::new(url).unwrap())
}

/// Every message `consumer` receives until `quiet` passes without one, bounded by `max`.
async fn drain(consumer: &KafkaConsumer, quiet: Duration, max: Duration) -> Vec<ReceivedMessage> {
    let started = Instant::now();
    let mut out = Vec::new();
    while started.elapsed() < max {
        match tokio::time::timeout(quiet, consumer.recv()).await {
            Ok(Ok(m)) => out.push(m),
            Ok(Err(e)) => panic!("receiving: {e}"),
            Err(_) => break,
        }
    }
    out
}

/// Receives until `n` messages arrived, failing after `max`.
async fn receive_n(consumer: &KafkaConsumer, n: usize, max: Duration) -> Vec<ReceivedMessage> {
    let deadline = Instant::now() + max;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, consumer.recv()).await {
            Ok(Ok(m)) => out.push(m),
            Ok(Err(e)) => panic!("receiving: {e}"),
            Err(_) => panic!(
                "only {} of {n} messages arrived within {max:?}: {:?}",
                out.len(),
                out.iter()
                    .map(
                        |m| String::from_utf8_lossy(m.payload.as_deref().unwrap_or_default())
                            .into_owned()
                    )
                    .collect::<Vec<_>>()
            ),
        }
    }
    out
}

fn json(m: &ReceivedMessage) -> Value {
    serde_json::from_slice(m.payload.as_deref().expect("a payload")).expect("JSON payload")
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_run_alerts_exactly_once() {
    let settings = kafka_settings();
    let topics = unique_topics();
    let mut config = KafkaConfig::new(settings.clone());
    config.topics = topics.clone();
    config.group_id = format!("entitywatch-workers-{}", uuid::Uuid::new_v4().simple());
    // A Slack receiver that never answers should not hold the test for minutes.
    let retry = RetryPolicy {
        max_attempts: 3,
        min_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
    };

    let db = fresh_db(Db::Postgres).await;
    let store = Store::connect(&db.url).await.expect("PostgreSQL store");
    let import = read_suppliers(SUPPLIERS.as_bytes(), ReadLimits::default()).unwrap();
    assert_eq!(import.records.len(), 8);
    store.upsert_suppliers(&import.records).await.unwrap();

    let server = rule_server().await;
    let (slack, received) = slack_receiver().await;

    let client = FederalRegisterClient::new(ClientConfig {
        base_url: url::Url::parse(&server.base_url()).unwrap(),
        ..ClientConfig::default()
    })
    .unwrap();
    let pipeline = start(&config, &store, client, &retry, vec![slack_sink(slack)]).await;

    // One poll publishes the rule's events to Kafka.
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        pipeline
            .watcher
            .poll_once(Some(NaiveDate::from_ymd_opt(2019, 1, 1).unwrap())),
    )
    .await
    .expect("poll within 60 s")
    .expect("poll succeeds");
    assert_eq!(report.entity_events, 27, "{report:?}");

    // A poison message among the change events: dead-lettered, and the worker moves past it.
    let producer = pipeline.bus.kafka_producer().unwrap().clone();
    producer
        .send_all(&[OutgoingRecord {
            topic: topics.entity_changes.clone(),
            key: "poison".into(),
            payload: Some(b"{this is not json".to_vec()),
            headers: Vec::new(),
        }])
        .await
        .expect("poison message produced");

    let Pipeline {
        bus,
        worker,
        source,
        ..
    } = pipeline;
    let handled = tokio::time::timeout(
        Duration::from_secs(120),
        consume(
            &worker,
            source,
            until(MESSAGES, None),
            std::future::pending::<()>(),
        ),
    )
    .await
    .expect("the worker handled every message within 120 s (is one stuck in retries?)")
    .expect("the worker stops cleanly");
    assert_eq!(handled, MESSAGES);

    // The worker group committed past every message: a member that rejoins has nothing to do.
    let rejoined = config.subscribe_worker(&config.group_id).unwrap();
    let again = drain(&rejoined, Duration::from_secs(5), Duration::from_secs(30)).await;
    assert!(
        again.is_empty(),
        "the group did not commit its offsets: {} messages redelivered",
        again.len()
    );
    rejoined.close().await.unwrap();

    // The alert topic holds exactly the three alerts.
    let alerts_reader = KafkaConsumer::subscribe(
        &settings,
        &format!("alerts-reader-{}", uuid::Uuid::new_v4().simple()),
        &[topics.alerts.as_str()],
    )
    .unwrap();
    let mut on_topic = receive_n(&alerts_reader, 3, Duration::from_secs(30)).await;
    on_topic.extend(
        drain(
            &alerts_reader,
            Duration::from_secs(3),
            Duration::from_secs(10),
        )
        .await,
    );
    let alerts: Vec<Value> = on_topic.iter().map(json).collect();
    assert_eq!(pairs(&alerts), expected());
    for (m, a) in on_topic.iter().zip(&alerts) {
        assert_eq!(
            m.key_str(),
            a["supplier"]["id"].as_str(),
            "keyed by supplier"
        );
        assert_eq!(a["kind"], "listed");
        assert_eq!(a["entry"]["document_number"], "2019-22210");
        assert!(a["score"].as_f64().unwrap() >= entitywatch::screening::DEFAULT_THRESHOLD);
    }
    // ... and the Slack receiver got the same three.
    assert_eq!(slack_suppliers(&received), ["S-1", "S-2", "S-3"]);

    // The poison message is on the dead-letter topic, with its reason.
    let dead_reader = KafkaConsumer::subscribe(
        &settings,
        &format!("dead-reader-{}", uuid::Uuid::new_v4().simple()),
        &[topics.dead_letter.as_str()],
    )
    .unwrap();
    let dead = receive_n(&dead_reader, 1, Duration::from_secs(30)).await;
    let letter = json(&dead[0]);
    assert_eq!(dead[0].key_str(), Some("poison"));
    assert_eq!(letter["payload"], "{this is not json");
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .starts_with("invalid_json"),
        "{letter}"
    );
    assert!(letter["dead_lettered_at"].is_string());
    assert!(dead[0].header(DEAD_LETTER_REASON_HEADER).is_some());

    // A fresh worker in a new group replays the change topic from offset 0: the Postgres
    // delivery ledger absorbs every alert.
    let fresh = bus.worker_with(&store, retry, DEFAULT_CLAIM_LEASE, vec![slack_sink(slack)]);
    let fresh_member = member(
        &config,
        &format!("a-fresh-worker-{}", uuid::Uuid::new_v4().simple()),
    );
    let replayed = tokio::time::timeout(
        Duration::from_secs(120),
        consume(
            &fresh,
            fresh_member,
            until(MESSAGES, None),
            std::future::pending::<()>(),
        ),
    )
    .await
    .expect("the fresh worker replayed the topic within 120 s")
    .expect("the fresh worker stops cleanly");
    assert_eq!(replayed, MESSAGES);
    let new_alerts = drain(
        &alerts_reader,
        Duration::from_secs(3),
        Duration::from_secs(10),
    )
    .await;
    assert!(
        new_alerts.is_empty(),
        "replay sent alerts again: {:?}",
        new_alerts.iter().map(json).collect::<Vec<_>>()
    );
    assert_eq!(
        slack_suppliers(&received),
        ["S-1", "S-2", "S-3"],
        "replay posted to Slack again"
    );

    alerts_reader.close().await.unwrap();
    dead_reader.close().await.unwrap();
    store.close().await;
}

/// A worker whose store is down keeps retrying the message in hand and stores no offset past
/// it; when it stops, another member of the same group handles every message it could not, so
/// all three alerts still arrive.
#[tokio::test(flavor = "multi_thread")]
async fn store_down_leaves_the_offset_unstored() {
    let settings = kafka_settings();
    let topics = unique_topics();
    let mut config = KafkaConfig::new(settings.clone());
    config.topics = topics.clone();
    config.partitions = 1;
    config.group_id = format!("entitywatch-workers-{}", uuid::Uuid::new_v4().simple());

    let db = fresh_db(Db::Postgres).await;
    let store = Store::connect(&db.url).await.expect("PostgreSQL store");
    let import = read_suppliers(SUPPLIERS.as_bytes(), ReadLimits::default()).unwrap();
    store.upsert_suppliers(&import.records).await.unwrap();
    let server = rule_server().await;
    let client = FederalRegisterClient::new(ClientConfig {
        base_url: url::Url::parse(&server.base_url()).unwrap(),
        ..ClientConfig::default()
    })
    .unwrap();
    let retry = RetryPolicy::default();
    let pipeline = start(&config, &store, client, &retry, Vec::new()).await;
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        pipeline
            .watcher
            .poll_once(Some(NaiveDate::from_ymd_opt(2019, 1, 1).unwrap())),
    )
    .await
    .expect("poll within 60 s")
    .expect("poll succeeds");
    assert_eq!(report.entity_events, 27);
    let Pipeline { bus, source, .. } = pipeline;

    // The store is down for this worker: every entity change fails.
    let down = Store::connect(&db.url).await.unwrap();
    down.close().await;
    let broken = bus.worker_with(&down, retry.clone(), DEFAULT_CLAIM_LEASE, Vec::new());
    let stuck = tokio::time::timeout(
        Duration::from_secs(60),
        consume(
            &broken,
            source,
            until(MESSAGES - 1, None),
            tokio::time::sleep(Duration::from_secs(8)),
        ),
    )
    .await
    .expect("the failing worker stops on shutdown, retrying no longer")
    .expect("the failing worker leaves the group cleanly");
    // Only the document event needs no store; no entity change can have been passed over.
    assert!(stuck <= 1, "{stuck} messages handled with the store down");

    let worker = bus.worker_with(&store, retry, DEFAULT_CLAIM_LEASE, Vec::new());
    let handled = tokio::time::timeout(
        Duration::from_secs(120),
        consume(
            &worker,
            member(&config, &config.group_id),
            until(MESSAGES - 1 - stuck, None),
            std::future::pending::<()>(),
        ),
    )
    .await
    .expect("the second member handled the rest within 120 s")
    .expect("the second member stops cleanly");
    assert_eq!(handled + stuck, MESSAGES - 1);

    let alerts_reader = KafkaConsumer::subscribe(
        &settings,
        &format!("alerts-reader-{}", uuid::Uuid::new_v4().simple()),
        &[topics.alerts.as_str()],
    )
    .unwrap();
    let mut on_topic = receive_n(&alerts_reader, 3, Duration::from_secs(30)).await;
    on_topic.extend(
        drain(
            &alerts_reader,
            Duration::from_secs(3),
            Duration::from_secs(10),
        )
        .await,
    );
    assert_eq!(
        pairs(&on_topic.iter().map(json).collect::<Vec<_>>()),
        expected()
    );
    alerts_reader.close().await.unwrap();
    store.close().await;
}

/// Supplier upserts on the suppliers topic are stored and screened against the whole list; a
/// record that does not parse is dead-lettered; a tombstone deletes the supplier.
#[tokio::test(flavor = "multi_thread")]
async fn suppliers_topic_upserts_are_screened_and_tombstones_delete() {
    let settings = kafka_settings();
    let topics = unique_topics();
    let mut config = KafkaConfig::new(settings.clone());
    config.topics = topics.clone();
    config.group_id = format!("entitywatch-workers-{}", uuid::Uuid::new_v4().simple());

    let db = fresh_db(Db::Postgres).await;
    let store = Store::connect(&db.url).await.expect("PostgreSQL store");
    let list = entitywatch::csl::read_csl_path(
        &fixture("csl/EL_only_from_watchman_consolidated_2022-05.csv"),
        &entitywatch::csl::SourceFilter::default(),
    )
    .unwrap();
    store
        .replace_entity_list_snapshot(&entitywatch::csl::snapshot(&list.entries).entries)
        .await
        .unwrap();

    let client = FederalRegisterClient::new(ClientConfig::default()).unwrap();
    let pipeline = start(&config, &store, client, &RetryPolicy::default(), Vec::new()).await;
    let record = |key: &str, payload: Option<&str>| OutgoingRecord {
        topic: topics.suppliers.clone(),
        key: key.into(),
        payload: payload.map(|p| p.as_bytes().to_vec()),
        headers: Vec::new(),
    };
    pipeline
        .bus
        .kafka_producer()
        .unwrap()
        .send_all(&[
            record(
                "V-1",
                Some(r#"{"id":"V-1","name":"HANGZHOU HIKVISION DIGITAL TECH CO LTD","aliases":[],"country":"CN","address":null,"references":{}}"#),
            ),
            record("V-2", Some(r#"{"id":"V-2","name":"   "}"#)),
            record(
                "V-3",
                Some(r#"{"id":"V-3","name":"Siemens AG","aliases":[],"country":"DE","address":null,"references":{}}"#),
            ),
            record("V-3", None),
        ])
        .await
        .expect("supplier messages produced");

    let Pipeline { worker, source, .. } = pipeline;
    let handled = tokio::time::timeout(
        Duration::from_secs(60),
        consume(
            &worker,
            source,
            until(4, Some(topics.suppliers.clone())),
            std::future::pending::<()>(),
        ),
    )
    .await
    .expect("handled within 60 s")
    .expect("the worker stops cleanly");
    assert_eq!(handled, 4);

    assert!(store.supplier("V-1").await.unwrap().is_some());
    assert!(store.supplier("V-2").await.unwrap().is_none());
    assert!(
        store.supplier("V-3").await.unwrap().is_none(),
        "tombstone deletes"
    );

    let alerts_reader = KafkaConsumer::subscribe(
        &settings,
        &format!("alerts-reader-{}", uuid::Uuid::new_v4().simple()),
        &[topics.alerts.as_str()],
    )
    .unwrap();
    let alerts = receive_n(&alerts_reader, 1, Duration::from_secs(30)).await;
    let alerts: Vec<Value> = alerts.iter().map(json).collect();
    assert_eq!(
        pairs(&alerts),
        [(
            "V-1".to_string(),
            "CN/hangzhou-hikvision-digital-technology-co-ltd".to_string()
        )]
    );
    alerts_reader.close().await.unwrap();

    let dead_reader = KafkaConsumer::subscribe(
        &settings,
        &format!("dead-reader-{}", uuid::Uuid::new_v4().simple()),
        &[topics.dead_letter.as_str()],
    )
    .unwrap();
    let dead = receive_n(&dead_reader, 1, Duration::from_secs(30)).await;
    let body = json(&dead[0]);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .starts_with("invalid_supplier"),
        "{body}"
    );
    dead_reader.close().await.unwrap();
    store.close().await;
}

/// The `watch` binary with --kafka-brokers publishes the rule's CloudEvents to the change topic
/// (default name) and checkpoints; a second run publishes nothing new.
#[tokio::test(flavor = "multi_thread")]
async fn watch_binary_publishes_to_kafka() {
    let settings = kafka_settings();
    let db = fresh_db(Db::Postgres).await;
    let server = rule_server().await;
    // This test alone writes the default topic, but a broker kept between runs still holds what
    // earlier runs published: count before and after.
    entitywatch::bus::ensure_topics(&settings, &Topics::default().specs(3, 1))
        .await
        .expect("default topics exist");
    let before = count_document_events(&settings, "2019-22210").await;
    for _ in 0..2 {
        let mut cmd = common::entitywatch();
        cmd.args([
            "watch",
            "--once",
            "--since",
            "2019-01-01",
            "--no-public-inspection",
        ])
        .arg("--database-url")
        .arg(&db.url)
        .arg("--federal-register-url")
        .arg(server.base_url())
        .arg("--kafka-brokers")
        .arg(&settings.brokers);
        let r = common::run(cmd).await;
        assert!(r.status.success(), "{}", r.stderr);
    }
    let after = count_document_events(&settings, "2019-22210").await;
    assert_eq!(
        after - before,
        28,
        "27 entity changes and one document event, published once across two runs"
    );
}

/// How many messages on the default change topic belong to `document`.
async fn count_document_events(settings: &KafkaSettings, document: &str) -> usize {
    let reader = KafkaConsumer::subscribe(
        settings,
        &format!("changes-reader-{}", uuid::Uuid::new_v4().simple()),
        &[entitywatch::bus::kafka::ENTITY_CHANGES_TOPIC],
    )
    .unwrap();
    let messages = drain(&reader, Duration::from_secs(4), Duration::from_secs(30)).await;
    reader.close().await.unwrap();
    messages
        .iter()
        .map(json)
        .filter(|e| e["data"]["source"]["document_number"] == document)
        .count()
}
