//! API tokens as stored: the digest of each secret, its name and scope, and whether it was
//! revoked. The secret itself is never stored and never returned after [`Store::create_token`].
//!
//! Authentication is one indexed lookup by digest per request, so a revocation takes effect on
//! the next request, with no cache to expire.

use chrono::{SecondsFormat, Utc};
use rand::RngCore;
use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::token::TOKEN_BYTES;
use crate::domain::{Scope, TokenSecret};

/// A token as listed: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiToken {
    pub token_id: String,
    pub name: String,
    #[serde(serialize_with = "scope_text")]
    pub scope: Scope,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

fn scope_text<S: serde::Serializer>(scope: &Scope, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(scope.as_str())
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a live token named {0:?} exists: revoke it first or choose another name")]
    NameTaken(String),
    #[error("a token name is 1 to 100 printable characters, got {0:?}")]
    BadName(String),
    #[error("no live token with id or name {0:?}")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn token_of(r: &sqlx::any::AnyRow) -> Result<ApiToken, StoreError> {
    let scope: String = r.try_get("scope")?;
    Ok(ApiToken {
        token_id: r.try_get("token_id")?,
        name: r.try_get("name")?,
        scope: scope.parse().map_err(|_| StoreError::Corrupt {
            name: "api_tokens.scope".into(),
            value: scope,
        })?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

const SELECT_TOKENS: &str = "SELECT token_id, name, scope, created_at, revoked_at FROM api_tokens";

impl Store {
    /// Makes a token; the returned secret is the only copy there will ever be.
    pub async fn create_token(
        &self,
        name: &str,
        scope: Scope,
    ) -> Result<(ApiToken, TokenSecret), TokenError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(TokenError::BadName(name.to_string()));
        }
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = TokenSecret::from_random(&bytes);
        let mut id = [0u8; 4];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let token = ApiToken {
            token_id: format!("tok_{}", hex::encode(id)),
            name: name.to_string(),
            scope,
            created_at: now_text(),
            revoked_at: None,
        };
        let taken = sqlx::query("SELECT 1 FROM api_tokens WHERE name = $1 AND revoked_at IS NULL")
            .bind(&token.name)
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from)?;
        if taken.is_some() {
            return Err(TokenError::NameTaken(token.name));
        }
        sqlx::query(
            "INSERT INTO api_tokens (token_id, name, scope, secret_digest, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&token.token_id)
        .bind(&token.name)
        .bind(scope.as_str())
        .bind(secret.digest())
        .bind(&token.created_at)
        .execute(self.pool())
        .await
        .map_err(StoreError::from)?;
        Ok((token, secret))
    }

    /// Every token, live and revoked, oldest first.
    pub async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        sqlx::query(&format!("{SELECT_TOKENS} ORDER BY created_at, token_id"))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(token_of)
            .collect()
    }

    /// Revokes the live token with this id or name; it stops working at once.
    pub async fn revoke_token(&self, id_or_name: &str) -> Result<ApiToken, TokenError> {
        let found = sqlx::query(&format!(
            "{SELECT_TOKENS} WHERE (token_id = $1 OR name = $1) AND revoked_at IS NULL"
        ))
        .bind(id_or_name)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::from)?;
        let mut token = match found {
            Some(r) => token_of(&r)?,
            None => return Err(TokenError::Unknown(id_or_name.to_string())),
        };
        let at = now_text();
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE token_id = $2")
            .bind(&at)
            .bind(&token.token_id)
            .execute(self.pool())
            .await
            .map_err(StoreError::from)?;
        token.revoked_at = Some(at);
        Ok(token)
    }

    /// The live token this secret belongs to, if any.
    pub async fn authenticate(&self, secret: &TokenSecret) -> Result<Option<ApiToken>, StoreError> {
        sqlx::query(&format!(
            "{SELECT_TOKENS} WHERE secret_digest = $1 AND revoked_at IS NULL"
        ))
        .bind(secret.digest())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(token_of)
        .transpose()
    }
}
