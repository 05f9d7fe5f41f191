//! The worker's durable state: the embedded bus log and positions, screening decisions, the
//! alert-delivery ledger and review dismissals.
//!
//! The delivery ledger is what makes alerts exactly-once per (supplier, entry, version, sink):
//! a caller [claims](Store::claim_delivery) (alert, sink) before calling the sink, renews the
//! claim while it sends, and [marks it delivered](Store::mark_delivered) once the sink accepted
//! the alert (or [releases](Store::release_claim) it when it gave up). Two workers handed the
//! same event (a rebalance, a takeover) cannot both send: the second finds the claim and waits.
//! A claim is a lease so that a sender that died does not hold an alert forever; after it
//! expires the alert is sent again, which is the at-least-once half of the promise (the sink
//! may have accepted it just before the death). Nothing here sends.

use std::time::Duration;

use chrono::Utc;
use sqlx::Row;

use super::suppliers::{placeholders_for, rows_per_batch, value_rows};
use super::{Store, StoreError};
use crate::outcome::DecisionKind;

/// One message of the embedded bus log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedMessage {
    pub position: i64,
    pub key: String,
    pub payload: String,
}

/// A screening decision for the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub supplier_id: String,
    pub entity_key: String,
    pub entry_version: i64,
    /// The matcher version and supplier record the decision was made on (see
    /// `worker::decision_basis`); empty for decisions stored before bases existed.
    pub basis: String,
    pub score: f64,
    /// `match`, `near_miss` or `dismissed`.
    pub decision: DecisionKind,
    pub explanation: String,
    pub document_number: Option<String>,
}

/// An alert for one sink: what is claimed, then recorded as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub alert_id: String,
    pub sink: String,
    pub supplier_id: String,
    pub entity_key: String,
    pub entry_version: i64,
    pub kind: String,
    pub payload: String,
}

/// A delivery parked in the outbox, with the claim it is parked under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedDelivery {
    pub delivery: Delivery,
    /// The worker that parked it (or last adopted it).
    pub parked_by: String,
    pub lease_until_ms: i64,
}

/// What [`Store::claim_delivery`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the claim until its lease ends: send, then mark it delivered.
    Held,
    /// As `Held`, taken from `from`, whose lease had run out: it died or hung mid-delivery, so
    /// the sink may already have the alert.
    TakenOver { from: String },
    /// A sink already accepted this alert.
    Delivered,
    /// Another worker is sending it; its lease ends at `until_ms` (ms since the epoch) unless
    /// it renews it.
    HeldElsewhere { by: String, until_ms: i64 },
    /// It waits in the outbox (its sink was down); a dispatcher will send it.
    Queued,
}

