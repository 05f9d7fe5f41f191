//! The stored list snapshot: what screening compares suppliers against. `list import` replaces
//! it from a Consolidated Screening List file; each entity change event from the watcher then
//! adds, revises or removes one entry by its key.
//!
//! Every write that changes an entry raises its `version`, so a consumer can tell which entries
//! moved since it last looked, and removed entries stay as tombstones. This module records what
//! it is told: which stored entry a change is about is decided beforehand, by the identity rule
//! of `domain::list_entry` ([`crate::domain::list_entry::resolve_identity`]) on the candidates
//! this module lists; and it must never count one re-delivered change event twice.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::suppliers::{placeholders, rows_per_statement};
use super::{Store, StoreError};
use crate::domain::list_entry::IdentityCandidate;
use crate::domain::ListEntry;
use crate::events::{ChangeAction, CountryCode, EntityChange, EntityKey, EntityName};
use crate::screening::Schema;

/// Values per entry row in the upsert.
const VALUES_PER_ROW: usize = 13;

/// What a snapshot write is recorded as, in `last_action`.
const SNAPSHOT: &str = "snapshot";

const ENTRY_COLUMNS: &str = "entity_key, name, aliases, addresses, countries, \
    license_requirement, license_policy, federal_register_citation, source_list, schema";

/// What an upsert sets on an existing entry: every column, a version one higher, no removal.
const ON_CONFLICT_UPDATE: &str = "ON CONFLICT (entity_key) DO UPDATE SET name = excluded.name, \
    aliases = excluded.aliases, addresses = excluded.addresses, \
    countries = excluded.countries, license_requirement = excluded.license_requirement, \
    license_policy = excluded.license_policy, \
    federal_register_citation = excluded.federal_register_citation, \
    source_list = excluded.source_list, last_action = excluded.last_action, \
    schema = COALESCE(excluded.schema, listed_entries.schema), \
    last_document = excluded.last_document, updated_at = excluded.updated_at, \
    version = listed_entries.version + 1, removed_at = NULL";

/// Skips an upsert of a change already applied from the same document. Checked by the write
/// itself, not only by the read before it: two workers applying the same event at once (a
/// rebalance hands it to a second one while the first is still on it) would otherwise both
/// raise the version, and each would alert on its own version. PostgreSQL re-evaluates this
/// on the row the other transaction committed.
const UNLESS_ALREADY_APPLIED: &str = "WHERE listed_entries.last_document IS NULL \
    OR listed_entries.last_action <> excluded.last_action \
    OR listed_entries.last_document <> excluded.last_document";

const SELECT_ALL: &str = "SELECT entity_key, name, aliases, addresses, countries, \
    license_requirement, license_policy, federal_register_citation, source_list, schema, \
    version, last_action, last_document, updated_at, removed_at FROM listed_entries";

/// One stored entry with its history markers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub entry: ListEntry,
    pub version: i64,
    /// `snapshot`, or the change action (`added`, `revised`, `removed`) that wrote this version.
    pub last_action: String,
    /// The Federal Register document of that change, if it came from one.
    pub last_document: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
}

/// What a snapshot import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotCounts {
    pub inserted: u64,
    /// Present before, with a different value now.
    pub updated: u64,
    /// Removed before, listed again.
    pub revived: u64,
    pub unchanged: u64,
    /// Listed before, absent from the new snapshot (replace only).
    pub removed: u64,
}

/// What a replace would do, shown to the caller before it is committed
/// ([`Store::replace_entity_list_snapshot_if`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotPlan {
    pub counts: SnapshotCounts,
    /// Entries currently listed in the lists the new snapshot covers.
    pub listed_before: u64,
    /// (key, name) of each entry the replace marks removed, by key.
    pub removed: Vec<(String, String)>,
}

