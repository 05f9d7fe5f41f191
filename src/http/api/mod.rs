//! The HTTP API v1 (everything under `/v1`): how systems work with entitywatch — upsert and
//! screen suppliers, screen names, list and review alerts, stream the audit trail, follow the
//! entity change feed and look entries up. `schemas/openapi.json` describes it and is served
//! at `GET /v1/openapi.json`, the one route without a token.
//!
//! This module only translates HTTP to the store and the worker: supplier writes go through
//! [`Worker::import_batch_reporting`], the path `suppliers import` takes, so alerts stay
//! exactly-once whichever way a supplier arrives. It must never decide a match itself, never
//! answer a fault with its internals (see [`Problem`]) and never read a body past the limit.
//!
//! Every route has one scope: read for reads and `/v1/screen`, review for reviews and
//! supplier writes, admin for deletes. Requests and their errors are
//! problem+json naming the field; unknown JSON fields and query parameters are refused.

mod alerts;
mod audit;
mod cursor;
mod entries;
mod screen;
mod suppliers;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use serde::de::DeserializeOwned;

pub use cursor::Cursor;

use super::auth;
use super::problem::Problem;
use crate::domain::Scope;
use crate::store::Store;
use crate::worker::Worker;

/// The OpenAPI 3.1 document of this API, as committed.
pub const OPENAPI: &str = include_str!("../../../schemas/openapi.json");

/// What every handler works with.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    /// Supplier writes and `/v1/screen` use its screener over the whole list (rebuilt only
    /// when the list changes) and its delivery ledger.
    pub worker: Arc<Worker>,
    pub max_body: usize,
}

/// The API's routes, each behind the token scope it needs, and bodies bounded by `max_body`.
pub fn router(store: Store, worker: Arc<Worker>, max_body: usize) -> Router {
    let state = ApiState {
        store: store.clone(),
        worker,
        max_body,
    };
    let read = Router::new()
        .route("/v1/suppliers", get(suppliers::list))
        .route("/v1/suppliers/:id", get(suppliers::show))
        .route("/v1/screen", post(screen::screen))
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/alerts/:id", get(alerts::show))
        .route("/v1/audit", get(audit::stream))
        .route("/v1/changes", get(entries::changes))
        .route("/v1/entries", get(entries::search))
        .route("/v1/entries/*entity_key", get(entries::show));
    let review = Router::new()
        .route("/v1/suppliers/:id", put(suppliers::upsert))
        .route("/v1/suppliers/batch", post(suppliers::batch))
        .route("/v1/alerts/:id/review", post(alerts::review));
    let admin = Router::new().route("/v1/suppliers/:id", delete(suppliers::remove));
    let open = Router::new().route("/v1/openapi.json", get(openapi));
    auth::require(read, store.clone(), Scope::Read)
        .merge(auth::require(review, store.clone(), Scope::Review))
        .merge(auth::require(admin, store, Scope::Admin))
        .merge(open)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI.to_string(),
    )
        .into_response()
}

/// A JSON body, bounded by the body limit, refused with a problem naming the field when it is
/// not JSON, has an unknown field or a value of the wrong type.
pub struct ApiJson<T>(pub T);

#[axum::async_trait]
impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = body_bytes(req, state).await?;
        parse_json(&body).map(ApiJson)
    }
}

/// The raw body, bounded by the limit (413 past it).
pub struct ApiBody(pub Bytes);

#[axum::async_trait]
impl<S: Send + Sync> FromRequest<S> for ApiBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        body_bytes(req, state).await.map(ApiBody)
    }
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Problem> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is over the API's limit (--api-max-body); send it in smaller parts",
            )
            .at("body")
        } else {
            Problem::bad_request(format!("cannot read the body: {}", rejection.body_text()))
                .at("body")
        }
    })
}

