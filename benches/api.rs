//! `cargo bench --bench api`: the HTTP API under load from a second process on loopback,
//! printing a table (median of runs). The bench starts the `entitywatch run` binary as a
//! child (a store holding the whole 2026 Entity List, an admin token) and drives it with many
//! concurrent keep-alive connections from this process (reqwest on tokio):
//!
//! * **screen**: single-name `POST /v1/screen` against the whole list — requests/s, p50, p99;
//! * **upsert**: `PUT /v1/suppliers/{id}` of new synthetic suppliers, each stored and screened
//!   against the whole list (alerts for the planted variants) — requests/s, p99, on SQLite and
//!   PostgreSQL;
//! * **audit**: `GET /v1/audit` streaming 1,000,000 stored decisions — seconds, MB sent, and
//!   the server's peak RSS before and after (flat memory: the stream must not hold the body).
//!
//! Sizes: `BENCH_SECONDS` (10 per screening run), `BENCH_CONCURRENCY` (16),
//! `BENCH_UPSERTS` (5,000), `BENCH_AUDIT_DECISIONS` (1,000,000), `BENCH_RUNS` (3),
//! `BENCH_ONLY` (`screen,upsert,audit`), `BENCH_BACKENDS` (`sqlite,postgres`),
//! `BENCH_POSTGRES_URL`, `ENTITYWATCH_BIN` (another build's binary). Without `--bench` (as
//! `cargo test --all-targets` runs it) it is a smoke run on tiny sizes. A benchmark driver:
//! it may write files and run processes; it never changes what the service does. The machine
//! is shared: the figures are what it gave at the time.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use entitywatch::outcome::DecisionKind;
use entitywatch::screening::bench::synthetic_suppliers;
use entitywatch::store::{Decision, Store};

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
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

fn binary() -> PathBuf {
    std::env::var_os("ENTITYWATCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_entitywatch")))
}