/// What one change event did to the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOutcome {
    Inserted,
    Updated,
    /// The entry was removed and is listed again.
    Revived,
    /// A revision that renamed the entry: the row moved from `previous_key`.
    Renamed,
    Removed,
    /// A removal of an entry never stored: a tombstone records it.
    RemovedUnknown,
    AlreadyRemoved,
    /// The same action from the same document was applied before (a re-delivered event).
    AlreadyApplied,
    /// This change made an earlier version than the entry's current one: a replay of history,
    /// neither applied nor screened again.
    Superseded,
}

/// The entry's version after a change event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedChange {
    pub entity_key: EntityKey,
    pub version: i64,
    pub outcome: ChangeOutcome,
}

impl Store {
    /// Makes the stored list equal `entries` for the lists they come from: new keys are inserted,
    /// changed or removed ones updated (version + 1), and current entries of those lists that
    /// `entries` lacks are marked removed. Entries of lists not present in `entries` are left
    /// alone, so importing only the Entity List never removes SDN rows, and an empty import
    /// removes nothing. One transaction.
    pub async fn replace_entity_list_snapshot(
        &self,
        entries: &[ListEntry],
    ) -> Result<SnapshotCounts, StoreError> {
        let plan = self
            .write_snapshot(entries, Some(&|_: &SnapshotPlan| true))
            .await?;
        Ok(plan.counts)
    }

    /// As [`Store::replace_entity_list_snapshot`], but `accept` sees what the replace would do
    /// (inside its transaction, before anything is committed) and may refuse it: then nothing
    /// changes. Returns the plan and whether it was committed. The store decides nothing here;
    /// the caller's policy (a file cut short must not empty the list) does.
    pub async fn replace_entity_list_snapshot_if(
        &self,
        entries: &[ListEntry],
        accept: &(dyn Fn(&SnapshotPlan) -> bool + Sync),
    ) -> Result<(SnapshotPlan, bool), StoreError> {
        let accepted = std::sync::atomic::AtomicBool::new(false);
        let plan = self
            .write_snapshot(
                entries,
                Some(&|plan: &SnapshotPlan| {
                    let ok = accept(plan);
                    accepted.store(ok, std::sync::atomic::Ordering::Relaxed);
                    ok
                }),
            )
            .await?;
        Ok((plan, accepted.load(std::sync::atomic::Ordering::Relaxed)))
    }

    /// Inserts or updates `entries` without removing anything. One transaction.
    pub async fn upsert_listed_entries(
        &self,
        entries: &[ListEntry],
    ) -> Result<SnapshotCounts, StoreError> {
        Ok(self.write_snapshot(entries, None).await?.counts)
    }

    /// `replace`: remove the missing entries of the covered lists, once `replace` accepts the
    /// plan (a refusal rolls everything back).
    async fn write_snapshot(
        &self,
        entries: &[ListEntry],
        replace: Option<&(dyn Fn(&SnapshotPlan) -> bool + Sync)>,
    ) -> Result<SnapshotPlan, StoreError> {
        let now = Utc::now().to_rfc3339();
        let mut tx = self.begin_write().await?;
        let existing: HashMap<String, (Encoded, bool)> = sqlx::query(SELECT_ALL)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| {
                let removed: Option<String> = r.try_get("removed_at")?;
                Ok((Encoded::from_row(r)?, removed.is_some()))
            })
            .map(|r: Result<_, StoreError>| r.map(|(e, removed)| (e.key.clone(), (e, removed))))
            .collect::<Result<_, _>>()?;

