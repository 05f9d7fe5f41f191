//! `POST /v1/screen`: up to 1,000 names screened against the whole current list at once,
//! each with its matches, scores and explanations; `changed_since` keeps only matches against
//! entries written since then (delta screening: what a name newly matches after a rule).
//!
//! Nothing is stored and no alert is raised: these are names, not suppliers.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::suppliers::MatchOut;
use super::{internal, ApiJson, ApiState};
use crate::domain::recognise_country;
use crate::http::problem::Problem;
use crate::screening::{self, Schema};

/// Most queries in one request: a batch the screener answers in well under a second.
pub const MAX_QUERIES: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScreenRequest {
    queries: Vec<Query>,
    /// RFC 3339 instant or date: only matches against entries added or revised since.
    #[serde(default)]
    changed_since: Option<String>,
    /// Matches per query at most (1 to 100; default 10).
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    schema: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ScreenResponse {
    results: Vec<QueryResult>,
}

#[derive(Debug, Serialize)]
struct QueryResult {
    name: String,
    matches: Vec<MatchOut>,
}

pub async fn screen(
    State(api): State<ApiState>,
    ApiJson(request): ApiJson<ScreenRequest>,
) -> Result<Json<ScreenResponse>, Problem> {
    let n = request.queries.len();
    if n == 0 || n > MAX_QUERIES {
        return Err(Problem::bad_request(format!(
            "{n} queries: send 1 to {MAX_QUERIES} per request"
        ))
        .at("/queries"));
    }
    let limit = match request.limit {
        None => 10,
        Some(l) if (1..=100).contains(&l) => l,
        Some(l) => {
            return Err(
                Problem::bad_request(format!("limit {l} is not between 1 and 100")).at("/limit"),
            )
        }
    };
    let changed_since: Option<DateTime<Utc>> =
        super::since(request.changed_since.as_deref(), "/changed_since")?.map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .expect("since() normalises to RFC 3339")
        });
    let mut names = Vec::with_capacity(n);
    let mut queries = Vec::with_capacity(n);
    for (i, q) in request.queries.into_iter().enumerate() {
        if !q.name.chars().any(char::is_alphanumeric) {
            return Err(Problem::bad_request("the name has no letter or digit")
                .at(format!("/queries/{i}/name")));
        }
        let country = match q
            .country
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            Some(c) => Some(recognise_country(c).ok_or_else(|| {
                Problem::bad_request(format!("{c:?} is not a country we know (ISO-2 or name)"))
                    .at(format!("/queries/{i}/country"))
            })?),
            None => None,
        };
        let schema = match q.schema.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => Some(s.parse::<Schema>().map_err(|e| {
                Problem::bad_request(e.to_string()).at(format!("/queries/{i}/schema"))
            })?),
            None => None,
        };
        names.push(q.name.clone());
        queries.push((
            screening::SupplierRecord {
                id: (),
                name: q.name,
                aliases: q.aliases,
                country,
            },
            schema,
        ));
    }
    let screened = api.worker.screen_names(queries).await.map_err(internal)?;
    let results = names
        .into_iter()
        .zip(screened)
        .map(|(name, matches)| QueryResult {
            name,
            matches: matches
                .into_iter()
                .filter(|m| changed_since.is_none_or(|t| m.entry_updated_at >= t))
                .take(limit)
                .map(MatchOut::from)
                .collect(),
        })
        .collect();
    Ok(Json(ScreenResponse { results }))
}
