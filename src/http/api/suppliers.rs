//! `/v1/suppliers`: the supplier master over HTTP — upsert one (screened against the whole
//! list at once, answering with its matches), read, delete, page through, and a bulk NDJSON
//! upsert with per-line errors.
//!
//! Writes go through [`crate::worker::Worker::import_batch_reporting`], exactly as a
//! `suppliers import` batch does: one transaction for records and decisions, then the
//! alerts through the delivery ledger. Nothing here builds an alert or a decision itself.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{internal, page_limit, ApiBody, ApiJson, ApiQuery, ApiState, Cursor};
use crate::alerts::DigestSource;
use crate::domain::{SupplierError, SupplierRecord};
use crate::http::problem::Problem;
use crate::worker::{EventOutcome, ListMatch, WorkerError, SUPPLIER_BATCH};

/// A supplier as the API takes it: the suppliers topic's JSON, with unknown fields refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplierBody {
    /// Optional on `PUT` (the path names it); required in a batch.
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    references: BTreeMap<String, String>,
    #[serde(default)]
    schema: Option<String>,
}

impl SupplierBody {
    /// PostgreSQL text cannot hold NUL, and no supplier master means one: refused, named.
    fn refuse_nul(&self, id: &str) -> Result<(), Problem> {
        let mut fields: Vec<(String, &str)> = vec![("id".into(), id), ("name".into(), &self.name)];
        for (i, a) in self.aliases.iter().enumerate() {
            fields.push((format!("aliases/{i}"), a));
        }
        for (f, v) in [
            ("country", &self.country),
            ("address", &self.address),
            ("schema", &self.schema),
        ] {
            fields.push((f.into(), v.as_deref().unwrap_or("")));
        }
        for (k, v) in &self.references {
            fields.push((format!("references/{k}"), k));
            fields.push((format!("references/{k}"), v));
        }
        match fields.into_iter().find(|(_, v)| v.contains('\0')) {
            Some((field, _)) => {
                Err(Problem::bad_request("contains a NUL character").at(format!("/{field}")))
            }
            None => Ok(()),
        }
    }

    /// The record, or the field at fault (a JSON pointer) and why.
    fn record(self, id: &str) -> Result<SupplierRecord, (String, SupplierError)> {
        let at = |field: &str| field.to_string();
        let mut r = SupplierRecord::new(id, &self.name)
            .map_err(|e| {
                let field = if e == SupplierError::EmptyId {
                    "id"
                } else {
                    "name"
                };
                (at(field), e)
            })?
            .with_aliases(self.aliases)
            .with_country_text(self.country.as_deref().unwrap_or(""))
            .map_err(|e| (at("country"), e))?
            .with_address(self.address.as_deref())
            .with_schema_text(self.schema.as_deref().unwrap_or(""))
            .map_err(|e| (at("schema"), e))?;
        for (k, v) in self.references {
            r = r
                .with_reference(&k, &v)
                .map_err(|e| (format!("references/{k}"), e))?;
        }
        Ok(r)
    }
}

/// One match of a screened supplier or name.
#[derive(Debug, Serialize)]
pub struct MatchOut {
    pub entity_key: String,
    pub listed_name: String,
    pub score: f64,
    pub is_match: bool,
    pub entry_version: i64,
    pub entry_updated_at: String,
    pub entry_document: Option<String>,
    pub explanation: crate::screening::Explanation,
}

impl From<ListMatch> for MatchOut {
    fn from(m: ListMatch) -> Self {
        MatchOut {
            entity_key: m.matched.key.to_string(),
            listed_name: m.matched.listed_name,
            score: m.matched.score,
            is_match: m.matched.is_match,
            entry_version: m.entry_version,
            entry_updated_at: m.entry_updated_at.to_rfc3339(),
            entry_document: m.entry_document,
            explanation: m.matched.explanation,
        }
    }
}

/// What screening a write did with the alerts it raised.
#[derive(Debug, Serialize)]
pub struct AlertCounts {
    pub matches: usize,
    pub delivered: usize,
    pub already_delivered: usize,
    /// Parked for a sink that is down; sent in the background.
    pub queued: usize,
    pub dead_lettered: usize,
    pub dismissed: usize,
}

