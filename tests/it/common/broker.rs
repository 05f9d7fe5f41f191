//! A private Kafka-protocol broker for one test: tansu (the binary `scripts/kafka.sh start`
//! builds) on a free port with its own SQLite storage file in a temporary directory, so a test
//! can stop, kill and restart it — and use the default topic and group names the `entitywatch`
//! binary hard-codes — without touching the shared broker on 127.0.0.1:9092 that the other
//! Kafka tests use in parallel.
//!
//! Storage is SQLite, as in `scripts/kafka.sh`, never tansu's `memory://` engine: in tansu 0.6.0
//! a fetch from an offset inside a multi-record batch returns no records there, so a consumer
//! group resuming after a commit in the middle of a produced batch (exactly what a restart or a
//! killed worker causes) would wait forever. SQLite also keeps topics, records and committed
//! offsets across a restart, which is what a restart test needs.
//!
//! The broker is killed when the value is dropped (a failing test included).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use entitywatch::bus::kafka::KafkaSettings;

/// The file name of the storage, relative to the broker's working directory: tansu resolves a
/// `sqlite://` path against its working directory, even one starting with `/`.
const STORAGE_FILE: &str = "kafka.db";

/// Where `scripts/kafka.sh` installs tansu.
pub fn tansu_binary() -> PathBuf {
    let cache = std::env::var_os("ENTITYWATCH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/entitywatch")
        });
    cache.join("tansu/bin/tansu")
}

/// `ENTITYWATCH_TEST_KEEP_LOGS=1` keeps the temporary directories (logs, storage) of the fault
/// tests for a look after the run.
pub fn keep_logs() -> bool {
    std::env::var_os("ENTITYWATCH_TEST_KEEP_LOGS").is_some()
}

pub struct PrivateBroker {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// How many times the broker process was started (1 after `start`).
    pub starts: u32,
}

impl PrivateBroker {
    /// Starts tansu on a free port with empty storage and waits until it accepts connections.
    /// Fails at once, saying how to get the binary, if tansu is not installed.
    pub async fn start() -> PrivateBroker {
        let bin = tansu_binary();
        assert!(
            bin.is_file(),
            "tansu is not installed at {}: run `scripts/kafka.sh start` once (it builds tansu \
             0.6.0 into the cache, ~25 minutes on 2 cores) before the fault tests",
            bin.display()
        );
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().unwrap().port()
        };
        let mut dir = tempfile::tempdir().expect("temporary directory");
        dir.disable_cleanup(keep_logs());
        let mut broker = PrivateBroker {
            port,
            dir,
            child: None,
            starts: 0,
        };
        broker.start_again().await;
        broker
    }

    /// `host:port` for `--kafka-brokers`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Client settings for this broker, failing in seconds rather than librdkafka's minutes.
    pub fn settings(&self) -> KafkaSettings {
        KafkaSettings::new(self.brokers())
            .with("message.timeout.ms", "30000")
            .with("client.id", "entitywatch-fault-test")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("tansu.log")
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// (Re)starts the broker on the same port and the same storage file, and waits until the
    /// port accepts connections (up to 30 s; a port still held by the previous process is
    /// retried).
    pub async fn start_again(&mut self) {
        assert!(!self.is_running(), "the private broker is already running");
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        'spawn: loop {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .expect("broker log file");
            let url = format!("tcp://{addr}");
            let mut cmd = Command::new(tansu_binary());
            cmd.arg("broker")
                .arg("--listener-url")
                .arg(&url)
                .arg("--advertised-listener-url")
                .arg(&url)
                .arg("--storage-engine")
                .arg(format!("sqlite://{STORAGE_FILE}"))
                .current_dir(self.dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log);
            // tansu reads these from the environment too; only the flags above may decide.
            for var in [
                "CLUSTER_ID",
                "LISTENER_URL",
                "ADVERTISED_LISTENER_URL",
                "STORAGE_ENGINE",
                "SCHEMA_REGISTRY",
                "DATA_LAKE",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ] {
                cmd.env_remove(var);
            }
            // The group coordinator logs joins and evictions (missed heartbeats) at info; the
            // rest of tansu's info output is a line per request span.
            cmd.env(
                "RUST_LOG",
                std::env::var("ENTITYWATCH_TEST_TANSU_LOG").unwrap_or_else(|_| {
                    "warn,tansu_broker::coordinator::group::administrator=info".into()
                }),
            );
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", tansu_binary().display()));
            self.starts += 1;
            loop {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    self.child = Some(child);
                    return;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    // Most likely the port is still held by the previous process: try again.
                    if Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue 'spawn;
                    }
                    panic!(
                        "tansu exited ({status}) during start-up on {addr}; log:\n{}",
                        self.log_tail(30)
                    );
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "tansu did not accept connections on {addr} within 30 s; log:\n{}",
                        self.log_tail(30)
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Stops the broker as an operator would: SIGTERM, then SIGKILL if it is still running
    /// after 10 s. Returns whether SIGTERM sufficed.
    pub async fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                self.wait_port_closed().await;
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        self.wait_port_closed().await;
        false
    }

    /// Crashes the broker: SIGKILL, no chance to flush or say goodbye.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.wait_port_closed().await;
    }

    async fn wait_port_closed(&self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        for _ in 0..100 {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "127.0.0.1:{} still accepts connections after the broker stopped",
            self.port
        );
    }

    /// The broker's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `lines` lines of the broker's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