/// The binary with no inherited `ENTITYWATCH_*` setting, quiet, on `db`.
fn entitywatch(db: &str) -> Command {
    let mut cmd = Command::new(binary());
    for (k, _) in std::env::vars() {
        if k.starts_with("ENTITYWATCH_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("ENTITYWATCH_LOG", "error")
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

async fn fresh_db(postgres: bool, dir: &Path, n: usize) -> String {
    if !postgres {
        return format!("sqlite://{}", dir.join(format!("api-{n}.db")).display());
    }
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

/// `entitywatch run` on a store holding the whole list, with an admin token.
struct Server {
    child: Child,
    base: String,
    token: String,
    db: String,
}

impl Server {
    async fn start(postgres: bool, dir: &Path, n: usize) -> Server {
        let db = fresh_db(postgres, dir, n).await;
        let mut import = entitywatch(&db);
        import
            .args(["list", "import"])
            .arg(common::default_list_path());
        run_ok(import, "list import");
        let mut tokens = entitywatch(&db);
        tokens.args(["tokens", "create", "--name", "bench", "--scope", "admin"]);
        let token = run_ok(tokens, "tokens create").trim().to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut run = entitywatch(&db);
        run.args(["run", "--interval", "24h", "--list-sync-interval", "0s"])
            .args(["--federal-register-url", "http://127.0.0.1:9/"])
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = run.spawn().expect("entitywatch run starts");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        while client.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server answers"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Server {
            child,
            base,
            token,
            db,
        }
    }

    /// The child's peak resident memory so far, MB.
    fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One load run's figures.
struct Load {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: usize,
}

/// `concurrency` connections, each sending `request(i)` until `stop(i, elapsed)`, one
/// request in flight per connection; every answer must be a success.
async fn drive<F>(
    concurrency: usize,
    request: F,
    stop: impl Fn(usize, Duration) -> bool + Send + Sync + 'static,
) -> Load
where
    F: Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let stop = Arc::new(stop);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (request, stop, next) = (request.clone(), stop.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if stop(i, started.elapsed()) {
                    return latencies;
                }
                let t = Instant::now();
                let r = request(i).send().await.expect("the server answers");
                let status = r.status();
                let body = r.bytes().await.expect("the body arrives");
                assert!(
                    status.is_success(),
                    "{status}: {}",
                    String::from_utf8_lossy(&body)
                );
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    Load {
        per_second: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 0.5),
        p99_ms: percentile(&all, 0.99),
        requests: all.len(),
    }
}

struct Row {
    what: String,
    store: &'static str,
    figure: String,
    detail: String,
}

fn load_row(what: &str, store: &'static str, loads: Vec<Load>, concurrency: usize) -> Row {
    let requests: usize = loads.iter().map(|l| l.requests).sum();
    let runs = loads.len();
    let per_second = median(loads.iter().map(|l| l.per_second).collect());
    let p50 = median(loads.iter().map(|l| l.p50_ms).collect());
    let p99 = median(loads.iter().map(|l| l.p99_ms).collect());
    Row {
        what: what.to_string(),
        store,
        figure: format!("{per_second:.0} req/s"),
        detail: format!(
            "p50 {p50:.2} ms, p99 {p99:.2} ms; {concurrency} connections, {requests} requests in {runs} run(s)"
        ),
    }
}

/// Names to screen: every listed primary name and a planted variant of each, cycled.
fn screening_names(list: &[entitywatch::screening::ListedEntry], n: usize) -> Vec<String> {
    let synthetic = synthetic_suppliers(list, n, 100, 20_261_207);
    synthetic.records.into_iter().map(|r| r.name).collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let runs = env_usize("BENCH_RUNS", if smoke { 1 } else { 3 });
    let seconds = env_usize("BENCH_SECONDS", if smoke { 1 } else { 10 });
    let concurrency = env_usize("BENCH_CONCURRENCY", if smoke { 4 } else { 16 });
    let upserts = env_usize("BENCH_UPSERTS", if smoke { 100 } else { 5_000 });
    let decisions = env_usize(
        "BENCH_AUDIT_DECISIONS",
        if smoke { 2_000 } else { 1_000_000 },
    );
    let only = env_list("BENCH_ONLY", "screen,upsert,audit");
    let backends = env_list(
        "BENCH_BACKENDS",
        if smoke { "sqlite" } else { "sqlite,postgres" },
    );
    if smoke {
        println!("smoke run; use `cargo bench --bench api` for the figures");
    }
    let list = common::load(&common::default_list_path());
    let names = Arc::new(screening_names(&list, 10_000));
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut rows = Vec::new();
    let mut servers = 0;
    for backend in &backends {
        let postgres = backend.starts_with("postgres");
        let store_name = if postgres { "PostgreSQL" } else { "SQLite" };
        servers += 1;
        let server = Server::start(postgres, dir.path(), servers).await;
        let http = client(concurrency);
        // The first screening builds the screener over the list: not what a request costs.
        let warm = http
            .post(format!("{}/v1/screen", server.base))
            .bearer_auth(&server.token)
            .json(&serde_json::json!({"queries": [{"name": "warm up"}]}))
            .send()
            .await
            .expect("the server answers");
        assert!(warm.status().is_success());

        if only.iter().any(|o| o == "screen") && !postgres {
            let mut loads = Vec::new();
            for _ in 0..runs {
                let (http, base, token, names) = (
                    http.clone(),
                    server.base.clone(),
                    server.token.clone(),
                    names.clone(),
                );
                let limit = Duration::from_secs(seconds as u64);
                loads.push(
                    drive(
                        concurrency,
                        move |i| {
                            http.post(format!("{base}/v1/screen"))
                                .bearer_auth(&token)
                                .json(&serde_json::json!({
                                    "queries": [{"name": names[i % names.len()]}]
                                }))
                        },
                        move |_, elapsed| elapsed >= limit,
                    )
                    .await,
                );
            }
            rows.push(load_row(
                &format!("POST /v1/screen, 1 name vs {} entries", list.len()),
                store_name,
                loads,
                concurrency,
            ));
        }

        if only.iter().any(|o| o == "upsert") {
            let mut loads = Vec::new();
            for run in 0..runs {
                let synthetic = synthetic_suppliers(&list, upserts, 10, 20_260_731 + run as u64);
                let records: Arc<Vec<(String, String)>> = Arc::new(
                    synthetic
                        .records
                        .into_iter()
                        .map(|r| (format!("R{run}-{:07}", r.id), r.name))
                        .collect(),
                );
                let (http, base, token) = (http.clone(), server.base.clone(), server.token.clone());
                let n = records.len();
                loads.push(
                    drive(
                        concurrency,
                        move |i| {
                            let (id, name) = &records[i];
                            http.put(format!("{base}/v1/suppliers/{id}"))
                                .bearer_auth(&token)
                                .json(&serde_json::json!({ "name": name }))
                        },
                        move |i, _| i >= n,
                    )
                    .await,
                );
            }
            rows.push(load_row(
                "PUT /v1/suppliers/{id}, each screened vs the list",
                store_name,
                loads,
                concurrency,
            ));
        }

        if only.iter().any(|o| o == "audit") && !postgres {
            let store = Store::connect(&server.db).await.expect("the bench store");
            let already = audit_lines(&http, &server).await.0;
            let mut batch = Vec::with_capacity(10_000);
            for i in 0..decisions {
                batch.push(Decision {
                    supplier_id: format!("A{i:08}"),
                    entity_key: list[i % list.len()].key.to_string(),
                    entry_version: 1,
                    basis: "bench".to_string(),
                    score: 0.7,
                    decision: DecisionKind::NearMiss,
                    explanation: "a near miss stored for the audit benchmark".to_string(),
                    document_number: None,
                });
                if batch.len() == 10_000 || i + 1 == decisions {
                    store
                        .record_decisions(&batch)
                        .await
                        .expect("decisions stored");
                    batch.clear();
                }
            }
            store.close().await;
            let mut secs = Vec::new();
            let mut detail = String::new();
            for _ in 0..runs {
                let before = server.peak_rss_mb();
                let started = Instant::now();
                let (lines, bytes) = audit_lines(&http, &server).await;
                let took = started.elapsed().as_secs_f64();
                assert!(lines >= already + decisions, "{lines} records streamed");
                secs.push(took);
                detail = format!(
                    "{lines} records, {:.0} MB; server peak RSS {before:.0} MB before, {:.0} MB after",
                    bytes as f64 / 1e6,
                    server.peak_rss_mb()
                );
            }
            rows.push(Row {
                what: format!("GET /v1/audit, {decisions} decisions streamed"),
                store: store_name,
                figure: format!("{:.2} s", median(secs)),
                detail,
            });
        }
    }
    println!(
        "binary: {}; median of {runs} run(s); 2 cores shared by client and server",
        binary().display()
    );
    println!("{:<52} {:<11} {:>12}  detail", "what", "store", "figure");
    for r in &rows {
        println!(
            "{:<52} {:<11} {:>12}  {}",
            r.what, r.store, r.figure, r.detail
        );
    }
}

/// Streams the whole audit trail as JSONL: (lines, bytes), reading chunk by chunk.
async fn audit_lines(http: &reqwest::Client, server: &Server) -> (usize, usize) {
    let mut r = http
        .get(format!("{}/v1/audit", server.base))
        .bearer_auth(&server.token)
        .send()
        .await
        .expect("the audit stream starts");
    assert!(r.status().is_success());
    let (mut lines, mut bytes) = (0, 0);
    while let Some(chunk) = r.chunk().await.expect("the stream goes on") {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    (lines, bytes)
}
