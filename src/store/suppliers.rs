//! Stored supplier records: `suppliers import` upserts what `crate::suppliers` read, screening
//! and `suppliers export` read them back.
//!
//! A supplier is keyed by the customer's own id, so importing the same file twice updates and
//! never duplicates. Lists and reference fields are JSON in TEXT columns; values are always
//! bound, and only the placeholders' count is ever formatted into SQL. This module must never
//! accept or return a record that the domain constructor would refuse.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use serde_json::Value;
use sqlx::Row;

use super::{Backend, Store, StoreError};
use crate::domain::SupplierRecord;
use crate::events::CountryCode;

/// Values per supplier row in the upsert.
const VALUES_PER_ROW: usize = 9;

/// What an upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertCounts {
    /// Ids not stored before.
    pub inserted: u64,
    /// Ids already stored, now overwritten (whether or not a value changed).
    pub updated: u64,
}

const COLUMNS: &str = "id, name, aliases, country, address, reference_fields, schema";

impl Store {
    /// Inserts or replaces records by id, all in one transaction: either the whole set is
    /// stored or none of it. If `records` repeats an id, the last one wins.
    pub async fn upsert_suppliers(
        &self,
        records: &[SupplierRecord],
    ) -> Result<UpsertCounts, StoreError> {
        self.upsert_suppliers_with_progress(records, |_| {}).await
    }

    /// [`Store::upsert_suppliers`], calling `progress(records_done)` after each statement, for
    /// a progress bar.
    pub async fn upsert_suppliers_with_progress(
        &self,
        records: &[SupplierRecord],
        progress: impl FnMut(usize),
    ) -> Result<UpsertCounts, StoreError> {
        let mut tx = self.begin_write().await?;
        let counts = self.upsert_suppliers_in(&mut tx, records, progress).await?;
        tx.commit().await?;
        Ok(counts)
    }

