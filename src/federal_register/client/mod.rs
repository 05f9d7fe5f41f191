//! The Federal Register API v1 client: the only code in entitywatch that talks HTTP to the
//! Federal Register.
//!
//! It finds BIS final rules that amend the Entity List, lists BIS Entity List filings on public
//! inspection, and downloads a rule's full-text XML as bytes. It must never:
//!
//! * fetch from any host but the configured one (see "Which URLs are fetched" below);
//! * log secrets: the API needs none today, but should one ever ride in a URL it stays out of
//!   logs and errors, which show our URLs as path and query only and foreign ones without their
//!   query; a base URL with credentials in it is refused outright;
//! * parse rule text: the XML is handed over untouched to `amendment`, which owns that job.
//!
//! # Which URLs are fetched
//!
//! Requests start from [`ClientConfig::base_url`]. URLs taken from responses (`next_page_url`,
//! `full_text_xml_url`, a redirect's `Location`) are fetched only if they resolve onto that
//! base's scheme, host and port. One rewrite is allowed: a URL on the official host
//! (`www.federalregister.gov` or `federalregister.gov`), while the base is some other origin, is
//! mapped onto the base with the same path and query. The API always answers with official
//! URLs, so without this rewrite a replay server or a local test server would send the client
//! back to the internet. Any other host is refused with [`ClientError::ForeignHost`] and never
//! contacted: a response that could steer the client to an arbitrary host would make it a
//! request-forgery tool inside whatever network runs the watcher.
//!
//! # Failures
//!
//! Timeouts, connection errors, 5xx, 429 and bodies that are not complete JSON are retried with
//! jittered exponential backoff; `Retry-After` on 429/503 replaces the computed delay, capped at
//! [`ClientConfig::max_backoff`] so a hostile or confused server cannot park the watcher for a
//! day. Other 4xx are the request's fault and fail at once, as does valid JSON of the wrong shape
//! (the API changed; asking again will not help). Bodies larger than
//! [`ClientConfig::max_document_bytes`] are refused while streaming, never buffered whole.

//!
//! # Layout
//!
//! `api` holds the API's types and their decoding from the raw JSON, `url_policy` the host
//! rule above, `transport` one request with its retries, redirects and size limit. This module
//! holds the configuration, the errors and the public operations built from those three.

mod api;
#[cfg(test)]
mod tests;
mod transport;
mod url_policy;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use url::Url;

pub use api::{Agency, CfrReference, DocumentSummary, PublicInspectionDocument};

use api::{Page, RawDocument, RawPiDocument};
use url_policy::{loggable, normalise_base, resolve_on_base};

/// The agency slug of the Bureau of Industry and Security, which publishes the Entity List.
pub const BIS_AGENCY_SLUG: &str = "industry-and-security-bureau";

/// Fields requested from the search endpoint; naming them keeps the response small and makes
/// a field the API silently dropped show up as `None` instead of as a surprise elsewhere.
const SEARCH_FIELDS: &[&str] = &[
    "document_number",
    "title",
    "type",
    "publication_date",
    "effective_on",
    "html_url",
    "full_text_xml_url",
    "citation",
    "agencies",
    "cfr_references",
    "abstract",
    "action",
];

/// Pages followed when the server gives no `total_pages`. The API caps a search at 10,000
/// results, i.e. 100 pages of 100, so anything beyond that is a server bug.
const MAX_PAGES_WITHOUT_TOTAL: usize = 100;

/// Configuration of [`FederalRegisterClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Scheme, host and port every request goes to, e.g. `https://www.federalregister.gov`.
    /// A path, if any, is a prefix for the API paths (for a replay server mounted below `/`).
    pub base_url: Url,
    /// Whole-request timeout, body included.
    pub timeout: Duration,
    /// Retries after the first attempt; `0` means one attempt only.
    pub max_retries: usize,
    pub min_backoff: Duration,
    /// Upper bound of every wait between attempts, `Retry-After` included.
    pub max_backoff: Duration,
    /// Largest response body accepted, JSON or XML.
    pub max_document_bytes: usize,
    pub user_agent: String,
    /// Which public source this client talks to (see [`Upstream`]).
    pub upstream: Upstream,
}

/// The public source a client is configured for. The rules of this module are the same for
/// each; the name goes into its log lines, and only the Federal Register's requests count in
/// the `entitywatch_federal_register_*` metrics (the list sources are counted by their syncs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Upstream {
    #[default]
    FederalRegister,
    /// The eCFR versioner (Supplement No. 4 to part 744).
    Ecfr,
    /// The Consolidated Screening List bulk file.
    Csl,
}

