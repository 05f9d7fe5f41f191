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

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use reqwest::header::{HeaderMap, ACCEPT, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::events::{normalise_document_number, SourceDocument};

/// The agency slug of the Bureau of Industry and Security, which publishes the Entity List.
pub const BIS_AGENCY_SLUG: &str = "industry-and-security-bureau";

/// Hosts whose URLs may be mapped onto a different configured base (see the module docs).
const OFFICIAL_HOSTS: &[&str] = &["www.federalregister.gov", "federalregister.gov"];

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

/// Redirects followed within one attempt. The API itself does not redirect today; a handful
/// covers an http→https or trailing-slash hop without letting a loop spin.
const MAX_REDIRECTS: usize = 5;

/// Pages followed when the server gives no `total_pages`. The API caps a search at 10,000
/// results, i.e. 100 pages of 100, so anything beyond that is a server bug.
const MAX_PAGES_WITHOUT_TOTAL: usize = 100;

/// How much of an error body is kept for the error message.
const BODY_EXCERPT_CHARS: usize = 300;

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

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// An agency as the API lists it. Agencies the Federal Register could not resolve carry only
/// `raw_name`, so every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agency {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub raw_name: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub parent_id: Option<u64>,
}

impl Agency {
    fn is_bis(&self) -> bool {
        if self.slug.as_deref() == Some(BIS_AGENCY_SLUG) {
            return true;
        }
        // Unresolved agencies have no slug; their printed name still says who they are.
        [&self.name, &self.raw_name]
            .into_iter()
            .flatten()
            .any(|n| collapse(n).to_lowercase().contains("industry and security"))
    }
}

/// One CFR part a document affects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CfrReference {
    pub title: Option<u32>,
    pub part: Option<u32>,
}

/// A published document as the search endpoint describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentSummary {
    /// Normalised with [`normalise_document_number`].
    pub document_number: String,
    /// Trimmed (the API pads many titles with spaces).
    pub title: String,
    /// As the API writes it, e.g. `Rule`.
    pub type_: String,
    pub publication_date: NaiveDate,
    pub effective_on: Option<NaiveDate>,
    /// The official page, kept as published (it is for people, never fetched here).
    pub html_url: String,
    /// As published; pass it to [`FederalRegisterClient::fetch_full_text_xml`], which applies
    /// the host rule.
    pub full_text_xml_url: Option<String>,
    /// e.g. `84 FR 54002`.
    pub citation: Option<String>,
    pub agencies: Vec<Agency>,
    pub cfr_references: Vec<CfrReference>,
    pub abstract_: Option<String>,
    pub action: Option<String>,
}

impl DocumentSummary {
    pub fn source_document(&self) -> SourceDocument {
        SourceDocument {
            document_number: self.document_number.clone(),
            publication_date: Some(self.publication_date),
            effective_date: self.effective_on,
            citation: self.citation.clone(),
            title: non_empty(&self.title),
            html_url: non_empty(&self.html_url),
        }
    }
}

/// A document on public inspection: filed, not yet published, text not final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicInspectionDocument {
    pub document_number: String,
    pub title: String,
    pub type_: String,
    /// `regular` or `special`.
    pub filing_type: Option<String>,
    pub filed_at: Option<DateTime<FixedOffset>>,
    /// The date the document is scheduled to be published.
    pub publication_date: Option<NaiveDate>,
    pub pdf_url: Option<String>,
    pub html_url: String,
    pub agencies: Vec<Agency>,
    pub toc_subject: Option<String>,
    pub toc_doc: Option<String>,
    /// `subject_1`..`subject_3`, those present.
    pub subjects: Vec<String>,
    pub editorial_note: Option<String>,
}

impl PublicInspectionDocument {
    /// The publication date is the scheduled one; the citation does not exist yet.
    pub fn source_document(&self) -> SourceDocument {
        SourceDocument {
            document_number: self.document_number.clone(),
            publication_date: self.publication_date,
            effective_date: None,
            citation: None,
            title: non_empty(&self.title),
            html_url: non_empty(&self.html_url),
        }
    }

