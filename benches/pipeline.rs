//! `cargo bench --bench pipeline`: the user's path end to end, on SQLite and PostgreSQL,
//! printing a table (median of runs):
//!
//! * **import**: `entitywatch suppliers import` of a synthetic supplier master (real Entity
//!   List words, 1 % planted variants of listed names: `screening::bench::synthetic_suppliers`,
//!   the screening benchmark's generator) into a store holding the whole Entity List, so every
//!   supplier is stored and screened and every match decided and alerted. The binary is run as
//!   a user runs it; wall time and its peak RSS are measured.
//! * **rule**: a rule adding 100 entries, matched by thousands of stored suppliers (planted
//!   variants of those entries), published as one document on the embedded bus and consumed
//!   by a worker; timed from the publish to the worker's return, when every alert is durable on
//!   the alert topic.
//! * **kafka**: supplier upserts on the Kafka suppliers topic through `entitywatch work`
//!   (skipped unless a broker answers at `BENCH_KAFKA_BROKERS`, default 127.0.0.1:9092), timed
//!   from the first produce to the last supplier stored.
//!
//! Sizes: `BENCH_IMPORT_SUPPLIERS` (1,000,000), `BENCH_RULE_ENTRIES` (100),
//! `BENCH_RULE_SUPPLIERS` (5,000 planted + 20,000 others), `BENCH_KAFKA_UPSERTS` (1,000,000),
//! `BENCH_RUNS` (3); `BENCH_ONLY` (`import,rule,kafka`), `BENCH_BACKENDS` (`sqlite,postgres`),
//! `BENCH_POSTGRES_URL` (the server's admin URL), `BENCH_LOG` (the processes' log filter), `ENTITYWATCH_BIN` (another build's binary,
//! for before/after figures). A benchmark driver: it may read and write files and run
//! processes; it never changes what the service does.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use entitywatch::app::Bus;
use entitywatch::domain::SupplierRecord;
use entitywatch::events::{
    ChangeAction, ChangeEvent, CountryCode, EntityChange, EntityName, SourceDocument,
};
use entitywatch::screening::bench::synthetic_suppliers;
use entitywatch::screening::ListedEntry;
use entitywatch::store::Store;
use entitywatch::worker::consume::{consume, ConsumeOptions, Until};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// A database for one run: a file in `dir`, or a fresh PostgreSQL database.
async fn fresh_db(backend: Backend, dir: &Path, run: usize) -> String {
    match backend {
        Backend::Sqlite => {
            let path = dir.join(format!("bench-{run}.db"));
            let _ = std::fs::remove_file(&path);
            format!("sqlite://{}", path.display())
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let admin = std::env::var("BENCH_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
            let name = format!(
                "entitywatch_bench_{}_{}",
                std::process::id(),
                chrono::Utc::now().timestamp_micros()
            );
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL must run at {admin}: {e}"));
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create the bench database");
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            format!("{base}/{name}")
        }
    }
}

fn binary() -> PathBuf {
    std::env::var_os("ENTITYWATCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_entitywatch")))
}

/// The binary with no inherited `ENTITYWATCH_*` setting, quiet, on a free HTTP port.
fn entitywatch(db: &str) -> Command {
    let mut cmd = Command::new(binary());
    for (k, _) in std::env::vars() {
        if k.starts_with("ENTITYWATCH_") {
            cmd.env_remove(k);
        }
    }
    let log = std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".to_string());
    cmd.env("ENTITYWATCH_LOG", log)
        .env("ENTITYWATCH_HTTP_ADDR", "127.0.0.1:0")
        .arg("--database-url")
        .arg(db);
    cmd
}

fn run_ok(mut cmd: Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes the synthetic supplier master as a CSV file.
fn write_csv(entries: &[ListedEntry], n: usize, path: &Path) {
    use std::io::Write;
    let synthetic = synthetic_suppliers(entries, n, 10, 20_260_731);
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("CSV file"));
    writeln!(w, "id,name,country").unwrap();
    for r in &synthetic.records {
        let name = r.name.replace('"', "\"\"");
        let country = r.country.as_ref().map(|c| c.as_str()).unwrap_or("");
        writeln!(w, "S{:07},\"{name}\",{country}", r.id).unwrap();
    }
    w.flush().unwrap();
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    if xs.is_empty() {
        return f64::NAN;
    }
    xs[xs.len() / 2]
}

struct Row {
    what: String,
    backend: &'static str,
    seconds: f64,
    detail: String,
}

