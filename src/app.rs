//! The service, built by the library: [`App::build`] turns resolved [`Settings`] and a
//! [`ServiceSpec`] (which parts this process runs) into a running watcher, worker, sinks and
//! HTTP endpoint, on the embedded bus or on Kafka, from one code path. `main` and the tests
//! both start the service through it; the tests read the bound HTTP address from the handle.
//!
//! Everything that is configured once lives here: the Federal Register client and watcher
//! ([`federal_register_watcher`]), the bus and the worker that delivers on it ([`Bus`]). This
//! module wires parts; it decides nothing about rules, suppliers or alerts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use tracing::info;

use crate::alerts::{AlertSink, AlertTopicSink, KafkaAlertSink, SinkSettings, SinkSettingsError};
use crate::bus::kafka::{
    KafkaBusError, KafkaConfig, KafkaConsumer, KafkaProducer, KafkaPublisher, ALERTS_TOPIC,
    DEAD_LETTER_TOPIC, ENTITY_CHANGES_TOPIC, WORKER_GROUP,
};
use crate::bus::{InProcessBus, JsonLinesPublisher, PublishError, Publisher};
use crate::config::{redact_url, Settings};
use crate::dead_letter::{DeadLetter, DeadLetters, KafkaDeadLetters};
use crate::federal_register::amendment::ParseLimits;
use crate::federal_register::client::{ClientConfig, ClientError, FederalRegisterClient};
use crate::federal_register::watcher::{PollReport, WatchError, Watcher, WatcherConfig};
use crate::http::{HttpError, HttpServer, Readiness};
use crate::list_sources::sync::ListSync;
use crate::list_sources::{ListSourceKind, ListSourcesClient};
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};
use crate::worker::consume::{
    consume, ConsumeError, ConsumeOptions, KafkaSource, LogSource, MessageSource, Until,
};
use crate::worker::Worker;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("opening store {url}: {source}")]
    OpenStore { url: String, source: StoreError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Kafka on {brokers}: {source}")]
    Kafka {
        brokers: String,
        source: KafkaBusError,
    },
    #[error("building the Federal Register client: {0}")]
    Client(#[from] ClientError),
    #[error(transparent)]
    Sinks(#[from] SinkSettingsError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("opening {path}: {source}")]
    Output { path: PathBuf, source: PublishError },
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error("building the list sources client: {0}")]
    ListClient(ClientError),
    #[error("this process runs no {0}")]
    NotRunning(&'static str),
}

/// Which parts a process runs.
#[derive(Debug, Clone, Default)]
pub struct ServiceSpec {
    pub watcher: Option<WatcherSpec>,
    /// Run a worker consuming the change (and, on Kafka, suppliers) topic.
    pub worker: bool,
    pub sinks: SinkSettings,
    /// Serve `/metrics`, `/healthz` and `/readyz` on the configured address.
    pub http: bool,
    /// `/readyz` fails when the last successful poll is older than this (watcher processes).
    pub ready_max_poll_age: Duration,
    /// `/readyz` fails when one rule has held the watermark longer than this (watchers).
    pub ready_max_stuck: Option<Duration>,
    /// Pause before a failed message is handled again.
    pub retry_delay: Option<Duration>,
    /// Sync the snapshot from the codified list (first, on an empty snapshot) and every
    /// interval.
    pub list_sync: Option<ListSyncSpec>,
}

/// Where and how often `run` syncs the codified list.
#[derive(Debug, Clone)]
pub struct ListSyncSpec {
    pub ecfr_url: url::Url,
    pub csl_url: url::Url,
    pub source: ListSourceKind,
    pub interval: Duration,
}

/// How the watcher polls and where it publishes.
#[derive(Debug, Clone)]
pub struct WatcherSpec {
    pub interval: Duration,
    /// Search from this publication date on the first poll (backfill).
    pub since: Option<NaiveDate>,
    pub public_inspection: bool,
    pub output: WatcherOutput,
}

/// Where the watcher's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatcherOutput {
    /// The change topic of the bus (Kafka or the embedded log).
    Bus,
    /// JSON lines on stdout.
    Stdout,
    /// JSON lines appended to a file.
    File(PathBuf),
}

/// An error of the Kafka cluster `config` names.
fn kafka_error(config: &KafkaConfig) -> impl Fn(KafkaBusError) -> AppError + '_ {
    move |source| AppError::Kafka {
        brokers: config.settings.brokers.clone(),
        source,
    }
}