    fn is_bis_entity_list_filing(&self) -> bool {
        let by_bis = self.agencies.iter().any(Agency::is_bis);
        let mut texts = std::iter::once(&self.title)
            .chain(self.toc_subject.iter())
            .chain(self.toc_doc.iter())
            .chain(self.subjects.iter());
        by_bis && texts.any(|t| mentions_entity_list(t))
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
                self.fetch_once(&target, "application/xml, text/xml;q=0.9, */*;q=0.1")
            })
            .await?;
        Ok(fetched.body)
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

    /// GET `url` and decode its JSON body, retrying as the module docs describe. Returns the
    /// URL finally read (after redirects), against which relative URLs in the body resolve.
    async fn get_json<T: DeserializeOwned>(&self, url: &Url) -> Result<(T, Url), ClientError> {
        self.with_retries(url, || async {
            let fetched = self.fetch_once(url, "application/json").await?;
            match serde_json::from_slice::<T>(&fetched.body) {
                Ok(v) => Ok((v, fetched.url)),
                Err(e) => {
                    // A cut-off or garbled body is a transport or server fault and may be fine
                    // next time; well-formed JSON of the wrong shape means the API changed.
                    let retryable = !e.is_data();
                    Err(Failure {
                        error: ClientError::Decode {
                            url: loggable(&fetched.url),
                            message: e.to_string(),
                        },
                        retryable,
                        retry_after: None,
                        status: None,
                    })
                }
            }
        })
        .await
    }

    async fn with_retries<T, F, Fut>(&self, url: &Url, mut op: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let attempts = AtomicUsize::new(0);
        let max_backoff = self.config.max_backoff;
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.config.min_backoff)
            .with_max_delay(self.config.max_backoff)
            .with_max_times(self.config.max_retries);
        let result = (|| {
            attempts.fetch_add(1, Ordering::Relaxed);
            op()
        })
        .retry(backoff)
        .when(|f: &Failure| f.retryable)
        .adjust(|f: &Failure, next: Option<Duration>| {
            // `next` is None once retries are used up; Retry-After never buys an extra one.
            next.map(|computed| f.retry_after.unwrap_or(computed).min(max_backoff))
        })
        .notify(|f: &Failure, delay: Duration| {
            ClientStats::add(&self.stats.retries, 1);
            crate::metrics::metrics().federal_register_retries.inc();
            tracing::warn!(
                url = %loggable(url),
                attempt = attempts.load(Ordering::Relaxed),
                status = f.status,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %f.error,
                "Federal Register request failed; retrying"
            );
        })
        .await;
        let outcome = if result.is_ok() { "success" } else { "failure" };
        crate::metrics::metrics()
            .federal_register_requests
            .with_label_values(&[outcome])
            .inc();
        result.map_err(|f| {
            ClientStats::add(&self.stats.failures, 1);
            if f.retryable {
                ClientError::RetriesExhausted {
                    url: loggable(url),
                    attempts: attempts.load(Ordering::Relaxed),
                    last: f.error.to_string(),
                }
            } else {
                f.error
            }
        })
    }

    /// One attempt: the request, any redirects, the status check and the bounded body read.
    async fn fetch_once(&self, start: &Url, accept: &'static str) -> Result<Fetched, Failure> {
        let mut url = start.clone();
        for _ in 0..=MAX_REDIRECTS {
            ClientStats::add(&self.stats.requests, 1);
            let response = self
                .http
                .get(url.clone())
                .header(ACCEPT, accept)
                .send()
                .await
                .map_err(|e| Failure::transport(&url, e))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match location {
                    Some(location) => {
                        url = self.resolve(&location, &url).map_err(Failure::fatal)?;
                        continue;
                    }
                    None => {
                        return Err(Failure::fatal(ClientError::Http {
                            url: loggable(&url),
                            status: status.as_u16(),
                            body_excerpt: "redirect without a Location header".into(),
                        }))
                    }
                }
            }
            if !status.is_success() {
                return Err(self.status_failure(&url, response).await);
            }
            let body = self.read_limited(&url, response).await?;
            ClientStats::add(&self.stats.bytes_received, body.len() as u64);
            return Ok(Fetched { url, body });
        }
        Err(Failure::fatal(ClientError::Http {
            url: loggable(start),
            status: 310,
            body_excerpt: format!("more than {MAX_REDIRECTS} redirects"),
        }))
    }

    async fn status_failure(&self, url: &Url, mut response: reqwest::Response) -> Failure {
        let status = response.status();
        let retry_after = if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::SERVICE_UNAVAILABLE
        {
            retry_after(response.headers(), Utc::now())
        } else {
            None
        };
        // Only the start of an error body is read: it is for a human, and it is untrusted.
        let mut head = Vec::new();
        while head.len() < 4 * BODY_EXCERPT_CHARS {
            match response.chunk().await {
                Ok(Some(chunk)) => head.extend_from_slice(&chunk),
                _ => break,
            }
        }
        Failure {
            error: ClientError::Http {
                url: loggable(url),
                status: status.as_u16(),
                body_excerpt: excerpt(&head),
            },
            retryable: status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
            retry_after,
            status: Some(status.as_u16()),
        }
    }

    async fn read_limited(
        &self,
        url: &Url,
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, Failure> {
        let limit = self.config.max_document_bytes;
        let too_large = || {
            Failure::fatal(ClientError::TooLarge {
                url: loggable(url),
                limit,
            })
        };
        let announced = response.content_length();
        if announced.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let capacity = announced.map_or(0, |n| usize::try_from(n).unwrap_or(limit).min(limit));
        let mut body = Vec::with_capacity(capacity);
        // Counted as it arrives: Content-Length can be absent (chunked) or describe the
        // compressed size, and neither bounds what decompression produces.
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Failure::transport(url, e))?
        {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// What one attempt produced when it failed, and whether another attempt may help.
struct Failure {
    error: ClientError,
    retryable: bool,
    retry_after: Option<Duration>,
    status: Option<u16>,
}

impl Failure {
    fn fatal(error: ClientError) -> Self {
        Failure {
            error,
            retryable: false,
            retry_after: None,
            status: None,
        }
    }

    fn transport(url: &Url, e: reqwest::Error) -> Self {
        let url_s = loggable(url);
        let message = error_chain(&e);
        let (error, retryable) = if e.is_timeout() {
            (ClientError::Timeout { url: url_s }, true)
        } else if e.is_connect() {
            (
                ClientError::Connect {
                    url: url_s,
                    message,
                },
                true,
            )
        } else if e.is_builder() {
            (
                ClientError::Transport {
                    url: url_s,
                    message,
                },
                false,
            )
        } else {
            (
                ClientError::Transport {
                    url: url_s,
                    message,
                },
                true,
            )
        };
        Failure {
            error,
            retryable,
            retry_after: None,
            status: None,
        }
    }
}

struct Fetched {
    url: Url,
    body: Vec<u8>,
}

/// The paginated envelope shared by the search and public-inspection endpoints. An empty
/// search answer has no `results` key at all.
#[derive(Debug, Deserialize)]
struct Page<R> {
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    total_pages: Option<u64>,
    #[serde(default)]
    next_page_url: Option<String>,
    #[serde(default = "Vec::new")]
    results: Vec<R>,
}

#[derive(Debug, Deserialize)]
struct RawDocument {
    #[serde(default)]
    document_number: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default, rename = "type")]
    type_: Option<String>,
    #[serde(default)]
    publication_date: Option<String>,
    #[serde(default)]
    effective_on: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    full_text_xml_url: Option<String>,
    #[serde(default)]
    citation: Option<String>,
    #[serde(default)]
    agencies: Option<Vec<Agency>>,
    #[serde(default)]
    cfr_references: Option<Vec<RawCfrReference>>,
    #[serde(default, rename = "abstract")]
    abstract_: Option<String>,
    #[serde(default)]
    action: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawCfrReference {
    #[serde(default)]
    title: Option<serde_json::Value>,
    #[serde(default)]
    part: Option<serde_json::Value>,
}

impl RawDocument {
    /// A document without a number or publication date cannot be tracked; failing loudly
    /// beats dropping what may be the rule someone is waiting for.
    fn into_summary(self, page_url: &Url) -> Result<DocumentSummary, ClientError> {
        let decode = |message: String| ClientError::Decode {
            url: loggable(page_url),
            message,
        };
        let document_number = self
            .document_number
            .as_deref()
            .map(normalise_document_number)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| decode("a search result has no document_number".into()))?;
        let raw_date = self.publication_date.as_deref().unwrap_or("");
        let publication_date = parse_date(raw_date).ok_or_else(|| {
            decode(format!(
                "document {document_number} has no valid publication_date ({raw_date:?})"
            ))
        })?;
        let effective_on = self.effective_on.as_deref().and_then(|raw| {
            let parsed = parse_date(raw);
            if parsed.is_none() && !raw.trim().is_empty() {
                tracing::debug!(%document_number, raw, "ignoring an unreadable effective_on");
            }
            parsed
        });
        Ok(DocumentSummary {
            title: trimmed(self.title),
            type_: trimmed(self.type_),
            publication_date,
            effective_on,
            html_url: trimmed(self.html_url),
            full_text_xml_url: self.full_text_xml_url.as_deref().and_then(non_empty),
            citation: self.citation.as_deref().and_then(non_empty),
            agencies: self.agencies.unwrap_or_default(),
            cfr_references: self
                .cfr_references
                .unwrap_or_default()
                .into_iter()
                .map(|r| CfrReference {
                    title: lenient_u32(r.title.as_ref()),
                    part: lenient_u32(r.part.as_ref()),
                })
                .collect(),
            abstract_: self.abstract_.as_deref().and_then(non_empty),
            action: self.action.as_deref().and_then(non_empty),
            document_number,
        })
    }
}

