//! The watcher's checkpoint: which documents are done, how far back the next poll must look,
//! and when the last poll succeeded.
//!
//! A document is marked processed only after every one of its events was confirmed by the bus;
//! nothing here may mark a document that was not.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

use super::{Store, StoreError};
use crate::outcome::DocumentOutcome;

const WATERMARK: &str = "published_watermark";
const LAST_POLL: &str = "last_successful_poll";

/// A document whose events were all published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedDocument {
    pub document_number: String,
    pub publication_date: Option<NaiveDate>,
    /// `Parsed` (changes read from the rule) or `Unreadable` (only the document event went out).
    pub outcome: DocumentOutcome,
    pub change_count: i64,
    pub warning_count: i64,
}

impl Store {
    pub async fn is_processed(&self, document_number: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM processed_documents WHERE document_number = $1")
            .bind(document_number)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// Records a document as done. Idempotent: marking it again keeps the first record, so a
    /// re-publish after a crash does not rewrite history.
    pub async fn mark_processed(&self, doc: &ProcessedDocument) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO processed_documents \
             (document_number, publication_date, outcome, change_count, warning_count, processed_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (document_number) DO NOTHING",
        )
        .bind(&doc.document_number)
        .bind(doc.publication_date.map(|d| d.to_string()))
        .bind(doc.outcome.as_str())
        .bind(doc.change_count)
        .bind(doc.warning_count)
        .bind(Utc::now().to_rfc3339())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn processed_documents(&self) -> Result<Vec<ProcessedDocument>, StoreError> {
        let rows = sqlx::query(
            "SELECT document_number, publication_date, outcome, change_count, warning_count \
             FROM processed_documents ORDER BY publication_date, document_number",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                let date: Option<String> = r.try_get("publication_date")?;
                Ok(ProcessedDocument {
                    document_number: r.try_get("document_number")?,
                    publication_date: date.as_deref().map(parse_date).transpose()?,
                    outcome: {
                        let text: String = r.try_get("outcome")?;
                        DocumentOutcome::parse(&text).ok_or_else(|| StoreError::Corrupt {
                            name: "processed_documents.outcome".to_string(),
                            value: text.clone(),
                        })?
                    },
                    change_count: r.try_get("change_count")?,
                    warning_count: r.try_get("warning_count")?,
                })
            })
            .collect()
    }

    pub async fn public_inspection_seen(&self, document_number: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM public_inspection_seen WHERE document_number = $1")
            .bind(document_number)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    pub async fn mark_public_inspection_seen(
        &self,
        document_number: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO public_inspection_seen (document_number, seen_at) VALUES ($1, $2) \
             ON CONFLICT (document_number) DO NOTHING",
        )
        .bind(document_number)
        .bind(Utc::now().to_rfc3339())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The publication date up to which every document is processed; the next poll searches
    /// from a little before it.
    pub async fn watermark(&self) -> Result<Option<NaiveDate>, StoreError> {
        self.state(WATERMARK)
            .await?
            .as_deref()
            .map(parse_date)
            .transpose()
    }

    pub async fn set_watermark(&self, date: NaiveDate) -> Result<(), StoreError> {
        self.set_state(WATERMARK, &date.to_string()).await
    }

    pub async fn last_successful_poll(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.state(LAST_POLL).await? {
            None => Ok(None),
            Some(v) => DateTime::parse_from_rfc3339(&v)
                .map(|d| Some(d.with_timezone(&Utc)))
                .map_err(|_| StoreError::Corrupt {
                    name: LAST_POLL.into(),
                    value: v,
                }),
        }
    }

    pub async fn set_last_successful_poll(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.set_state(LAST_POLL, &at.to_rfc3339()).await
    }

    /// A named value of `watch_state` (checkpoints, the CSL's ETag).
    pub(crate) async fn state(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM watch_state WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    pub(crate) async fn set_state(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO watch_state (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

fn parse_date(v: &str) -> Result<NaiveDate, StoreError> {
    v.parse().map_err(|_| StoreError::Corrupt {
        name: "date".into(),
        value: v.to_string(),
    })
}