/// Opens the store named by the settings, with its URL redacted in any error.
pub async fn open_store(settings: &Settings) -> Result<Store, AppError> {
    let options = crate::store::StoreOptions {
        sqlite_synchronous: settings.sqlite_synchronous,
    };
    Store::connect_with(&settings.database_url, options)
        .await
        .map_err(|source| AppError::OpenStore {
            url: redact_url(&settings.database_url),
            source,
        })
}

/// Opens the store named by the settings only if it exists (commands that only read).
pub async fn open_existing_store(settings: &Settings) -> Result<Store, AppError> {
    Store::connect_existing(&settings.database_url)
        .await
        .map_err(|source| AppError::OpenStore {
            url: redact_url(&settings.database_url),
            source,
        })
}

/// The Federal Register watcher as these settings configure it: the one place its client and
/// limits are set.
pub fn federal_register_watcher(
    settings: &Settings,
    store: &Store,
    publisher: Arc<dyn Publisher>,
    public_inspection: bool,
) -> Result<Watcher, AppError> {
    let client = FederalRegisterClient::new(ClientConfig {
        base_url: settings.federal_register_url.clone(),
        max_document_bytes: settings.max_document_bytes,
        timeout: settings.federal_register_timeout,
        ..ClientConfig::default()
    })?;
    Ok(Watcher::new(
        client,
        store.clone(),
        publisher,
        WatcherConfig {
            parse_limits: ParseLimits {
                max_bytes: settings.max_document_bytes,
            },
            public_inspection,
            ..WatcherConfig::default()
        },
    ))
}

/// How patient a list sync is with an unreachable or busy source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPatience {
    /// The Federal Register client's retries and backoff (`list sync`, every interval).
    Full,
    /// Two quick retries: the first sync of an empty snapshot holds the watcher back, and must
    /// not hold it for long when the source cannot be reached (the interval loop then retries
    /// with full patience at once).
    Bootstrap,
}

/// The codified-list sync as these settings configure it: its clients take the Federal
/// Register client's limits, and it publishes through `publisher` (the change topic).
pub fn list_sync(
    settings: &Settings,
    store: &Store,
    publisher: Arc<dyn Publisher>,
    (ecfr_url, csl_url): (&url::Url, &url::Url),
    patience: SyncPatience,
) -> Result<ListSync, AppError> {
    let mut config = ClientConfig {
        max_document_bytes: settings.max_document_bytes,
        timeout: settings.federal_register_timeout,
        ..ClientConfig::default()
    };
    if patience == SyncPatience::Bootstrap {
        config.max_retries = 2;
        config.max_backoff = Duration::from_secs(2);
    }
    let client =
        ListSourcesClient::new(ecfr_url, csl_url, &config).map_err(AppError::ListClient)?;
    Ok(ListSync::new(
        client,
        store.clone(),
        publisher,
        settings.max_document_bytes,
    ))
}

/// The bus a process uses: the embedded log in the store, or a Kafka cluster.
#[derive(Clone)]
pub enum Bus {
    Embedded {
        store: Store,
        /// One handle shared by the watcher and the worker, so a publish wakes the consumer.
        changes: InProcessBus,
    },
    Kafka {
        config: KafkaConfig,
        producer: KafkaProducer,
    },
}

impl Bus {
    /// The bus the settings name: Kafka when brokers are configured (creating the topics if
    /// missing), the embedded log otherwise.
    pub async fn connect(settings: &Settings, store: &Store) -> Result<Bus, AppError> {
        match KafkaConfig::from_settings(settings) {
            None => Ok(Bus::embedded(store)),
            Some(config) => Bus::kafka(config).await,
        }
    }