#[derive(Debug, Deserialize)]
struct RawPiDocument {
    #[serde(default)]
    document_number: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default, rename = "type")]
    type_: Option<String>,
    #[serde(default)]
    filing_type: Option<String>,
    #[serde(default)]
    filed_at: Option<String>,
    #[serde(default)]
    publication_date: Option<String>,
    #[serde(default)]
    pdf_url: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    agencies: Option<Vec<Agency>>,
    #[serde(default)]
    toc_subject: Option<String>,
    #[serde(default)]
    toc_doc: Option<String>,
    #[serde(default)]
    subject_1: Option<String>,
    #[serde(default)]
    subject_2: Option<String>,
    #[serde(default)]
    subject_3: Option<String>,
    #[serde(default)]
    editorial_note: Option<String>,
}

impl RawPiDocument {
    fn into_document(self, page_url: &Url) -> Result<PublicInspectionDocument, ClientError> {
        let document_number = self
            .document_number
            .as_deref()
            .map(normalise_document_number)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ClientError::Decode {
                url: loggable(page_url),
                message: "a public inspection document has no document_number".into(),
            })?;
        Ok(PublicInspectionDocument {
            document_number,
            title: trimmed(self.title),
            type_: trimmed(self.type_),
            filing_type: self.filing_type.as_deref().and_then(non_empty),
            filed_at: self
                .filed_at
                .as_deref()
                .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok()),
            publication_date: self.publication_date.as_deref().and_then(parse_date),
            pdf_url: self.pdf_url.as_deref().and_then(non_empty),
            html_url: trimmed(self.html_url),
            agencies: self.agencies.unwrap_or_default(),
            toc_subject: self.toc_subject.as_deref().and_then(non_empty),
            toc_doc: self.toc_doc.as_deref().and_then(non_empty),
            subjects: [self.subject_1, self.subject_2, self.subject_3]
                .iter()
                .flatten()
                .filter_map(|s| non_empty(s))
                .collect(),
            editorial_note: self.editorial_note.as_deref().and_then(non_empty),
        })
    }
}

/// Checks the configured base and reduces it to what requests are built from.
fn normalise_base(base: &Url) -> Result<Url, ClientError> {
    if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
        return Err(ClientError::Config(format!(
            "base_url must be an http(s) URL with a host, got {}",
            base.origin().ascii_serialization()
        )));
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(ClientError::Config(
            "base_url must not carry credentials".into(),
        ));
    }
    let mut out = base.clone();
    out.set_query(None);
    out.set_fragment(None);
    // Without the trailing slash, joining "api/v1/..." would replace the last segment.
    if !out.path().ends_with('/') {
        let path = format!("{}/", out.path());
        out.set_path(&path);
    }
    Ok(out)
}

/// Applies the host rule of the module docs to a URL found in a response: resolves `raw`
/// against `relative_to` and returns a URL on `base`'s origin, or refuses it.
fn resolve_on_base(base: &Url, raw: &str, relative_to: &Url) -> Result<Url, ClientError> {
    let mut url = relative_to
        .join(raw.trim())
        .map_err(|e| ClientError::Decode {
            url: loggable(relative_to),
            message: format!("a URL in the response does not parse: {e}"),
        })?;
    let allowed = base.origin().ascii_serialization();
    let refuse = |url: &Url| ClientError::ForeignHost {
        url: redacted(url),
        allowed: allowed.clone(),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse(&url));
    }
    // Credentials in a response URL are never sent anywhere.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse(&url));
    }
    url.set_fragment(None);
    if url.origin() == base.origin() {
        return Ok(url);
    }
    if !is_official(&url) {
        return Err(refuse(&url));
    }
    let mut mapped = base.clone();
    let path = format!(
        "{}{}",
        base.path().trim_end_matches('/'),
        if url.path().starts_with('/') {
            url.path().to_owned()
        } else {
            format!("/{}", url.path())
        }
    );
    mapped.set_path(&path);
    mapped.set_query(url.query());
    Ok(mapped)
}

fn is_official(url: &Url) -> bool {
    let default_port = matches!(
        (url.scheme(), url.port_or_known_default()),
        ("https", Some(443)) | ("http", Some(80))
    );
    default_port
        && url
            .host_str()
            .is_some_and(|h| OFFICIAL_HOSTS.iter().any(|o| h.eq_ignore_ascii_case(o)))
}

/// `Retry-After` as a wait: delta-seconds or an HTTP date (a date in the past means now).
fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Path and query only: the form in which URLs reach logs and error messages.
fn loggable(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{}", url.path(), q),
        None => url.path().to_owned(),
    }
}