/// `suppliers import` of `n` suppliers into a store holding the Entity List.
async fn import_row(backend: Backend, csv: &Path, n: usize, runs: usize, dir: &Path) -> Row {
    let list = common::default_list_path();
    let mut times = Vec::new();
    let mut rss = Vec::new();
    let mut last = String::new();
    for run in 0..runs {
        let db = fresh_db(backend, dir, run).await;
        let mut cmd = entitywatch(&db);
        cmd.args(["list", "import"]).arg(&list);
        run_ok(cmd, "list import");
        let rss_file = dir.join("rss");
        let mut cmd = Command::new("/usr/bin/time");
        cmd.arg("-f").arg("%M").arg("-o").arg(&rss_file);
        let inner = entitywatch(&db);
        cmd.arg(inner.get_program()).args(inner.get_args());
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.args(["suppliers", "import"]).arg(csv);
        let start = Instant::now();
        let out = run_ok(cmd, "suppliers import");
        times.push(start.elapsed().as_secs_f64());
        let kb: f64 = std::fs::read_to_string(&rss_file)
            .ok()
            .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
            .unwrap_or(f64::NAN);
        rss.push(kb / 1024.0);
        last = out
            .lines()
            .find(|l| l.starts_with("screened"))
            .unwrap_or_default()
            .to_string();
    }
    Row {
        what: format!("import + full screen, {n} suppliers"),
        backend: backend.name(),
        seconds: median(times),
        detail: format!("peak RSS {:.0} MB; {last}", median(rss)),
    }
}

/// A rule adding `entries` entries that `planted` stored suppliers are variants of.
async fn rule_row(
    backend: Backend,
    list: &[ListedEntry],
    entries: usize,
    planted: usize,
    runs: usize,
    dir: &Path,
) -> Row {
    // Entries with distinctive names (three words or more), so that their variants are
    // matches of them rather than of many entries.
    let rule: Vec<&ListedEntry> = list
        .iter()
        .filter(|e| e.name.split_whitespace().count() >= 3 && !e.countries.is_empty())
        .take(entries)
        .collect();
    let owned: Vec<ListedEntry> = rule.iter().map(|e| (*e).clone()).collect();
    let variants = synthetic_suppliers(&owned, planted, 1000, 7);
    let others = synthetic_suppliers(list, planted * 4, 0, 11);
    let records: Vec<SupplierRecord> = variants
        .records
        .iter()
        .map(|r| (format!("P{}", r.id), r))
        .chain(others.records.iter().map(|r| (format!("O{}", r.id), r)))
        .filter_map(|(id, r)| {
            Some(
                SupplierRecord::new(&id, &r.name)
                    .ok()?
                    .with_country(r.country.clone()),
            )
        })
        .collect();
    let events: Vec<ChangeEvent> = rule
        .iter()
        .map(|e| {
            let country = e
                .countries
                .first()
                .cloned()
                .unwrap_or_else(CountryCode::unknown);
            let mut c = EntityChange::new(
                ChangeAction::Added,
                EntityName::parse(&e.name).expect("a listed name"),
                country.clone(),
                country.as_str(),
                SourceDocument::from_number("2026-99999"),
            );
            c.aliases = e.aliases.clone();
            ChangeEvent::Entity(c)
        })
        .collect();
    let mut times = Vec::new();
    let mut alerts = 0;
    for run in 0..runs {
        let db = fresh_db(backend, dir, 100 + run).await;
        let store = Store::connect(&db).await.expect("bench store");
        store.upsert_suppliers(&records).await.expect("suppliers");
        let bus = Bus::embedded(&store);
        let sinks = entitywatch::alerts::SinkSettings {
            claim_lease: entitywatch::worker::DEFAULT_CLAIM_LEASE,
            ..Default::default()
        };
        let worker = bus.worker(&store, &sinks).expect("worker");
        let source = bus.worker_source().expect("source");
        let start = Instant::now();
        bus.change_publisher()
            .publish(&events)
            .await
            .expect("publish the rule");
        let options = ConsumeOptions {
            until: Until::Handled(events.len()),
            ..ConsumeOptions::default()
        };
        consume(&worker, source, options, std::future::pending())
            .await
            .expect("the rule is handled");
        times.push(start.elapsed().as_secs_f64());
        alerts = store
            .log_length("entitywatch.alerts.v1")
            .await
            .expect("alert topic");
        store.close().await;
    }
    Row {
        what: format!(
            "rule of {} entries, {} suppliers ({planted} variants)",
            events.len(),
            records.len()
        ),
        backend: backend.name(),
        seconds: median(times),
        detail: format!("{alerts} alerts durable on the alert topic"),
    }
}

