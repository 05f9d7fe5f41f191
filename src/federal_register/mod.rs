//! Everything that talks to, or reads documents of, the Federal Register.
//!
//! `client` speaks the API v1 over HTTP, `amendment` turns a rule's full-text XML into
//! [`crate::events::EntityChange`]s, `watcher` ties both to a checkpoint and a publisher.
//! Nothing here knows about suppliers or alerts.

pub mod amendment;
pub mod client;
pub mod replay;
pub mod watcher;