        // A key given twice: the last one wins, as PostgreSQL would refuse both in one upsert.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            last.insert(e.entity_key.as_str(), i);
        }
        let mut counts = SnapshotCounts::default();
        let mut to_write: Vec<Encoded> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if last.get(e.entity_key.as_str()) != Some(&i) {
                continue;
            }
            let mut enc = Encoded::new(e);
            // A source that does not say the kind keeps the stored one (the upsert does the
            // same), so its silence is no change of the entry.
            if enc.schema.is_none() {
                enc.schema = existing
                    .get(&enc.key)
                    .and_then(|(old, _)| old.schema.clone());
            }
            match existing.get(&enc.key) {
                None => counts.inserted += 1,
                Some((_, true)) => counts.revived += 1,
                Some((old, false)) if *old != enc => counts.updated += 1,
                Some(_) => {
                    counts.unchanged += 1;
                    continue;
                }
            }
            to_write.push(enc);
        }
        let mut plan = SnapshotPlan::default();
        let sources: BTreeSet<&str> = entries.iter().map(|e| e.source_list.as_str()).collect();
        let mut gone: Vec<&str> = Vec::new();
        if let Some(accept) = replace {
            for (key, (enc, removed)) in &existing {
                if *removed || !sources.contains(enc.source_list.as_str()) {
                    continue;
                }
                plan.listed_before += 1;
                if !last.contains_key(key.as_str()) {
                    gone.push(key.as_str());
                    plan.removed.push((key.clone(), enc.name.clone()));
                }
            }
            gone.sort_unstable();
            plan.removed.sort();
            plan.counts = counts;
            plan.counts.removed = gone.len() as u64;
            if !accept(&plan) {
                tx.rollback().await?;
                return Ok(plan);
            }
        }
        let batch = rows_per_statement(self.backend(), VALUES_PER_ROW);
        for chunk in to_write.chunks(batch) {
            upsert_batch(&mut tx, chunk, SNAPSHOT, None, &now).await?;
        }

        if replace.is_some() {
            for chunk in gone.chunks(rows_per_statement(self.backend(), 1)) {
                let sql = format!(
                    "UPDATE listed_entries SET removed_at = $1, updated_at = $1, \
                     version = version + 1, last_action = $2, last_document = NULL \
                     WHERE removed_at IS NULL AND entity_key IN ({})",
                    placeholders(3, chunk.len())
                );
                let mut q = sqlx::query(&sql).bind(now.as_str()).bind(SNAPSHOT);
                for k in chunk {
                    q = q.bind(*k);
                }
                counts.removed += q.execute(&mut *tx).await?.rows_affected();
            }
        }
        tx.commit().await?;
        plan.counts = counts;
        Ok(plan)
    }

    /// Current entries (not removed), ordered by key.
    pub async fn listed_entries(&self) -> Result<Vec<StoredEntry>, StoreError> {
        let sql = format!("{SELECT_ALL} WHERE removed_at IS NULL");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        let mut out = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.entry.entity_key.cmp(&b.entry.entity_key));
        Ok(out)
    }

    /// Changes whenever any entry is added, revised, removed or revived: the entry count, the
    /// sum of versions (every write raises one) and the latest write time. Lets a worker keep
    /// its screener over the list until the list changes, instead of rebuilding it per batch.
    pub async fn listed_fingerprint(&self) -> Result<(i64, i64, Option<String>), StoreError> {
        use sqlx::Row;
        // Cast: PostgreSQL's SUM of BIGINT is NUMERIC, which the Any driver cannot decode.
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(version), 0) AS BIGINT) AS versions, \
             MAX(updated_at) AS latest FROM listed_entries",
        )
        .fetch_one(self.pool())
        .await?;
        Ok((
            row.try_get("n")?,
            row.try_get("versions")?,
            row.try_get("latest")?,
        ))
    }

    /// Every entry, removed ones (tombstones) included, ordered by key: what reconciliation
    /// compares the codified list with.
    pub async fn all_listed_entries(&self) -> Result<Vec<StoredEntry>, StoreError> {
        let rows = sqlx::query(SELECT_ALL).fetch_all(self.pool()).await?;
        let mut out = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.entry.entity_key.cmp(&b.entry.entity_key));
        Ok(out)
    }

    /// One entry by key, removed or not.
    pub async fn listed_entry(&self, key: &EntityKey) -> Result<Option<StoredEntry>, StoreError> {
        let sql = format!("{SELECT_ALL} WHERE entity_key = $1");
        let row = sqlx::query(&sql)
            .bind(key.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// How many entries are currently listed (tombstones excluded).
    pub async fn listed_entry_count(&self) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM listed_entries WHERE removed_at IS NULL")
                .fetch_one(self.pool())
                .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Applies one change event from the watcher: `added` inserts (or revives) the entry,
    /// `revised` updates it (moving it from `previous_key` when the rule renamed it), `removed`
    /// marks it removed. Returns the entry's new version. Idempotent per document: the same
    /// action from the same Federal Register document applied twice changes nothing the
    /// second time, because the watcher re-publishes after a crash.
    pub async fn apply_entity_change(
        &self,
        change: &EntityChange,
    ) -> Result<AppliedChange, StoreError> {
        self.apply_resolved_change(change, "key").await
    }

    /// As [`Store::apply_entity_change`] for a change already addressed to the stored entry it
    /// is about; `matched_by` (how identity resolution found it) goes into the entry's history
    /// with the version the change made, in the same transaction. A change that made an
    /// earlier version of the entry than its current one is [`ChangeOutcome::Superseded`]: a
    /// replay of history, not something to apply or alert on again.
    pub async fn apply_resolved_change(
        &self,
        change: &EntityChange,
        matched_by: &str,
    ) -> Result<AppliedChange, StoreError> {
        let now = Utc::now().to_rfc3339();
        let key = change.entity_key.as_str();
        let action = change.action.as_str();
        let document = change.source.document_number.as_str();
        let mut tx = self.begin_write().await?;
        let current = state(&mut tx, key).await?;
        if let Some(s) = &current {
            if s.last_action == action && s.last_document.as_deref() == Some(document) {
                return Ok(applied(change, s.version, ChangeOutcome::AlreadyApplied));
            }
            let made: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(version) FROM entry_changes WHERE entity_key = $1 AND action = $2 \
                 AND document_number = $3",
            )
            .bind(key)
            .bind(action)
            .bind(document)
            .fetch_one(&mut *tx)
            .await?;
            if made.is_some_and(|v| v < s.version) {
                return Ok(applied(change, s.version, ChangeOutcome::Superseded));
            }
        }
        let result = match change.action {
            ChangeAction::Added | ChangeAction::Revised => {
                let enc = Encoded::new(&ListEntry::from_change(change));
                let renamed_from = change
                    .previous_key
                    .as_ref()
                    .filter(|p| change.action == ChangeAction::Revised && p.as_str() != key);
                let mut outcome = match &current {
                    None => ChangeOutcome::Inserted,
                    Some(s) if s.removed => ChangeOutcome::Revived,
                    Some(_) => ChangeOutcome::Updated,
                };
                if let Some(old_key) = renamed_from {
                    let old = state(&mut tx, old_key.as_str()).await?;
                    match (&old, &current) {
                        // Move the row so its version history continues under the new name.
                        (Some(o), None) if !o.removed => {
                            for statement in [REKEY_STATEMENTS[0], REKEY_STATEMENTS[4]] {
                                sqlx::query(statement)
                                    .bind(key)
                                    .bind(old_key.as_str())
                                    .execute(&mut *tx)
                                    .await?;
                            }
                            outcome = ChangeOutcome::Renamed;
                        }
                        (Some(o), Some(_)) if !o.removed => {
                            remove(&mut tx, old_key.as_str(), action, document, &now).await?;
                        }
                        _ => {}
                    }
                }
                match upsert_change(&mut tx, &enc, action, document, &now).await? {
                    Some(version) => applied(change, version, outcome),
                    None => already_applied(&mut tx, change).await?,
                }
            }
            ChangeAction::Removed => match &current {
                Some(s) if s.removed => applied(change, s.version, ChangeOutcome::AlreadyRemoved),
                Some(_) => match remove(&mut tx, key, action, document, &now).await? {
                    Some(v) => applied(change, v, ChangeOutcome::Removed),
                    None => already_applied(&mut tx, change).await?,
                },
                None => {
                    let enc = Encoded::new(&ListEntry::from_change(change));
                    insert_tombstone(&mut tx, &enc, action, document, &now).await?;
                    applied(change, 1, ChangeOutcome::RemovedUnknown)
                }
            },
        };
        if result.outcome != ChangeOutcome::AlreadyApplied {
            record_entry_change(&mut tx, &result, change, matched_by, &now).await?;
        }
        tx.commit().await?;
        Ok(result)
    }
}

