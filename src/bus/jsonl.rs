//! JSON-lines publisher: one event per line on stdout or appended to a file.
//!
//! For single-machine use and for piping into other tools. A batch is written with one write
//! and, for a file, synced to disk before `publish` returns, so a checkpoint never runs ahead of
//! the file.

use std::path::PathBuf;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{Envelope, PublishError, Publisher};
use crate::events::ChangeEvent;

pub struct JsonLinesPublisher {
    target: Mutex<Target>,
}

enum Target {
    Stdout(tokio::io::Stdout),
    File(tokio::fs::File),
}

impl JsonLinesPublisher {
    pub fn stdout() -> Self {
        JsonLinesPublisher {
            target: Mutex::new(Target::Stdout(tokio::io::stdout())),
        }
    }

    /// Appends to `path`, creating it if needed.
    pub async fn file(path: PathBuf) -> Result<Self, PublishError> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await?;
        Ok(JsonLinesPublisher {
            target: Mutex::new(Target::File(file)),
        })
    }
}

#[async_trait]
impl Publisher for JsonLinesPublisher {
    async fn publish(&self, events: &[ChangeEvent]) -> Result<(), PublishError> {
        let mut buf = Vec::new();
        for event in events {
            serde_json::to_writer(&mut buf, &Envelope::new(event))?;
            buf.push(b'\n');
        }
        let mut target = self.target.lock().await;
        match &mut *target {
            Target::Stdout(out) => {
                out.write_all(&buf).await?;
                out.flush().await?;
            }
            Target::File(file) => {
                file.write_all(&buf).await?;
                file.flush().await?;
                file.sync_data().await?;
            }
        }
        Ok(())
    }
}
