//! The ledger's side of Slack digests: alerts held for their batch, the batches themselves,
//! and each digest as a ledger entry of its own with the alerts it carried (migration 0014).
//!
//! Every change of state is conditional on the state that was read (a held row becomes
//! digested only while still held, a digest is marked delivered only by its claimant), and a
//! digest is written together with the marking of every alert it carries, in one transaction:
//! two dispatchers deciding one batch cannot both send it, and no alert ends up both in a
//! digest and in the outbox. This module stores and loads; what a digest says is
//! `alerts::digest`'s, when to send one the worker's.

use std::time::Duration;

use chrono::Utc;
use sqlx::Row;

use super::worker_state::{lease_end, now_ms};
use super::{Delivery, Store, StoreError};

/// An alert held for its batch's digest decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldDelivery {
    pub delivery: Delivery,
    pub queue_seq: i64,
}

/// One digest as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDigest {
    pub digest_id: String,
    pub sink: String,
    pub group_key: String,
    pub alert_count: i64,
    /// The digest's JSON (`alerts::Digest`).
    pub payload: String,
    /// `sending` or `delivered`.
    pub state: String,
    pub claimed_by: String,
    pub lease_until_ms: i64,
}

const SELECT_DIGESTS: &str = "SELECT digest_id, sink, group_key, alert_count, payload, state, \
    claimed_by, lease_until_ms FROM alert_digests";

fn digest_of(r: &sqlx::any::AnyRow) -> Result<StoredDigest, StoreError> {
    Ok(StoredDigest {
        digest_id: r.try_get("digest_id")?,
        sink: r.try_get("sink")?,
        group_key: r.try_get("group_key")?,
        alert_count: r.try_get("alert_count")?,
        payload: r.try_get("payload")?,
        state: r.try_get("state")?,
        claimed_by: r
            .try_get::<Option<String>, _>("claimed_by")?
            .unwrap_or_default(),
        lease_until_ms: r.try_get::<Option<i64>, _>("lease_until_ms")?.unwrap_or(0),
    })
}

