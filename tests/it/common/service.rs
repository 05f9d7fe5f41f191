//! A long-running `entitywatch` process under test: its logs (JSON lines) collected as they
//! come, its metrics endpoint on an address the test chose ([`free_http_addr`]), scrapes, probes
//! and a SIGTERM that must end it with status 0 within a bound.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

/// An address on loopback with a port nobody listens on now, for a process under test to bind
/// (`--http-addr` / `ENTITYWATCH_HTTP_ADDR`): processes run side by side, so each needs its own.
/// The test knows the address because it chose it; an in-process app reports the one it bound
/// ([`super::app::TestApp::http`]). The port is released before the process binds it, which
/// is safe on loopback: the kernel hands ephemeral ports out in turn, not again at once.
pub fn free_http_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// Waits until `addr` answers `GET /healthz`, or panics after `max` (naming `what`).
pub async fn wait_healthy(addr: SocketAddr, max: Duration, what: &str) {
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("http://{addr}/healthz")).await {
            if r.status().is_success() {
                return;
            }
        }
        if started.elapsed() > max {
            panic!("{what}: nothing answered /healthz at {addr} within {max:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct Service {
    child: tokio::process::Child,
    logs: Arc<Mutex<Vec<String>>>,
    pub http: SocketAddr,
}

impl Service {
    /// Starts `cmd` (an [`super::entitywatch`] command) with JSON logs and its HTTP endpoint
    /// on a free port, and waits until the endpoint answers.
    pub async fn start(mut cmd: tokio::process::Command) -> Service {
        let http = free_http_addr();
        cmd.env("ENTITYWATCH_HTTP_ADDR", http.to_string())
            .env("ENTITYWATCH_LOG_FORMAT", "json")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("entitywatch starts");
        let logs: Arc<Mutex<Vec<String>>> = Arc::default();
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let mut service = Service { child, logs, http };
        let started = Instant::now();
        while reqwest::get(format!("http://{http}/healthz"))
            .await
            .is_err()
        {
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!(
                    "entitywatch exited with {status} before serving:\n{}",
                    service.logs()
                );
            }
            if started.elapsed() > Duration::from_secs(30) {
                panic!(
                    "entitywatch did not serve {http} within 30 s:\n{}",
                    service.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        service
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The first log line containing `needle`, waiting up to `max` for it.
    pub async fn wait_for_log(&mut self, needle: &str, max: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "entitywatch exited ({status}) before logging {needle:?}:\n{}",
                    self.logs()
                );
            }
            assert!(
                start.elapsed() < max,
                "no log line with {needle:?} within {max:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("http://{}{path}", self.http))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// The `/metrics` scrape as (series, value) pairs, series exactly as exposed
    /// (`name{label="v",...}`).
    pub async fn scrape(&self) -> Scrape {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200, "{text}");
        Scrape::parse(&text)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    pub fn signal(&self, signal: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} failed");
    }

    /// SIGTERM, then the exit status, which must come within `max`.
    pub async fn terminate(mut self, max: Duration) -> (std::process::ExitStatus, String) {
        self.signal("TERM");
        let status = tokio::time::timeout(max, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("no exit within {max:?} of SIGTERM:\n{}", self.logs()))
            .unwrap();
        // Let the readers take the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let logs = self.logs();
        (status, logs)
    }
}

/// A parsed Prometheus text exposition.
pub struct Scrape {
    pub text: String,
    values: Vec<(String, f64)>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let values = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect();
        Scrape {
            text: text.to_string(),
            values,
        }
    }

    /// The value of one series, e.g. `entitywatch_alerts_total{sink="slack",outcome="delivered"}`;
    /// 0 when absent (a labelled series appears at its first increment).
    pub fn value(&self, series: &str) -> f64 {
        self.values
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| *v)
            .unwrap_or(0.0)
    }

    pub fn has(&self, series: &str) -> bool {
        self.values.iter().any(|(s, _)| s == series)
    }

    /// Every metric family name exposed.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }
}