    /// The Kafka bus of the settings without creating topics (for reading and redriving),
    /// or the embedded one.
    pub fn connect_existing(settings: &Settings, store: &Store) -> Result<Bus, AppError> {
        match KafkaConfig::from_settings(settings) {
            None => Ok(Bus::embedded(store)),
            Some(config) => Bus::kafka_existing(config),
        }
    }

    /// The Kafka bus of `config` as it is, creating no topic.
    pub fn kafka_existing(config: KafkaConfig) -> Result<Bus, AppError> {
        let producer = KafkaProducer::new(&config.settings).map_err(kafka_error(&config))?;
        Ok(Bus::Kafka { config, producer })
    }

    /// The Kafka bus of `config`, creating its topics if missing.
    pub async fn kafka(config: KafkaConfig) -> Result<Bus, AppError> {
        config.ensure_topics().await.map_err(kafka_error(&config))?;
        let producer = KafkaProducer::new(&config.settings).map_err(kafka_error(&config))?;
        Ok(Bus::Kafka { config, producer })
    }

    pub fn embedded(store: &Store) -> Bus {
        Bus::Embedded {
            store: store.clone(),
            changes: InProcessBus::new(store.clone(), ENTITY_CHANGES_TOPIC),
        }
    }

    pub fn kafka_producer(&self) -> Option<&KafkaProducer> {
        match self {
            Bus::Kafka { producer, .. } => Some(producer),
            Bus::Embedded { .. } => None,
        }
    }

    /// Where the watcher publishes change events on this bus.
    pub fn change_publisher(&self) -> Arc<dyn Publisher> {
        match self {
            Bus::Embedded { changes, .. } => Arc::new(changes.clone()),
            Bus::Kafka { config, producer } => Arc::new(KafkaPublisher::from_producer(
                producer.clone(),
                config.topics.entity_changes.clone(),
            )),
        }
    }

    /// A worker whose alert topic and dead letters are this bus's, delivering also to the
    /// sinks the settings configure (Slack, webhook).
    pub fn worker(&self, store: &Store, sinks: &SinkSettings) -> Result<Worker, AppError> {
        Ok(self
            .worker_with(
                store,
                sinks.retry.clone(),
                sinks.claim_lease,
                sinks.external_sinks()?,
            )
            .with_affiliates(sinks.affiliates.threshold())
            .with_digests(sinks.digest.clone()))
    }

    /// A worker whose alert topic and dead letters are this bus's, delivering also to
    /// `external` sinks, with this retry policy and claim lease.
    pub fn worker_with(
        &self,
        store: &Store,
        retry: crate::alerts::RetryPolicy,
        claim_lease: Duration,
        external: Vec<Arc<dyn AlertSink>>,
    ) -> Worker {
        let (topic, dead_letters): (Arc<dyn AlertSink>, Arc<dyn DeadLetters>) = match self {
            Bus::Embedded { store, .. } => (
                Arc::new(AlertTopicSink::new(InProcessBus::new(
                    store.clone(),
                    ALERTS_TOPIC,
                ))),
                Arc::new(InProcessBus::new(store.clone(), DEAD_LETTER_TOPIC)),
            ),
            Bus::Kafka { config, producer } => (
                Arc::new(KafkaAlertSink::new(
                    producer.clone(),
                    config.topics.alerts.clone(),
                )),
                Arc::new(KafkaDeadLetters::new(
                    producer.clone(),
                    config.topics.dead_letter.clone(),
                )),
            ),
        };
        let mut all = vec![topic];
        all.extend(external);
        Worker::new(store.clone(), all, dead_letters, retry).with_claim_lease(claim_lease)
    }

    /// The worker's source of messages on this bus: a member of the workers' group.
    pub fn worker_source(&self) -> Result<Box<dyn MessageSource>, AppError> {
        let group = match self {
            Bus::Embedded { .. } => WORKER_GROUP,
            Bus::Kafka { config, .. } => &config.group_id,
        };
        self.worker_source_in(group)
    }

