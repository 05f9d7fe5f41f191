//! Slack digests, black-box: `entitywatch run` on the embedded bus against a local Federal
//! Register serving 84 FR 54002 (2019-22210, 27 entries), a supplier master of 30 suppliers
//! that are listed by it (27 names as the rule writes them, three of them twice under other
//! ids), a scripted Slack receiver and a signed-webhook receiver.
//!
//! What is asserted: the 30 alerts reach Slack as one digest (counts, top 5, the console link)
//! while the webhook and the alert topic get 30 each; the ledger records the digest with the 30
//! alerts it carried; a process killed (SIGKILL) while the digest is being retried leaves it to
//! the next start, which sends the same digest once and no alert singly; a batch of N or fewer
//! goes as single messages, at least a second apart at the receiver.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use entitywatch::store::Store;

use crate::common::receiver::{gaps, healthy, show, Kind, Receiver, Reply, Script};
use crate::common::scenario::{rule_server, SLACK_PATH};
use crate::common::service::Service;
use crate::common::wait::wait_until;
use crate::common::{alert_topic, fresh_db, run, run_embedded, suppliers_import, Db, TestDb};

const WEBHOOK_PATH: &str = "/hooks/WHPATHSECRET";
const WEBHOOK_SECRET: &str = "whsec_digests_0123456789abcdef";
const CONSOLE: &str = "https://console.example/entitywatch/";

/// The 27 entries of 84 FR 54002 as suppliers, and three of them again under other ids.
fn suppliers_csv(extra_copies: usize, take: usize) -> String {
    let names = [
        "Aksu District Public Security Bureau",
        "Altay Municipality Public Security Bureau",
        "Bayingolin Mongolian Autonomous Prefecture Public Security Bureau",
        "Beijing Sensetime Technology Development Co., Ltd.",
        "Boertala Mongolian Autonomous Prefecture Public Security Bureau",
        "Changji Hui Autonomous Prefecture Public Security Bureau",
        "Dahua Technology",
        "Hami Municipality Public Security Bureau",
        "Hangzhou Hikvision Digital Technology Co., Ltd.",
        "Hetian Prefecture Public Security Bureau",
        "IFLYTEK",
        "Kashgar Prefecture Public Security Bureau",
        "Kelamayi Municipality Public Security Bureau",
        "Kezilesu Kyrgyz Autonomous Prefecture Public Security Bureau",
        "Megvii Technology",
        "Tacheng Prefecture Public Security Bureau",
        "Tumushuke Municipal Public Security Bureau",
        "Turfan Municipality Public Security Bureau",
        "Urumqi Municipal Public Security Bureau",
        "Wujiaqu Municipality Public Security Bureau",
        "Xiamen Meiya Pico Information Co. Ltd.",
        "Xinjiang Police College",
        "Xinjiang Production and Construction Corps (XPCC) Public Security Bureau",
        "Xinjiang Uighur Autonomous Region (XUAR) People's Government Public Security Bureau",
        "Yili Kazakh Autonomous Prefecture Public Security Bureau",
        "Yitu Technologies",
        "Yixin Science and Technology Co. Ltd.",
    ];
    let mut csv = "id,name,country\n".to_string();
    let rows = names
        .iter()
        .take(take)
        .enumerate()
        .map(|(i, n)| (format!("S-{:02}", i + 1), *n))
        .chain(
            names
                .iter()
                .skip(6)
                .take(extra_copies)
                .enumerate()
                .map(|(i, n)| (format!("D-{:02}", i + 1), *n)),
        );
    for (id, name) in rows {
        csv.push_str(&format!("{id},\"{name}\",CN\n"));
    }
    csv
}

async fn import(db: &TestDb, csv: &str) {
    let path = db.dir.path().join("suppliers.csv");
    std::fs::write(&path, csv).unwrap();
    let r = run(suppliers_import(&db.url, &path, &[])).await;
    assert!(r.status.success(), "suppliers import failed: {}", r.stderr);
}

async fn receivers(slack: Script) -> (Receiver, Receiver) {
    (
        Receiver::start(Kind::Slack, SLACK_PATH, slack).await,
        Receiver::start(
            Kind::Webhook {
                secret: WEBHOOK_SECRET.to_string(),
            },
            WEBHOOK_PATH,
            healthy(),
        )
        .await,
    )
}

