//! `/v1/entries` and `/v1/changes`: the list snapshot as callers look things up in it — one
//! entry with every version and the document that made it, a search by name, alias or key —
//! and the entity change feed (what each rule or list sync changed, in the order recorded).
//!
//! Read only; keys contain a slash (`CN/dahua-technology`), hence the wildcard path.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{internal, page_limit, since, ApiQuery, ApiState, Cursor};
use crate::events::EntityKey;
use crate::http::problem::Problem;
use crate::store::{FeedChange, FeedPosition, StoredEntry};

/// The entry as the snapshot holds it, with its version markers.
fn entry_json(e: &StoredEntry) -> Result<Value, Problem> {
    let mut v = serde_json::to_value(&e.entry).map_err(internal)?;
    v["version"] = e.version.into();
    v["last_action"] = e.last_action.as_str().into();
    v["last_document"] = e.last_document.clone().into();
    v["updated_at"] = e.updated_at.to_rfc3339().into();
    v["removed_at"] = e.removed_at.map(|t| t.to_rfc3339()).into();
    Ok(v)
}

pub async fn show(
    State(api): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, Problem> {
    let raw = raw.trim_start_matches('/');
    let key = EntityKey::parse(raw).map_err(|_| {
        Problem::bad_request(format!(
            "{raw:?} is not an entry key (COUNTRY/words, e.g. CN/dahua-technology)"
        ))
        .at("entity_key")
    })?;
    let entry = api
        .store
        .listed_entry(&key)
        .await
        .map_err(internal)?
        .ok_or_else(|| Problem::not_found(format!("no entry {raw:?}")).at("entity_key"))?;
    let versions = api.store.entry_history(&key).await.map_err(internal)?;
    let mut v = entry_json(&entry)?;
    v["versions"] = versions
        .iter()
        .map(|c| {
            let mut r = serde_json::to_value(c).unwrap_or(Value::Null);
            r["document_url"] = c
                .document_number
                .as_deref()
                .filter(|d| !d.is_empty())
                .map(|d| format!("https://www.federalregister.gov/d/{d}"))
                .into();
            r
        })
        .collect();
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    q: Option<String>,
    limit: Option<u32>,
}

/// Entries whose key, name or an alias contains `q` (case and accents as written: the
/// search folds case only), current entries first, by key.
pub async fn search(
    State(api): State<ApiState>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<Value>, Problem> {
    let q = params
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .ok_or_else(|| Problem::bad_request("give q, the text to search for").at("q"))?
        .to_lowercase();
    let limit = page_limit(params.limit)? as usize;
    let mut found: Vec<StoredEntry> = api
        .store
        .all_listed_entries()
        .await
        .map_err(internal)?
        .into_iter()
        .filter(|e| {
            e.entry.entity_key.as_str().contains(&q)
                || e.entry.name.as_str().to_lowercase().contains(&q)
                || e.entry
                    .aliases
                    .iter()
                    .any(|a| a.to_lowercase().contains(&q))
        })
        .collect();
    found.sort_by(|a, b| {
        (a.removed_at.is_some(), a.entry.entity_key.as_str())
            .cmp(&(b.removed_at.is_some(), b.entry.entity_key.as_str()))
    });
    found.truncate(limit);
    let items = found
        .iter()
        .map(entry_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "items": items })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesParams {
    since: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct ChangePage {
    items: Vec<FeedChange>,
    next_cursor: Option<String>,
}

pub async fn changes(
    State(api): State<ApiState>,
    ApiQuery(params): ApiQuery<ChangesParams>,
) -> Result<Json<ChangePage>, Problem> {
    let limit = page_limit(params.limit)?;
    let since = since(params.since.as_deref(), "since")?.unwrap_or_default();
    let described = format!("changes?since={since}");
    let after: Option<FeedPosition> = Cursor::decode_opt(params.cursor.as_deref(), &described)?;
    let mut items = api
        .store
        .entry_changes_page(&since, after.as_ref(), limit + 1)
        .await
        .map_err(internal)?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|c| {
            Cursor::new(
                &described,
                FeedPosition {
                    changed_at: c.change.changed_at.clone(),
                    entity_key: c.entity_key.clone(),
                    version: c.change.version,
                },
            )
            .encode()
        })
    } else {
        None
    };
    Ok(Json(ChangePage { items, next_cursor }))
}
