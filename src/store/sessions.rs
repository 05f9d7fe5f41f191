//! Sessions of the review console as stored: the digest of each session id, the token it
//! was opened with, its CSRF value and when it ends.
//!
//! The console's cookie carries a [`SessionSecret`], never the API token: a stolen cookie
//! dies with its session (sign-out, expiry) and a revoked token ends every session opened with
//! it, because [`Store::console_session`] only finds sessions whose token is live. Nothing
//! here decides who may do what; it only says who a session belongs to.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::Scope;

/// Random bytes in a session id and in a CSRF value: 256 bits, so neither can be guessed.
const SESSION_BYTES: usize = 32;

/// A session id as the browser holds it. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret(String);

impl SessionSecret {
    /// A session id as presented in a cookie; only its shape is checked here.
    pub fn parse(raw: &str) -> Option<SessionSecret> {
        let raw = raw.trim();
        (raw.len() == SESSION_BYTES * 2 && raw.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| SessionSecret(raw.to_ascii_lowercase()))
    }

    /// The value of the session cookie.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

/// A live session: whose it is and the CSRF value its forms must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub token_id: String,
    /// The token's name: the reviewer the audit trail records.
    pub name: String,
    pub scope: Scope,
    pub csrf_token: String,
    pub expires_at: String,
}

/// A session just opened: the id to put in the cookie (the only copy) and the session.
#[derive(Debug)]
pub struct OpenedSession {
    pub secret: SessionSecret,
    pub session: ConsoleSession,
}

/// 32 random bytes as lowercase hex.
fn random_hex() -> String {
    let mut bytes = [0u8; SESSION_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn instant_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Store {
    /// Opens a session for the live token `token_id`, ending at `lifetime` from now. Sessions
    /// that have ended (expired, or their token revoked) are deleted on the way, so the table
    /// holds only live ones and those that ended since the last sign-in.
    pub async fn open_console_session(
        &self,
        token_id: &str,
        lifetime: Duration,
    ) -> Result<Option<OpenedSession>, StoreError> {
        let now = Utc::now();
        let lifetime = chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::MAX);
        let expires_at = now
            .checked_add_signed(lifetime)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        sqlx::query(
            "DELETE FROM console_sessions WHERE expires_at <= $1 OR token_id IN \
             (SELECT token_id FROM api_tokens WHERE revoked_at IS NOT NULL)",
        )
        .bind(instant_text(now))
        .execute(self.pool())
        .await?;
        let token = sqlx::query(
            "SELECT name, scope FROM api_tokens WHERE token_id = $1 AND revoked_at IS NULL",
        )
        .bind(token_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(token) = token else {
            return Ok(None);
        };
        let secret = SessionSecret(random_hex());
        let session = ConsoleSession {
            token_id: token_id.to_string(),
            name: token.try_get("name")?,
            scope: scope_of(&token)?,
            csrf_token: random_hex(),
            expires_at: instant_text(expires_at),
        };
        sqlx::query(
            "INSERT INTO console_sessions (session_digest, token_id, csrf_token, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(secret.digest())
        .bind(&session.token_id)
        .bind(&session.csrf_token)
        .bind(instant_text(now))
        .bind(&session.expires_at)
        .execute(self.pool())
        .await?;
        Ok(Some(OpenedSession { secret, session }))
    }

    /// The live session `secret` opens: not ended, and its token not revoked.
    pub async fn console_session(
        &self,
        secret: &SessionSecret,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        let row = sqlx::query(
            "SELECT s.token_id, s.csrf_token, s.expires_at, t.name, t.scope \
             FROM console_sessions s JOIN api_tokens t ON t.token_id = s.token_id \
             WHERE s.session_digest = $1 AND s.expires_at > $2 AND t.revoked_at IS NULL",
        )
        .bind(secret.digest())
        .bind(instant_text(Utc::now()))
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(ConsoleSession {
                token_id: r.try_get("token_id")?,
                name: r.try_get("name")?,
                scope: scope_of(&r)?,
                csrf_token: r.try_get("csrf_token")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Ends the session `secret` opens (sign-out); ending one that is gone is no error.
    pub async fn end_console_session(&self, secret: &SessionSecret) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE session_digest = $1")
            .bind(secret.digest())
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

fn scope_of(r: &sqlx::any::AnyRow) -> Result<Scope, StoreError> {
    let scope: String = r.try_get("scope")?;
    scope.parse().map_err(|_| StoreError::Corrupt {
        name: "api_tokens.scope".into(),
        value: scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_id_is_64_hex_digits_and_its_debug_hides_it() {
        let id = random_hex();
        let parsed = SessionSecret::parse(&id.to_ascii_uppercase()).expect("hex parses");
        assert_eq!(parsed.expose(), id);
        assert!(!format!("{parsed:?}").contains(&id[..8]));
        assert!(SessionSecret::parse("abc").is_none());
        assert!(SessionSecret::parse(&"z".repeat(64)).is_none());
        assert_ne!(random_hex(), random_hex());
    }
}