async fn start(
    db: &TestDb,
    fr: &str,
    slack: &Receiver,
    webhook: &Receiver,
    extra: &[&str],
) -> Service {
    let mut cmd = run_embedded(&db.url, fr);
    cmd.args([
        "--list-sync-interval",
        "0s",
        "--alert-min-backoff",
        "200ms",
        "--alert-max-backoff",
        "1s",
        "--alert-max-attempts",
        "30",
        "--alert-claim-lease",
        "2s",
    ])
    .args(extra)
    .env("ENTITYWATCH_SLACK_WEBHOOK_URL", slack.url())
    .env("ENTITYWATCH_WEBHOOK_URL", webhook.url())
    .env("ENTITYWATCH_WEBHOOK_SECRET", WEBHOOK_SECRET);
    Service::start(cmd).await
}

/// The alert ids on the alert topic.
async fn topic_ids(db: &TestDb) -> BTreeSet<String> {
    alert_topic(db)
        .await
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap().to_string())
        .collect()
}

fn digest_keys(r: &Receiver) -> BTreeSet<String> {
    r.hits()
        .iter()
        .filter(|h| h.key.starts_with("digest/"))
        .map(|h| h.key.clone())
        .collect()
}

fn block_texts(body: &serde_json::Value) -> Vec<String> {
    body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            b["text"]["text"]
                .as_str()
                .or_else(|| b["elements"][0]["text"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// What the store says about the digest: one, delivered, carrying exactly `ids` for Slack,
/// every one of them delivered to Slack.
async fn assert_ledger(db: &TestDb, ids: &BTreeSet<String>) -> String {
    let store = Store::connect(&db.url).await.unwrap();
    let digests = store.digests().await.unwrap();
    assert_eq!(digests.len(), 1, "{digests:?}");
    let d = &digests[0];
    assert_eq!((d.sink.as_str(), d.state.as_str()), ("slack", "delivered"));
    assert_eq!(d.alert_count, 30);
    assert_eq!(d.group_key, "document/2019-22210");
    let carried: BTreeSet<String> = store
        .digest_members(&d.digest_id)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        &carried, ids,
        "the digest carries exactly the alerts on the topic"
    );
    let slack: Vec<_> = store
        .deliveries()
        .await
        .unwrap()
        .into_iter()
        .filter(|x| x.sink == "slack")
        .collect();
    assert_eq!(
        slack.len(),
        30,
        "every alert delivered to Slack (in the digest)"
    );
    let webhook = store
        .deliveries()
        .await
        .unwrap()
        .into_iter()
        .filter(|x| x.sink == "webhook")
        .count();
    assert_eq!(webhook, 30);
    store.close().await;
    d.digest_id.clone()
}

async fn thirty_alerts_one_digest(kind: Db) {
    let db = fresh_db(kind).await;
    import(&db, &suppliers_csv(3, 27)).await;
    let fr = rule_server().await;
    let (slack, webhook) = receivers(healthy()).await;
    let service = start(
        &db,
        &fr.base_url(),
        &slack,
        &webhook,
        &["--console-url", CONSOLE],
    )
    .await;
    let done = wait_until(Duration::from_secs(60), || {
        !digest_keys(&slack).is_empty() && webhook.accepted().len() == 30
    })
    .await;
    // Anything sent after the digest would arrive within the pacing second and the outbox poll.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let scrape = service.scrape().await;
    let (status, logs) = service.terminate(Duration::from_secs(20)).await;
    assert!(
        done,
        "no digest, or not 30 at the webhook ({:?}):\n{logs}",
        webhook.accepted()
    );
    assert!(status.success(), "{logs}");

    let hits = slack.hits();
    assert_eq!(
        hits.len(),
        1,
        "Slack got one message: {:?}",
        hits.iter().map(|h| &h.key).collect::<Vec<_>>()
    );
    let digest = &hits[0];
    assert!(digest.accepted());
    let texts = block_texts(&digest.body);
    assert_eq!(texts[0], "30 Entity List alerts from 84 FR 54002");
    assert!(
        texts[1].starts_with("*30 alerts* from <https://www.federalregister.gov/"),
        "{texts:?}"
    );
    assert!(texts[1].contains(": 30 listed."), "{texts:?}");
    assert_eq!(texts[2], "*Top 5 by score*");
    assert_eq!(texts[3].lines().count(), 5);
    let footer = texts.last().unwrap();
    assert!(
        footer.starts_with(
            "25 more. <https://console.example/entitywatch/alerts?status=open&amp;document=2019-22210|Review all 30 in the console>"
        ),
        "{footer}"
    );
    assert!(
        digest.body.as_object().unwrap().len() == 2
            && digest.body["blocks"].as_array().unwrap().len() <= 50
    );

    let ids = topic_ids(&db).await;
    assert_eq!(ids.len(), 30, "the alert topic has every alert");
    let webhook_ids: BTreeSet<String> = webhook
        .hits()
        .iter()
        .filter(|h| h.accepted())
        .filter_map(|h| h.delivery_id.clone())
        .collect();
    assert_eq!(webhook_ids, ids, "the signed webhook got every alert, once");
    assert!(webhook.unverified().is_empty());
    let digest_id = assert_ledger(&db, &ids).await;
    assert_eq!(digest.key, format!("digest/{}", &digest_id[..12]));

    for (series, want) in [
        (
            "entitywatch_slack_digests_total{outcome=\"delivered\",sink=\"slack\"}",
            1.0,
        ),
        (
            "entitywatch_slack_digest_alerts_total{sink=\"slack\"}",
            30.0,
        ),
        (
            "entitywatch_alerts_total{outcome=\"delivered\",sink=\"slack\"}",
            30.0,
        ),
        (
            "entitywatch_alerts_total{outcome=\"delivered\",sink=\"webhook\"}",
            30.0,
        ),
        (
            "entitywatch_alerts_total{outcome=\"delivered\",sink=\"alert-topic\"}",
            30.0,
        ),
    ] {
        assert_eq!(
            scrape.value(series),
            want,
            "{series}: {}",
            scrape
                .text
                .lines()
                .filter(|l| l.contains("digest") || l.contains("alerts_total"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    eprintln!(
        "thirty_alerts_one_digest ({kind:?}): 84 FR 54002 raised 30 alerts; Slack got 1 message \
         (digest {}: {}), the webhook {} and the alert topic {}; the ledger's digest carries the \
         30 topic alert ids",
        &digest_id[..12],
        texts[1].lines().next().unwrap_or_default(),
        webhook_ids.len(),
        ids.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_raising_30_alerts_reaches_slack_as_one_digest_sqlite() {
    thirty_alerts_one_digest(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_raising_30_alerts_reaches_slack_as_one_digest_postgres() {
    thirty_alerts_one_digest(Db::Postgres).await;
}

async fn killed_mid_digest(kind: Db) {
    let db = fresh_db(kind).await;
    import(&db, &suppliers_csv(3, 27)).await;
    let fr = rule_server().await;
    let down = Arc::new(AtomicBool::new(true));
    let script: Script = {
        let down = down.clone();
        Arc::new(move |_, _| {
            if down.load(Ordering::SeqCst) {
                Reply::status(503).body("service_unavailable")
            } else {
                Reply::ok()
            }
        })
    };
    let (slack, webhook) = receivers(script).await;
    let first = start(&db, &fr.base_url(), &slack, &webhook, &[]).await;
    // The digest is in the ledger and being retried: kill the process between attempts.
    let retried = wait_until(Duration::from_secs(60), || {
        slack
            .hits()
            .iter()
            .filter(|h| h.key.starts_with("digest/"))
            .count()
            >= 2
            && webhook.accepted().len() == 30
    })
    .await;
    first.signal("KILL");
    let logs = first.logs();
    assert!(retried, "the digest was not retried:\n{logs}");
    let attempts_before = slack.hits().len();
    down.store(false, Ordering::SeqCst);

    let second = start(&db, &fr.base_url(), &slack, &webhook, &[]).await;
    let delivered = wait_until(Duration::from_secs(30), || {
        slack.hits().iter().any(|h| h.accepted())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, logs2) = second.terminate(Duration::from_secs(20)).await;
    assert!(
        delivered,
        "the digest was not sent after the restart:\n{logs2}"
    );
    assert!(status.success(), "{logs2}");

    let hits = slack.hits();
    let keys: BTreeSet<&str> = hits.iter().map(|h| h.key.as_str()).collect();
    assert_eq!(
        keys.len(),
        1,
        "only the one digest, never a single alert: {keys:?}"
    );
    let accepted: Vec<_> = hits.iter().filter(|h| h.accepted()).collect();
    assert_eq!(accepted.len(), 1, "the digest accepted once");
    assert!(
        logs2.contains("adopting a digest"),
        "the second process adopted the first's digest:\n{logs2}"
    );
    assert_eq!(webhook.accepted().values().copied().max(), Some(1));
    let ids = topic_ids(&db).await;
    assert_eq!(ids.len(), 30);
    let digest_id = assert_ledger(&db, &ids).await;
    eprintln!(
        "killed_mid_digest ({kind:?}): digest {} refused {} times, SIGKILL, restart: sent once \
         ({} Slack requests in all, 1 accepted, 0 singles); webhook 30 once each",
        &digest_id[..12],
        attempts_before,
        hits.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_killed_mid_digest_neither_loses_nor_doubles_it_sqlite() {
    killed_mid_digest(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_killed_mid_digest_neither_loses_nor_doubles_it_postgres() {
    killed_mid_digest(Db::Postgres).await;
}

/// Five suppliers listed by the rule: five alerts, at the threshold of 5, so five Slack
/// messages, each at least a second after the one before at the receiver.
#[tokio::test(flavor = "multi_thread")]
async fn n_alerts_or_fewer_go_singly_and_paced() {
    let db = fresh_db(Db::Sqlite).await;
    import(&db, &suppliers_csv(0, 5)).await;
    let fr = rule_server().await;
    let (slack, webhook) = receivers(healthy()).await;
    let service = start(&db, &fr.base_url(), &slack, &webhook, &[]).await;
    let done = wait_until(Duration::from_secs(60), || slack.accepted().len() == 5).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, logs) = service.terminate(Duration::from_secs(20)).await;
    assert!(done, "Slack: {:?}\n{logs}", slack.accepted());
    assert!(status.success());
    let hits = slack.hits();
    assert_eq!(
        hits.len(),
        5,
        "{:?}",
        hits.iter().map(|h| &h.key).collect::<Vec<_>>()
    );
    assert!(
        hits.iter().all(|h| h.key.ends_with("/listed")),
        "singles, no digest"
    );
    let waits = gaps(&hits);
    for w in &waits {
        assert!(
            *w >= Duration::from_millis(1000),
            "posts closer than a second: {}",
            show(&waits)
        );
    }
    assert_eq!(webhook.accepted().len(), 5);
    let store = Store::connect(&db.url).await.unwrap();
    assert!(store.digests().await.unwrap().is_empty());
    store.close().await;
    eprintln!(
        "n_alerts_or_fewer_go_singly_and_paced: 5 alerts (threshold 5) → 5 Slack messages, gaps {}",
        show(&waits)
    );
}

/// The rule applied first with no supplier to alert on; then `suppliers import` of the 30
/// suppliers raises 30 alerts in one run: one digest from the import, the webhook 30.
#[tokio::test(flavor = "multi_thread")]
async fn a_supplier_import_raising_30_alerts_sends_one_digest() {
    let db = fresh_db(Db::Sqlite).await;
    let fr = rule_server().await;
    let (slack, webhook) = receivers(healthy()).await;
    let service = start(&db, &fr.base_url(), &slack, &webhook, &[]).await;
    let store = Store::connect(&db.url).await.unwrap();
    let listed = crate::common::wait::poll_until(Duration::from_secs(60), || async {
        store.listed_entry_count().await.unwrap() == 27
    })
    .await;
    let (status, logs) = service.terminate(Duration::from_secs(20)).await;
    assert!(listed && status.success(), "{logs}");
    assert!(slack.hits().is_empty());

    let path = db.dir.path().join("suppliers.csv");
    std::fs::write(&path, suppliers_csv(3, 27)).unwrap();
    let mut cmd = suppliers_import(&db.url, &path, &["--console-url", CONSOLE]);
    cmd.env("ENTITYWATCH_SLACK_WEBHOOK_URL", slack.url())
        .env("ENTITYWATCH_WEBHOOK_URL", webhook.url())
        .env("ENTITYWATCH_WEBHOOK_SECRET", WEBHOOK_SECRET);
    let r = run(cmd).await;
    assert!(r.status.success(), "{}", r.stderr);
    let hits = slack.hits();
    assert_eq!(
        hits.iter()
            .map(|h| h.key.as_str())
            .filter(|k| !k.starts_with("digest/"))
            .count(),
        0,
        "no single Slack message: {:?}",
        hits.iter().map(|h| &h.key).collect::<Vec<_>>()
    );
    assert_eq!(hits.len(), 1, "one digest, sent before the import exited");
    let texts = block_texts(&hits[0].body);
    assert_eq!(texts[0], "30 Entity List alerts from a supplier import");
    let footer = texts.last().unwrap();
    assert!(
        footer.starts_with(
            "25 more. <https://console.example/entitywatch/alerts?status=open|Review all 30 in the console>"
        ),
        "{footer}"
    );
    assert_eq!(webhook.accepted().len(), 30);
    let digests = store.digests().await.unwrap();
    assert_eq!(digests.len(), 1);
    assert!(digests[0].group_key.starts_with("import/"), "{digests:?}");
    assert_eq!(
        (digests[0].state.as_str(), digests[0].alert_count),
        ("delivered", 30)
    );
    store.close().await;
    eprintln!(
        "a_supplier_import_raising_30_alerts_sends_one_digest: 30 alerts from one import → 1 \
         Slack digest ({}), webhook 30; stdout: {}",
        digests[0].group_key,
        r.stdout.lines().next().unwrap_or_default()
    );
}

/// A bulk `POST /v1/suppliers/batch` is one import: its 30 alerts reach Slack as one digest,
/// decided when the request's last record is screened, while the service keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_batch_raising_30_alerts_sends_one_digest() {
    let db = fresh_db(Db::Sqlite).await;
    let fr = rule_server().await;
    let (slack, webhook) = receivers(healthy()).await;
    let service = start(&db, &fr.base_url(), &slack, &webhook, &[]).await;
    let store = Store::connect(&db.url).await.unwrap();
    let listed = crate::common::wait::poll_until(Duration::from_secs(60), || async {
        store.listed_entry_count().await.unwrap() == 27
    })
    .await;
    assert!(listed, "the rule was applied");
    let (_, token) = store
        .create_token("erp-sync", entitywatch::domain::Scope::Review)
        .await
        .unwrap();
    let ndjson: String = suppliers_csv(3, 27)
        .lines()
        .skip(1)
        .map(|row| {
            let mut r = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(row.as_bytes());
            let rec = r.records().next().unwrap().unwrap();
            format!(
                "{}\n",
                serde_json::json!({ "id": &rec[0], "name": &rec[1], "country": &rec[2] })
            )
        })
        .collect();
    let answer = reqwest::Client::new()
        .post(format!("http://{}/v1/suppliers/batch", service.http))
        .bearer_auth(token.expose())
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["stored"], 30, "{body}");
    let sent = crate::common::wait::poll_until(Duration::from_secs(20), || async {
        !slack.hits().is_empty() && webhook.accepted().len() == 30
    })
    .await;
    // A moment more: a single sent after the digest would show here.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, logs) = service.terminate(Duration::from_secs(20)).await;
    assert!(sent && status.success(), "{logs}");
    let hits = slack.hits();
    assert_eq!(
        hits.iter()
            .map(|h| h.key.as_str())
            .collect::<Vec<_>>()
            .len(),
        1,
        "one Slack message: {:?}",
        hits.iter().map(|h| &h.key).collect::<Vec<_>>()
    );
    assert!(hits[0].key.starts_with("digest/"), "{:?}", hits[0].key);
    assert_eq!(
        block_texts(&hits[0].body)[0],
        "30 Entity List alerts from a supplier import"
    );
    let digests = store.digests().await.unwrap();
    assert_eq!(digests.len(), 1);
    assert_eq!(
        (digests[0].state.as_str(), digests[0].alert_count),
        ("delivered", 30)
    );
    store.close().await;
}