    /// A source of the change (and, on Kafka, suppliers) topic as member of `group`: on the
    /// embedded bus, a consumer of that name with its own stored position.
    pub fn worker_source_in(&self, group: &str) -> Result<Box<dyn MessageSource>, AppError> {
        match self {
            Bus::Embedded { changes, .. } => Ok(Box::new(LogSource::new(changes.consumer(group)))),
            Bus::Kafka { config, .. } => {
                let consumer = config
                    .subscribe_worker(group)
                    .map_err(kafka_error(config))?;
                Ok(Box::new(KafkaSource::new(consumer)))
            }
        }
    }

    /// The suppliers topic, when this bus has one.
    pub fn suppliers_topic(&self) -> Option<String> {
        match self {
            Bus::Kafka { config, .. } => Some(config.topics.suppliers.clone()),
            Bus::Embedded { .. } => None,
        }
    }

    /// The ownership topic, when this bus has one.
    pub fn ownership_topic(&self) -> Option<String> {
        match self {
            Bus::Kafka { config, .. } => Some(config.topics.ownership.clone()),
            Bus::Embedded { .. } => None,
        }
    }

    /// Every record of the dead-letter topic, read without joining a group or committing.
    pub async fn read_dead_letters(&self) -> Result<Vec<(String, DeadLetter)>, AppError> {
        match self {
            Bus::Embedded { store, .. } => Ok(store
                .read_log(DEAD_LETTER_TOPIC, 0, i64::MAX)
                .await?
                .into_iter()
                .map(|m| {
                    (
                        format!("position {}", m.position),
                        DeadLetter::from_record(&m.key, m.payload.as_bytes()),
                    )
                })
                .collect()),
            Bus::Kafka { config, .. } => {
                let topic = &config.topics.dead_letter;
                let messages =
                    KafkaConsumer::read_topic(&config.settings, topic, Duration::from_secs(60))
                        .await
                        .map_err(kafka_error(config))?;
                Ok(messages
                    .iter()
                    .map(|m| {
                        (
                            format!("{}/{}@{}", m.topic, m.partition, m.offset),
                            DeadLetter::from_record(
                                m.key_str().unwrap_or_default(),
                                m.payload.as_deref().unwrap_or_default(),
                            ),
                        )
                    })
                    .collect())
            }
        }
    }

    /// Waits until everything produced is confirmed (Kafka); nothing to do on the embedded bus.
    pub async fn flush(&self) -> Result<(), AppError> {
        if let Bus::Kafka { config, producer } = self {
            producer
                .flush(Duration::from_secs(10))
                .await
                .map_err(kafka_error(config))?;
        }
        Ok(())
    }
}

/// A built service, ready to run.
pub struct App {
    store: Store,
    bus: Bus,
    watcher: Option<(Watcher, WatcherSpec)>,
    worker: Option<(Worker, Box<dyn MessageSource>)>,
    http: Option<HttpServer>,
    retry_delay: Duration,
    suppliers_topic: Option<String>,
    ownership_topic: Option<String>,
    /// The sync every interval, the quicker one of an empty snapshot, and their spec.
    list_sync: Option<ListSyncParts>,
}

struct ListSyncParts {
    every_interval: ListSync,
    bootstrap: ListSync,
    spec: ListSyncSpec,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Messages the worker handled.
    pub handled: usize,
}

impl App {
    /// Opens the store and the bus, builds the parts `spec` names and binds the HTTP endpoint
    /// (port 0 picks a free port; [`App::http_addr`] says which).
    pub async fn build(settings: &Settings, spec: ServiceSpec) -> Result<App, AppError> {
        let store = open_store(settings).await?;
        let bus = Bus::connect(settings, &store).await?;
        Self::build_on(settings, spec, store, bus).await
    }

