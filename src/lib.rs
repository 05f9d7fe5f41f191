//! entitywatch: watches the Federal Register for Entity List rules, turns them into change
//! events, re-screens stored suppliers against each change and raises alerts.
//!
//! # Layout
//!
//! Modules follow the data flow; arrows point downstream and toward the domain, and the domain
//! (`domain`, `events`, `outcome`, `screening`) imports no I/O crate.
//!
//! | stage | module | role |
//! |---|---|---|
//! | sources | [`federal_register`] | API client, amendment parser, watcher, local replay server |
//! | | [`list_sources`] | the codified list (eCFR Supplement No. 4, CSL bulk file) → change events (`list sync`, `list reconcile`) |
//! | | [`csl`] | Consolidated Screening List files → list entries (`list import`) |
//! | | [`suppliers`] | supplier files in and out (CSV) |
//! | | [`ownership`] | ownership files (CSV) and the Affiliates (50 %) rule over them ([`ownership::graph`], pure) |
//! | domain | [`domain`] | supplier record, list entry, country: one home each |
//! | | [`events`] | the change event schema (entity changes, document events) |
//! | | [`outcome`] | outcome enums: one spelling for store, logs and metric labels |
//! | bus | [`bus`] | publishers, CloudEvents codec, the embedded log, Kafka |
//! | worker | [`worker`] | applies a change, screens, decides, delivers; [`worker::consume`] is the one consume loop |
//! | | [`screening`] | the matcher (pure) |
//! | | [`store`] | SQLite / PostgreSQL: snapshot, suppliers, decisions, ledger, embedded log |
//! | | [`dead_letter`] | typed dead letters and where they are written |
//! | | [`alerts`] | the alert, its sinks (alert topic, Slack, webhook) and retries |
//! | beside | [`config`] | flags, environment, TOML file → [`config::Settings`] |
//! | | [`app`] | builds the service from settings: [`app::App::build`] |
//! | | [`shutdown`] | one stop request fanned out to every part |
//! | | [`http`], [`metrics`], [`telemetry`] | `/metrics`, probes, the HTTP API v1 ([`http::api`]) and the review console; counters; logs and internal events |
//! | | [`cli`] | one file per subcommand; `main.rs` only dispatches |
//! | | [`demo`] | the bundled rules and suppliers of `entitywatch demo` |
//!
//! # One change event, from poll to Slack
//!
//! The [`federal_register::watcher::Watcher`] searches the Federal Register API, fetches a new
//! rule's XML and [`federal_register::amendment::parse_rule`] turns it into
//! [`events::EntityChange`]s. The watcher publishes them through a [`bus::Publisher`] — the
//! store's log ([`bus::InProcessBus`]) or Kafka ([`bus::KafkaPublisher`]), both as CloudEvents —
//! and checkpoints the rule in the [`store`] only once they are durable. A worker's
//! [`worker::consume::consume`] loop receives the message from its [`worker::consume::MessageSource`],
//! decodes it ([`bus::decode_change_event`]) and calls [`worker::Worker::handle`]: the change is
//! applied to the list snapshot (raising the entry's version), the supplier index finds the
//! candidates, [`screening`] scores them, each decision is stored, and each alert is claimed in
//! the delivery ledger, sent to every [`alerts::AlertSink`] (the alert topic, then
//! [`alerts::SlackSink`] and [`alerts::WebhookSink`], with retries) and marked delivered. An
//! alert no retry could deliver becomes a [`dead_letter::DeadLetter`]. Only then does the loop
//! commit the message's position. [`app::App`] wires all of this from [`config::Settings`].

pub mod alerts;
pub mod app;
pub mod bus;
pub mod cli;
pub mod config;
pub mod csl;
pub mod dead_letter;
pub mod demo;
pub mod domain;
pub mod events;
pub mod federal_register;
pub mod http;
pub mod list_sources;
pub mod metrics;
pub mod outcome;
pub mod ownership;
pub mod screening;
pub mod shutdown;
pub mod store;
pub mod suppliers;
pub mod telemetry;
pub mod worker;
