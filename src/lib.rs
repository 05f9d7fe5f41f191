//! entitywatch: watches the Federal Register for Entity List rules, turns them into change
//! events, re-screens stored suppliers against each change and raises alerts.
//!
//! Modules follow the data flow: `federal_register` → `events` → `bus` → `screening` →
//! `store` → `alerts`, with `config` beside them. Arrows point downstream and toward the
//! domain: `events` and `screening` import no I/O crate.

pub mod alerts;
pub mod bus;
pub mod config;
pub mod csl;
pub mod demo;
pub mod events;
pub mod federal_register;
pub mod http;
pub mod kafka_pipeline;
pub mod metrics;
pub mod screening;
pub mod store;
pub mod suppliers;
pub mod worker;
