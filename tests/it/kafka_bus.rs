//! The Kafka transport against a real Kafka-protocol broker (tansu, started by
//! `scripts/kafka.sh start`; override with `ENTITYWATCH_TEST_KAFKA_BROKERS`).
//!
//! These tests stand for the promises the watcher and worker build on: a published document's
//! events are on the topic, in order, keyed and CloudEvent-encoded, with ids that a re-publish
//! repeats; a consumer group resumes after what it committed. They must never pass without a
//! broker: an unreachable broker fails them with the command to start one. Every test uses
//! fresh topics and groups and is bounded in time, so runs never see each other's messages.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use crate::common::kafka::kafka_settings;
use crate::common::wait;
use chrono::NaiveDate;
use entitywatch::bus::cloudevents::{self, CONTENT_TYPE};
use entitywatch::bus::kafka::{
    ensure_topics, topic_config, KafkaConsumer, KafkaProducer, KafkaPublisher, OutgoingRecord,
    ReceivedMessage, TopicSpec, Topics, CONTENT_TYPE_HEADER,
};
use entitywatch::bus::{from_cloud_event, Publisher};
use entitywatch::events::{
    ChangeAction, ChangeEvent, CountryCode, DocumentEvent, DocumentStage, EntityChange, EntityName,
    SourceDocument,
};

const STEP: Duration = Duration::from_secs(30);

fn unique(name: &str) -> String {
    format!("entitywatch.test.{name}.{}", uuid::Uuid::new_v4().simple())
}

async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    wait::bounded(what, STEP, f).await
}