/// Records which change made `result.version` of the entry, and how it found the entry.
async fn record_entry_change(
    tx: &mut Transaction<'_, Any>,
    result: &AppliedChange,
    change: &EntityChange,
    matched_by: &str,
    now: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO entry_changes (entity_key, version, action, document_number, change_key, \
         matched_by, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (entity_key, version) DO NOTHING",
    )
    .bind(result.entity_key.as_str())
    .bind(result.version)
    .bind(change.action.as_str())
    .bind(change.source.document_number.as_str())
    .bind(change.entity_key.as_str())
    .bind(matched_by)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The change was applied by a concurrent transaction between our read and our write.
async fn already_applied(
    tx: &mut Transaction<'_, Any>,
    change: &EntityChange,
) -> Result<AppliedChange, StoreError> {
    let version = state(tx, change.entity_key.as_str())
        .await?
        .map_or(1, |s| s.version);
    Ok(applied(change, version, ChangeOutcome::AlreadyApplied))
}

fn applied(change: &EntityChange, version: i64, outcome: ChangeOutcome) -> AppliedChange {
    AppliedChange {
        entity_key: change.entity_key.clone(),
        version,
        outcome,
    }
}

struct RowState {
    version: i64,
    removed: bool,
    last_action: String,
    last_document: Option<String>,
}

async fn state(tx: &mut Transaction<'_, Any>, key: &str) -> Result<Option<RowState>, StoreError> {
    let row = sqlx::query(
        "SELECT version, removed_at, last_action, last_document FROM listed_entries \
         WHERE entity_key = $1",
    )
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| {
        let removed: Option<String> = r.try_get("removed_at")?;
        Ok(RowState {
            version: r.try_get("version")?,
            removed: removed.is_some(),
            last_action: r.try_get("last_action")?,
            last_document: r.try_get("last_document")?,
        })
    })
    .transpose()
}