/// `bytes` as a `T`, or a 400 naming the field at fault (a JSON pointer such as
/// `/queries/3/country`; `body` when the JSON itself is broken).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    match parsed {
        Ok(v) => match de.end() {
            Ok(()) => Ok(v),
            Err(e) => Err(Problem::bad_request(format!("the body is not JSON: {e}")).at("body")),
        },
        Err(e) => {
            let inner = e.inner();
            let syntax = inner.is_syntax() || inner.is_eof();
            let field = if syntax {
                "body".to_string()
            } else {
                pointer(&e.path().to_string())
            };
            Err(Problem::bad_request(if syntax {
                format!("the body is not JSON: {inner}")
            } else {
                inner.to_string()
            })
            .at(field))
        }
    }
}

/// serde_path_to_error's `queries[3].country` as the JSON pointer `/queries/3/country`.
fn pointer(path: &str) -> String {
    if path == "." || path.is_empty() {
        return "body".to_string();
    }
    let mut out = String::new();
    for part in path.split('.') {
        let mut rest = part;
        while let Some(i) = rest.find('[') {
            if i > 0 {
                out.push('/');
                out.push_str(&rest[..i]);
            }
            let end = rest[i..].find(']').map_or(rest.len(), |e| i + e);
            out.push('/');
            out.push_str(&rest[i + 1..end]);
            rest = rest.get(end + 1..).unwrap_or("");
        }
        if !rest.is_empty() {
            out.push('/');
            out.push_str(rest);
        }
    }
    out
}

/// Query parameters as a `T` (unknown ones refused), or a 400 naming the parameter.
pub struct ApiQuery<T>(pub T);

#[axum::async_trait]
impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let field = e.path().to_string();
                let detail = e.inner().to_string();
                // An unknown parameter has no path yet: name it from the message.
                let field = if field == "." {
                    detail
                        .split('`')
                        .nth(1)
                        .map_or("query".to_string(), str::to_string)
                } else {
                    field
                };
                Problem::bad_request(format!("query parameter {field}: {detail}")).at(field)
            })
    }
}

fn form_urlencoded_parse(query: &str) -> url::form_urlencoded::Parse<'_> {
    url::form_urlencoded::parse(query.as_bytes())
}

/// `limit` of a page: 1 to 1,000, 100 when not given.
pub fn page_limit(limit: Option<u32>) -> Result<u32, Problem> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(n) => {
            Err(Problem::bad_request(format!("limit {n} is not between 1 and 1000")).at("limit"))
        }
    }
}

/// `since` as the store compares it: a date is the start of that day, UTC.
pub fn since(raw: Option<&str>, field: &str) -> Result<Option<String>, Problem> {
    raw.filter(|s| !s.trim().is_empty())
        .map(|s| crate::cli::alerts::parse_since(s).map_err(|e| Problem::bad_request(e).at(field)))
        .transpose()
}

/// A store fault, answered without its internals.
pub fn internal(e: impl std::fmt::Display) -> Problem {
    Problem::internal(&e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_paths_become_json_pointers() {
        assert_eq!(pointer("queries[3].country"), "/queries/3/country");
        assert_eq!(pointer("name"), "/name");
        assert_eq!(pointer("."), "body");
        assert_eq!(pointer("a.b[0][1].c"), "/a/b/0/1/c");
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        n: u32,
    }

    #[test]
    fn a_bad_body_names_its_field() {
        let p = parse_json::<Probe>(br#"{"n": "x"}"#).unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (400, Some("/n")));
        let p = parse_json::<Probe>(br#"{"n": 1, "m": 2}"#).unwrap_err();
        assert!(p.detail.contains("unknown field `m`"), "{}", p.detail);
        let p = parse_json::<Probe>(b"{").unwrap_err();
        assert_eq!(p.field.as_deref(), Some("body"));
        let p = parse_json::<Probe>(br#"{"n": 1} x"#).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("body"));
        assert_eq!(parse_json::<Probe>(br#"{"n": 1}"#).unwrap().n, 1);
    }
}
