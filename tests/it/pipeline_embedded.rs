//! End-to-end on the embedded default: `entitywatch run` with no Kafka, a SQLite file, the local
//! Federal Register replay publishing 84 FR 54002, and a local Slack receiver. Asserts the exact
//! alert set at Slack and on the alert topic, then that neither a restart nor a fresh worker
//! replaying the change topic from the start sends any alert again.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::common::scenario::{
    expected, import_suppliers, pairs, rule_server, slack_receiver, slack_suppliers, SLACK_PATH,
    SUPPLIERS,
};
use crate::common::service::Service;
use crate::common::{alert_topic, entitywatch, fixture, fresh_db, run, run_embedded, Db};
use serde_json::Value;

/// Runs `entitywatch run` until `done` holds (bounded by `max`), then stops it with SIGTERM.
/// Its output is read while it runs (a full pipe would block the service).
async fn run_until(
    db_url: &str,
    fr: &str,
    slack: SocketAddr,
    done: impl Fn() -> bool,
    max: Duration,
) -> common::Run {
    let mut cmd = run_embedded(db_url, fr);
    cmd.env(
        "ENTITYWATCH_SLACK_WEBHOOK_URL",
        format!("http://{slack}{SLACK_PATH}"),
    );
    let service = Service::start(cmd).await;
    let start = std::time::Instant::now();
    while !done() && start.elapsed() < max {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let a redelivery or a second poll happen if it were going to.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, logs) = service.terminate(Duration::from_secs(20)).await;
    common::Run {
        status,
        stdout: String::new(),
        stderr: logs,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_run_alerts_exactly_once() {
    let db = fresh_db(Db::Sqlite).await;
    let server = rule_server().await;
    let (slack, received) = slack_receiver().await;

    import_suppliers(&db).await;

    let r = received.clone();
    let first = run_until(
        &db.url,
        &server.base_url(),
        slack,
        move || r.lock().unwrap().len() >= 3,
        Duration::from_secs(30),
    )
    .await;
    assert!(first.status.success(), "run failed:\n{}", first.stderr);
    assert_eq!(
        slack_suppliers(&received),
        ["S-1", "S-2", "S-3"],
        "{}",
        first.stderr
    );
    // The Slack webhook URL is a secret: it never reaches the logs.
    assert!(!first.stderr.contains("XSECRETXSECRET"), "{}", first.stderr);

    // The alert topic holds the same three alerts.
    let topic = alert_topic(&db).await;
    let store = entitywatch::store::Store::connect(&db.url).await.unwrap();
    assert_eq!(pairs(&topic), expected());
    for a in &topic {
        assert_eq!(a["kind"], "listed");
        assert_eq!(a["entry"]["document_number"], "2019-22210");
        assert!(a["score"].as_f64().unwrap() >= entitywatch::screening::DEFAULT_THRESHOLD);
    }
    // Every decision is stored, the look-alikes' too when they came near.
    let decisions = store.decisions_for_supplier("S-1").await.unwrap();
    assert!(decisions
        .iter()
        .any(|d| d.decision == entitywatch::outcome::DecisionKind::Match));
    store.close().await;

    // A restart polls again and re-reads its position: nothing new is sent.
    let second = run_until(
        &db.url,
        &server.base_url(),
        slack,
        || false,
        Duration::from_secs(2),
    )
    .await;
    assert!(second.status.success(), "{}", second.stderr);
    assert_eq!(received.lock().unwrap().len(), 3, "{}", second.stderr);

    // A fresh worker replaying the change topic from position 0 sends nothing either.
    let store = entitywatch::store::Store::connect(&db.url).await.unwrap();
    let changes =
        entitywatch::bus::InProcessBus::new(store.clone(), "entitywatch.entity-changes.v1");
    let alerts = entitywatch::bus::InProcessBus::new(store.clone(), "entitywatch.alerts.v1");
    let dead = entitywatch::bus::InProcessBus::new(store.clone(), "entitywatch.dead-letter.v1");
    let worker = entitywatch::worker::Worker::new(
        store.clone(),
        vec![Arc::new(entitywatch::alerts::topic::AlertTopicSink::new(
            alerts,
        ))],
        Arc::new(dead),
        entitywatch::alerts::RetryPolicy::default(),
    );
    let consumer = changes.consumer("a-fresh-worker");
    let handled = drain(&worker, consumer).await;
    assert_eq!(handled, 28, "27 entity changes and one document event");
    let after = store
        .read_log("entitywatch.alerts.v1", 0, 1000)
        .await
        .unwrap();
    assert_eq!(after.len(), 3, "replay sent alerts again");
    store.close().await;
}

/// The service as the library builds it for `main` (`App::build`), run in this process: it
/// serves on the port it bound (read from the app), polls the local Federal Register, screens
/// and alerts; a shutdown request stops it after the work in hand, with every message handled.
#[tokio::test(flavor = "multi_thread")]
async fn the_app_runs_in_process_and_reports_its_address() {
    use entitywatch::app::{ServiceSpec, WatcherOutput, WatcherSpec};
    let db = fresh_db(Db::Sqlite).await;
    let server = rule_server().await;
    let (slack, received) = slack_receiver().await;
    import_suppliers(&db).await;

    let settings = common::app::settings(&db.url, &server.base_url());
    let mut sinks = entitywatch::alerts::SinkSettings {
        slack_webhook_url: Some(format!("http://{slack}{SLACK_PATH}")),
        ..Default::default()
    };
    sinks.claim_lease = entitywatch::worker::DEFAULT_CLAIM_LEASE;
    let spec = ServiceSpec {
        watcher: Some(WatcherSpec {
            interval: Duration::from_secs(60),
            since: chrono::NaiveDate::from_ymd_opt(2019, 1, 1),
            public_inspection: false,
            output: WatcherOutput::Bus,
        }),
        worker: true,
        sinks,
        ready_max_poll_age: Duration::from_secs(1800),
        ..ServiceSpec::default()
    };
    let app = common::app::spawn_app(&settings, spec).await;
    assert_ne!(app.http.port(), 0, "the bound port, not the one asked for");
    let r = received.clone();
    assert!(
        common::wait::wait_until(Duration::from_secs(30), move || r.lock().unwrap().len()
            >= 3)
        .await,
        "three alerts at Slack within 30 s"
    );
    // Every message of the change topic handled: the workers' position is at its end.
    let store = entitywatch::store::Store::connect(&db.url).await.unwrap();
    let topic = entitywatch::bus::kafka::ENTITY_CHANGES_TOPIC;
    let started = std::time::Instant::now();
    loop {
        let at = store
            .consumer_position("entitywatch-workers", topic)
            .await
            .unwrap();
        if at == 28 && store.log_length(topic).await.unwrap() == 28 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "position {at} of 28 after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.close().await;
    let ready = reqwest::get(format!("http://{}/readyz", app.http))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
    let report = app.stop().await;
    assert_eq!(
        report.handled, 28,
        "27 entity changes and one document event"
    );
    assert_eq!(slack_suppliers(&received), ["S-1", "S-2", "S-3"]);
    assert_eq!(pairs(&alert_topic(&db).await), expected());
}

#[tokio::test]
async fn demo_prints_the_expected_alerts() {
    let mut cmd = entitywatch();
    cmd.arg("demo");
    let r = run(cmd).await;
    assert!(r.status.success(), "{}", r.stderr);
    for needle in [
        "HANGZHOU HIKVISION DIGITAL TECHNOLOGY CO LTD",
        "Zhejiang Dahua Technology Co., Ltd.",
        "iFlytek Co., Ltd.",
        "MEGVII TECHNOLOGY LTD",
        "revised: supplier \"HANGZHOU HIKVISION",
        "affiliate: supplier \"Westlake Lens Trading Co.\" (V-30001)",
    ] {
        assert!(r.stdout.contains(needle), "missing {needle}:\n{}", r.stdout);
    }
    assert_eq!(
        r.stdout.matches("affiliate: supplier").count(),
        1,
        "one affiliate alert:\n{}",
        r.stdout
    );
    for lookalike in [
        "Hangzhou Robam",
        "Dahua Logistics",
        "Hefei Wangjiang",
        "Siemens",
        "Robert Bosch",
        "Intertek",
    ] {
        assert!(
            !r.stdout.contains(lookalike),
            "look-alike {lookalike} alerted:\n{}",
            r.stdout
        );
    }
}

/// Removing an entry sends a "cleared" notice to exactly the suppliers alerted on it, once.
#[tokio::test(flavor = "multi_thread")]
async fn removal_clears_suppliers_alerted_on_the_entry() {
    use entitywatch::events::{ChangeAction, ChangeEvent};
    let db = fresh_db(Db::Sqlite).await;
    let store = entitywatch::store::Store::connect(&db.url).await.unwrap();
    let import = entitywatch::suppliers::read_suppliers(
        SUPPLIERS.as_bytes(),
        entitywatch::suppliers::ReadLimits::default(),
    )
    .unwrap();
    store.upsert_suppliers(&import.records).await.unwrap();
    let xml = std::fs::read(fixture("federal_register/2019-22210.xml")).unwrap();
    let rule = entitywatch::federal_register::amendment::parse_rule(
        &xml,
        None,
        &entitywatch::federal_register::amendment::ParseLimits::default(),
    )
    .unwrap();
    let hikvision = rule
        .changes
        .iter()
        .find(|c| c.name.as_str() == "Hangzhou Hikvision Digital Technology Co., Ltd.")
        .unwrap()
        .clone();
    let mut removal = hikvision.clone();
    removal.action = ChangeAction::Removed;
    removal.source.document_number = "2099-00001".into();

    let alerts = entitywatch::bus::InProcessBus::new(store.clone(), "entitywatch.alerts.v1");
    let worker = entitywatch::worker::Worker::new(
        store.clone(),
        vec![Arc::new(entitywatch::alerts::topic::AlertTopicSink::new(
            alerts,
        ))],
        Arc::new(entitywatch::bus::InProcessBus::new(
            store.clone(),
            "entitywatch.dead-letter.v1",
        )),
        entitywatch::alerts::RetryPolicy::default(),
    );
    for event in [
        ChangeEvent::Entity(hikvision),
        ChangeEvent::Entity(removal.clone()),
        // Redelivered: no second notice.
        ChangeEvent::Entity(removal),
    ] {
        worker.handle(&event).await.unwrap();
    }
    let sent: Vec<Value> = store
        .read_log("entitywatch.alerts.v1", 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(&m.payload).unwrap())
        .collect();
    let kinds: Vec<(&str, &str)> = sent
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap(),
                a["supplier"]["id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, [("listed", "S-1"), ("cleared", "S-1")]);
    assert_eq!(sent[1]["entry"]["version"], 2);
    store.close().await;
}

/// Lets `worker` handle everything on `consumer`'s topic, then returns how many it handled.
async fn drain(
    worker: &entitywatch::worker::Worker,
    consumer: entitywatch::bus::InProcessConsumer,
) -> usize {
    use entitywatch::worker::consume::{consume, ConsumeOptions, LogSource, Until};
    consume(
        worker,
        Box::new(LogSource::new(consumer)),
        ConsumeOptions {
            until: Until::Idle,
            ..ConsumeOptions::default()
        },
        std::future::pending::<()>(),
    )
    .await
    .unwrap()
}

/// Decisions are a function of (supplier record, entry version, matcher version), not of when
/// an event happened to be handled: 84 FR 54002 is published and screened alone, then the other
/// fixture rules (the list grows and word rarities with it), then a fresh consumer replays the
/// whole change topic from the start. Nothing new is sent, on either store.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_after_the_list_grew_decides_nothing_new() {
    for db_kind in [Db::Sqlite, Db::Postgres] {
        replay_decides_nothing_new(db_kind).await;
    }
}

async fn replay_decides_nothing_new(db_kind: Db) {
    use entitywatch::app::{App, Bus, ServiceSpec, WatcherOutput, WatcherSpec};
    use entitywatch::worker::consume::{consume, ConsumeOptions, Until};
    let db = fresh_db(db_kind).await;
    import_suppliers(&db).await;
    let since = chrono::NaiveDate::from_ymd_opt(2019, 1, 1);
    let spec = || ServiceSpec {
        watcher: Some(WatcherSpec {
            interval: Duration::from_secs(60),
            since,
            public_inspection: false,
            output: WatcherOutput::Bus,
        }),
        worker: true,
        ..ServiceSpec::default()
    };
    // 84 FR 54002 alone, then every fixture rule (those already processed are skipped).
    let first = rule_server().await;
    let all = common::scenario::rules_server(&[
        "2019-13245",
        "2019-22210",
        "2020-15827",
        "2021-04505",
        "2025-00480",
        "2025-00704",
    ])
    .await;
    for server in [&first, &all] {
        let settings = common::app::settings(&db.url, &server.base_url());
        let mut app = App::build(&settings, spec()).await.expect("the app builds");
        app.poll_once(since).await.expect("the poll succeeds");
        app.drain().await.expect("the worker drains the topic");
        app.close().await.unwrap();
    }
    let store = entitywatch::store::Store::connect(&db.url).await.unwrap();
    let deliveries = store.deliveries().await.unwrap().len();
    let alerts = alert_topic(&db).await.len();
    assert!(
        alerts >= 3,
        "{db_kind:?}: {alerts} alerts after the fixture rules"
    );

    // A fresh consumer replays everything from position 0.
    let bus = Bus::embedded(&store);
    let worker = bus
        .worker(&store, &entitywatch::alerts::SinkSettings::default())
        .unwrap();
    let replayed = consume(
        &worker,
        bus.worker_source_in("a-fresh-group").unwrap(),
        ConsumeOptions {
            until: Until::Idle,
            ..ConsumeOptions::default()
        },
        std::future::pending::<()>(),
    )
    .await
    .unwrap();
    let changes = store
        .log_length(entitywatch::bus::kafka::ENTITY_CHANGES_TOPIC)
        .await
        .unwrap();
    assert_eq!(
        replayed as i64, changes,
        "{db_kind:?}: the whole topic replayed"
    );
    assert_eq!(
        alert_topic(&db).await.len(),
        alerts,
        "{db_kind:?}: the replay sent alerts"
    );
    assert_eq!(
        store.deliveries().await.unwrap().len(),
        deliveries,
        "{db_kind:?}: the replay made deliveries"
    );
    store.close().await;
}

/// A decision already made on the same basis (matcher version, supplier record) stands: the
/// pair S-1 ~ Hikvision at version 1 was decided a near miss (as by an earlier handling of the
/// event, with other word weights); handling the rule now scores it a match, and still no alert
/// goes out for it — the stored decision is reused, not made again.
#[tokio::test(flavor = "multi_thread")]
async fn a_stored_decision_on_the_same_basis_is_reused() {
    use entitywatch::app::{App, ServiceSpec, WatcherOutput, WatcherSpec};
    use entitywatch::outcome::DecisionKind;
    let db = fresh_db(Db::Sqlite).await;
    import_suppliers(&db).await;
    let store = entitywatch::store::Store::connect(&db.url).await.unwrap();
    let s1 = store.supplier("S-1").await.unwrap().expect("S-1 imported");
    let hikvision = "CN/hangzhou-hikvision-digital-technology-co-ltd";
    store
        .record_decision(&entitywatch::store::Decision {
            supplier_id: "S-1".into(),
            entity_key: hikvision.into(),
            entry_version: 1,
            basis: entitywatch::worker::decision_basis(&s1),
            score: 0.762,
            decision: DecisionKind::NearMiss,
            explanation: "decided earlier".into(),
            document_number: Some("2019-22210".into()),
        })
        .await
        .unwrap();
    store.close().await;

    let server = rule_server().await;
    let settings = common::app::settings(&db.url, &server.base_url());
    let since = chrono::NaiveDate::from_ymd_opt(2019, 1, 1);
    let mut app = App::build(
        &settings,
        ServiceSpec {
            watcher: Some(WatcherSpec {
                interval: Duration::from_secs(60),
                since,
                public_inspection: false,
                output: WatcherOutput::Bus,
            }),
            worker: true,
            ..ServiceSpec::default()
        },
    )
    .await
    .unwrap();
    app.poll_once(since).await.unwrap();
    app.drain().await.unwrap();
    app.close().await.unwrap();

    let alerted: Vec<(String, String)> = pairs(&alert_topic(&db).await);
    assert_eq!(
        alerted,
        expected()
            .into_iter()
            .filter(|(s, _)| s != "S-1")
            .collect::<Vec<_>>(),
        "S-1 ~ Hikvision stays the near miss it was decided"
    );
    let store = entitywatch::store::Store::connect(&db.url).await.unwrap();
    let decisions = store.decisions_for_supplier("S-1").await.unwrap();
    let hik: Vec<_> = decisions
        .iter()
        .filter(|d| d.entity_key == hikvision)
        .collect();
    assert_eq!(hik.len(), 1, "{hik:?}");
    assert_eq!(
        (hik[0].decision, hik[0].score),
        (DecisionKind::NearMiss, 0.762)
    );
    store.close().await;
}