/// Marks a current entry removed; returns its new version, or `None` if this removal by this
/// document is already applied.
async fn remove(
    tx: &mut Transaction<'_, Any>,
    key: &str,
    action: &str,
    document: &str,
    now: &str,
) -> Result<Option<i64>, StoreError> {
    // Guarded like UNLESS_ALREADY_APPLIED: a concurrent worker's removal of the same entry by
    // the same document, committed first, is not applied twice.
    let v: Option<i64> = sqlx::query_scalar(
        "UPDATE listed_entries SET removed_at = $1, updated_at = $1, version = version + 1, \
         last_action = $2, last_document = $3 WHERE entity_key = $4 \
         AND (last_document IS NULL OR last_action <> $2 OR last_document <> $3) \
         RETURNING version",
    )
    .bind(now)
    .bind(action)
    .bind(document)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(v)
}

/// Records the removal of an entry never stored, so the removal is not lost: version 1, born
/// removed.
async fn insert_tombstone(
    tx: &mut Transaction<'_, Any>,
    e: &Encoded,
    action: &str,
    document: &str,
    now: &str,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO listed_entries ({ENTRY_COLUMNS}, last_action, last_document, updated_at, \
         version, removed_at) VALUES ({}, $13, 1, $13) ON CONFLICT (entity_key) DO NOTHING \
         RETURNING version",
        placeholders(1, 12)
    );
    // $13 (the time) serves as both updated_at and removed_at.
    bind_entry(sqlx::query_scalar(&sql), e, action, Some(document), now)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(())
}

