//! Stored ownership: owners, holdings (edges) and the affiliate state each supplier is alerted
//! under. `ownership import` and the ownership topic write them; the worker reads them to
//! compute the Affiliates rule (`ownership::graph`).
//!
//! This module stores and loads; it must never decide whether anyone is restricted. Values are
//! always bound, never spliced into SQL.

use chrono::{NaiveDate, Utc};
use sqlx::Row;

use super::{Store, StoreError};
use crate::events::CountryCode;
use crate::ownership::{OwnershipRecord, Share};

/// An owner entity as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    pub name: String,
    pub country: Option<CountryCode>,
}

/// One stored holding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub owned_id: String,
    pub owner_id: String,
    pub share: Share,
    pub as_of: Option<NaiveDate>,
    pub source: Option<String>,
}

/// A (supplier, listed entry) pair that counts as listed for the rule: a match at the entry's
/// current version, the entry not removed, no reviewer dismissal at that version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMatch {
    pub node_id: String,
    pub entity_key: String,
    pub version: i64,
}

/// The affiliate alert a supplier currently stands under.
#[derive(Debug, Clone, PartialEq)]
pub struct AffiliateState {
    pub supplier_id: String,
    pub alert_id: String,
    /// (entity key, version), sorted.
    pub listed: Vec<(String, i64)>,
    pub share: Share,
    pub payload: String,
}

/// What an ownership upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnershipCounts {
    pub holdings: u64,
    pub owners: u64,
}

impl Store {
    /// Stores holdings (and their owners' names and countries) in one transaction; a later
    /// record of the same (owned, owner) replaces the earlier. A record whose percent is out
    /// of range is skipped (the reader never yields one).
    pub async fn upsert_ownership(
        &self,
        records: &[OwnershipRecord],
    ) -> Result<OwnershipCounts, StoreError> {
        let now = Utc::now().to_rfc3339();
        let mut tx = self.begin_write().await?;
        let mut counts = OwnershipCounts::default();
        let mut owners = std::collections::HashSet::new();
        for r in records {
            let Some(share) = r.share() else { continue };
            sqlx::query(
                "INSERT INTO ownership_edges (owned_id, owner_id, share, as_of, source, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (owned_id, owner_id) DO UPDATE SET \
                 share = excluded.share, as_of = excluded.as_of, source = excluded.source, \
                 updated_at = excluded.updated_at",
            )
            .bind(&r.owned_id)
            .bind(&r.owner_id)
            .bind(i64::from(share.0))
            .bind(r.as_of.map(|d| d.to_string()))
            .bind(r.source.clone())
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            counts.holdings += 1;
            sqlx::query(
                "INSERT INTO owners (id, name, country, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, country = excluded.country, \
                 updated_at = excluded.updated_at",
            )
            .bind(&r.owner_id)
            .bind(&r.owner_name)
            .bind(r.owner_country.as_ref().map(|c| c.to_string()))
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            if owners.insert(r.owner_id.as_str()) {
                counts.owners += 1;
            }
        }
        tx.commit().await?;
        Ok(counts)
    }

