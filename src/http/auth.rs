//! Who is calling: the bearer token of an API request, checked against the store, and the
//! scope a route needs. The review console checks the same token once, at sign-in
//! ([`principal_for`]), and then knows the browser by a session cookie (`console::session`).
//!
//! Every route of the API sits behind [`require`]; the probes and `/metrics` do not (unless
//! `--metrics-token-scope` asks for it). A secret is never logged: failures say which check
//! failed, never what was presented.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::problem::Problem;
use crate::domain::{Scope, TokenSecret};
use crate::store::{ApiToken, Store};

/// The caller of a request that passed [`require`]: handlers read it from the request's
/// extensions (`Extension<Principal>`), e.g. to record the reviewer of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: String,
    /// The token's name: the reviewer the audit trail records.
    pub name: String,
    pub scope: Scope,
}

impl From<ApiToken> for Principal {
    fn from(t: ApiToken) -> Self {
        Principal {
            token_id: t.token_id,
            name: t.name,
            scope: t.scope,
        }
    }
}

/// Why a request was not let through.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error("no token: send `Authorization: Bearer <token>` (make one with `entitywatch tokens create`)")]
    Missing,
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("the token is malformed: {0}")]
    Malformed(#[from] crate::domain::token::TokenFormatError),
    #[error("the token is unknown or revoked")]
    Unknown,
    #[error("this needs a token of scope {needed} or above; this one is {has}")]
    Scope { needed: Scope, has: Scope },
    #[error("cannot check the token: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl IntoResponse for AuthFailure {
    fn into_response(self) -> Response {
        match &self {
            AuthFailure::Scope { .. } => Problem::forbidden(self.to_string()),
            AuthFailure::Store(e) => Problem::internal(e),
            _ => Problem::unauthorized(self.to_string()).at("Authorization"),
        }
        .into_response()
    }
}

/// The live token a presented secret belongs to.
pub async fn principal_for(store: &Store, secret: &str) -> Result<Principal, AuthFailure> {
    let secret = TokenSecret::parse(secret)?;
    store
        .authenticate(&secret)
        .await?
        .map(Principal::from)
        .ok_or(AuthFailure::Unknown)
}

/// The bearer secret of a request's `Authorization` header.
pub fn bearer(headers: &HeaderMap) -> Result<&str, AuthFailure> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthFailure::Missing)?
        .to_str()
        .map_err(|_| AuthFailure::NotBearer)?;
    let (kind, secret) = value.trim().split_once(' ').ok_or(AuthFailure::NotBearer)?;
    if !kind.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::NotBearer);
    }
    Ok(secret.trim())
}

/// The caller of a request, if it may do what needs `needed`.
pub async fn authorise(
    store: &Store,
    headers: &HeaderMap,
    needed: Scope,
) -> Result<Principal, AuthFailure> {
    let principal = principal_for(store, bearer(headers)?).await?;
    if !principal.scope.allows(needed) {
        return Err(AuthFailure::Scope {
            needed,
            has: principal.scope,
        });
    }
    Ok(principal)
}

#[derive(Clone)]
struct Gate {
    store: Store,
    needed: Scope,
}

async fn check(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    match authorise(&gate.store, request.headers(), gate.needed).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(failure) => failure.into_response(),
    }
}

/// `routes`, each answered only for a token of scope `needed` or above (401 without a valid
/// token, 403 with too small a scope); the handlers find the [`Principal`] in the extensions.
pub fn require<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    store: Store,
    needed: Scope,
) -> Router<S> {
    routes.route_layer(middleware::from_fn_with_state(
        Gate { store, needed },
        check,
    ))
}