/// Inserts new keys at version 1 and raises the version of existing ones, clearing any removal.
/// Returns the version of the last row written.
async fn upsert_batch(
    tx: &mut Transaction<'_, Any>,
    chunk: &[Encoded],
    action: &str,
    document: Option<&str>,
    now: &str,
) -> Result<i64, StoreError> {
    let rows: Vec<String> = (0..chunk.len())
        .map(|i| {
            let values = placeholders(i * VALUES_PER_ROW + 1, VALUES_PER_ROW);
            format!("({values}, 1, NULL)")
        })
        .collect();
    let sql = format!(
        "INSERT INTO listed_entries ({ENTRY_COLUMNS}, last_action, last_document, updated_at, \
         version, removed_at) VALUES {} {ON_CONFLICT_UPDATE} RETURNING version",
        rows.join(", ")
    );
    let mut q = sqlx::query_scalar::<_, i64>(&sql);
    for e in chunk {
        q = bind_entry(q, e, action, document, now);
    }
    let versions = q.fetch_all(&mut **tx).await?;
    Ok(versions.last().copied().unwrap_or(1))
}

/// Upserts one entry from a change of `document`, unless that change is already applied (then
/// `None`): see [`UNLESS_ALREADY_APPLIED`].
async fn upsert_change(
    tx: &mut Transaction<'_, Any>,
    e: &Encoded,
    action: &str,
    document: &str,
    now: &str,
) -> Result<Option<i64>, StoreError> {
    let sql = format!(
        "INSERT INTO listed_entries ({ENTRY_COLUMNS}, last_action, last_document, updated_at, \
         version, removed_at) VALUES ({}, 1, NULL) {ON_CONFLICT_UPDATE} {UNLESS_ALREADY_APPLIED} \
         RETURNING version",
        placeholders(1, VALUES_PER_ROW)
    );
    let q = bind_entry(
        sqlx::query_scalar::<_, i64>(&sql),
        e,
        action,
        Some(document),
        now,
    );
    Ok(q.fetch_optional(&mut **tx).await?)
}

fn bind_entry<'q>(
    q: sqlx::query::QueryScalar<'q, Any, i64, sqlx::any::AnyArguments<'q>>,
    e: &'q Encoded,
    action: &'q str,
    document: Option<&'q str>,
    now: &'q str,
) -> sqlx::query::QueryScalar<'q, Any, i64, sqlx::any::AnyArguments<'q>> {
    q.bind(e.key.as_str())
        .bind(e.name.as_str())
        .bind(e.aliases.as_str())
        .bind(e.addresses.as_str())
        .bind(e.countries.as_str())
        .bind(e.license_requirement.as_deref())
        .bind(e.license_policy.as_deref())
        .bind(e.federal_register_citation.as_deref())
        .bind(e.source_list.as_str())
        .bind(e.schema.as_deref())
        .bind(action)
        .bind(document)
        .bind(now)
}

/// An entry as its TEXT columns: compared to tell an update from an unchanged row, so equal
/// entries must always encode to equal strings.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Encoded {
    key: String,
    name: String,
    aliases: String,
    addresses: String,
    countries: String,
    license_requirement: Option<String>,
    license_policy: Option<String>,
    federal_register_citation: Option<String>,
    source_list: String,
    /// [`Schema::as_str`], NULL when unknown.
    schema: Option<String>,
}

impl Encoded {
    fn new(e: &ListEntry) -> Self {
        let countries: Vec<String> = e.countries.iter().map(|c| c.as_str().to_string()).collect();
        Encoded {
            key: e.entity_key.as_str().to_string(),
            name: e.name.as_str().to_string(),
            aliases: Value::from(e.aliases.clone()).to_string(),
            addresses: Value::from(e.addresses.clone()).to_string(),
            countries: Value::from(countries).to_string(),
            license_requirement: e.license_requirement.clone(),
            license_policy: e.license_policy.clone(),
            federal_register_citation: e.federal_register_citation.clone(),
            source_list: e.source_list.clone(),
            schema: e.schema.map(|s| s.as_str().to_string()),
        }
    }

    fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(Encoded {
            key: r.try_get("entity_key")?,
            name: r.try_get("name")?,
            aliases: r.try_get("aliases")?,
            addresses: r.try_get("addresses")?,
            countries: r.try_get("countries")?,
            license_requirement: r.try_get("license_requirement")?,
            license_policy: r.try_get("license_policy")?,
            federal_register_citation: r.try_get("federal_register_citation")?,
            source_list: r.try_get("source_list")?,
            schema: r.try_get("schema")?,
        })
    }
}