/// A foreign URL for an error message: whose host it was matters, its query does not.
fn redacted(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{}://{}:{}{}", url.scheme(), host, port, url.path()),
        None => format!("{}://{}{}", url.scheme(), host, url.path()),
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(BODY_EXCERPT_CHARS)
        .collect();
    collapse(&cleaned)
}

fn parse_date(raw: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").ok()
}

fn lenient_u32(value: Option<&serde_json::Value>) -> Option<u32> {
    match value? {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn mentions_entity_list(s: &str) -> bool {
    collapse(s).to_lowercase().contains("entity list")
}

fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

fn trimmed(s: Option<String>) -> String {
    s.as_deref().map(str::trim).unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;
    use std::time::Instant;

    use axum::body::Body;
    use axum::http::{header, HeaderValue, Uri};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use axum::Router;
    use serde_json::{json, Value};

    /// A real search result, trimmed to the requested fields: FR Doc. 2017-27451 from the
    /// recorded response `documents_2017-27513_2017-27451_default_fields.json`
    /// (usnationalarchives/federalregister-web @ fd448bd9, spec/vcr/fr/...). Tests change its
    /// number, type and dates to make BIS rules of it.
    fn real_result() -> Value {
        json!({
            "abstract": "The Board of Governors of the Federal Reserve System (Board) is adopting a proposal to extend for three years, without revision, the Reporting, Recordkeeping, and Disclosure Requirements Associated with Proprietary Trading and Certain Interests in and Relationships with Covered Funds (Regulation VV) (FR VV; OMB No. 7100-0360).",
            "action": "On August 2, 2017, the Board published a notice in the Federal Register (82 FR 35947) requesting public comment for 60 days on the extension, without revision, of the FR VV.",
            "agencies": [{
                "raw_name": "FEDERAL RESERVE SYSTEM",
                "name": "Federal Reserve System",
                "id": 188,
                "url": "https://www.federalregister.gov/agencies/federal-reserve-system",
                "json_url": "https://www.federalregister.gov/api/v1/agencies/188.json",
                "parent_id": null,
                "slug": "federal-reserve-system"
            }],
            "cfr_references": [],
            "citation": "82 FR 60602",
            "document_number": "2017-27451",
            "effective_on": null,
            "full_text_xml_url": "https://www.federalregister.gov/documents/full_text/xml/2017/12/21/2017-27451.xml",
            "html_url": "https://www.federalregister.gov/documents/2017/12/21/2017-27451/agency-information-collection-activities-announcement-of-board-approval-under-delegated-authority",
            "publication_date": "2017-12-21",
            "title": "Agency Information Collection Activities: Announcement of Board Approval Under Delegated Authority and Submission to OMB",
            "type": "Notice"
        })
    }

    fn bis_agencies() -> Value {
        json!([
            {"raw_name": "DEPARTMENT OF COMMERCE", "name": "Commerce Department", "id": 54,
             "url": "https://www.federalregister.gov/agencies/commerce-department",
             "json_url": "https://www.federalregister.gov/api/v1/agencies/54.json",
             "parent_id": null, "slug": "commerce-department"},
            {"raw_name": "Bureau of Industry and Security", "name": "Industry and Security Bureau",
             "id": 241, "url": "https://www.federalregister.gov/agencies/industry-and-security-bureau",
             "json_url": "https://www.federalregister.gov/api/v1/agencies/241.json",
             "parent_id": 54, "slug": "industry-and-security-bureau"}
        ])
    }

    fn bis_rule(number: &str, date: &str) -> Value {
        let mut r = real_result();
        let (y, m, d) = (&date[0..4], &date[5..7], &date[8..10]);
        r["document_number"] = json!(number);
        r["publication_date"] = json!(date);
        r["effective_on"] = json!(date);
        r["type"] = json!("Rule");
        r["title"] = json!("Addition of Entities to the Entity List  ");
        r["agencies"] = bis_agencies();
        r["cfr_references"] = json!([{"title": 15, "part": 744, "chapter": "VII"}]);
        r["full_text_xml_url"] = json!(format!(
            "https://www.federalregister.gov/documents/full_text/xml/{y}/{m}/{d}/{number}.xml"
        ));
        r
    }

    fn page(results: Vec<Value>, total_pages: u64, next: Option<String>) -> Value {
        let mut v = json!({
            "count": 5,
            "description": "Documents matching 'Entity List'",
            "total_pages": total_pages,
            "results": results
        });
        if let Some(n) = next {
            v["next_page_url"] = json!(n);
        }
        v
    }

    fn json_response(v: &Value) -> Response {
        (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            v.to_string(),
        )
            .into_response()
    }

    async fn serve(router: Router) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Url::parse(&format!("http://{addr}/")).expect("local URL")
    }

    fn test_config(base: Url) -> ClientConfig {
        ClientConfig {
            base_url: base,
            timeout: Duration::from_secs(5),
            max_retries: 3,
            min_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(20),
            max_document_bytes: 1024 * 1024,
            user_agent: "entitywatch-test".into(),
        }
    }

    fn client(config: ClientConfig) -> FederalRegisterClient {
        FederalRegisterClient::build(config, false).expect("client builds")
    }

    fn counter() -> Arc<AtomicUsize> {
        Arc::new(AtomicUsize::new(0))
    }

    fn since() -> NaiveDate {
        NaiveDate::from_ymd_opt(2019, 1, 1).expect("valid date")
    }

    #[tokio::test]
    async fn search_follows_next_page_url_dedupes_and_sorts() {
        let queries: Arc<Mutex<Vec<String>>> = Arc::default();
        let port = Arc::new(AtomicUsize::new(0));
        let (q, p) = (queries.clone(), port.clone());
        let router = Router::new().route(
            "/api/v1/documents.json",
            get(move |uri: Uri| {
                let (q, p) = (q.clone(), p.clone());
                async move {
                    let query = uri.query().unwrap_or("").to_owned();
                    q.lock().expect("lock").push(query.clone());
                    let local = format!("http://127.0.0.1:{}", p.load(Ordering::SeqCst));
                    let body = if query.contains("page=3") {
                        // Last page: no next_page_url at all, as in the recorded responses.
                        // The en dash form of a number already seen must not duplicate it.
                        page(
                            vec![
                                bis_rule("2020-10000", "2020-05-22"),
                                bis_rule("2019\u{2013}22210", "2019-10-09"),
                            ],
                            3,
                            None,
                        )
                    } else if query.contains("page=2") {
                        page(
                            vec![bis_rule("2019-22210", "2019-10-09")],
                            3,
                            Some(format!("{local}/api/v1/documents.json?page=3&per_page=100")),
                        )
                    } else {
                        page(
                            vec![
                                bis_rule("2019-13245", "2019-06-24"),
                                bis_rule("2019-10616", "2019-05-21"),
                            ],
                            3,
                            // The API answers with its official host; it must be mapped here.
                            Some(
                                "https://www.federalregister.gov/api/v1/documents.json?page=2&per_page=100"
                                    .into(),
                            ),
                        )
                    };
                    json_response(&body)
                }
            }),
        );
        let base = serve(router).await;
        port.store(base.port().expect("local port") as usize, Ordering::SeqCst);
        let c = client(test_config(base));
        let docs = c
            .search_entity_list_rules(since())
            .await
            .expect("search succeeds");

        let numbers: Vec<&str> = docs.iter().map(|d| d.document_number.as_str()).collect();
        assert_eq!(
            numbers,
            ["2019-10616", "2019-13245", "2019-22210", "2020-10000"]
        );
        let first = &docs[0];
        assert_eq!(first.title, "Addition of Entities to the Entity List");
        assert_eq!(first.type_, "Rule");
        assert_eq!(first.citation.as_deref(), Some("82 FR 60602"));
        assert_eq!(
            first.cfr_references,
            [CfrReference {
                title: Some(15),
                part: Some(744)
            }]
        );
        assert!(first.agencies.iter().any(Agency::is_bis));
        let src = first.source_document();
        assert_eq!(src.document_number, "2019-10616");
        assert_eq!(src.publication_date, NaiveDate::from_ymd_opt(2019, 5, 21));
        assert_eq!(
            src.title.as_deref(),
            Some("Addition of Entities to the Entity List")
        );

        let queries = queries.lock().expect("lock").clone();
        assert_eq!(queries.len(), 3, "three pages, no more: {queries:?}");
        let first_query: Vec<(String, String)> = url::form_urlencoded::parse(queries[0].as_bytes())
            .into_owned()
            .collect();
        for (k, v) in [
            ("conditions[agencies][]", "industry-and-security-bureau"),
            ("conditions[type][]", "RULE"),
            ("conditions[cfr][title]", "15"),
            ("conditions[cfr][part]", "744"),
            ("conditions[term]", "\"Entity List\""),
            ("conditions[publication_date][gte]", "2019-01-01"),
            ("order", "oldest"),
            ("per_page", "100"),
            ("fields[]", "full_text_xml_url"),
            ("fields[]", "effective_on"),
        ] {
            assert!(
                first_query.contains(&(k.to_owned(), v.to_owned())),
                "missing {k}={v} in {first_query:?}"
            );
        }
        assert_eq!(c.stats().requests(), 3);
        assert_eq!(c.stats().retries(), 0);
    }

    #[tokio::test]
    async fn empty_search_without_results_key_is_empty() {
        let router = Router::new().route(
            "/api/v1/documents.json",
            get(|| async {
                json_response(&json!({"description": "Documents matching 'x'", "count": 0}))
            }),
        );
        let c = client(test_config(serve(router).await));
        let docs = c.search_entity_list_rules(since()).await.expect("empty ok");
        assert!(docs.is_empty());
    }

    #[tokio::test]
    async fn server_error_then_success_is_retried() {
        let hits = counter();
        let h = hits.clone();
        let router = Router::new().route(
            "/api/v1/documents.json",
            get(move || {
                let h = h.clone();
                async move {
                    if h.fetch_add(1, Ordering::SeqCst) == 0 {
                        (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response()
                    } else {
                        json_response(&page(vec![bis_rule("2019-22210", "2019-10-09")], 1, None))
                    }
                }
            }),
        );
        let c = client(test_config(serve(router).await));
        let docs = c.search_entity_list_rules(since()).await.expect("retried");
        assert_eq!(docs.len(), 1);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(c.stats().retries(), 1);
    }

    #[tokio::test]
    async fn too_many_requests_honours_retry_after_seconds() {
        let hits = counter();
        let h = hits.clone();
        let router = Router::new().route(
            "/api/v1/documents.json",
            get(move || {
                let h = h.clone();
                async move {
                    if h.fetch_add(1, Ordering::SeqCst) == 0 {
                        (
                            StatusCode::TOO_MANY_REQUESTS,
                            [(header::RETRY_AFTER, "1")],
                            "slow down",
                        )
                            .into_response()
                    } else {
                        json_response(&page(vec![], 0, None))
                    }
                }
            }),
        );
        let mut config = test_config(serve(router).await);
        config.max_backoff = Duration::from_secs(5);
        let c = client(config);
        let started = Instant::now();
        c.search_entity_list_rules(since()).await.expect("retried");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(950),
            "waited only {waited:?}"
        );
        assert!(waited < Duration::from_secs(4), "waited {waited:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn retry_after_is_capped_by_max_backoff() {
        let hits = counter();
        let h = hits.clone();
        let router = Router::new().route(
            "/api/v1/documents.json",
            get(move || {
                let h = h.clone();
                async move {
                    if h.fetch_add(1, Ordering::SeqCst) == 0 {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [(header::RETRY_AFTER, "3600")],
                            "maintenance",
                        )
                            .into_response()
                    } else {
                        json_response(&page(vec![], 0, None))
                    }
                }
            }),
        );
        let c = client(test_config(serve(router).await));
        let started = Instant::now();
        c.search_entity_list_rules(since()).await.expect("retried");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn client_errors_other_than_429_are_not_retried() {
        let hits = counter();
        let h = hits.clone();
        let router = Router::new().route(
            "/api/v1/documents.json",
            get(move || {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    (
                        StatusCode::BAD_REQUEST,
                        "{\"errors\":{\"conditions\":\"bad\"}}",
                    )
                        .into_response()
                }
            }),
        );
        let c = client(test_config(serve(router).await));
        let err = c.search_entity_list_rules(since()).await.expect_err("400");
        match err {
            ClientError::Http {
                status,
                body_excerpt,
                url,
            } => {
                assert_eq!(status, 400);
                assert!(body_excerpt.contains("errors"));
                assert!(url.starts_with("/api/v1/documents.json?"), "{url}");
            }
            other => panic!("expected Http, got {other:?}"),
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(c.stats().failures(), 1);
    }

    #[tokio::test]
    async fn persistent_server_errors_exhaust_retries() {
        let hits = counter();
        let h = hits.clone();
        let router = Router::new().route(
            "/api/v1/documents.json",
            get(move || {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    StatusCode::BAD_GATEWAY.into_response()
                }
            }),
        );
        let c = client(test_config(serve(router).await));
        let err = c.search_entity_list_rules(since()).await.expect_err("502s");
        match err {
            ClientError::RetriesExhausted { attempts, last, .. } => {
                assert_eq!(attempts, 4);
                assert!(last.contains("502"), "{last}");
            }
            other => panic!("expected RetriesExhausted, got {other:?}"),
        }
        assert_eq!(hits.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn timeout_then_success_is_retried() {
        let hits = counter();
        let h = hits.clone();
        let router = Router::new().route(
            "/api/v1/documents.json",
            get(move || {
                let h = h.clone();
                async move {
                    if h.fetch_add(1, Ordering::SeqCst) == 0 {
                        tokio::time::sleep(Duration::from_millis(800)).await;
                    }
                    json_response(&page(vec![bis_rule("2019-22210", "2019-10-09")], 1, None))
                }
            }),
        );
        let mut config = test_config(serve(router).await);
        config.timeout = Duration::from_millis(200);
        let c = client(config);
        let docs = c.search_entity_list_rules(since()).await.expect("retried");
        assert_eq!(docs.len(), 1);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn truncated_json_is_retried_then_fails_clearly() {
        let hits = counter();
        let h = hits.clone();
        let router = Router::new().route(
            "/api/v1/documents.json",
            get(move || {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    let full =
                        page(vec![bis_rule("2019-22210", "2019-10-09")], 1, None).to_string();
                    full[..full.len() / 2].to_owned().into_response()
                }
            }),
        );
        let c = client(test_config(serve(router).await));
        let err = c
            .search_entity_list_rules(since())
            .await
            .expect_err("cut off");
        match err {
            ClientError::RetriesExhausted { attempts, last, .. } => {
                assert_eq!(attempts, 4);
                assert!(last.contains("not the expected JSON"), "{last}");
                assert!(last.contains("EOF"), "{last}");
            }
            other => panic!("expected RetriesExhausted, got {other:?}"),
        }
        assert_eq!(hits.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn json_of_the_wrong_shape_fails_without_retry() {
        let hits = counter();
        let h = hits.clone();
        let router = Router::new().route(
            "/api/v1/documents.json",
            get(move || {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    json_response(&json!({"count": 1, "results": "not a list"}))
                }
            }),
        );
        let c = client(test_config(serve(router).await));
        let err = c
            .search_entity_list_rules(since())
            .await
            .expect_err("shape");
        assert!(matches!(err, ClientError::Decode { .. }), "{err:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn result_without_publication_date_is_a_decode_error() {
        let router = Router::new().route(
            "/api/v1/documents.json",
            get(|| async {
                let mut r = bis_rule("2019-22210", "2019-10-09");
                r["publication_date"] = Value::Null;
                json_response(&page(vec![r], 1, None))
            }),
        );
        let c = client(test_config(serve(router).await));
        let err = c
            .search_entity_list_rules(since())
            .await
            .expect_err("no date");
        match err {
            ClientError::Decode { message, .. } => assert!(message.contains("2019-22210")),
            other => panic!("expected Decode, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn foreign_next_page_url_is_refused_and_never_fetched() {
        let hits = counter();
        let h = hits.clone();
        let router = Router::new().route(
            "/api/v1/documents.json",
            get(move || {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    json_response(&page(
                        vec![bis_rule("2019-22210", "2019-10-09")],
                        2,
                        Some(
                            "https://evil.example.com/api/v1/documents.json?page=2&token=x".into(),
                        ),
                    ))
                }
            }),
        );
        let c = client(test_config(serve(router).await));
        let err = c
            .search_entity_list_rules(since())
            .await
            .expect_err("foreign");
        match err {
            ClientError::ForeignHost { url, allowed } => {
                assert_eq!(url, "https://evil.example.com/api/v1/documents.json");
                assert!(allowed.starts_with("http://127.0.0.1:"), "{allowed}");
            }
            other => panic!("expected ForeignHost, got {other:?}"),
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(c.stats().foreign_host_refusals(), 1);
    }

    #[tokio::test]
    async fn pages_beyond_total_pages_are_not_read() {
        let hits = counter();
        let h = hits.clone();
        let router = Router::new().route(
            "/api/v1/documents.json",
            get(move || {
                let h = h.clone();
                async move {
                    let n = h.fetch_add(1, Ordering::SeqCst) + 2;
                    json_response(&page(
                        vec![],
                        1,
                        Some(format!("/api/v1/documents.json?page={n}")),
                    ))
                }
            }),
        );
        let c = client(test_config(serve(router).await));
        let err = c
            .search_entity_list_rules(since())
            .await
            .expect_err("overrun");
        assert!(matches!(err, ClientError::Pagination { .. }), "{err:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn full_text_on_the_official_host_is_fetched_from_the_base() {
        let paths: Arc<Mutex<Vec<String>>> = Arc::default();
        let p = paths.clone();
        let router = Router::new().route(
            "/documents/full_text/xml/2019/10/09/2019-22210.xml",
            get(move |uri: Uri| {
                let p = p.clone();
                async move {
                    p.lock().expect("lock").push(uri.to_string());
                    (
                        [(header::CONTENT_TYPE, "text/xml")],
                        "<RULE><PREAMB/></RULE>",
                    )
                        .into_response()
                }
            }),
        );
        let c = client(test_config(serve(router).await));
        let xml = c
            .fetch_full_text_xml(
                "https://www.federalregister.gov/documents/full_text/xml/2019/10/09/2019-22210.xml",
            )
            .await
            .expect("mapped onto the local server");
        assert_eq!(xml, b"<RULE><PREAMB/></RULE>");
        assert_eq!(
            paths.lock().expect("lock").as_slice(),
            ["/documents/full_text/xml/2019/10/09/2019-22210.xml"]
        );
    }

    #[tokio::test]
    async fn foreign_full_text_url_is_refused() {
        let hits = counter();
        let h = hits.clone();
        let router = Router::new().fallback(move || {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                "should not be reached"
            }
        });
        let c = client(test_config(serve(router).await));
        for url in [
            "https://www.govinfo.gov/content/pkg/FR-2019-10-09/xml/2019-22210.xml",
            "https://www.federalregister.gov.evil.example/x.xml",
            "https://www.federalregister.gov:8443/x.xml",
            "http://127.0.0.2/x.xml",
            "file:///etc/passwd",
        ] {
            let err = c.fetch_full_text_xml(url).await.expect_err(url);
            assert!(
                matches!(err, ClientError::ForeignHost { .. }),
                "{url}: {err:?}"
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn redirect_to_the_official_host_is_followed_on_the_base() {
        let router = Router::new()
            .route(
                "/documents/full_text/xml/old.xml",
                get(|| async {
                    (
                        StatusCode::MOVED_PERMANENTLY,
                        [(
                            header::LOCATION,
                            "https://www.federalregister.gov/documents/full_text/xml/new.xml",
                        )],
                    )
                        .into_response()
                }),
            )
            .route(
                "/documents/full_text/xml/new.xml",
                get(|| async { "<RULE/>".into_response() }),
            );
        let c = client(test_config(serve(router).await));
        let xml = c
            .fetch_full_text_xml("/documents/full_text/xml/old.xml")
            .await
            .expect("followed");
        assert_eq!(xml, b"<RULE/>");
        assert_eq!(c.stats().requests(), 2);
    }

    #[tokio::test]
    async fn redirect_to_a_foreign_host_is_refused() {
        let router = Router::new().route(
            "/documents/full_text/xml/a.xml",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "https://evil.example.com/a.xml")],
                )
                    .into_response()
            }),
        );
        let c = client(test_config(serve(router).await));
        let err = c
            .fetch_full_text_xml("/documents/full_text/xml/a.xml")
            .await
            .expect_err("foreign redirect");
        assert!(matches!(err, ClientError::ForeignHost { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn too_large_bodies_are_refused_with_or_without_content_length() {
        let router = Router::new()
            .route(
                "/announced.xml",
                get(|| async { vec![b'x'; 4096].into_response() }),
            )
            .route(
                "/streamed.xml",
                get(|| async {
                    let chunks = (0..8).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 1024]));
                    Response::new(Body::from_stream(futures::stream::iter(chunks)))
                }),
            );
        let mut config = test_config(serve(router).await);
        config.max_document_bytes = 2048;
        let c = client(config);
        for path in ["/announced.xml", "/streamed.xml"] {
            let err = c.fetch_full_text_xml(path).await.expect_err(path);
            match err {
                ClientError::TooLarge { limit, url } => {
                    assert_eq!(limit, 2048);
                    assert_eq!(url, path);
                }
                other => panic!("{path}: expected TooLarge, got {other:?}"),
            }
        }
        // Exactly at the limit is accepted.
        let router = Router::new().route(
            "/exact.xml",
            get(|| async { vec![b'z'; 2048].into_response() }),
        );
        let mut config = test_config(serve(router).await);
        config.max_document_bytes = 2048;
        let body = client(config)
            .fetch_full_text_xml("/exact.xml")
            .await
            .expect("at the limit");
        assert_eq!(body.len(), 2048);
    }

    fn pi_doc(number: &str, title: &str, agencies: Value) -> Value {
        json!({
            "agencies": agencies,
            "agency_names": ["Industry and Security Bureau"],
            "document_number": number,
            "filed_at": "2024-09-12T08:45:00.000-04:00",
            "filing_type": "regular",
            "html_url": format!("https://www.federalregister.gov/public-inspection/{number}/x"),
            "pdf_url": format!("https://public-inspection.federalregister.gov/{number}.pdf"),
            "publication_date": "2024-09-16",
            "title": title,
            "toc_doc": null,
            "toc_subject": null,
            "type": "Rule"
        })
    }

    #[tokio::test]
    async fn public_inspection_keeps_only_bis_entity_list_filings() {
        let router = Router::new().route(
            "/api/v1/public-inspection-documents/current.json",
            get(|| async {
                let treasury = json!([{"raw_name": "DEPARTMENT OF THE TREASURY",
                    "name": "Treasury Department", "id": 497, "parent_id": null,
                    "slug": "treasury-department"}]);
                let unresolved_bis = json!([{"raw_name": "BUREAU OF INDUSTRY AND SECURITY"}]);
                let mut by_subject = pi_doc("2024-20003", "Additions", bis_agencies());
                by_subject["toc_subject"] = json!("Entity List:");
                let docs = vec![
                    pi_doc(
                        "2024-20001",
                        "Addition of Entities to the Entity List ",
                        bis_agencies(),
                    ),
                    pi_doc(
                        "2024-20002",
                        "Export Administration Regulations: Wassenaar",
                        bis_agencies(),
                    ),
                    by_subject,
                    pi_doc(
                        "2024-20004",
                        "Sanctions; Entity List cross-reference",
                        treasury,
                    ),
                    pi_doc(
                        "2024\u{2013}20005",
                        "Revisions to the Entity\nList",
                        unresolved_bis,
                    ),
                ];
                json_response(&json!({"count": docs.len(), "results": docs}))
            }),
        );
        let c = client(test_config(serve(router).await));
        let docs = c.public_inspection_current().await.expect("listed");
        let numbers: Vec<&str> = docs.iter().map(|d| d.document_number.as_str()).collect();
        assert_eq!(numbers, ["2024-20001", "2024-20003", "2024-20005"]);
        let first = &docs[0];
        assert_eq!(first.title, "Addition of Entities to the Entity List");
        assert_eq!(first.filing_type.as_deref(), Some("regular"));
        assert_eq!(
            first.filed_at.map(|t| t.to_rfc3339()),
            Some("2024-09-12T08:45:00-04:00".to_owned())
        );
        let src = first.source_document();
        assert_eq!(src.publication_date, NaiveDate::from_ymd_opt(2024, 9, 16));
        assert_eq!(src.citation, None);
    }

    #[test]
    fn real_recorded_search_page_decodes() {
        // The envelope and first result of search_documents_pubdate_2016-02-29_per_page1000.json
        // (usnationalarchives/federalregister-web @ fd448bd9), with an unresolved agency from
        // the same file.
        let body = r#"{"count":129,"description":"Documents published on 02/29/2016","total_pages":1,
          "results":[{"agencies":[{"raw_name":"OFFICE OF PERSONNEL MANAGEMENT","name":"Personnel Management Office","id":406,
          "url":"https://www.federalregister.gov/agencies/personnel-management-office","json_url":"https://www.federalregister.gov/api/v1/agencies/406.json",
          "parent_id":null,"slug":"personnel-management-office"},{"raw_name":"Office of the Secretary"}],
          "citation":"81 FR 10057","document_number":"2016-04322","end_page":10057,
          "html_url":"https://www.federalregister.gov/documents/2016/02/29/2016-04322/federal-long-term-care-insurance-program-eligibility-corrections",
          "pdf_url":"https://www.gpo.gov/fdsys/pkg/FR-2016-02-29/pdf/2016-04322.pdf","publication_date":"2016-02-29","start_page":10057,
          "title":"Federal Long Term Care Insurance Program Eligibility; Corrections"}]}"#;
        let page: Page<RawDocument> = serde_json::from_str(body).expect("real shape decodes");
        assert_eq!(page.total_pages, Some(1));
        assert!(page.next_page_url.is_none());
        let base = Url::parse("https://www.federalregister.gov/").expect("url");
        let docs: Vec<DocumentSummary> = page
            .results
            .into_iter()
            .map(|r| r.into_summary(&base).expect("summary"))
            .collect();
        assert_eq!(docs[0].document_number, "2016-04322");
        assert_eq!(docs[0].citation.as_deref(), Some("81 FR 10057"));
        assert_eq!(
            docs[0].agencies[1].raw_name.as_deref(),
            Some("Office of the Secretary")
        );
        assert_eq!(docs[0].agencies[1].slug, None);
        assert_eq!(docs[0].full_text_xml_url, None);
    }

    #[test]
    fn host_rule() {
        let base = normalise_base(&Url::parse("http://127.0.0.1:8080").expect("url")).expect("ok");
        let page = base.join("api/v1/documents.json?x=1").expect("url");
        let ok = |raw: &str| resolve_on_base(&base, raw, &page).map(|u| u.to_string());

        assert_eq!(
            ok("https://www.federalregister.gov/api/v1/documents.json?page=2").expect("mapped"),
            "http://127.0.0.1:8080/api/v1/documents.json?page=2"
        );
        assert_eq!(
            ok("https://federalregister.gov/documents/full_text/xml/a.xml").expect("mapped"),
            "http://127.0.0.1:8080/documents/full_text/xml/a.xml"
        );
        assert_eq!(
            ok("http://127.0.0.1:8080/x?y=1#frag").expect("same origin"),
            "http://127.0.0.1:8080/x?y=1"
        );
        assert_eq!(
            ok("documents.json?page=2").expect("relative"),
            "http://127.0.0.1:8080/api/v1/documents.json?page=2"
        );
        for foreign in [
            "http://127.0.0.1:8081/x",
            "https://127.0.0.1:8080/x",
            "https://evil.example/x",
            "https://user:pw@www.federalregister.gov/x",
            "ftp://www.federalregister.gov/x",
            "https://www.federalregister.gov:444/x",
        ] {
            assert!(
                matches!(ok(foreign), Err(ClientError::ForeignHost { .. })),
                "{foreign} should be refused"
            );
        }

        // A base below a path prefix keeps its prefix for mapped URLs.
        let prefixed =
            normalise_base(&Url::parse("http://127.0.0.1:9/replay").expect("url")).expect("ok");
        let mapped = resolve_on_base(
            &prefixed,
            "https://www.federalregister.gov/api/v1/documents.json?page=2",
            &prefixed,
        )
        .expect("mapped");
        assert_eq!(
            mapped.as_str(),
            "http://127.0.0.1:9/replay/api/v1/documents.json?page=2"
        );

        // With the official base, the official hosts are simply the base.
        let official = normalise_base(&ClientConfig::default().base_url).expect("ok");
        assert!(resolve_on_base(&official, "https://www.federalregister.gov/x", &official).is_ok());
        assert!(matches!(
            resolve_on_base(&official, "https://s3.amazonaws.com/x.pdf", &official),
            Err(ClientError::ForeignHost { .. })
        ));
    }

    #[test]
    fn base_url_is_checked() {
        for bad in ["ftp://x.example/", "https://u:p@www.federalregister.gov/"] {
            let config = ClientConfig {
                base_url: Url::parse(bad).expect("url"),
                ..ClientConfig::default()
            };
            assert!(matches!(
                FederalRegisterClient::new(config),
                Err(ClientError::Config(_))
            ));
        }
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .expect("date")
            .with_timezone(&Utc);
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(RETRY_AFTER, HeaderValue::from_str(v).expect("header"));
            retry_after(&m, now)
        };
        assert_eq!(h("1"), Some(Duration::from_secs(1)));
        assert_eq!(h(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            h("Wed, 21 Oct 2015 07:28:30 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(h("Wed, 21 Oct 2015 07:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(h("soon"), None);
        assert_eq!(h("-5"), None);
    }

    #[test]
    fn logged_urls_are_path_and_query_only() {
        let u = Url::parse("https://user:secret@www.federalregister.gov/api/v1/documents.json?a=1")
            .expect("url");
        assert_eq!(loggable(&u), "/api/v1/documents.json?a=1");
        assert_eq!(
            redacted(&u),
            "https://www.federalregister.gov/api/v1/documents.json"
        );
    }
}
