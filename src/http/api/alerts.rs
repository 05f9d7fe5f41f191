//! `/v1/alerts`: the alerts raised so far and where each stands, one alert whole (supplier,
//! entry with its history, score, explanation, reviews, deliveries per sink), and an analyst's
//! review — the reviewer is the token's name, never a field of the body.
//!
//! Reviews go through [`crate::store::Store::review_alert`], as `alerts review` does, so a
//! dismissal keeps screening quiet about the pair until the entry is revised.

use axum::extract::{Extension, Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{internal, page_limit, since, ApiJson, ApiQuery, ApiState, Cursor};
use crate::domain::{AlertStatus, ReviewDecision};
use crate::events::EntityKey;
use crate::http::auth::Principal;
use crate::http::problem::Problem;
use crate::store::{AlertQuery, ReviewError, StoredAlert};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    supplier_id: Option<String>,
    entity_key: Option<String>,
    since: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// The alert list's position: the last alert of the page (newest first, then by id).
type After = (String, String);

#[derive(Debug, Serialize)]
pub struct AlertPage {
    items: Vec<Value>,
    next_cursor: Option<String>,
}

/// The alert as the sinks got it, with where it stands.
fn summary(a: &StoredAlert) -> Result<Value, Problem> {
    let mut v: Value = serde_json::from_str(&a.payload).map_err(internal)?;
    v["status"] = a.status.as_str().into();
    v["raised_at"] = a.raised_at.as_str().into();
    Ok(v)
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

pub async fn list(
    State(api): State<ApiState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<AlertPage>, Problem> {
    let limit = page_limit(params.limit)? as usize;
    let status = match non_empty(params.status) {
        Some(s) => Some(
            s.parse::<AlertStatus>()
                .map_err(|e| Problem::bad_request(e.to_string()).at("status"))?,
        ),
        None => None,
    };
    for (field, v) in [
        ("supplier_id", &params.supplier_id),
        ("entity_key", &params.entity_key),
    ] {
        if v.as_deref().is_some_and(|v| v.contains('\0')) {
            return Err(Problem::bad_request("contains a NUL character").at(field));
        }
    }
    let query = AlertQuery {
        status,
        supplier_id: non_empty(params.supplier_id),
        entity_key: non_empty(params.entity_key),
        since: since(params.since.as_deref(), "since")?,
        limit: None,
    };
    let described = format!(
        "alerts?status={}&supplier_id={}&entity_key={}&since={}",
        query.status.map_or("", AlertStatus::as_str),
        query.supplier_id.as_deref().unwrap_or(""),
        query.entity_key.as_deref().unwrap_or(""),
        query.since.as_deref().unwrap_or("")
    );
    let after: Option<After> = Cursor::decode_opt(params.cursor.as_deref(), &described)?;
    let alerts = api.store.alerts(&query).await.map_err(internal)?;
    // Newest first, then by id: a later page holds what sorts after the cursor's alert, so a
    // review that moves an alert out of the filter between pages skips nothing else.
    let rest = alerts.iter().filter(|a| match &after {
        Some((at, id)) => a.raised_at < *at || (a.raised_at == *at && a.alert_id > *id),
        None => true,
    });
    let mut page: Vec<&StoredAlert> = rest.take(limit + 1).collect();
    let next_cursor = if page.len() > limit {
        page.truncate(limit);
        page.last()
            .map(|a| Cursor::new(&described, (a.raised_at.clone(), a.alert_id.clone())).encode())
    } else {
        None
    };
    let items = page.into_iter().map(summary).collect::<Result<_, _>>()?;
    Ok(Json(AlertPage { items, next_cursor }))
}

fn unknown(id: &str) -> Problem {
    Problem::not_found(format!(
        "no alert with id {id:?} (or the prefix is not unique)"
    ))
    .at("id")
}

pub async fn show(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let a = api
        .store
        .alert(&id)
        .await
        .map_err(internal)?
        .ok_or_else(|| unknown(&id))?;
    let reviews = api
        .store
        .alert_reviews(&a.alert_id)
        .await
        .map_err(internal)?;
    let deliveries = api
        .store
        .alert_deliveries(&a.alert_id)
        .await
        .map_err(internal)?;
    let history = match EntityKey::parse(&a.entity_key) {
        Ok(key) => api.store.entry_history(&key).await.map_err(internal)?,
        Err(_) => Vec::new(),
    };
    let mut v = summary(&a)?;
    v["entry_history"] = serde_json::to_value(history).map_err(internal)?;
    v["reviews"] = reviews
        .iter()
        .map(|r| {
            json!({
                "decision": r.decision.as_str(), "reason": r.reason,
                "reviewer": r.reviewer, "reviewed_at": r.reviewed_at,
                "entry_version": r.entry_version,
            })
        })
        .collect();
    v["deliveries"] = deliveries
        .iter()
        .map(|(sink, state, at)| json!({ "sink": sink, "state": state, "at": at }))
        .collect();
    Ok(Json(v))
}

/// An analyst's decision as the API spells it.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Decision {
    Confirm,
    Dismiss,
    Escalate,
}

impl From<Decision> for ReviewDecision {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Confirm => ReviewDecision::Confirm,
            Decision::Dismiss => ReviewDecision::Dismiss,
            Decision::Escalate => ReviewDecision::Escalate,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    decision: Decision,
    reason: String,
}

pub async fn review(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<ReviewBody>,
) -> Result<Json<Value>, Problem> {
    let reason = body.reason.trim();
    if reason.is_empty() {
        return Err(Problem::bad_request("the reason must say why").at("/reason"));
    }
    let decision = ReviewDecision::from(body.decision);
    let review = api
        .store
        .review_alert(&id, decision, reason, &principal.name)
        .await
        .map_err(|e| match e {
            ReviewError::UnknownAlert(_) => unknown(&id),
            ReviewError::NotReviewable(_) => {
                Problem::new(axum::http::StatusCode::CONFLICT, e.to_string()).at("id")
            }
            ReviewError::Store(e) => internal(e),
        })?;
    Ok(Json(json!({
        "alert_id": review.alert_id,
        "decision": review.decision.as_str(),
        "reason": review.reason,
        "reviewer": review.reviewer,
        "reviewed_at": review.reviewed_at,
        "supplier_id": review.supplier_id,
        "entity_key": review.entity_key,
        "entry_version": review.entry_version,
        "status": decision.status().as_str(),
    })))
}