/// `n` supplier upserts produced to the suppliers topic, consumed by `entitywatch work`.
async fn kafka_row(
    backend: Backend,
    list: &[ListedEntry],
    n: usize,
    runs: usize,
    dir: &Path,
) -> Option<Row> {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let brokers =
        std::env::var("BENCH_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_string());
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()
        .ok()?;
    if producer
        .client()
        .fetch_metadata(None, Duration::from_secs(3))
        .is_err()
    {
        println!("(kafka row skipped: no broker at {brokers})");
        return None;
    }
    let synthetic = synthetic_suppliers(list, n, 10, 5);
    let payloads: Vec<(String, String)> = synthetic
        .records
        .iter()
        .filter_map(|r| {
            let id = format!("K{:07}", r.id);
            let rec = SupplierRecord::new(&id, &r.name)
                .ok()?
                .with_country(r.country.clone());
            Some((id, serde_json::to_string(&rec).ok()?))
        })
        .collect();
    // `BENCH_KAFKA_LIST=0`: no list in the store, so upserts are stored but nothing is
    // screened or alerted (the consume-and-store path alone).
    let with_list = std::env::var("BENCH_KAFKA_LIST").map_or(true, |v| v != "0");
    let mut times = Vec::new();
    for run in 0..runs {
        let db = fresh_db(backend, dir, 200 + run).await;
        if with_list {
            let mut cmd = entitywatch(&db);
            cmd.args(["list", "import"])
                .arg(common::default_list_path());
            run_ok(cmd, "list import");
        }
        let prefix = format!("bench{}x{run}", chrono::Utc::now().timestamp_micros());
        let mut work = entitywatch(&db);
        work.arg("--kafka-brokers")
            .arg(&brokers)
            .arg("--kafka-topic-prefix")
            .arg(&prefix)
            .arg("work")
            .stdout(std::process::Stdio::null());
        let mut child = work.spawn().expect("entitywatch work");
        let topic = format!("{prefix}.suppliers.v1");
        // The worker creates its topics; wait for them.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let md = producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(2));
            if md.is_ok_and(|m| {
                m.topics()
                    .iter()
                    .any(|t| t.error().is_none() && !t.partitions().is_empty())
            }) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the worker never created {topic}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let store = Store::connect(&db).await.expect("bench store");
        let start = Instant::now();
        for (id, payload) in &payloads {
            let mut record = BaseRecord::to(&topic)
                .key(id.as_str())
                .payload(payload.as_str());
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }
        producer.flush(Duration::from_secs(120)).expect("flush");
        let produced = start.elapsed().as_secs_f64();
        let deadline = Instant::now() + Duration::from_secs(1800);
        while store.supplier_count().await.expect("count") < payloads.len() as u64 {
            assert!(
                Instant::now() < deadline,
                "the worker did not store every upsert"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let took = start.elapsed().as_secs_f64();
        println!("  kafka run {run}: produced in {produced:.1} s, stored in {took:.1} s");
        times.push(took);
        store.close().await;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
    }
    let seconds = median(times);
    Some(Row {
        what: format!(
            "{} supplier upserts via Kafka + work{}",
            payloads.len(),
            if with_list { "" } else { " (no list)" }
        ),
        backend: backend.name(),
        seconds,
        detail: format!("{:.0} upserts/s", payloads.len() as f64 / seconds),
    })
}

#[tokio::main]
async fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let runs = env_usize("BENCH_RUNS", if smoke { 1 } else { 3 });
    let small = |n: usize| if smoke { n.min(2_000) } else { n };
    let import_n = small(env_usize("BENCH_IMPORT_SUPPLIERS", 1_000_000));
    let rule_entries = env_usize("BENCH_RULE_ENTRIES", 100);
    let rule_suppliers = small(env_usize("BENCH_RULE_SUPPLIERS", 5_000));
    let kafka_n = small(env_usize("BENCH_KAFKA_UPSERTS", 1_000_000));
    let only = env_list(
        "BENCH_ONLY",
        if smoke {
            "import,rule"
        } else {
            "import,rule,kafka"
        },
    );
    let backends: Vec<Backend> = env_list("BENCH_BACKENDS", "sqlite,postgres")
        .iter()
        .filter_map(|b| match b.to_ascii_lowercase().as_str() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            _ => None,
        })
        .collect();
    if smoke {
        println!("smoke run; use `cargo bench --bench pipeline` for the figures");
    }
    let list = common::load(&common::default_list_path());
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut rows = Vec::new();
    if only.iter().any(|o| o == "import") {
        let csv = dir.path().join("suppliers.csv");
        write_csv(&list, import_n, &csv);
        for &b in &backends {
            rows.push(import_row(b, &csv, import_n, runs, dir.path()).await);
        }
    }
    if only.iter().any(|o| o == "rule") {
        for &b in &backends {
            rows.push(rule_row(b, &list, rule_entries, rule_suppliers, runs, dir.path()).await);
        }
    }
    if only.iter().any(|o| o == "kafka") {
        for &b in &backends {
            if let Some(row) = kafka_row(b, &list, kafka_n, runs, dir.path()).await {
                rows.push(row);
            }
        }
    }
    println!("binary: {}; median of {runs} run(s)", binary().display());
    println!("{:<52} {:<11} {:>9}  detail", "what", "store", "seconds");
    for r in &rows {
        println!(
            "{:<52} {:<11} {:>9.2}  {}",
            r.what, r.backend, r.seconds, r.detail
        );
    }
}