    /// As [`App::build`], with a store and bus the caller already has.
    pub async fn build_on(
        settings: &Settings,
        spec: ServiceSpec,
        store: Store,
        bus: Bus,
    ) -> Result<App, AppError> {
        let watcher = match spec.watcher {
            Some(watch) => {
                let publisher: Arc<dyn Publisher> = match &watch.output {
                    WatcherOutput::Bus => bus.change_publisher(),
                    WatcherOutput::Stdout => Arc::new(JsonLinesPublisher::stdout()),
                    WatcherOutput::File(path) => {
                        Arc::new(JsonLinesPublisher::file(path.clone()).await.map_err(
                            |source| AppError::Output {
                                path: path.clone(),
                                source,
                            },
                        )?)
                    }
                };
                let watcher =
                    federal_register_watcher(settings, &store, publisher, watch.public_inspection)?;
                Some((watcher, watch))
            }
            None => None,
        };
        let list_sync = match &spec.list_sync {
            Some(l) => {
                let urls = (&l.ecfr_url, &l.csl_url);
                let build =
                    |patience| list_sync(settings, &store, bus.change_publisher(), urls, patience);
                Some(ListSyncParts {
                    every_interval: build(SyncPatience::Full)?,
                    bootstrap: build(SyncPatience::Bootstrap)?,
                    spec: l.clone(),
                })
            }
            None => None,
        };
        let worker = if spec.worker {
            Some((bus.worker(&store, &spec.sinks)?, bus.worker_source()?))
        } else {
            None
        };
        let http = if spec.http {
            let readiness = Readiness {
                store: store.clone(),
                kafka: bus.kafka_producer().cloned(),
                max_poll_age: watcher.as_ref().map(|_| spec.ready_max_poll_age),
                max_stuck: watcher.as_ref().and(spec.ready_max_stuck),
                started_at: chrono::Utc::now(),
                metrics_scope: settings.metrics_scope,
            };
            // The API and the review console join here, each with its own authentication.
            let api_worker = Arc::new(bus.worker(&store, &spec.sinks)?);
            let services = axum::Router::new()
                .merge(crate::http::api::router(
                    store.clone(),
                    api_worker,
                    settings.api_max_body,
                ))
                .merge(crate::http::console::router(
                    store.clone(),
                    crate::http::console::ConsoleSettings {
                        secure_cookie: settings.console_secure_cookie,
                        ..Default::default()
                    },
                ));
            Some(HttpServer::bind(settings.http_addr, readiness, services).await?)
        } else {
            None
        };
        match &bus {
            Bus::Embedded { .. } => tracing::debug!(
                federal_register = %settings.federal_register_url,
                store = %redact_url(&settings.database_url),
                watcher = watcher.is_some(),
                worker = worker.is_some(),
                "entitywatch built on the embedded bus"
            ),
            Bus::Kafka { config, .. } => tracing::debug!(
                federal_register = %settings.federal_register_url,
                store = %redact_url(&settings.database_url),
                brokers = %config.settings.brokers,
                group = %config.group_id,
                watcher = watcher.is_some(),
                worker = worker.is_some(),
                "entitywatch built on Kafka"
            ),
        }
        Ok(App {
            list_sync,
            suppliers_topic: bus.suppliers_topic(),
            ownership_topic: bus.ownership_topic(),
            store,
            bus,
            watcher,
            worker,
            http,
            retry_delay: spec
                .retry_delay
                .unwrap_or(crate::worker::consume::DEFAULT_RETRY_DELAY),
        })
    }

    /// Where `/metrics`, `/healthz` and `/readyz` are served, if they are.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(HttpServer::local_addr)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// One Federal Register poll (`watch --once`, the demo).
    pub async fn poll_once(&self, since: Option<NaiveDate>) -> Result<PollReport, AppError> {
        let (watcher, _) = self
            .watcher
            .as_ref()
            .ok_or(AppError::NotRunning("watcher"))?;
        Ok(watcher.poll_once(since).await?)
    }

    /// Lets the worker handle every message on the bus, then returns how many it handled (the
    /// demo, tests). A handling failure is returned, not retried.
    pub async fn drain(&mut self) -> Result<usize, AppError> {
        let (worker, source) = self.worker.take().ok_or(AppError::NotRunning("worker"))?;
        let options = ConsumeOptions {
            until: Until::Idle,
            retry_delay: self.retry_delay,
            suppliers_topic: self.suppliers_topic.clone(),
            ownership_topic: self.ownership_topic.clone(),
        };
        let handled = consume(&worker, source, options, std::future::pending::<()>()).await?;
        Ok(handled)
    }

