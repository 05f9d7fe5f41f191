//! Opaque pagination cursors: where the next page starts, bound to the query that made it.
//!
//! A cursor carries a digest of the query's own description (endpoint and filters), so a
//! cursor handed to another query is refused (400) instead of silently paging something else.
//! It is URL-safe base64 only so that callers treat it as opaque; it grants nothing and holds
//! no secret. Kept short: the audit stream hands one out with every record.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::http::problem::Problem;

/// Where a page starts, for the query `query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor<P> {
    /// A digest of the endpoint and its filters (e.g. `alerts?status=open&supplier_id=`).
    #[serde(rename = "q")]
    query: String,
    #[serde(rename = "a")]
    after: P,
}

/// The first 8 bytes of the SHA-256 of a query's description, as hex.
fn digest(query: &str) -> String {
    hex::encode(&Sha256::digest(query.as_bytes())[..8])
}

impl<P: Serialize + DeserializeOwned> Cursor<P> {
    pub fn new(query: &str, after: P) -> Self {
        Cursor {
            query: digest(query),
            after,
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("a cursor serialises"))
    }

    /// The position in `raw`, if it is a cursor of `query`.
    pub fn decode(raw: &str, query: &str) -> Result<P, Problem> {
        let bad = || {
            Problem::bad_request(
                "the cursor is not one this API handed out (pass next_cursor as given)",
            )
            .at("cursor")
        };
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| bad())?;
        let cursor: Cursor<P> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if cursor.query != digest(query) {
            return Err(Problem::bad_request(
                "the cursor belongs to another query: page with the filters it was made with",
            )
            .at("cursor"));
        }
        Ok(cursor.after)
    }

    /// The position of an optional `cursor` parameter.
    pub fn decode_opt(raw: Option<&str>, query: &str) -> Result<Option<P>, Problem> {
        raw.filter(|r| !r.is_empty())
            .map(|r| Self::decode(r, query))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_pages_only_its_own_query() {
        let c = Cursor::new("alerts?status=open", ("2026-01-01".to_string(), 3u32)).encode();
        assert_eq!(
            Cursor::<(String, u32)>::decode(&c, "alerts?status=open").unwrap(),
            ("2026-01-01".to_string(), 3)
        );
        let other = Cursor::<(String, u32)>::decode(&c, "alerts?status=dismissed").unwrap_err();
        assert_eq!(
            (other.status, other.field.as_deref()),
            (400, Some("cursor"))
        );
        assert!(other.detail.contains("another query"));
        let junk = Cursor::<(String, u32)>::decode("z!", "alerts?status=open").unwrap_err();
        assert_eq!(junk.status, 400);
    }
}