    /// The upsert of [`Store::upsert_suppliers`] inside the caller's transaction, so a batch
    /// of suppliers and the decisions made on them commit together (one durable write).
    pub(super) async fn upsert_suppliers_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        records: &[SupplierRecord],
        mut progress: impl FnMut(usize),
    ) -> Result<UpsertCounts, StoreError> {
        // PostgreSQL refuses a statement that upserts one key twice, so repeats go first.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            last.insert(r.id(), i);
        }
        let unique: Vec<&SupplierRecord> = records
            .iter()
            .enumerate()
            .filter(|(i, r)| last.get(r.id()) == Some(i))
            .map(|(_, r)| r)
            .collect();
        let now = Utc::now().to_rfc3339();
        let mut counts = UpsertCounts::default();
        let mut done = records.len() - unique.len();
        let backend = self.backend();
        let batch = rows_per_batch(VALUES_PER_ROW);
        for chunk in unique.chunks(batch) {
            // Counted inside the transaction, so the split is exact for this import.
            let existing_sql = format!(
                "SELECT COUNT(*) FROM suppliers WHERE id IN ({})",
                placeholders_for(backend, 1, chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, i64>(&existing_sql);
            for r in chunk {
                q = q.bind(r.id());
            }
            let existing = u64::try_from(q.fetch_one(&mut **tx).await?).unwrap_or(0);
            counts.updated += existing;
            counts.inserted += chunk.len() as u64 - existing.min(chunk.len() as u64);

            let sql = format!(
                "INSERT INTO suppliers ({COLUMNS}, created_at, updated_at) VALUES {} \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                 aliases = excluded.aliases, country = excluded.country, \
                 address = excluded.address, reference_fields = excluded.reference_fields, \
                 schema = excluded.schema, \
                 updated_at = excluded.updated_at",
                value_rows(backend, chunk.len(), VALUES_PER_ROW)
            );
            let encoded: Vec<Encoded> = chunk.iter().map(|r| Encoded::new(r)).collect();
            let mut q = sqlx::query(&sql);
            for (r, e) in chunk.iter().zip(&encoded) {
                q = q
                    .bind(r.id())
                    .bind(r.name())
                    .bind(e.aliases.as_str())
                    .bind(r.country().map(|c| c.as_str()))
                    .bind(r.address())
                    .bind(e.references.as_str())
                    .bind(r.schema().map(|s| s.as_str()))
                    .bind(now.as_str())
                    .bind(now.as_str());
            }
            q.execute(&mut **tx).await?;
            done += chunk.len();
            progress(done);
        }
        Ok(counts)
    }

    /// The stored records among `ids` (those not stored are left out), in no set order: one
    /// statement per few hundred ids rather than one per supplier.
    pub async fn suppliers_by_ids(&self, ids: &[&str]) -> Result<Vec<SupplierRecord>, StoreError> {
        let backend = self.backend();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(rows_per_batch(1)) {
            let sql = format!(
                "SELECT {COLUMNS} FROM suppliers WHERE id IN ({})",
                placeholders_for(backend, 1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(self.pool()).await? {
                out.push(decode(&row)?);
            }
        }
        Ok(out)
    }

    /// Deletes a supplier; false if the id was not stored.
    pub async fn delete_supplier(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM suppliers WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn supplier(&self, id: &str) -> Result<Option<SupplierRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM suppliers WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| decode(&r)).transpose()
    }

    /// Every supplier, ordered by id (byte order, the same on both databases).
    pub async fn suppliers(&self) -> Result<Vec<SupplierRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM suppliers");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        let mut out = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(out)
    }

    /// Up to `limit` suppliers with an id after `after`, in the database's text order, for
    /// exporting a supplier master too large to hold at once: pass the last id of a page to get
    /// the next.
    pub async fn suppliers_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SupplierRecord>, StoreError> {
        let rows = match after {
            Some(after) => {
                let sql =
                    format!("SELECT {COLUMNS} FROM suppliers WHERE id > $1 ORDER BY id LIMIT $2");
                sqlx::query(&sql)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                let sql = format!("SELECT {COLUMNS} FROM suppliers ORDER BY id LIMIT $1");
                sqlx::query(&sql)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(decode).collect()
    }

    /// Changes whenever a supplier is added, updated or deleted: the row count and the latest
    /// update time. Lets a worker keep its supplier index until the suppliers change.
    pub async fn suppliers_fingerprint(&self) -> Result<(i64, Option<String>), StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n, MAX(updated_at) AS latest FROM suppliers")
            .fetch_one(self.pool())
            .await?;
        use sqlx::Row;
        Ok((row.try_get("n")?, row.try_get("latest")?))
    }

    pub async fn supplier_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM suppliers")
            .fetch_one(self.pool())
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// How many rows one multi-row statement with `$N` placeholders should carry. SQLite resolves
/// every `$N` parameter by a linear search of the names seen so far while parsing, so a
/// statement's cost grows with the square of its parameters: measured on 10,000 suppliers, 20
/// rows per statement took 60 ms and 500 rows 480 ms. PostgreSQL has no such cost and gains
/// from fewer round trips; both stay far below the databases' parameter limits (32,766 and
/// 65,535). Statements written with [`placeholders_for`] use [`rows_per_batch`] instead.
pub(super) fn rows_per_statement(backend: Backend, values_per_row: usize) -> usize {
    let params = match backend {
        Backend::Sqlite => 160,
        Backend::Postgres => 4000,
    };
    (params / values_per_row.max(1)).max(1)
}

/// How many rows one multi-row statement written with [`placeholders_for`] carries, on either
/// database. SQLite's anonymous `?` has no name to look up, so the quadratic parse cost of
/// [`rows_per_statement`] is gone and SQLite takes as many rows as PostgreSQL. Fewer, larger
/// statements are fewer round trips and parses, and a full chunk is always the same SQL text,
/// so each connection's statement cache prepares it once per process.
pub(super) fn rows_per_batch(values_per_row: usize) -> usize {
    (BATCH_PARAMS / values_per_row.max(1)).max(1)
}

/// Parameters per batched statement: far below both limits, large enough that a 10,000-row
/// batch is a handful of statements.
const BATCH_PARAMS: usize = 4000;

/// `$from, $from+1, ...` for `n` values.
pub(super) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// [`placeholders`] in the form `backend` parses fastest: `?, ?, ...` on SQLite (no name to
/// resolve, see [`rows_per_batch`]), `$from, ...` on PostgreSQL. The values must then be
/// bound in the order the placeholders appear, as every caller does.
pub(super) fn placeholders_for(backend: Backend, from: usize, n: usize) -> String {
    match backend {
        Backend::Sqlite => vec!["?"; n].join(", "),
        Backend::Postgres => placeholders(from, n),
    }
}

/// `(…), (…), …`: `rows` rows of `per_row` placeholders, numbered from 1.
pub(super) fn value_rows(backend: Backend, rows: usize, per_row: usize) -> String {
    (0..rows)
        .map(|i| format!("({})", placeholders_for(backend, i * per_row + 1, per_row)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The JSON columns of one record.
struct Encoded {
    aliases: String,
    references: String,
}

impl Encoded {
    fn new(r: &SupplierRecord) -> Self {
        let references: serde_json::Map<String, Value> = r
            .references()
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        Encoded {
            aliases: Value::from(r.aliases().to_vec()).to_string(),
            references: Value::Object(references).to_string(),
        }
    }
}

fn decode(row: &sqlx::any::AnyRow) -> Result<SupplierRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let corrupt = |what: &str, value: String| StoreError::Corrupt {
        name: format!("suppliers.{what} of {id:?}"),
        value,
    };
    let name: String = row.try_get("name")?;
    let aliases: String = row.try_get("aliases")?;
    let country: Option<String> = row.try_get("country")?;
    let address: Option<String> = row.try_get("address")?;
    let references: String = row.try_get("reference_fields")?;
    let schema: Option<String> = row.try_get("schema")?;
    let alias_list: Vec<String> =
        serde_json::from_str(&aliases).map_err(|_| corrupt("aliases", aliases.clone()))?;
    let reference_map: BTreeMap<String, String> = serde_json::from_str(&references)
        .map_err(|_| corrupt("reference_fields", references.clone()))?;
    let country = match country {
        None => None,
        Some(c) => Some(CountryCode::parse(&c).ok_or_else(|| corrupt("country", c.clone()))?),
    };
    let mut record = SupplierRecord::new(&id, &name)
        .map_err(|_| corrupt("name", name.clone()))?
        .with_aliases(alias_list)
        .with_country(country)
        .with_address(address.as_deref())
        .with_schema_text(schema.as_deref().unwrap_or(""))
        .map_err(|_| corrupt("schema", schema.clone().unwrap_or_default()))?;
    for (k, v) in &reference_map {
        record = record
            .with_reference(k, v)
            .map_err(|_| corrupt("reference_fields", references.clone()))?;
    }
    Ok(record)
}