impl Upstream {
    pub fn as_str(self) -> &'static str {
        match self {
            Upstream::FederalRegister => "federal_register",
            Upstream::Ecfr => "ecfr",
            Upstream::Csl => "csl",
        }
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: Url::parse("https://www.federalregister.gov/")
                .expect("the default base URL is a valid constant"),
            timeout: Duration::from_secs(30),
            max_retries: 5,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_document_bytes: 16 * 1024 * 1024,
            user_agent: format!(
                "entitywatch/{} (Entity List watcher)",
                env!("CARGO_PKG_VERSION")
            ),
            upstream: Upstream::FederalRegister,
        }
    }
}

/// Why a Federal Register request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid Federal Register client configuration: {0}")]
    Config(String),
    #[error("{url} answered HTTP {status}: {body_excerpt}")]
    Http {
        url: String,
        status: u16,
        body_excerpt: String,
    },
    #[error("{url} did not answer within the configured timeout")]
    Timeout { url: String },
    #[error("cannot connect for {url}: {message}")]
    Connect { url: String, message: String },
    #[error("transport error on {url}: {message}")]
    Transport { url: String, message: String },
    /// The body was truncated, was not JSON, or was JSON of an unexpected shape.
    #[error("{url} returned a body that is not the expected JSON: {message}")]
    Decode { url: String, message: String },
    #[error("refusing to fetch {url}: only {allowed} may be contacted")]
    ForeignHost { url: String, allowed: String },
    #[error("{url} sent a body larger than {limit} bytes; refused")]
    TooLarge { url: String, limit: usize },
    #[error("inconsistent pagination at {url}: {message}")]
    Pagination { url: String, message: String },
    #[error("gave up on {url} after {attempts} attempts; last error: {last}")]
    RetriesExhausted {
        url: String,
        attempts: usize,
        last: String,
    },
}

/// What a conditional GET ([`FederalRegisterClient::fetch_conditional`]) returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConditionalBody {
    /// 304: the copy whose tag was sent is current.
    NotModified { etag: Option<String> },
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
    },
}

/// Counters for metrics. Cheap to read at any time; they only ever grow.
#[derive(Debug, Default)]
pub struct ClientStats {
    requests: AtomicU64,
    retries: AtomicU64,
    failures: AtomicU64,
    bytes_received: AtomicU64,
    foreign_host_refusals: AtomicU64,
}

impl ClientStats {
    /// HTTP requests sent (every attempt and every redirect hop counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    /// Waits scheduled before a new attempt.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
    /// Calls that ended in an error after all retries.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
    /// Body bytes read from successful responses.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }
    /// URLs refused because they pointed away from the configured host.
    pub fn foreign_host_refusals(&self) -> u64 {
        self.foreign_host_refusals.load(Ordering::Relaxed)
    }

    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The Federal Register API v1 client. Cheap to clone; clones share connections and stats.
#[derive(Debug, Clone)]
pub struct FederalRegisterClient {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    stats: Arc<ClientStats>,
}

impl FederalRegisterClient {
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        Self::build(config, true)
    }

    fn build(mut config: ClientConfig, system_proxy: bool) -> Result<Self, ClientError> {
        config.base_url = normalise_base(&config.base_url)?;
        if config.max_document_bytes == 0 {
            return Err(ClientError::Config(
                "max_document_bytes must be positive".into(),
            ));
        }
        if config.min_backoff > config.max_backoff {
            return Err(ClientError::Config(format!(
                "min_backoff {:?} exceeds max_backoff {:?}",
                config.min_backoff, config.max_backoff
            )));
        }
        // Redirects are followed by hand so that each hop passes the host rule.
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(config.user_agent.clone());
        if !system_proxy {
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(FederalRegisterClient {
            http,
            config: Arc::new(config),
            stats: Arc::new(ClientStats::default()),
        })
    }

    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// BIS final rules amending the Entity List published on or after `since`, oldest first,
    /// all pages.
    ///
    /// Deduplicated by document number (a document published while pages are read can shift
    /// into a page already seen) and sorted by (publication date, document number).
    pub async fn search_entity_list_rules(
        &self,
        since: NaiveDate,
    ) -> Result<Vec<DocumentSummary>, ClientError> {
        let mut url = self.endpoint("api/v1/documents.json")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("conditions[agencies][]", BIS_AGENCY_SLUG)
                .append_pair("conditions[type][]", "RULE")
                .append_pair("conditions[cfr][title]", "15")
                .append_pair("conditions[cfr][part]", "744")
                // Quoted: a phrase search, so "entity" and "list" apart do not match.
                .append_pair("conditions[term]", "\"Entity List\"")
                .append_pair(
                    "conditions[publication_date][gte]",
                    &since.format("%Y-%m-%d").to_string(),
                )
                .append_pair("order", "oldest")
                .append_pair("per_page", "100");
            for field in SEARCH_FIELDS {
                q.append_pair("fields[]", field);
            }
        }
        let raw: Vec<(RawDocument, Url)> = self.collect_pages(url).await?;
        let mut by_number: HashMap<String, DocumentSummary> = HashMap::new();
        for (doc, page_url) in raw {
            let summary = doc.into_summary(&page_url)?;
            by_number
                .entry(summary.document_number.clone())
                .or_insert(summary);
        }
        let mut out: Vec<DocumentSummary> = by_number.into_values().collect();
        out.sort_by(|a, b| {
            (a.publication_date, &a.document_number).cmp(&(b.publication_date, &b.document_number))
        });
        Ok(out)
    }