async fn recv(consumer: &KafkaConsumer, what: &str) -> ReceivedMessage {
    bounded(what, consumer.recv())
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The events the watcher publishes for 84 FR 54002 (2019-22210), trimmed to three entries.
fn document_events() -> Vec<ChangeEvent> {
    let source = SourceDocument {
        document_number: "2019-22210".into(),
        publication_date: NaiveDate::from_ymd_opt(2019, 10, 9),
        effective_date: NaiveDate::from_ymd_opt(2019, 10, 9),
        citation: Some("84 FR 54002".into()),
        title: Some("Addition of Certain Entities to the Entity List".into()),
        html_url: Some("https://www.federalregister.gov/d/2019-22210".into()),
    };
    let cn = CountryCode::parse("CN").unwrap();
    let entry = |name: &str, address: &str| {
        let mut c = EntityChange::new(
            ChangeAction::Added,
            EntityName::parse(name).unwrap(),
            cn.clone(),
            "CHINA, PEOPLE'S REPUBLIC OF",
            source.clone(),
        );
        c.addresses = vec![address.to_string()];
        c.license_requirement = Some("For all items subject to the EAR.".into());
        c.license_policy = Some("Presumption of denial.".into());
        c.federal_register_citation = Some("84 FR 54002, 10/9/19.".into());
        ChangeEvent::Entity(c)
    };
    vec![
        entry(
            "Hangzhou Hikvision Digital Technology Co., Ltd.",
            "No. 555 Qianmo Road, Binjiang District, Hangzhou, 310052",
        ),
        entry(
            "Zhejiang Dahua Technology Co., Ltd.",
            "No. 1199, Bin'an Road, Binjiang District, Hangzhou, 310053",
        ),
        entry(
            "iFlytek Co., Ltd.",
            "666 Wangjiang West Road, Hefei, Anhui, 230088",
        ),
        ChangeEvent::Document(DocumentEvent {
            stage: DocumentStage::Published,
            source: source.clone(),
            amendatory_text: vec!["2. Supplement No. 4 to part 744 is amended ...".into()],
            change_count: 3,
            warnings: vec![],
        }),
    ]
}

fn ce_id(m: &ReceivedMessage) -> String {
    let ce: cloudevents::CloudEvent =
        serde_json::from_slice(m.payload.as_deref().expect("a payload")).expect("a CloudEvent");
    ce.id
}

/// Checks one consumed message against the event it must carry.
fn assert_carries(m: &ReceivedMessage, event: &ChangeEvent) {
    assert_eq!(
        m.key_str(),
        Some(event.key().as_str()),
        "key at offset {}",
        m.offset
    );
    assert_eq!(m.header(CONTENT_TYPE_HEADER), Some(CONTENT_TYPE.as_bytes()));
    let payload = m.payload.as_deref().expect("a payload");
    let ce: cloudevents::CloudEvent = serde_json::from_slice(payload).expect("a CloudEvent");
    let expected = cloudevents::to_cloud_event(event);
    assert_eq!(
        ce, expected,
        "the whole envelope, deterministic id included"
    );
    assert_eq!(ce.specversion, "1.0");
    assert_eq!(ce.source, "https://www.federalregister.gov/d/2019-22210");
    assert_eq!(
        ce.subject.as_deref(),
        Some(match event {
            ChangeEvent::Entity(c) => c.entity_key.as_str(),
            ChangeEvent::Document(d) => d.source.document_number.as_str(),
        })
    );
    assert_eq!(ce.time.unwrap().to_rfc3339(), "2019-10-09T00:00:00+00:00");
    assert_eq!(from_cloud_event(payload).unwrap(), *event);
}

/// Publish a document, read it back in a group, commit part of it, resume in a second member
/// of the group, then publish the same document again and see the same ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_consume_commit_resume_and_republish() {
    let settings = kafka_settings();
    let topic = unique("changes");
    let group = unique("worker");
    let started = Instant::now();

    let spec = TopicSpec::new(&topic, 1, 1);
    bounded(
        "ensure_topics",
        ensure_topics(&settings, std::slice::from_ref(&spec)),
    )
    .await
    .expect("create topic");
    // Every process calls this at start-up: an existing topic is success.
    bounded("ensure_topics again", ensure_topics(&settings, &[spec]))
        .await
        .expect("an existing topic is not an error");

    let events = document_events();
    let publisher = KafkaPublisher::new(&settings, &topic).unwrap();
    let t = Instant::now();
    bounded("publish", publisher.publish(&events))
        .await
        .expect("publish");
    eprintln!("publish of {} events: {:?}", events.len(), t.elapsed());

    // First member: reads everything, in order, but finishes only the first two.
    let first = KafkaConsumer::subscribe(&settings, &group, &[&topic]).unwrap();
    let t = Instant::now();
    let mut received = Vec::new();
    for i in 0..events.len() {
        received.push(recv(&first, &format!("first consumer, message {i}")).await);
    }
    eprintln!("first consumer join + fetch: {:?}", t.elapsed());
    for (i, (m, event)) in received.iter().zip(&events).enumerate() {
        assert_eq!(
            (m.topic.as_str(), m.partition, m.offset),
            (topic.as_str(), 0, i as i64)
        );
        assert_carries(m, event);
    }
    first.store(&received[0]).unwrap();
    first.store(&received[1]).unwrap();
    bounded("commit", first.commit()).await.expect("commit");
    let committed = bounded("committed", first.committed(Duration::from_secs(10)))
        .await
        .expect("committed offsets");
    assert_eq!(committed.len(), 1, "{committed:?}");
    assert_eq!(
        committed[0].offset,
        Some(2),
        "next offset to read: {committed:?}"
    );
    let t = Instant::now();
    bounded("close", first.close()).await.expect("close");
    eprintln!("first consumer close: {:?}", t.elapsed());

    // Second member of the same group resumes after the committed offset.
    let second = KafkaConsumer::subscribe(&settings, &group, &[&topic]).unwrap();
    let t = Instant::now();
    let m = recv(&second, "second consumer, first message").await;
    eprintln!("second consumer join + fetch: {:?}", t.elapsed());
    assert_eq!(m.offset, 2, "resumes after the committed offset");
    assert_carries(&m, &events[2]);
    let m = recv(&second, "second consumer, second message").await;
    assert_eq!(m.offset, 3);
    assert_carries(&m, &events[3]);

    // A replayed document, as a watcher restarted before its checkpoint would publish it: the
    // same events again from a new producer, recognisable by their ids.
    drop(publisher);
    let publisher = KafkaPublisher::new(&settings, &topic).unwrap();
    let t = Instant::now();
    bounded("re-publish", publisher.publish(&events))
        .await
        .expect("re-publish");
    eprintln!("re-publish of {} events: {:?}", events.len(), t.elapsed());
    for (i, event) in events.iter().enumerate() {
        let m = recv(&second, &format!("re-published message {i}")).await;
        assert_eq!(m.offset, (events.len() + i) as i64);
        assert_carries(&m, event);
        // The first publication's id, as a consumer de-duplicating on ids would have kept it.
        assert_eq!(
            ce_id(&m),
            ce_id(&received[i]),
            "re-published event {i} keeps its id"
        );
        second.store(&m).unwrap();
    }
    bounded("close second", second.close())
        .await
        .expect("close");
    eprintln!("whole test: {:?}", started.elapsed());
}

