//! API tokens: who may call the HTTP API and the review console, and what they may do.
//!
//! A token is a bearer secret shown once when made; the store keeps only its SHA-256 digest,
//! so a copy of the database grants nothing. Scopes are ordered: `admin` can do what
//! `review` can, and `review` what `read` can. Domain only: generating the random secret and
//! storing the digest are the store's; this says what a token is and what a scope allows.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// What a token may do, least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read suppliers, alerts, entries, changes and the audit trail; screen names.
    Read,
    /// Also review alerts (confirm, dismiss, escalate) and write suppliers.
    Review,
    /// Everything, including deleting suppliers.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Review, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Review => "review",
            Scope::Admin => "admin",
        }
    }

    /// Whether a token of this scope may do what needs `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}: expected read, review or admin")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_string()))
    }
}

/// The prefix every secret starts with, so a leaked one is recognisable (secret scanners key
/// on such prefixes) and a mistyped header value is told apart from a wrong token.
pub const TOKEN_PREFIX: &str = "ew_";
/// Random bytes in a secret: 256 bits, so a digest lookup needs no salt or slow hash.
pub const TOKEN_BYTES: usize = 32;

/// A token's secret as a caller presents it. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("a token starts with {TOKEN_PREFIX:?}")]
    Prefix,
    #[error("a token has {expected} hexadecimal digits after {TOKEN_PREFIX:?}")]
    Body { expected: usize },
}

impl TokenSecret {
    /// The secret for these random bytes.
    pub fn from_random(bytes: &[u8; TOKEN_BYTES]) -> Self {
        TokenSecret(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
    }

    /// A secret as presented (header, cookie, form); only its shape is checked here.
    pub fn parse(raw: &str) -> Result<Self, TokenFormatError> {
        let body = raw
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenFormatError::Prefix)?;
        if body.len() != TOKEN_BYTES * 2 || !body.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenFormatError::Body {
                expected: TOKEN_BYTES * 2,
            });
        }
        Ok(TokenSecret(format!(
            "{TOKEN_PREFIX}{}",
            body.to_ascii_lowercase()
        )))
    }

    /// The digest the store keys tokens by.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// The secret itself, to print once when the token is made.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_ordered_and_each_allows_the_smaller_ones() {
        assert!(Scope::Admin.allows(Scope::Review));
        assert!(Scope::Review.allows(Scope::Read));
        assert!(Scope::Read.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Review));
        assert!(!Scope::Review.allows(Scope::Admin));
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>(), Ok(s));
        }
        assert!("write".parse::<Scope>().is_err());
    }

    #[test]
    fn a_secret_round_trips_and_its_debug_hides_it() {
        let secret = TokenSecret::from_random(&[0xab; TOKEN_BYTES]);
        assert!(secret.expose().starts_with("ew_abab"));
        let parsed =
            TokenSecret::parse(&secret.expose().to_ascii_uppercase().replace("EW_", "ew_"));
        assert_eq!(
            parsed.as_ref().map(TokenSecret::digest),
            Ok(secret.digest())
        );
        assert!(!format!("{secret:?}").contains("abab"));
        assert_eq!(secret.digest().len(), 64);
    }

    #[test]
    fn malformed_secrets_are_told_apart() {
        assert_eq!(
            TokenSecret::parse("Bearer x"),
            Err(TokenFormatError::Prefix)
        );
        assert_eq!(
            TokenSecret::parse("ew_1234"),
            Err(TokenFormatError::Body { expected: 64 })
        );
        let not_hex = format!("ew_{}", "g".repeat(64));
        assert!(TokenSecret::parse(&not_hex).is_err());
    }
}
