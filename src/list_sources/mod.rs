//! The official list itself, as a source beside the Federal Register: the codified Entity List
//! (Supplement No. 4 to 15 CFR part 744) from the eCFR, and the Consolidated Screening List bulk
//! file from trade.gov. `list sync` and `run` turn the difference between that list and the
//! stored snapshot into change events like a rule's; `list reconcile` reports where the rules
//! the watcher parsed and the codified list disagree.
//!
//! This module fetches and reads; it must never write the snapshot itself: every change it finds
//! goes out as events on the change topic, in one publish, so the workers apply, re-screen and
//! alert as for a rule, and a fetch or parse failure publishes nothing. Requests obey the Federal
//! Register client's rules (only the configured host, a size limit on every body, retries with
//! jittered backoff honouring `Retry-After`; a 503 while the eCFR is processing a title is one
//! more retryable answer) because they go through that client's transport, one client per host.
//!
//! # Source documents
//!
//! A change from the eCFR carries the source document `ecfr-YYYY-MM-DD`, the amendment date of
//! the codified version it was read from (also its publication and effective date); one from the
//! CSL carries `csl-` and the first 12 hex digits of the file's SHA-256, since the bulk file has
//! no amendment date. Both are unique per content, so applying the same list twice changes
//! nothing (the store skips an action a document already applied), and no rule's document
//! number (`YYYY-NNNNN`) can look like one.
//!
//! # Layout
//!
//! `ecfr` reads the versions JSON and the Supplement's XML; `plan` is the pure comparison (the
//! changes a sync publishes, the reconciliation report); `sync` fetches, compares, publishes and
//! sets the metrics.

pub mod ecfr;
pub mod plan;
pub mod sync;

use chrono::NaiveDate;
use url::Url;

use crate::domain::ListEntry;
use crate::events::SourceDocument;
use crate::federal_register::client::{ClientConfig, ClientError, FederalRegisterClient, Upstream};

/// Where the codified list comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListSourceKind {
    /// The eCFR's Supplement No. 4 to part 744 (the codified list).
    Ecfr,
    /// The trade.gov Consolidated Screening List bulk JSON (its Entity List rows).
    Csl,
}

impl ListSourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ListSourceKind::Ecfr => "ecfr",
            ListSourceKind::Csl => "csl",
        }
    }

    /// Whether `document_number` names a list source's document rather than a rule.
    pub fn is_list_document(document_number: &str) -> bool {
        document_number.starts_with("ecfr-") || document_number.starts_with("csl-")
    }
}

/// The default eCFR host.
pub const DEFAULT_ECFR_URL: &str = "https://www.ecfr.gov";
/// The default CSL bulk JSON.
pub const DEFAULT_CSL_URL: &str =
    "https://data.trade.gov/downloadable_consolidated_screening_list/v1/consolidated.json";

/// The eCFR's name of the Entity List appendix.
pub const SUPPLEMENT: &str = "Supplement No. 4 to Part 744";

/// One entry of the codified list, with the country heading it is listed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodifiedEntry {
    /// The heading as the list writes it, e.g. "China, People's Republic of".
    pub heading: String,
    pub entry: ListEntry,
}

/// The codified list as one source states it at one date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodifiedList {
    pub kind: ListSourceKind,
    /// The eCFR amendment date (the CSL: the day it was fetched).
    pub date: NaiveDate,
    /// The source document its changes carry (see the module docs).
    pub source: SourceDocument,
    pub entries: Vec<CodifiedEntry>,
    /// Rows that could not be read, and why.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListSourceError {
    #[error("fetching the {source_kind} list: {error}")]
    Fetch {
        source_kind: &'static str,
        error: ClientError,
    },
    #[error("the eCFR versions of title 15 part 744 name no version of {SUPPLEMENT}")]
    NoVersion,
    #[error("reading the {source_kind} list: {message}")]
    Parse {
        source_kind: &'static str,
        message: String,
    },
    /// An empty list is refused rather than synced: it would remove every entry.
    #[error("the {0} list has no entries; refusing to treat that as the Entity List")]
    Empty(&'static str),
}

