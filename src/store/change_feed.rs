//! The entity change feed as the HTTP API pages through it: every recorded change of every
//! entry (which rule or list sync made which version), in the order they were recorded.
//!
//! Read only. The order is (changed_at, entity_key, version), the table's own columns, so a
//! page picks up strictly after the last row of the one before whatever was written since.

use sqlx::Row;

use super::{EntryChangeRecord, Store, StoreError};

/// One row of the feed: the entry's key beside its change record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FeedChange {
    pub entity_key: String,
    #[serde(flatten)]
    pub change: EntryChangeRecord,
}

/// Where a page of the feed starts: after this row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeedPosition {
    pub changed_at: String,
    pub entity_key: String,
    pub version: i64,
}

impl Store {
    /// Up to `limit` changes recorded at or after `since` (RFC 3339; all when empty) and after
    /// `after`, oldest first.
    pub async fn entry_changes_page(
        &self,
        since: &str,
        after: Option<&FeedPosition>,
        limit: u32,
    ) -> Result<Vec<FeedChange>, StoreError> {
        let rows = match after {
            Some(p) => {
                sqlx::query(
                    "SELECT entity_key, version, action, document_number, change_key, \
                     matched_by, changed_at FROM entry_changes WHERE changed_at >= $1 \
                     AND (changed_at > $2 OR (changed_at = $2 AND (entity_key > $3 \
                     OR (entity_key = $3 AND version > $4)))) \
                     ORDER BY changed_at, entity_key, version LIMIT $5",
                )
                .bind(since)
                .bind(&p.changed_at)
                .bind(&p.entity_key)
                .bind(p.version)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT entity_key, version, action, document_number, change_key, \
                     matched_by, changed_at FROM entry_changes WHERE changed_at >= $1 \
                     ORDER BY changed_at, entity_key, version LIMIT $2",
                )
                .bind(since)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(FeedChange {
                    entity_key: r.try_get("entity_key")?,
                    change: EntryChangeRecord {
                        version: r.try_get("version")?,
                        action: r.try_get("action")?,
                        document_number: r.try_get("document_number")?,
                        change_key: r.try_get("change_key")?,
                        matched_by: r.try_get("matched_by")?,
                        changed_at: r.try_get("changed_at")?,
                    },
                })
            })
            .collect()
    }
}