impl Store {
    /// Records that an event of batch `group_key` is being handled now: the batch exists (its
    /// alerts may be held) and is not quiet.
    pub async fn open_digest_group(&self, group_key: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO digest_groups (group_key, opened_at, last_activity_ms) \
             VALUES ($1, $2, $3) ON CONFLICT (group_key) DO UPDATE SET \
             last_activity_ms = excluded.last_activity_ms",
        )
        .bind(group_key)
        .bind(Utc::now().to_rfc3339())
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// As [`Store::open_digest_group`] for a batch that held nothing yet: only an existing
    /// batch is touched, so events that raise no alert leave no rows behind.
    pub async fn touch_digest_group(&self, group_key: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE digest_groups SET last_activity_ms = $1 WHERE group_key = $2")
            .bind(now_ms())
            .bind(group_key)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks batch `group_key` complete (its document event, the end of an import): its held
    /// alerts are decided at once.
    pub async fn close_digest_group(&self, group_key: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE digest_groups SET closed_at_ms = $1 WHERE group_key = $2 \
             AND closed_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(group_key)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Moves `owner`'s claim on (alert, sink) to held for batch `group_key` at position `seq`:
    /// the event may now be committed. False if the claim is no longer `owner`'s.
    pub async fn hold_claim(
        &self,
        alert_id: &str,
        sink: &str,
        owner: &str,
        group_key: &str,
        seq: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE alert_deliveries SET state = 'held', digest_group = $1, queue_seq = $2 \
             WHERE alert_id = $3 AND sink = $4 AND state = 'sending' AND claimed_by = $5",
        )
        .bind(group_key)
        .bind(seq)
        .bind(alert_id)
        .bind(sink)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The batches with alerts held for `sink`: each one's key, whether it was closed, and
    /// when an event of it was last handled (ms since the epoch).
    pub async fn held_digest_groups(
        &self,
        sink: &str,
    ) -> Result<Vec<(String, bool, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT d.digest_group AS group_key, g.closed_at_ms, g.last_activity_ms \
             FROM alert_deliveries d LEFT JOIN digest_groups g ON g.group_key = d.digest_group \
             WHERE d.sink = $1 AND d.state = 'held' ORDER BY d.digest_group",
        )
        .bind(sink)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<Option<String>, _>("group_key")?
                        .unwrap_or_default(),
                    r.try_get::<Option<i64>, _>("closed_at_ms")?.is_some(),
                    r.try_get::<Option<i64>, _>("last_activity_ms")?
                        .unwrap_or(0),
                ))
            })
            .collect()
    }

    /// The alerts held for `sink` in batch `group_key`, in the order they were raised.
    pub async fn held_deliveries(
        &self,
        sink: &str,
        group_key: &str,
    ) -> Result<Vec<HeldDelivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT alert_id, sink, supplier_id, entity_key, entry_version, kind, payload, \
             queue_seq FROM alert_deliveries WHERE sink = $1 AND digest_group = $2 \
             AND state = 'held' ORDER BY queue_seq, alert_id",
        )
        .bind(sink)
        .bind(group_key)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HeldDelivery {
                    delivery: Delivery {
                        alert_id: r.try_get("alert_id")?,
                        sink: r.try_get("sink")?,
                        supplier_id: r.try_get("supplier_id")?,
                        entity_key: r.try_get("entity_key")?,
                        entry_version: r.try_get("entry_version")?,
                        kind: r.try_get("kind")?,
                        payload: r.try_get("payload")?,
                    },
                    queue_seq: r.try_get::<Option<i64>, _>("queue_seq")?.unwrap_or(0),
                })
            })
            .collect()
    }

    /// A batch at or under the digest threshold: its held alerts go to the outbox, claimed by
    /// `owner`, to be sent singly in order. Returns how many were still held.
    pub async fn queue_held(
        &self,
        sink: &str,
        alert_ids: &[&str],
        owner: &str,
        lease: Duration,
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut queued = 0;
        for id in alert_ids {
            let done = sqlx::query(
                "UPDATE alert_deliveries SET state = 'queued', claimed_by = $1, \
                 lease_until_ms = $2 WHERE alert_id = $3 AND sink = $4 AND state = 'held'",
            )
            .bind(owner)
            .bind(lease_end(lease))
            .bind(*id)
            .bind(sink)
            .execute(&mut *tx)
            .await?;
            queued += done.rows_affected() as usize;
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Writes the digest of `alert_ids` (held for its sink) claimed by `owner`, and marks each
    /// of them carried by it, in one transaction. False (nothing written) if the digest exists
    /// already or one of the alerts is no longer held: another dispatcher decided the batch.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_digest(
        &self,
        digest_id: &str,
        sink: &str,
        group_key: &str,
        payload: &str,
        alert_ids: &[&str],
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO alert_digests (digest_id, sink, group_key, alert_count, payload, state, \
             claimed_by, lease_until_ms, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'sending', $6, $7, $8) \
             ON CONFLICT (digest_id, sink) DO NOTHING",
        )
        .bind(digest_id)
        .bind(sink)
        .bind(group_key)
        .bind(alert_ids.len() as i64)
        .bind(payload)
        .bind(owner)
        .bind(lease_end(lease))
        .bind(Utc::now().to_rfc3339())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for id in alert_ids {
            let carried = sqlx::query(
                "UPDATE alert_deliveries SET state = 'digested', digest_id = $1 \
                 WHERE alert_id = $2 AND sink = $3 AND state = 'held'",
            )
            .bind(digest_id)
            .bind(*id)
            .bind(sink)
            .execute(&mut *tx)
            .await?;
            if carried.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Extends `owner`'s claim on a digest it is sending. False if it is no longer its own.
    pub async fn renew_digest(
        &self,
        digest_id: &str,
        sink: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE alert_digests SET lease_until_ms = $1 WHERE digest_id = $2 AND sink = $3 \
             AND state = 'sending' AND claimed_by = $4",
        )
        .bind(lease_end(lease))
        .bind(digest_id)
        .bind(sink)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that the sink accepted the digest: it and every alert it carried are delivered,
    /// together. False if the digest was no longer `owner`'s to mark (its lease ran out and
    /// another worker took it over).
    pub async fn finish_digest(
        &self,
        digest_id: &str,
        sink: &str,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let now = Utc::now().to_rfc3339();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE alert_digests SET state = 'delivered', delivered_at = $1, \
             lease_until_ms = NULL WHERE digest_id = $2 AND sink = $3 AND state = 'sending' \
             AND claimed_by = $4",
        )
        .bind(&now)
        .bind(digest_id)
        .bind(sink)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE alert_deliveries SET state = 'delivered', delivered_at = $1, \
             claimed_by = $2, lease_until_ms = NULL WHERE digest_id = $3 AND sink = $4 \
             AND state = 'digested'",
        )
        .bind(&now)
        .bind(owner)
        .bind(digest_id)
        .bind(sink)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Gives up `owner`'s lease on a digest it could not finish (shutdown between attempts):
    /// the next dispatcher, of this process after a restart or of another, adopts it at once.
    pub async fn release_digest_lease(
        &self,
        digest_id: &str,
        sink: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alert_digests SET lease_until_ms = 0 WHERE digest_id = $1 AND sink = $2 \
             AND state = 'sending' AND claimed_by = $3",
        )
        .bind(digest_id)
        .bind(sink)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Digests for `sink` whose sender's lease ran out before it recorded them delivered.
    pub async fn orphaned_digests(&self, sink: &str) -> Result<Vec<StoredDigest>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_DIGESTS} WHERE sink = $1 AND state = 'sending' AND lease_until_ms < $2 \
             ORDER BY created_at, digest_id"
        ))
        .bind(sink)
        .bind(now_ms())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(digest_of).collect()
    }

    /// Takes over an orphaned digest, conditional on its claim being as read: two adopters
    /// cannot both send it.
    pub async fn take_digest(
        &self,
        digest: &StoredDigest,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE alert_digests SET claimed_by = $1, lease_until_ms = $2 \
             WHERE digest_id = $3 AND sink = $4 AND state = 'sending' AND claimed_by = $5 \
             AND lease_until_ms = $6",
        )
        .bind(owner)
        .bind(lease_end(lease))
        .bind(&digest.digest_id)
        .bind(&digest.sink)
        .bind(&digest.claimed_by)
        .bind(digest.lease_until_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a digest the sink never took, and the ledger rows of the alerts it carried,
    /// once those alerts are dead-lettered: a redrive then sends each on its own.
    pub async fn drop_digest(
        &self,
        digest_id: &str,
        sink: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM alert_deliveries WHERE digest_id = $1 AND sink = $2 \
             AND state = 'digested'",
        )
        .bind(digest_id)
        .bind(sink)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM alert_digests WHERE digest_id = $1 AND sink = $2 AND claimed_by = $3 \
             AND state = 'sending'",
        )
        .bind(digest_id)
        .bind(sink)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every digest, oldest first (for `alerts show`, operators and tests).
    pub async fn digests(&self) -> Result<Vec<StoredDigest>, StoreError> {
        let rows = sqlx::query(&format!("{SELECT_DIGESTS} ORDER BY created_at, digest_id"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(digest_of).collect()
    }

    /// The (alert id, payload) of every alert the ledger records as carried by `digest_id`.
    pub async fn digest_members(
        &self,
        digest_id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT alert_id, payload FROM alert_deliveries WHERE digest_id = $1 \
             ORDER BY alert_id",
        )
        .bind(digest_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("alert_id")?, r.try_get("payload")?)))
            .collect()
    }
}