/// Keyed JSON (alerts), headers (dead-letter reasons) and tombstones (supplier deletes) through
/// the generic producer, on a compacted topic created with the suppliers topic's settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_producer_sends_json_headers_and_tombstones() {
    let settings = kafka_settings();
    let topics = Topics {
        entity_changes: unique("changes"),
        alerts: unique("alerts"),
        suppliers: unique("suppliers"),
        dead_letter: unique("dead-letter"),
        ownership: unique("ownership"),
    };
    let specs = topics.specs(1, 1);
    bounded("ensure_topics", ensure_topics(&settings, &specs))
        .await
        .expect("create the four topics");
    let config = bounded("topic_config", topic_config(&settings, &topics.suppliers))
        .await
        .unwrap();
    assert_eq!(
        config.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    // Again, now that they exist: success, existing config compared (and left alone).
    bounded("ensure_topics again", ensure_topics(&settings, &specs))
        .await
        .expect("existing topics are fine");

    let producer = KafkaProducer::new(&settings).unwrap();
    let supplier = serde_json::json!({"id": "S-1", "name": "Hikvision Europe B.V."});
    let d = bounded(
        "send_json",
        producer.send_json(&topics.suppliers, "S-1", &supplier),
    )
    .await
    .unwrap();
    assert_eq!((d.partition, d.offset), (0, 0));
    let records = vec![
        OutgoingRecord::tombstone(&topics.suppliers, "S-1"),
        OutgoingRecord::json(
            &topics.dead_letter,
            "CN/x",
            &serde_json::json!({"raw": "..."}),
        )
        .unwrap()
        .with_header("entitywatch-reason", "unknown_type"),
    ];
    let delivered = bounded("send_all", producer.send_all(&records))
        .await
        .unwrap();
    assert_eq!(delivered.len(), 2);

    let consumer = KafkaConsumer::subscribe(
        &settings,
        &unique("reader"),
        &[&topics.suppliers, &topics.dead_letter],
    )
    .unwrap();
    let mut by_topic: BTreeMap<String, Vec<ReceivedMessage>> = BTreeMap::new();
    for i in 0..3 {
        let m = recv(&consumer, &format!("message {i}")).await;
        by_topic.entry(m.topic.clone()).or_default().push(m);
    }
    let suppliers = &by_topic[&topics.suppliers];
    assert_eq!(suppliers.len(), 2);
    assert_eq!(suppliers[0].key_str(), Some("S-1"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(suppliers[0].payload.as_deref().unwrap())
            .unwrap(),
        supplier
    );
    assert_eq!(
        suppliers[0].header("content-type"),
        Some(&b"application/json"[..])
    );
    assert_eq!(suppliers[1].key_str(), Some("S-1"));
    assert_eq!(suppliers[1].payload, None, "a tombstone has no value");
    let dead = &by_topic[&topics.dead_letter];
    assert_eq!(
        dead[0].header("entitywatch-reason"),
        Some(&b"unknown_type"[..])
    );
    bounded("close", consumer.close()).await.unwrap();
}

/// Two members of one group on a four-partition topic: every message is delivered to exactly
/// one member, each partition's messages in order (the worker's scaling model).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_the_partitions() {
    let settings = kafka_settings();
    let topic = unique("split");
    let group = unique("workers");
    bounded(
        "ensure_topics",
        ensure_topics(&settings, &[TopicSpec::new(&topic, 4, 1)]),
    )
    .await
    .unwrap();

    let a = KafkaConsumer::subscribe(&settings, &group, &[&topic]).unwrap();
    let b = KafkaConsumer::subscribe(&settings, &group, &[&topic]).unwrap();

    // Let the group settle before producing: members that rebalance mid-stream without
    // committed offsets legitimately re-read from the earliest offset.
    let t = Instant::now();
    let deadline = t + Duration::from_secs(60);
    let mut stable_since = None;
    loop {
        tokio::select! {
            m = a.recv() => panic!("unexpected message at a: {m:?}"),
            m = b.recv() => panic!("unexpected message at b: {m:?}"),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let (pa, pb) = (a.assignment().unwrap(), b.assignment().unwrap());
        let settled = !pa.is_empty() && !pb.is_empty() && pa.len() + pb.len() == 4;
        match (settled, stable_since) {
            (true, None) => stable_since = Some(Instant::now()),
            (true, Some(since)) if since.elapsed() > Duration::from_secs(2) => break,
            (false, _) => stable_since = None,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "group did not settle within 60 s: a={pa:?} b={pb:?}"
        );
    }
    eprintln!("two members settled: {:?}", t.elapsed());

    let producer = KafkaProducer::new(&settings).unwrap();
    let records: Vec<OutgoingRecord> = (0..40)
        .map(|i| {
            OutgoingRecord::json(
                &topic,
                format!("key-{}", i % 8),
                &serde_json::json!({"seq": i}),
            )
            .unwrap()
        })
        .collect();
    let delivered = bounded("send_all", producer.send_all(&records))
        .await
        .unwrap();
    let partitions: BTreeSet<i32> = delivered.iter().map(|d| d.partition).collect();
    assert!(
        partitions.len() > 1,
        "keys spread over partitions: {partitions:?}"
    );

    let t = Instant::now();
    let mut seen: BTreeMap<&str, Vec<(i32, i64, i64)>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut total = 0;
    while total < records.len() {
        assert!(
            Instant::now() < deadline,
            "only {total} of {} messages within 60 s: {seen:?}",
            records.len()
        );
        let (who, m) = tokio::select! {
            m = a.recv() => ("a", m.unwrap()),
            m = b.recv() => ("b", m.unwrap()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
        };
        let v: serde_json::Value = serde_json::from_slice(m.payload.as_deref().unwrap()).unwrap();
        seen.entry(who)
            .or_default()
            .push((m.partition, m.offset, v["seq"].as_i64().unwrap()));
        total += 1;
    }
    eprintln!(
        "two members, 40 messages: {:?}; split {:?}",
        t.elapsed(),
        seen.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
    );

    // Exactly once each, and in offset order per partition.
    let mut all: Vec<i64> = seen.values().flatten().map(|(_, _, s)| *s).collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..40).collect::<Vec<_>>(),
        "every message exactly once"
    );
    let mut owner: BTreeMap<i32, &str> = BTreeMap::new();
    for (who, msgs) in &seen {
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        for (p, o, _) in msgs {
            if let Some(prev) = last.insert(*p, *o) {
                assert!(*o > prev, "partition {p} out of order at {who}");
            }
            if let Some(other) = owner.insert(*p, who) {
                assert_eq!(other, *who, "partition {p} read by both members");
            }
        }
    }
    assert_eq!(seen.len(), 2, "both members got partitions: {owner:?}");
    let (ra, rb) = tokio::join!(a.close(), b.close());
    ra.unwrap();
    rb.unwrap();
}