fn decode(r: &AnyRow) -> Result<StoredEntry, StoreError> {
    let enc = Encoded::from_row(r)?;
    let corrupt = |what: &str, value: &str| StoreError::Corrupt {
        name: format!("listed_entries.{what} of {:?}", enc.key),
        value: value.to_string(),
    };
    let list = |what: &str, v: &str| -> Result<Vec<String>, StoreError> {
        serde_json::from_str(v).map_err(|_| corrupt(what, v))
    };
    let countries = list("countries", &enc.countries)?
        .iter()
        .map(|c| CountryCode::parse(c).ok_or_else(|| corrupt("countries", &enc.countries)))
        .collect::<Result<Vec<_>, _>>()?;
    let time = |what: &str, v: &str| -> Result<DateTime<Utc>, StoreError> {
        DateTime::parse_from_rfc3339(v)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| corrupt(what, v))
    };
    let schema = enc
        .schema
        .as_deref()
        .map(|s| s.parse::<Schema>().map_err(|_| corrupt("schema", s)))
        .transpose()?;
    let updated_at: String = r.try_get("updated_at")?;
    let removed_at: Option<String> = r.try_get("removed_at")?;
    Ok(StoredEntry {
        entry: ListEntry {
            entity_key: EntityKey::parse(&enc.key).map_err(|_| corrupt("entity_key", &enc.key))?,
            name: EntityName::parse(&enc.name).map_err(|_| corrupt("name", &enc.name))?,
            aliases: list("aliases", &enc.aliases)?,
            addresses: list("addresses", &enc.addresses)?,
            countries,
            license_requirement: enc.license_requirement.clone(),
            license_policy: enc.license_policy.clone(),
            federal_register_citation: enc.federal_register_citation.clone(),
            source_list: enc.source_list.clone(),
            schema,
        },
        version: r.try_get("version")?,
        last_action: r.try_get("last_action")?,
        last_document: r.try_get("last_document")?,
        updated_at: time("updated_at", &updated_at)?,
        removed_at: removed_at
            .as_deref()
            .map(|v| time("removed_at", v))
            .transpose()?,
    })
}

impl Store {
    /// The current (not removed) entries as identity resolution compares them.
    pub async fn identity_candidates(&self) -> Result<Vec<IdentityCandidate>, StoreError> {
        let rows = sqlx::query(
            "SELECT entity_key, name, aliases FROM listed_entries WHERE removed_at IS NULL",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let key: String = r.try_get("entity_key")?;
                let aliases: String = r.try_get("aliases")?;
                Ok(IdentityCandidate {
                    key: EntityKey::parse(&key).map_err(|_| StoreError::Corrupt {
                        name: "listed_entries.entity_key".to_string(),
                        value: key.clone(),
                    })?,
                    name: r.try_get("name")?,
                    aliases: serde_json::from_str(&aliases).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Every recorded change of `entity_key`, oldest first.
    pub async fn entry_history(
        &self,
        entity_key: &EntityKey,
    ) -> Result<Vec<EntryChangeRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, action, document_number, change_key, matched_by, changed_at \
             FROM entry_changes WHERE entity_key = $1 ORDER BY version",
        )
        .bind(entity_key.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EntryChangeRecord {
                    version: r.try_get("version")?,
                    action: r.try_get("action")?,
                    document_number: r.try_get("document_number")?,
                    change_key: r.try_get("change_key")?,
                    matched_by: r.try_get("matched_by")?,
                    changed_at: r.try_get("changed_at")?,
                })
            })
            .collect()
    }