    /// Runs every part until `shutdown`: the watcher polls every interval, the worker consumes,
    /// the endpoint serves. On shutdown each part finishes the work in hand; the endpoint stops
    /// last, so the final scrape sees the final counts; then Kafka is flushed and the store
    /// closed.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> Result<RunReport, AppError> {
        let App {
            store,
            bus,
            watcher,
            worker,
            http,
            retry_delay,
            suppliers_topic,
            ownership_topic,
            list_sync,
        } = self;
        let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let http_task = http.map(|server| {
            tokio::spawn(server.serve(async {
                let _ = http_stopped.await;
            }))
        });
        // On an empty snapshot the list comes first, so the workers screen every supplier
        // against all of it before any rule's change.
        let bootstrapped = match &list_sync {
            Some(l) if store.listed_entry_count().await? == 0 => {
                bootstrap(&l.bootstrap, l.spec.source, &store).await
            }
            _ => false,
        };
        let resync = async {
            if let Some(l) = &list_sync {
                resync_every(
                    &l.every_interval,
                    &l.spec,
                    bootstrapped,
                    shutdown.requested(),
                )
                .await;
            }
        };
        let watch = async {
            if let Some((watcher, spec)) = &watcher {
                watcher
                    .run(spec.interval, spec.since, shutdown.requested())
                    .await;
            }
        };
        let work = async {
            match worker {
                Some((worker, source)) => {
                    let options = ConsumeOptions {
                        until: Until::Shutdown,
                        retry_delay,
                        suppliers_topic,
                        ownership_topic,
                    };
                    consume(&worker, source, options, shutdown.requested())
                        .await
                        .map(Some)
                }
                None => Ok(None),
            }
        };
        let ((), (), worked) = tokio::join!(watch, resync, work);
        let _ = http_stop.send(());
        if let Some(task) = http_task {
            let _ = task.await;
        }
        let handled = worked?;
        bus.flush().await?;
        store.close().await;
        let report = RunReport {
            handled: handled.unwrap_or(0),
        };
        if handled.is_some() {
            info!(handled = report.handled, "entitywatch stopped");
        } else {
            info!("watcher stopped");
        }
        Ok(report)
    }

    /// Closes what the app opened without running it (after [`App::poll_once`] or
    /// [`App::drain`]).
    pub async fn close(self) -> Result<(), AppError> {
        self.bus.flush().await?;
        self.store.close().await;
        Ok(())
    }
}

/// The first sync of an empty snapshot: every entry of the list is published as an addition,
/// which the workers screen every stored supplier against (the initial screening). A failure
/// is logged and the service starts anyway; the interval loop tries again at once. Returns
/// whether it synced.
async fn bootstrap(sync: &ListSync, source: ListSourceKind, store: &Store) -> bool {
    let suppliers = store
        .snapshot_stats()
        .await
        .map(|s| s.suppliers)
        .unwrap_or(0);
    match sync.sync(source).await {
        Ok(report) => {
            info!(
                source = source.as_str(),
                entries = report.added,
                suppliers,
                "initial screening: the empty snapshot is filled from the codified list; every \
                 supplier is screened against each entry and alerted on as for a rule"
            );
            true
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                "initial screening postponed: the codified list could not be fetched; the \
                 watcher starts on an empty snapshot and the sync is retried in the background"
            );
            false
        }
    }
}

/// Syncs every `spec.interval` until `stop`; at once first unless `bootstrapped` just did.
/// A failure is logged and counted by the sync itself; the service keeps running.
async fn resync_every(
    sync: &ListSync,
    spec: &ListSyncSpec,
    bootstrapped: bool,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut wait = if bootstrapped {
        spec.interval
    } else {
        Duration::ZERO
    };
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if sync
            .sync_unless_stopped(spec.source, &mut stop)
            .await
            .is_none()
        {
            return;
        }
        wait = spec.interval;
    }
}