    /// BIS filings on public inspection today whose title or subjects mention the Entity List.
    pub async fn public_inspection_current(
        &self,
    ) -> Result<Vec<PublicInspectionDocument>, ClientError> {
        let url = self.endpoint("api/v1/public-inspection-documents/current.json")?;
        let raw: Vec<(RawPiDocument, Url)> = self.collect_pages(url).await?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (doc, page_url) in raw {
            let doc = doc.into_document(&page_url)?;
            if doc.is_bis_entity_list_filing() && seen.insert(doc.document_number.clone()) {
                out.push(doc);
            }
        }
        Ok(out)
    }

    /// The full-text XML of a rule, as bytes. `url` is usually a summary's `full_text_xml_url`
    /// and must pass the host rule of this module.
    pub async fn fetch_full_text_xml(&self, url: &str) -> Result<Vec<u8>, ClientError> {
        let base = self.config.base_url.clone();
        let target = self.resolve(url, &base)?;
        let fetched = self
            .with_retries(&target, || {
                self.fetch_once(&target, "application/xml, text/xml;q=0.9, */*;q=0.1", None)
            })
            .await?;
        Ok(fetched.body)
    }

    /// A body from another public source served on this client's base (the eCFR, the CSL bulk
    /// file: see `list_sources`), under the same host rule, size limit and retries as the
    /// Federal Register's own requests. `url` may be relative to the base. With
    /// `if_none_match` the GET is conditional and a 304 is [`ConditionalBody::NotModified`].
    pub(crate) async fn fetch_conditional(
        &self,
        url: &str,
        accept: &'static str,
        if_none_match: Option<&str>,
    ) -> Result<ConditionalBody, ClientError> {
        let base = self.config.base_url.clone();
        let target = self.resolve(url, &base)?;
        let fetched = self
            .with_retries(&target, || self.fetch_once(&target, accept, if_none_match))
            .await?;
        Ok(if fetched.not_modified {
            ConditionalBody::NotModified { etag: fetched.etag }
        } else {
            ConditionalBody::Body {
                bytes: fetched.body,
                etag: fetched.etag,
            }
        })
    }

    fn endpoint(&self, path: &str) -> Result<Url, ClientError> {
        self.config
            .base_url
            .join(path)
            .map_err(|e| ClientError::Config(format!("cannot build the URL for {path}: {e}")))
    }

    fn resolve(&self, raw: &str, relative_to: &Url) -> Result<Url, ClientError> {
        resolve_on_base(&self.config.base_url, raw, relative_to).inspect_err(|e| {
            if matches!(e, ClientError::ForeignHost { .. }) {
                ClientStats::add(&self.stats.foreign_host_refusals, 1);
                tracing::warn!(error = %e, "refused a URL from a Federal Register response");
            }
        })
    }

    /// Follows `next_page_url` from `first` until the server stops giving one, returning each
    /// result with the URL of the page it came from (for error messages).
    async fn collect_pages<R: DeserializeOwned>(
        &self,
        first: Url,
    ) -> Result<Vec<(R, Url)>, ClientError> {
        let mut out = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut pages = 0usize;
        let mut server_total: Option<usize> = None;
        let mut next = Some(first);
        while let Some(url) = next.take() {
            let limit = server_total.unwrap_or(MAX_PAGES_WITHOUT_TOTAL);
            if pages >= limit {
                // Stopping quietly could drop a rule; going on would read pages the server
                // says do not exist. Neither is safe, so say so.
                return Err(ClientError::Pagination {
                    url: loggable(&url),
                    message: format!("a next page is offered after {pages} of {limit} pages"),
                });
            }
            if !seen.insert(url.as_str().to_owned()) {
                return Err(ClientError::Pagination {
                    url: loggable(&url),
                    message: "next_page_url points back to a page already read".into(),
                });
            }
            let (page, page_url): (Page<R>, Url) = self.get_json(&url).await?;
            pages += 1;
            // The latest page wins: documents published while we read can add a page.
            server_total = page
                .total_pages
                .map(|t| usize::try_from(t).unwrap_or(usize::MAX));
            if page.count.is_some_and(|c| c >= 10_000) {
                tracing::warn!(
                    url = %loggable(&url),
                    "the Federal Register caps a search at 10,000 results; some are unreachable"
                );
            }
            out.extend(page.results.into_iter().map(|r| (r, page_url.clone())));
            next = match page.next_page_url.as_deref().map(str::trim) {
                Some(raw) if !raw.is_empty() => Some(self.resolve(raw, &page_url)?),
                _ => None,
            };
        }
        Ok(out)
    }
}