/// The HTTP side: one Federal Register-rule client per host.
#[derive(Debug, Clone)]
pub struct ListSourcesClient {
    ecfr: FederalRegisterClient,
    csl: FederalRegisterClient,
    csl_url: Url,
}

impl ListSourcesClient {
    /// Clients for `ecfr_url` (its origin and any path prefix) and the CSL file at `csl_url`
    /// (only its origin may be contacted), with the limits of `template`.
    pub fn new(
        ecfr_url: &Url,
        csl_url: &Url,
        template: &ClientConfig,
    ) -> Result<ListSourcesClient, ClientError> {
        let with_base = |base: Url, upstream| ClientConfig {
            base_url: base,
            upstream,
            ..template.clone()
        };
        let mut csl_base = csl_url.clone();
        csl_base.set_path("/");
        csl_base.set_query(None);
        Ok(ListSourcesClient {
            ecfr: FederalRegisterClient::new(with_base(ecfr_url.clone(), Upstream::Ecfr))?,
            csl: FederalRegisterClient::new(with_base(csl_base, Upstream::Csl))?,
            csl_url: csl_url.clone(),
        })
    }

    fn fetch_err(kind: ListSourceKind) -> impl Fn(ClientError) -> ListSourceError {
        move |error| ListSourceError::Fetch {
            source_kind: kind.as_str(),
            error,
        }
    }

    /// The eCFR versions of title 15 part 744, as raw JSON.
    pub async fn ecfr_versions(&self) -> Result<Vec<u8>, ListSourceError> {
        self.ecfr_get(
            "api/versioner/v1/versions/title-15.json?part=744",
            "application/json",
        )
        .await
    }

    /// The eCFR XML of the Supplement as amended on `date`.
    pub async fn ecfr_supplement(&self, date: NaiveDate) -> Result<Vec<u8>, ListSourceError> {
        let mut path = Url::parse("http://x/").expect("a valid constant");
        path.set_path(&format!("/api/versioner/v1/full/{date}/title-15.xml"));
        path.query_pairs_mut()
            .append_pair("part", "744")
            .append_pair("appendix", SUPPLEMENT);
        let relative = format!(
            "api/versioner/v1/full/{date}/title-15.xml?{}",
            path.query().unwrap_or_default()
        );
        self.ecfr_get(&relative, "application/xml, text/xml;q=0.9")
            .await
    }

    async fn ecfr_get(
        &self,
        relative: &str,
        accept: &'static str,
    ) -> Result<Vec<u8>, ListSourceError> {
        match self
            .ecfr
            .fetch_conditional(relative, accept, None)
            .await
            .map_err(Self::fetch_err(ListSourceKind::Ecfr))?
        {
            crate::federal_register::client::ConditionalBody::Body { bytes, .. } => Ok(bytes),
            crate::federal_register::client::ConditionalBody::NotModified { .. } => {
                Err(ListSourceError::Parse {
                    source_kind: "ecfr",
                    message: "a 304 to an unconditional request".into(),
                })
            }
        }
    }

    /// The CSL bulk file, conditionally on `etag`: `None` when the copy with that tag is
    /// current (304), else the body and its new tag.
    pub async fn csl_bulk(
        &self,
        etag: Option<&str>,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, ListSourceError> {
        use crate::federal_register::client::ConditionalBody;
        match self
            .csl
            .fetch_conditional(self.csl_url.as_str(), "application/json", etag)
            .await
            .map_err(Self::fetch_err(ListSourceKind::Csl))?
        {
            ConditionalBody::NotModified { .. } => Ok(None),
            ConditionalBody::Body { bytes, etag } => Ok(Some((bytes, etag))),
        }
    }
}