impl From<&EventOutcome> for AlertCounts {
    fn from(o: &EventOutcome) -> Self {
        AlertCounts {
            matches: o.matches,
            delivered: o.alerts_delivered,
            already_delivered: o.alerts_already_delivered,
            queued: o.alerts_queued,
            dead_lettered: o.alerts_dead_lettered,
            dismissed: o.dismissed,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Upserted {
    supplier: SupplierRecord,
    created: bool,
    matches: Vec<MatchOut>,
    alerts: AlertCounts,
}

fn supplier_problem(field: String, e: SupplierError) -> Problem {
    Problem::bad_request(e.to_string()).at(format!("/{field}"))
}

pub async fn upsert(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SupplierBody>,
) -> Result<Response, Problem> {
    if let Some(given) = &body.id {
        if given.trim() != id.trim() {
            return Err(Problem::bad_request(format!(
                "the body's id {given:?} is not the path's {id:?}"
            ))
            .at("/id"));
        }
    }
    body.refuse_nul(&id)?;
    let record = body.record(&id).map_err(|(f, e)| supplier_problem(f, e))?;
    let (counts, outcome, mut reported) = api
        .worker
        .import_batch_reporting(std::slice::from_ref(&record), true)
        .await
        .map_err(internal)?;
    let matches = reported
        .pop()
        .map(|(_, m)| m.into_iter().map(MatchOut::from).collect())
        .unwrap_or_default();
    let created = counts.inserted > 0;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = Upserted {
        supplier: record,
        created,
        matches,
        alerts: AlertCounts::from(&outcome),
    };
    Ok((status, Json(body)).into_response())
}

pub async fn show(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<SupplierRecord>, Problem> {
    if id.contains('\0') {
        return Err(Problem::not_found(format!("no supplier with id {id:?}")).at("id"));
    }
    api.store
        .supplier(id.trim())
        .await
        .map_err(internal)?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no supplier with id {id:?}")).at("id"))
}

pub async fn remove(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    if !id.contains('\0')
        && api
            .store
            .delete_supplier(id.trim())
            .await
            .map_err(internal)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("no supplier with id {id:?}")).at("id"))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct SupplierPage {
    items: Vec<SupplierRecord>,
    next_cursor: Option<String>,
}

const SUPPLIERS_QUERY: &str = "suppliers";

pub async fn list(
    State(api): State<ApiState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<SupplierPage>, Problem> {
    let limit = page_limit(params.limit)?;
    let after: Option<String> = Cursor::decode_opt(params.cursor.as_deref(), SUPPLIERS_QUERY)?;
    let mut items = api
        .store
        .suppliers_page(after.as_deref(), limit + 1)
        .await
        .map_err(internal)?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items
            .last()
            .map(|s| Cursor::new(SUPPLIERS_QUERY, s.id().to_string()).encode())
    } else {
        None
    };
    Ok(Json(SupplierPage { items, next_cursor }))
}

/// A line of a batch that was not stored.
#[derive(Debug, Serialize)]
struct LineError {
    line: usize,
    field: String,
    detail: String,
}

#[derive(Debug, Serialize)]
pub struct BatchOutcome {
    /// Records stored (a repeated id counts once per line).
    stored: usize,
    inserted: u64,
    updated: u64,
    rejected: usize,
    errors: Vec<LineError>,
    alerts: AlertCounts,
}

pub async fn batch(
    State(api): State<ApiState>,
    ApiBody(body): ApiBody,
) -> Result<Json<BatchOutcome>, Problem> {
    let text = std::str::from_utf8(&body)
        .map_err(|e| Problem::bad_request(format!("the body is not UTF-8: {e}")).at("body"))?;
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = super::parse_json::<SupplierBody>(line.as_bytes()).and_then(|b| {
            let Some(id) = b.id.clone() else {
                return Err(Problem::bad_request("missing field `id`").at("/id"));
            };
            b.refuse_nul(&id)?;
            b.record(&id).map_err(|(f, e)| supplier_problem(f, e))
        });
        match parsed {
            Ok(r) => records.push(r),
            Err(p) => errors.push(LineError {
                line: line_no,
                field: p.field.unwrap_or_else(|| "body".to_string()),
                detail: p.detail,
            }),
        }
    }
    let mut outcome = EventOutcome::default();
    let (mut inserted, mut updated) = (0, 0);
    // One bulk request is one import: a Slack sink gets one digest for all its alerts when
    // they are more than --slack-digest-over, decided as soon as the last record is screened.
    let digest_batch = DigestSource::supplier_import();
    let stored = api
        .worker
        .in_batch(&digest_batch, async {
            for chunk in records.chunks(SUPPLIER_BATCH) {
                let (counts, done, _) = api.worker.import_batch_reporting(chunk, true).await?;
                inserted += counts.inserted;
                updated += counts.updated;
                outcome.add(&done);
            }
            Ok::<_, WorkerError>(())
        })
        .await;
    let closed = api.worker.close_batch(&digest_batch).await;
    stored.and(closed).map_err(internal)?;
    Ok(Json(BatchOutcome {
        stored: records.len(),
        inserted,
        updated,
        rejected: errors.len(),
        errors,
        alerts: AlertCounts::from(&outcome),
    }))
}
