//! The BIS Affiliates (50 %) rule end to end on the library: real listed parents (rows of the
//! CSL, see tests/fixtures/README.md) added by replaying their rule (84 FR 54002), invented
//! suppliers and holdings, on SQLite and PostgreSQL, through the embedded bus; and the
//! ownership topic on Kafka when a broker is up.

use serde_json::Value;

use entitywatch::alerts::SinkSettings;
use entitywatch::app::Bus;
use entitywatch::events::{ChangeAction, ChangeEvent, EntityChange};
use entitywatch::ownership::reader::read_ownership;
use entitywatch::store::Store;
use entitywatch::worker::Worker;

use crate::common::{fixture, fresh_db, Db};

/// The CSL names of the listed parents (verbatim from the fixture).
fn parent(n: &str) -> String {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("ownership/csl_parents.json")).unwrap(),
    )
    .unwrap();
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .find(|name| name.contains(n))
        .unwrap_or_else(|| panic!("{n} is in the fixture"))
}

const SUPPLIERS: &str = "id,name,country\n\
    A-60,Qiantang Optical Trading Company,CN\n\
    A-AGG,Binjiang Sensor Components Limited,CN\n\
    A-VIA,Xixi Camera Module Works,CN\n\
    A-NOT,Wenzhou Fibre Parts Factory,CN\n\
    A-CYC,Lakeside Cable Assembly Works,CN\n";

/// The holdings: 60 % by Hikvision; 30 % Dahua + 25 % iFlytek; 40 % through an intermediate
/// 60 % owned by Megvii (restricted, so its 40 % counts whole) beside 15 % Megvii holds
/// directly: 55 %; the same shape with an intermediate only 40 % owned by Meiya Pico (not
/// restricted, so its 40 % counts nothing): 15 %; and a ring of two holdings with nothing
/// listed behind it. (40 % alone is below 50 % however it is held: the direct 15 % is what
/// makes the difference between the two intermediates visible.)
fn holdings() -> String {
    let q = |s: String| format!("\"{}\"", s.replace('"', "\"\""));
    format!(
        "owned_id,owner_id,owner_name,owner_country,percent,source\n\
         A-60,O-HIK,{hik},CN,60,test\n\
         A-AGG,O-DAH,{dah},CN,30,test\n\
         A-AGG,O-IFL,{ifl},CN,25,test\n\
         I-1,O-MEG,{meg},CN,60,test\n\
         A-VIA,I-1,Northgate Lens Holding Company,CN,40,test\n\
         A-VIA,O-MEG,{meg},CN,15,test\n\
         I-2,O-MEI,{mei},CN,40,test\n\
         A-NOT,I-2,Harbourview Industrial Group,CN,40,test\n\
         A-NOT,O-MEI,{mei},CN,15,test\n\
         R-1,R-2,Ring Two Investment Partnership,CN,60,test\n\
         R-2,R-1,Ring One Investment Partnership,CN,60,test\n\
         A-CYC,R-1,Ring One Investment Partnership,CN,100,test\n",
        hik = q(parent("Hikvision")),
        dah = q(parent("Dahua")),
        ifl = q(parent("IFLYTEK")),
        meg = q(parent("Megvii")),
        mei = q(parent("Meiya")),
    )
}

fn rule() -> Vec<EntityChange> {
    let xml = std::fs::read(fixture("federal_register/2019-22210.xml")).unwrap();
    entitywatch::federal_register::amendment::parse_rule(
        &xml,
        None,
        &entitywatch::federal_register::amendment::ParseLimits::default(),
    )
    .unwrap()
    .changes
}

async fn alerts(store: &Store) -> Vec<Value> {
    store
        .read_log("entitywatch.alerts.v1", 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(&m.payload).unwrap())
        .collect()
}

fn of_kind<'a>(alerts: &'a [Value], kind: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| a["kind"] == kind && a.get("affiliate").is_some())
        .collect()
}