    /// Every recorded change of every entry, by entry key, oldest first: one query where
    /// reconciliation would otherwise ask [`Store::entry_history`] once per entry.
    pub async fn all_entry_histories(
        &self,
    ) -> Result<HashMap<String, Vec<EntryChangeRecord>>, StoreError> {
        let rows = sqlx::query(
            "SELECT entity_key, version, action, document_number, change_key, matched_by, \
             changed_at FROM entry_changes ORDER BY entity_key, version",
        )
        .fetch_all(self.pool())
        .await?;
        let mut out: HashMap<String, Vec<EntryChangeRecord>> = HashMap::new();
        for r in &rows {
            out.entry(r.try_get("entity_key")?)
                .or_default()
                .push(EntryChangeRecord {
                    version: r.try_get("version")?,
                    action: r.try_get("action")?,
                    document_number: r.try_get("document_number")?,
                    change_key: r.try_get("change_key")?,
                    matched_by: r.try_get("matched_by")?,
                    changed_at: r.try_get("changed_at")?,
                });
        }
        Ok(out)
    }

    /// Brings stored keys to the current identity rule ([`EntityKey::derive`]), once per store:
    /// each entry keeps its country and is re-keyed from its name, in the snapshot and in every
    /// table that refers to it, in one transaction. An entry whose new key another entry holds
    /// already keeps its old key (and is logged): merging two entries is not this step's call.
    pub(crate) async fn migrate_entity_keys(&self) -> Result<usize, StoreError> {
        let marker: Option<String> =
            sqlx::query_scalar("SELECT value FROM watch_state WHERE name = $1")
                .bind(KEY_SCHEME_STATE)
                .fetch_optional(self.pool())
                .await?;
        if marker.as_deref() == Some(KEY_SCHEME) {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query("SELECT entity_key, name FROM listed_entries")
            .fetch_all(&mut *tx)
            .await?;
        let mut taken: BTreeSet<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>("entity_key").ok())
            .collect();
        let mut moved = 0;
        for r in &rows {
            let old: String = r.try_get("entity_key")?;
            let name: String = r.try_get("name")?;
            let (Ok(old_key), Ok(name)) = (EntityKey::parse(&old), EntityName::parse(&name)) else {
                continue;
            };
            let country =
                CountryCode::parse(old_key.country()).unwrap_or_else(CountryCode::unknown);
            let new_key = EntityKey::derive(&country, &name);
            if new_key == old_key {
                continue;
            }
            if taken.contains(new_key.as_str()) {
                tracing::warn!(old = %old_key, new = %new_key, "entry keeps its old key: the new one is another entry's");
                continue;
            }
            for statement in REKEY_STATEMENTS {
                sqlx::query(statement)
                    .bind(new_key.as_str())
                    .bind(old_key.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            taken.remove(old_key.as_str());
            taken.insert(new_key.to_string());
            moved += 1;
        }
        sqlx::query(
            "INSERT INTO watch_state (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(KEY_SCHEME_STATE)
        .bind(KEY_SCHEME)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if moved > 0 {
            tracing::info!(
                entries = moved,
                "stored entity keys moved to the current identity rule"
            );
        }
        Ok(moved)
    }
}

/// Every table that names an entry by its key.
const REKEY_STATEMENTS: [&str; 5] = [
    "UPDATE listed_entries SET entity_key = $1 WHERE entity_key = $2",
    "UPDATE decisions SET entity_key = $1 WHERE entity_key = $2",
    "UPDATE alert_deliveries SET entity_key = $1 WHERE entity_key = $2",
    "UPDATE reviews SET entity_key = $1 WHERE entity_key = $2",
    "UPDATE entry_changes SET entity_key = $1 WHERE entity_key = $2",
];

/// The `watch_state` row naming the identity rule stored keys follow.
const KEY_SCHEME_STATE: &str = "entity_key_scheme";
/// Bumped whenever [`EntityKey::derive`] changes; 2: trailing bracketed aliases are not key words.
const KEY_SCHEME: &str = "2";

/// One recorded change of an entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EntryChangeRecord {
    pub version: i64,
    pub action: String,
    pub document_number: Option<String>,
    pub change_key: String,
    pub matched_by: String,
    pub changed_at: String,
}