    /// Deletes the holding (owned, owner); true if there was one. The owner row stays (it may
    /// hold others; an owner with no holdings left is simply never reached).
    pub async fn delete_holding(&self, owned_id: &str, owner_id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM ownership_edges WHERE owned_id = $1 AND owner_id = $2")
            .bind(owned_id)
            .bind(owner_id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn holdings(&self) -> Result<Vec<Holding>, StoreError> {
        let rows = sqlx::query(
            "SELECT owned_id, owner_id, share, as_of, source FROM ownership_edges \
             ORDER BY owned_id, owner_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let share: i64 = r.try_get("share")?;
                let as_of: Option<String> = r.try_get("as_of")?;
                Ok(Holding {
                    owned_id: r.try_get("owned_id")?,
                    owner_id: r.try_get("owner_id")?,
                    share: Share(u32::try_from(share).map_err(|_| StoreError::Corrupt {
                        name: "ownership_edges.share".into(),
                        value: share.to_string(),
                    })?),
                    as_of: as_of.and_then(|d| d.parse().ok()),
                    source: r.try_get("source")?,
                })
            })
            .collect()
    }

    pub async fn owners(&self) -> Result<Vec<Owner>, StoreError> {
        let rows = sqlx::query("SELECT id, name, country FROM owners ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(decode_owner).collect()
    }

    pub async fn owner(&self, id: &str) -> Result<Option<Owner>, StoreError> {
        let row = sqlx::query("SELECT id, name, country FROM owners WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(decode_owner).transpose()
    }

    /// A cheap fingerprint of the ownership tables (count and latest change), so a cached
    /// graph is rebuilt only when they changed.
    pub async fn ownership_fingerprint(&self) -> Result<(i64, Option<String>), StoreError> {
        let r = sqlx::query("SELECT COUNT(*) AS n, MAX(updated_at) AS latest FROM ownership_edges")
            .fetch_one(self.pool())
            .await?;
        Ok((r.try_get("n")?, r.try_get("latest")?))
    }

    /// Every (supplier or owner, entry) pair that counts as listed: a stored match at the
    /// entry's current version, the entry current, and no dismissal at that version.
    pub async fn listed_matches(&self) -> Result<Vec<ListedMatch>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT d.supplier_id, d.entity_key, d.entry_version FROM decisions d \
             JOIN listed_entries e ON e.entity_key = d.entity_key \
             AND e.version = d.entry_version AND e.removed_at IS NULL \
             WHERE d.decision = 'match' AND NOT EXISTS (SELECT 1 FROM reviews r \
             WHERE r.supplier_id = d.supplier_id AND r.entity_key = d.entity_key \
             AND r.entry_version >= d.entry_version) \
             ORDER BY d.supplier_id, d.entity_key",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ListedMatch {
                    node_id: r.try_get("supplier_id")?,
                    entity_key: r.try_get("entity_key")?,
                    version: r.try_get("entry_version")?,
                })
            })
            .collect()
    }

    pub async fn affiliate_states(&self) -> Result<Vec<AffiliateState>, StoreError> {
        let rows = sqlx::query(
            "SELECT supplier_id, alert_id, listed, share, payload FROM affiliate_state \
             ORDER BY supplier_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let listed: String = r.try_get("listed")?;
                let share: i64 = r.try_get("share")?;
                Ok(AffiliateState {
                    supplier_id: r.try_get("supplier_id")?,
                    alert_id: r.try_get("alert_id")?,
                    listed: serde_json::from_str(&listed).map_err(|_| StoreError::Corrupt {
                        name: "affiliate_state.listed".into(),
                        value: listed.clone(),
                    })?,
                    share: Share(u32::try_from(share).unwrap_or(0)),
                    payload: r.try_get("payload")?,
                })
            })
            .collect()
    }

    /// Records the affiliate alert `state.supplier_id` now stands under (after it was sent).
    pub async fn set_affiliate_state(&self, state: &AffiliateState) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO affiliate_state (supplier_id, alert_id, listed, share, payload, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (supplier_id) DO UPDATE SET \
             alert_id = excluded.alert_id, listed = excluded.listed, share = excluded.share, \
             payload = excluded.payload, updated_at = excluded.updated_at",
        )
        .bind(&state.supplier_id)
        .bind(&state.alert_id)
        .bind(serde_json::to_string(&state.listed).unwrap_or_default())
        .bind(i64::from(state.share.0))
        .bind(&state.payload)
        .bind(Utc::now().to_rfc3339())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The supplier no longer stands under an affiliate alert (its clearing was sent).
    pub async fn clear_affiliate_state(&self, supplier_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM affiliate_state WHERE supplier_id = $1")
            .bind(supplier_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

fn decode_owner(r: &sqlx::any::AnyRow) -> Result<Owner, StoreError> {
    let country: Option<String> = r.try_get("country")?;
    Ok(Owner {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        country: country.and_then(|c| CountryCode::parse(&c)),
    })
}