pub(super) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub(super) fn lease_end(lease: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// Appends messages to `topic` in one transaction and returns their positions.
    pub async fn append_to_log(
        &self,
        topic: &str,
        messages: &[(String, String)],
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.begin_write().await?;
        let last: Option<i64> =
            sqlx::query("SELECT MAX(position) AS last FROM bus_log WHERE topic = $1")
                .bind(topic)
                .fetch_one(&mut *tx)
                .await?
                .try_get("last")?;
        let mut position = last.unwrap_or(0);
        let now = Utc::now().to_rfc3339();
        let mut positions = Vec::with_capacity(messages.len());
        for (key, payload) in messages {
            position += 1;
            sqlx::query(
                "INSERT INTO bus_log (topic, position, message_key, payload, published_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(topic)
            .bind(position)
            .bind(key)
            .bind(payload)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            positions.push(position);
        }
        tx.commit().await?;
        Ok(positions)
    }

    /// Up to `limit` messages of `topic` after `position`, in order.
    pub async fn read_log(
        &self,
        topic: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LoggedMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT position, message_key, payload FROM bus_log \
             WHERE topic = $1 AND position > $2 ORDER BY position LIMIT $3",
        )
        .bind(topic)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(LoggedMessage {
                    position: r.try_get("position")?,
                    key: r.try_get("message_key")?,
                    payload: r.try_get("payload")?,
                })
            })
            .collect()
    }

    pub async fn log_length(&self, topic: &str) -> Result<i64, StoreError> {
        let last: Option<i64> =
            sqlx::query("SELECT MAX(position) AS last FROM bus_log WHERE topic = $1")
                .bind(topic)
                .fetch_one(self.pool())
                .await?
                .try_get("last")?;
        Ok(last.unwrap_or(0))
    }

    pub async fn consumer_position(&self, consumer: &str, topic: &str) -> Result<i64, StoreError> {
        let row =
            sqlx::query("SELECT position FROM bus_positions WHERE consumer = $1 AND topic = $2")
                .bind(consumer)
                .bind(topic)
                .fetch_optional(self.pool())
                .await?;
        Ok(match row {
            Some(r) => r.try_get("position")?,
            None => 0,
        })
    }

    pub async fn set_consumer_position(
        &self,
        consumer: &str,
        topic: &str,
        position: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO bus_positions (consumer, topic, position) VALUES ($1, $2, $3) \
             ON CONFLICT (consumer, topic) DO UPDATE SET position = excluded.position",
        )
        .bind(consumer)
        .bind(topic)
        .bind(position)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Stores a decision unless one on the same basis exists, and returns the stored one: a
    /// re-handled event (a replay, a rebalance, a second worker racing this one) gets the first
    /// decision back, so an alert never depends on when an event happened to be handled.
    pub async fn record_decision(&self, d: &Decision) -> Result<Decision, StoreError> {
        sqlx::query(
            "INSERT INTO decisions (supplier_id, entity_key, entry_version, basis, score, \
             decision, explanation, document_number, decided_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (supplier_id, entity_key, entry_version, basis) DO NOTHING",
        )
        .bind(&d.supplier_id)
        .bind(&d.entity_key)
        .bind(d.entry_version)
        .bind(&d.basis)
        .bind(d.score)
        .bind(d.decision.as_str())
        .bind(&d.explanation)
        .bind(&d.document_number)
        .bind(Utc::now().to_rfc3339())
        .execute(self.pool())
        .await?;
        let row = sqlx::query(&format!(
            "{SELECT_DECISIONS} WHERE supplier_id = $1 AND entity_key = $2 \
             AND entry_version = $3 AND basis = $4"
        ))
        .bind(&d.supplier_id)
        .bind(&d.entity_key)
        .bind(d.entry_version)
        .bind(&d.basis)
        .fetch_one(self.pool())
        .await?;
        decode_decision(&row)
    }

    /// [`Store::record_decision`] for many decisions at once, in one transaction of multi-row
    /// inserts: the same promise (a decision on a basis is stored once; the stored one is
    /// returned, so a re-handled event reuses it), one durable write instead of two statements
    /// and a commit per decision. Returns the stored decisions in the order of `decisions`.
    pub async fn record_decisions(
        &self,
        decisions: &[Decision],
    ) -> Result<Vec<Decision>, StoreError> {
        if decisions.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let stored = self.record_decisions_in(&mut tx, decisions).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Upserts a batch of supplier records and stores the decisions made on them in one
    /// transaction (one commit, one fsync): after a crash either the batch and its decisions
    /// are stored or neither is, and redoing the batch reuses what was stored.
    pub async fn store_screened_batch(
        &self,
        records: &[crate::domain::SupplierRecord],
        decisions: &[Decision],
    ) -> Result<(super::UpsertCounts, Vec<Decision>), StoreError> {
        let mut tx = self.begin_write().await?;
        let counts = self.upsert_suppliers_in(&mut tx, records, |_| {}).await?;
        let stored = self.record_decisions_in(&mut tx, decisions).await?;
        tx.commit().await?;
        Ok((counts, stored))
    }

    /// The inserts of [`Store::record_decisions`] in the caller's transaction. A fresh decision
    /// comes back from `RETURNING`; only those that met an existing one (a redone batch) are
    /// read back, by supplier, so the common case costs the inserts alone.
    pub(super) async fn record_decisions_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        decisions: &[Decision],
    ) -> Result<Vec<Decision>, StoreError> {
        type Key = (String, String, i64, String);
        let key = |d: &Decision| -> Key {
            (
                d.supplier_id.clone(),
                d.entity_key.clone(),
                d.entry_version,
                d.basis.clone(),
            )
        };
        let backend = self.backend();
        let now = Utc::now().to_rfc3339();
        let mut inserted: std::collections::HashSet<Key> =
            std::collections::HashSet::with_capacity(decisions.len());
        for chunk in decisions.chunks(rows_per_batch(DECISION_VALUES)) {
            let sql = format!(
                "INSERT INTO decisions (supplier_id, entity_key, entry_version, basis, score, \
                 decision, explanation, document_number, decided_at) VALUES {} \
                 ON CONFLICT (supplier_id, entity_key, entry_version, basis) DO NOTHING \
                 RETURNING supplier_id, entity_key, entry_version, basis",
                value_rows(backend, chunk.len(), DECISION_VALUES)
            );
            let mut q = sqlx::query(&sql);
            for d in chunk {
                q = q
                    .bind(&d.supplier_id)
                    .bind(&d.entity_key)
                    .bind(d.entry_version)
                    .bind(&d.basis)
                    .bind(d.score)
                    .bind(d.decision.as_str())
                    .bind(&d.explanation)
                    .bind(&d.document_number)
                    .bind(now.as_str());
            }
            for r in q.fetch_all(&mut **tx).await? {
                inserted.insert((
                    r.try_get("supplier_id")?,
                    r.try_get("entity_key")?,
                    r.try_get("entry_version")?,
                    r.try_get("basis")?,
                ));
            }
        }
        // Decisions that already existed: read back by supplier (the primary key's first
        // column), keeping those of the same (entry, version, basis).
        let mut existing: std::collections::HashMap<Key, Decision> = Default::default();
        let mut wanted: Vec<&str> = decisions
            .iter()
            .filter(|d| !inserted.contains(&key(d)))
            .map(|d| d.supplier_id.as_str())
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        for chunk in wanted.chunks(rows_per_batch(1)) {
            let sql = format!(
                "{SELECT_DECISIONS} WHERE supplier_id IN ({})",
                placeholders_for(backend, 1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&mut **tx).await? {
                let d = decode_decision(&r)?;
                existing.insert(key(&d), d);
            }
        }
        decisions
            .iter()
            .map(|d| {
                let k = key(d);
                if inserted.contains(&k) {
                    Ok(d.clone())
                } else {
                    existing
                        .get(&k)
                        .cloned()
                        .ok_or_else(|| StoreError::Corrupt {
                            name: format!(
                                "decisions of {:?} on {:?} v{}",
                                d.supplier_id, d.entity_key, d.entry_version
                            ),
                            value: "neither inserted nor found".to_string(),
                        })
                }
            })
            .collect()
    }

    /// The reviews of `supplier_ids`: the version each (supplier id, entity key) pair was
    /// dismissed at, read as [`Store::is_dismissed`] reads one, in a few statements per batch.
    pub async fn dismissed_versions(
        &self,
        supplier_ids: &[&str],
    ) -> Result<std::collections::HashMap<(String, String), i64>, StoreError> {
        let backend = self.backend();
        let mut out = std::collections::HashMap::new();
        for chunk in supplier_ids.chunks(rows_per_batch(1)) {
            let sql = format!(
                "SELECT supplier_id, entity_key, entry_version FROM reviews WHERE supplier_id IN ({})",
                placeholders_for(backend, 1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(self.pool()).await? {
                out.insert(
                    (r.try_get("supplier_id")?, r.try_get("entity_key")?),
                    r.try_get("entry_version")?,
                );
            }
        }
        Ok(out)
    }

    /// Every stored decision, oldest first (for `rescreen`'s report of what changed).
    pub async fn decisions(&self) -> Result<Vec<Decision>, StoreError> {
        let rows = sqlx::query(&format!("{SELECT_DECISIONS} ORDER BY decided_at"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(decode_decision).collect()
    }

    /// Every decision about `supplier_id`, by entry and version.
    pub async fn decisions_for_supplier(
        &self,
        supplier_id: &str,
    ) -> Result<Vec<Decision>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_DECISIONS} WHERE supplier_id = $1 ORDER BY entity_key, entry_version, decided_at"
        ))
        .bind(supplier_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(decode_decision).collect()
    }

    /// Claims (alert, sink) for `owner` for `lease`: a fresh claim, the caller's own, or one
    /// whose lease ran out (its sender died or hung) is taken; a delivered alert or a live claim
    /// of another worker is reported instead. Every write is conditional on what was read
    /// (insert if absent, update only the claim that was seen), so two racing workers cannot
    /// both come away holding it.
    pub async fn claim_delivery(
        &self,
        d: &Delivery,
        owner: &str,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        // A lost race is read again; three rounds are plenty (each loser sees the winner).
        for _ in 0..3 {
            let row = sqlx::query(
                "SELECT state, claimed_by, lease_until_ms FROM alert_deliveries \
                 WHERE alert_id = $1 AND sink = $2",
            )
            .bind(&d.alert_id)
            .bind(&d.sink)
            .fetch_optional(self.pool())
            .await?;
            let Some(row) = row else {
                let inserted = sqlx::query(
                    "INSERT INTO alert_deliveries (alert_id, sink, supplier_id, entity_key, \
                     entry_version, kind, payload, delivered_at, state, claimed_by, \
                     lease_until_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'sending', $9, $10) \
                     ON CONFLICT (alert_id, sink) DO NOTHING",
                )
                .bind(&d.alert_id)
                .bind(&d.sink)
                .bind(&d.supplier_id)
                .bind(&d.entity_key)
                .bind(d.entry_version)
                .bind(&d.kind)
                .bind(&d.payload)
                .bind(Utc::now().to_rfc3339())
                .bind(owner)
                .bind(lease_end(lease))
                .execute(self.pool())
                .await?;
                if inserted.rows_affected() == 1 {
                    return Ok(Claim::Held);
                }
                continue;
            };
            let state: String = row.try_get("state")?;
            if state == "delivered" {
                return Ok(Claim::Delivered);
            }
            if state == "queued" || state == "held" || state == "digested" {
                // Parked in the outbox: a dispatcher sends it (its parker's, or whoever adopts
                // it once that one's lease ran out), so a re-handled event must not send too.
                // Held for a Slack digest, or carried by one: the digest dispatcher sends it.
                return Ok(Claim::Queued);
            }
            let holder: String = row
                .try_get::<Option<String>, _>("claimed_by")?
                .unwrap_or_default();
            let until_ms: i64 = row
                .try_get::<Option<i64>, _>("lease_until_ms")?
                .unwrap_or(0);
            if holder != owner && until_ms >= now_ms() {
                return Ok(Claim::HeldElsewhere {
                    by: holder,
                    until_ms,
                });
            }
            let taken = sqlx::query(
                "UPDATE alert_deliveries SET claimed_by = $1, lease_until_ms = $2 \
                 WHERE alert_id = $3 AND sink = $4 AND state = 'sending' \
                 AND claimed_by = $5 AND lease_until_ms = $6",
            )
            .bind(owner)
            // Always a new value: the lease end is the compare-and-set token (see take_queued).
            .bind(lease_end(lease).max(until_ms + 1))
            .bind(&d.alert_id)
            .bind(&d.sink)
            .bind(&holder)
            .bind(until_ms)
            .execute(self.pool())
            .await?;
            if taken.rows_affected() == 1 {
                return Ok(if holder == owner {
                    Claim::Held
                } else {
                    Claim::TakenOver { from: holder }
                });
            }
        }
        Ok(Claim::HeldElsewhere {
            by: String::new(),
            until_ms: now_ms(),
        })
    }

    /// Extends `owner`'s claim by `lease` from now. False if the claim is no longer its own
    /// (it expired and another worker took it over).
    pub async fn renew_claim(
        &self,
        alert_id: &str,
        sink: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE alert_deliveries SET lease_until_ms = $1 WHERE alert_id = $2 AND sink = $3 \
             AND state = 'sending' AND claimed_by = $4",
        )
        .bind(lease_end(lease))
        .bind(alert_id)
        .bind(sink)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that a sink accepted the alert. False if it was already recorded as delivered
    /// (another worker took the claim over after this one's lease ran out, and sent it too).
    pub async fn mark_delivered(
        &self,
        alert_id: &str,
        sink: &str,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE alert_deliveries SET state = 'delivered', claimed_by = $1, \
             lease_until_ms = NULL, delivered_at = $2 \
             WHERE alert_id = $3 AND sink = $4 AND state = 'sending'",
        )
        .bind(owner)
        .bind(Utc::now().to_rfc3339())
        .bind(alert_id)
        .bind(sink)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up `owner`'s claim (the delivery was dead-lettered or interrupted), so that a
    /// redrive or the next start may claim it at once.
    pub async fn release_claim(
        &self,
        alert_id: &str,
        sink: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM alert_deliveries WHERE alert_id = $1 AND sink = $2 \
             AND state = 'sending' AND claimed_by = $3",
        )
        .bind(alert_id)
        .bind(sink)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Parks `owner`'s claim on (alert, sink) in the outbox as `queued` at position `seq`: the
    /// event may now be committed, and the dispatcher sends it later. False if the claim is no
    /// longer `owner`'s.
    pub async fn park_claim(
        &self,
        alert_id: &str,
        sink: &str,
        owner: &str,
        seq: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE alert_deliveries SET state = 'queued', queue_seq = $1 \
             WHERE alert_id = $2 AND sink = $3 AND state = 'sending' AND claimed_by = $4",
        )
        .bind(seq)
        .bind(alert_id)
        .bind(sink)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Extends the lease of every delivery `owner` holds in the outbox, in one statement: a
    /// worker keeps its parked alerts while it lives, however long the sink is down.
    pub async fn renew_queued(&self, owner: &str, lease: Duration) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE alert_deliveries SET lease_until_ms = $1 \
             WHERE state = 'queued' AND claimed_by = $2",
        )
        .bind(lease_end(lease))
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// The oldest delivery parked for `sink` that `owner` may send: its own, or another
    /// worker's whose lease ran out (that worker died with alerts still parked, or while it
    /// was sending one of them: its event was committed when it was parked, so no re-handled
    /// event will send it, and the outbox must).
    pub async fn next_queued(
        &self,
        sink: &str,
        owner: &str,
    ) -> Result<Option<QueuedDelivery>, StoreError> {
        let row = sqlx::query(
            "SELECT alert_id, sink, supplier_id, entity_key, entry_version, kind, payload, \
             claimed_by, lease_until_ms FROM alert_deliveries \
             WHERE sink = $1 AND queue_seq IS NOT NULL AND ((state = 'queued' AND claimed_by = $2) \
             OR (state IN ('queued', 'sending') AND lease_until_ms < $3)) \
             ORDER BY queue_seq, alert_id LIMIT 1",
        )
        .bind(sink)
        .bind(owner)
        .bind(now_ms())
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(QueuedDelivery {
                delivery: Delivery {
                    alert_id: r.try_get("alert_id")?,
                    sink: r.try_get("sink")?,
                    supplier_id: r.try_get("supplier_id")?,
                    entity_key: r.try_get("entity_key")?,
                    entry_version: r.try_get("entry_version")?,
                    kind: r.try_get("kind")?,
                    payload: r.try_get("payload")?,
                },
                parked_by: r
                    .try_get::<Option<String>, _>("claimed_by")?
                    .unwrap_or_default(),
                lease_until_ms: r.try_get::<Option<i64>, _>("lease_until_ms")?.unwrap_or(0),
            })
        })
        .transpose()
    }

    /// Takes a parked delivery out of the outbox to send it now (`queued` → `sending`, claimed
    /// by `owner`). Conditional on the row being as [`Store::next_queued`] read it, so two
    /// dispatchers adopting the same orphan cannot both send it.
    pub async fn take_queued(
        &self,
        queued: &QueuedDelivery,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE alert_deliveries SET state = 'sending', claimed_by = $1, lease_until_ms = $2 \
             WHERE alert_id = $3 AND sink = $4 AND state IN ('queued', 'sending') \
             AND claimed_by = $5 AND lease_until_ms = $6",
        )
        .bind(owner)
        // The lease end is the compare-and-set token: it must change on every take, or a
        // second taker holding the same snapshot (its lease renewed within the same
        // millisecond) would match and send too.
        .bind(lease_end(lease).max(queued.lease_until_ms + 1))
        .bind(&queued.delivery.alert_id)
        .bind(&queued.delivery.sink)
        .bind(&queued.parked_by)
        .bind(queued.lease_until_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts a delivery taken from the outbox back (shutdown came between attempts): it stays
    /// durable and is sent after the restart.
    pub async fn requeue_claim(
        &self,
        alert_id: &str,
        sink: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alert_deliveries SET state = 'queued' \
             WHERE alert_id = $1 AND sink = $2 AND state = 'sending' AND claimed_by = $3",
        )
        .bind(alert_id)
        .bind(sink)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// How many deliveries wait in the outbox, per sink (for the depth gauge and tests).
    pub async fn queued_deliveries(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT sink, COUNT(*) AS n FROM alert_deliveries WHERE state = 'queued' \
             GROUP BY sink ORDER BY sink",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get("sink")?, r.try_get("n")?)))
            .collect()
    }

    /// Suppliers that were alerted (listed or revised) on `entity_key` by any sink.
    pub async fn suppliers_alerted_on(&self, entity_key: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT supplier_id FROM alert_deliveries \
             WHERE entity_key = $1 AND kind NOT IN ('cleared', 'affiliate') AND state = 'delivered' \
             ORDER BY supplier_id",
        )
        .bind(entity_key)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| Ok(r.try_get("supplier_id")?))
            .collect()
    }

    /// Every delivery, oldest first (for `alerts` listings and tests).
    pub async fn deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT alert_id, sink, supplier_id, entity_key, entry_version, kind, payload \
             FROM alert_deliveries WHERE state = 'delivered' \
             ORDER BY delivered_at, alert_id, sink",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Delivery {
                    alert_id: r.try_get("alert_id")?,
                    sink: r.try_get("sink")?,
                    supplier_id: r.try_get("supplier_id")?,
                    entity_key: r.try_get("entity_key")?,
                    entry_version: r.try_get("entry_version")?,
                    kind: r.try_get("kind")?,
                    payload: r.try_get("payload")?,
                })
            })
            .collect()
    }

    /// Dismisses a (supplier, entry) pair at the entry's current version.
    pub async fn dismiss(
        &self,
        supplier_id: &str,
        entity_key: &str,
        entry_version: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO reviews (supplier_id, entity_key, entry_version, reason, reviewed_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (supplier_id, entity_key) DO UPDATE SET \
             entry_version = excluded.entry_version, reason = excluded.reason, \
             reviewed_at = excluded.reviewed_at",
        )
        .bind(supplier_id)
        .bind(entity_key)
        .bind(entry_version)
        .bind(reason)
        .bind(Utc::now().to_rfc3339())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Whether the pair is dismissed at this version (a later revision lifts the dismissal).
    pub async fn is_dismissed(
        &self,
        supplier_id: &str,
        entity_key: &str,
        entry_version: i64,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT entry_version FROM reviews WHERE supplier_id = $1 AND entity_key = $2",
        )
        .bind(supplier_id)
        .bind(entity_key)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(r) => r.try_get::<i64, _>("entry_version")? >= entry_version,
            None => false,
        })
    }
}

/// Values per decision row in the batched insert.
const DECISION_VALUES: usize = 9;

const SELECT_DECISIONS: &str = "SELECT supplier_id, entity_key, entry_version, basis, score, \
    decision, explanation, document_number FROM decisions";

fn decode_decision(r: &sqlx::any::AnyRow) -> Result<Decision, StoreError> {
    let text: String = r.try_get("decision")?;
    Ok(Decision {
        supplier_id: r.try_get("supplier_id")?,
        entity_key: r.try_get("entity_key")?,
        entry_version: r.try_get("entry_version")?,
        basis: r.try_get("basis")?,
        score: r.try_get("score")?,
        decision: DecisionKind::parse(&text).ok_or_else(|| StoreError::Corrupt {
            name: "decisions.decision".to_string(),
            value: text.clone(),
        })?,
        explanation: r.try_get("explanation")?,
        document_number: r.try_get("document_number")?,
    })
}