fn ids(alerts: &[&Value]) -> Vec<String> {
    let mut v: Vec<String> = alerts
        .iter()
        .map(|a| a["supplier"]["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn worker(store: &Store) -> Worker {
    Bus::embedded(store)
        .worker(store, &SinkSettings::default())
        .unwrap()
}

async fn scenario(kind: Db) {
    let db = fresh_db(kind).await;
    let store = Store::connect(&db.url).await.unwrap();
    let suppliers = entitywatch::suppliers::read_suppliers(
        SUPPLIERS.as_bytes(),
        entitywatch::suppliers::ReadLimits::default(),
    )
    .unwrap();
    store.upsert_suppliers(&suppliers.records).await.unwrap();
    let file = holdings();
    let import = read_ownership(file.as_bytes()).unwrap();
    assert!(import.rejected.is_empty(), "{:?}", import.rejected);
    let w = worker(&store);
    w.ownership_upserted(&import.records).await.unwrap();
    assert!(alerts(&store).await.is_empty(), "nothing is listed yet");

    // The rule adding the parents, replayed.
    let changes = rule();
    for c in &changes {
        w.handle(&ChangeEvent::Entity(c.clone())).await.unwrap();
    }
    let sent = alerts(&store).await;
    let affiliates = of_kind(&sent, "affiliate");
    assert_eq!(ids(&affiliates), ["A-60", "A-AGG", "A-VIA"], "{sent:#?}");
    assert!(
        sent.iter()
            .all(|a| a["supplier"]["id"] != "A-NOT" && a["supplier"]["id"] != "A-CYC"),
        "40 % through a 40 %-owned intermediate, and a ring with nothing listed, do not alert"
    );

    let by = |id: &str| {
        *affiliates
            .iter()
            .find(|a| a["supplier"]["id"] == id)
            .unwrap()
    };
    let a60 = &by("A-60")["affiliate"];
    assert_eq!(a60["aggregate_share_percent"], 60.0);
    assert_eq!(a60["threshold_percent"], 50.0);
    assert_eq!(a60["listed_entries"].as_array().unwrap().len(), 1);
    assert_eq!(a60["listed_entries"][0]["name"], parent("Hikvision"));
    assert!(a60["listed_entries"][0]["federal_register_citation"]
        .as_str()
        .unwrap()
        .contains("84 FR 54002"));
    assert!(a60["license_requirement"].as_str().unwrap().contains("EAR"));
    let hops = a60["paths"][0]["hops"].as_array().unwrap();
    assert_eq!(hops.len(), 2);
    assert_eq!(hops[0]["id"], "O-HIK");
    assert!(hops[0]["entity_key"].as_str().unwrap().starts_with("CN/"));
    assert_eq!(hops[1]["id"], "A-60");
    assert_eq!(hops[1]["share_percent"], 60.0);

    let agg = &by("A-AGG")["affiliate"];
    assert_eq!(agg["aggregate_share_percent"], 55.0);
    assert_eq!(agg["listed_entries"].as_array().unwrap().len(), 2);
    assert_eq!(agg["paths"].as_array().unwrap().len(), 2);

    let via = &by("A-VIA")["affiliate"];
    assert_eq!(via["aggregate_share_percent"], 55.0);
    assert_eq!(via["paths"].as_array().unwrap().len(), 2);
    let hops = via["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["hops"].as_array().unwrap())
        .find(|h| h.len() == 3)
        .expect("a path through the intermediate");
    let hop_ids: Vec<&str> = hops.iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(hop_ids, ["O-MEG", "I-1", "A-VIA"]);
    assert_eq!(hops[1]["share_percent"], 60.0);
    assert_eq!(hops[2]["share_percent"], 40.0);

    // Replayed again: exactly once.
    for c in &changes {
        w.handle(&ChangeEvent::Entity(c.clone())).await.unwrap();
    }
    assert_eq!(
        alerts(&store).await.len(),
        sent.len(),
        "a replay sends nothing again"
    );

    // A worker that starts cold (a restart) finds nothing new to say either.
    let cold = worker(&store);
    cold.handle(&ChangeEvent::Entity(changes[0].clone()))
        .await
        .unwrap();
    assert_eq!(alerts(&store).await.len(), sent.len());

    // The listed owner removed: A-60 is cleared, the others stand.
    let mut removal = changes
        .iter()
        .find(|c| c.name.as_str() == parent("Hikvision"))
        .unwrap()
        .clone();
    removal.action = ChangeAction::Removed;
    removal.source.document_number = "2099-00001".into();
    w.handle(&ChangeEvent::Entity(removal)).await.unwrap();
    let sent = alerts(&store).await;
    let cleared = of_kind(&sent, "cleared");
    assert_eq!(ids(&cleared), ["A-60"], "{sent:#?}");
    assert_eq!(cleared[0]["affiliate"]["aggregate_share_percent"], 0.0);

    // Ownership changed below the threshold: Dahua's 30 % becomes 10 %, A-AGG is cleared.
    let change = read_ownership(
        format!(
            "owned_id,owner_id,owner_name,percent\nA-AGG,O-DAH,\"{}\",10\n",
            parent("Dahua")
        )
        .as_bytes(),
    )
    .unwrap();
    w.ownership_upserted(&change.records).await.unwrap();
    let sent = alerts(&store).await;
    assert_eq!(ids(&of_kind(&sent, "cleared")), ["A-60", "A-AGG"]);
    let states: Vec<String> = store
        .affiliate_states()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.supplier_id)
        .collect();
    assert_eq!(states, ["A-VIA"]);
    store.close().await;
}

#[tokio::test]
async fn affiliates_alert_and_clear_on_sqlite() {
    scenario(Db::Sqlite).await;
}

#[tokio::test]
async fn affiliates_alert_and_clear_on_postgres() {
    scenario(Db::Postgres).await;
}

/// A dismissed owner match does not count as listed: the reviewer's word stands for owners as
/// for suppliers.
#[tokio::test]
async fn a_dismissed_owner_match_does_not_count() {
    let db = fresh_db(Db::Sqlite).await;
    let store = Store::connect(&db.url).await.unwrap();
    let suppliers = entitywatch::suppliers::read_suppliers(
        SUPPLIERS.as_bytes(),
        entitywatch::suppliers::ReadLimits::default(),
    )
    .unwrap();
    store.upsert_suppliers(&suppliers.records).await.unwrap();
    let changes = rule();
    let w = worker(&store);
    for c in &changes {
        w.handle(&ChangeEvent::Entity(c.clone())).await.unwrap();
    }
    let hik = changes
        .iter()
        .find(|c| c.name.as_str() == parent("Hikvision"))
        .unwrap();
    let entry = store.listed_entry(&hik.entity_key).await.unwrap().unwrap();
    store
        .dismiss(
            "O-HIK",
            hik.entity_key.as_str(),
            entry.version,
            "not the same company",
        )
        .await
        .unwrap();
    let file = holdings();
    let import = read_ownership(file.as_bytes()).unwrap();
    w.ownership_upserted(&import.records).await.unwrap();
    let sent = alerts(&store).await;
    assert_eq!(
        ids(&of_kind(&sent, "affiliate")),
        ["A-AGG", "A-VIA"],
        "{sent:#?}"
    );
    store.close().await;
}

/// On Kafka: holdings arrive on the compacted ownership topic, the worker group stores them,
/// screens their owners and alerts on the alert topic; a tombstone deletes a holding and clears;
/// a record that is no holding is dead-lettered.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_ownership_topic_alerts_and_tombstones_clear() {
    use entitywatch::bus::kafka::{KafkaConfig, KafkaConsumer, OutgoingRecord, Topics};
    use entitywatch::worker::consume::{consume, ConsumeOptions, Until};
    use std::time::Duration;

    let settings = crate::common::kafka::kafka_settings();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let name = |t: &str| format!("entitywatch.test.{t}.{suffix}");
    let topics = Topics {
        entity_changes: name("entity-changes"),
        alerts: name("alerts"),
        suppliers: name("suppliers"),
        dead_letter: name("dead-letter"),
        ownership: name("ownership"),
    };
    let mut config = KafkaConfig::new(settings.clone());
    config.topics = topics.clone();
    config.group_id = format!("entitywatch-workers-{suffix}");

    let db = fresh_db(Db::Postgres).await;
    let store = Store::connect(&db.url).await.unwrap();
    let suppliers = entitywatch::suppliers::read_suppliers(
        SUPPLIERS.as_bytes(),
        entitywatch::suppliers::ReadLimits::default(),
    )
    .unwrap();
    store.upsert_suppliers(&suppliers.records).await.unwrap();
    let bus = tokio::time::timeout(Duration::from_secs(60), Bus::kafka(config.clone()))
        .await
        .expect("topics created within 60 s")
        .expect("the Kafka bus starts");
    let worker = bus.worker(&store, &SinkSettings::default()).unwrap();
    // The rule first (nothing owned yet, so no alert), then the holdings on the topic.
    for c in rule() {
        worker.handle(&ChangeEvent::Entity(c)).await.unwrap();
    }
    let file = holdings();
    let import = read_ownership(file.as_bytes()).unwrap();
    let record = |key: String, payload: Option<Vec<u8>>| OutgoingRecord {
        topic: topics.ownership.clone(),
        key,
        payload,
        headers: Vec::new(),
    };
    let mut records: Vec<OutgoingRecord> = import
        .records
        .iter()
        .map(|r| record(r.key(), Some(serde_json::to_vec(r).unwrap())))
        .collect();
    records.push(record(
        "[\"X\",\"Y\"]".into(),
        Some(br#"{"owned_id":"X"}"#.to_vec()),
    ));
    records.push(record(
        entitywatch::ownership::record_key("A-60", "O-HIK"),
        None,
    ));
    let n = records.len();
    bus.kafka_producer()
        .unwrap()
        .send_all(&records)
        .await
        .unwrap();
    let source = bus.worker_source_in(&config.group_id).unwrap();
    let handled = tokio::time::timeout(
        Duration::from_secs(120),
        consume(
            &worker,
            source,
            ConsumeOptions {
                until: Until::Handled(n),
                retry_delay: Duration::from_millis(200),
                suppliers_topic: Some(topics.suppliers.clone()),
                ownership_topic: Some(topics.ownership.clone()),
            },
            std::future::pending::<()>(),
        ),
    )
    .await
    .expect("handled within 120 s")
    .unwrap();
    assert_eq!(handled, n);

    let reader = KafkaConsumer::subscribe(
        &settings,
        &format!("alerts-reader-{suffix}"),
        &[topics.alerts.as_str(), topics.dead_letter.as_str()],
    )
    .unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // 3 affiliate alerts, 1 clearing (the tombstone), 1 dead letter.
    while got.len() < 5 && std::time::Instant::now() < deadline {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(5), reader.recv()).await {
            got.push((
                m.topic.clone(),
                serde_json::from_slice::<Value>(m.payload.as_deref().unwrap()).unwrap(),
            ));
        }
    }
    let alerts: Vec<Value> = got
        .iter()
        .filter(|(t, _)| *t == topics.alerts)
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(
        ids(&of_kind(&alerts, "affiliate")),
        ["A-60", "A-AGG", "A-VIA"],
        "{got:#?}"
    );
    assert_eq!(ids(&of_kind(&alerts, "cleared")), ["A-60"], "{got:#?}");
    let dead: Vec<&Value> = got
        .iter()
        .filter(|(t, _)| *t == topics.dead_letter)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(dead.len(), 1);
    assert!(dead[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("invalid_ownership"));
    reader.close().await.unwrap();
    store.close().await;
}
