//! A local stand-in for the Federal Register API: serves a set of recorded or rebuilt documents
//! in the real API's shape, for the offline demo and for tests.
//!
//! It answers the three requests the client makes (documents search with `next_page_url`
//! pagination, public-inspection `current.json`, full-text XML) and writes the links in its
//! responses with the official host, exactly as the real API does, so the client's host mapping
//! is exercised too. It also serves the official list's two sources in their real shapes, when
//! given them ([`CodifiedReplay`]): the eCFR versioner (`versions/title-15.json`, and the
//! Supplement's XML at `full/{date}/title-15.xml`) and the CSL bulk JSON, with an `ETag` and a
//! 304 to a matching `If-None-Match`. An optional interceptor lets a test answer a request itself (a 500, a 429,
//! a slow or truncated body) before the normal handler runs. It must never reach the network.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

/// The host the real API writes into its links.
pub const OFFICIAL_BASE: &str = "https://www.federalregister.gov";

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read replay documents in {path}: {message}")]
    Load { path: String, message: String },
    #[error("cannot bind the replay server: {0}")]
    Bind(#[from] std::io::Error),
}

/// One document: its API metadata (`document_number`, `publication_date`, `full_text_xml_url`,
/// ...) and its full-text XML.
#[derive(Debug, Clone)]
pub struct ReplayDocument {
    pub metadata: Value,
    pub xml: Vec<u8>,
}

impl ReplayDocument {
    fn document_number(&self) -> &str {
        self.metadata["document_number"].as_str().unwrap_or("")
    }

    fn publication_date(&self) -> &str {
        self.metadata["publication_date"].as_str().unwrap_or("")
    }

    fn xml_path(&self) -> Option<String> {
        let url = self.metadata["full_text_xml_url"].as_str()?;
        url::Url::parse(url).ok().map(|u| u.path().to_string())
    }

    /// Every `NAME.meta.json` with a `NAME.xml` beside it in `dir`, by publication date.
    pub fn load_dir(dir: &Path) -> Result<Vec<ReplayDocument>, ReplayError> {
        let load_err = |message: String| ReplayError::Load {
            path: dir.display().to_string(),
            message,
        };
        let mut docs = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| load_err(e.to_string()))?;
        for entry in entries {
            let path = entry.map_err(|e| load_err(e.to_string()))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(stem) = name.strip_suffix(".meta.json") else {
                continue;
            };
            let meta = std::fs::read(&path).map_err(|e| load_err(format!("{name}: {e}")))?;
            let metadata: Value =
                serde_json::from_slice(&meta).map_err(|e| load_err(format!("{name}: {e}")))?;
            let xml_path = dir.join(format!("{stem}.xml"));
            let xml = std::fs::read(&xml_path)
                .map_err(|e| load_err(format!("{}: {e}", xml_path.display())))?;
            docs.push(ReplayDocument { metadata, xml });
        }
        docs.sort_by(|a, b| {
            (a.publication_date(), a.document_number())
                .cmp(&(b.publication_date(), b.document_number()))
        });
        Ok(docs)
    }
}

/// A test's chance to answer a request itself; `None` lets the normal handler answer.
pub type Interceptor = Arc<dyn Fn(&Request) -> Option<Response> + Send + Sync>;

#[derive(Clone)]
pub struct ReplayConfig {
    pub documents: Vec<ReplayDocument>,
    /// Filings served by `public-inspection-documents/current.json` (API metadata objects).
    pub public_inspection: Vec<Value>,
    /// Search results per page, whatever `per_page` asks (small values exercise pagination).
    pub page_size: usize,
    pub interceptor: Option<Interceptor>,
    /// The eCFR and CSL documents to serve, if any.
    pub codified: CodifiedReplay,
}

/// The official list's sources as the replay serves them.
#[derive(Debug, Clone, Default)]
pub struct CodifiedReplay {
    /// The body of `/api/versioner/v1/versions/title-15.json` (any `part` query).
    pub ecfr_versions: Option<Vec<u8>>,
    /// The Supplement's XML by date (`YYYY-MM-DD`), served at
    /// `/api/versioner/v1/full/{date}/title-15.xml`.
    pub ecfr_supplements: BTreeMap<String, Vec<u8>>,
    /// The CSL bulk JSON, served at [`CSL_BULK_PATH`].
    pub csl_bulk: Option<Vec<u8>>,
}

/// Where trade.gov serves the CSL bulk JSON (and so does the replay).
pub const CSL_BULK_PATH: &str = "/downloadable_consolidated_screening_list/v1/consolidated.json";

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            documents: Vec::new(),
            public_inspection: Vec::new(),
            page_size: 20,
            interceptor: None,
            codified: CodifiedReplay::default(),
        }
    }
}

/// A running replay server; dropping it stops it.
pub struct ReplayServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl ReplayServer {
    /// Serves on `addr` (use port 0 for a free one).
    pub async fn start(
        addr: SocketAddr,
        config: ReplayConfig,
    ) -> Result<ReplayServer, ReplayError> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(config);
        let app = Router::new()
            .route("/api/v1/documents.json", get(search))
            .route(
                "/api/v1/public-inspection-documents/current.json",
                get(public_inspection),
            )
            .route(
                "/api/versioner/v1/versions/title-15.json",
                get(ecfr_versions),
            )
            .route("/api/versioner/v1/full/:date/title-15.xml", get(ecfr_full))
            .route(CSL_BULK_PATH, get(csl_bulk))
            .fallback(get(full_text))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                intercept,
            ))
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ReplayServer { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to configure as `--federal-register-url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn intercept(
    State(state): State<Arc<ReplayConfig>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(intercept) = &state.interceptor {
        if let Some(response) = intercept(&request) {
            return response;
        }
    }
    next.run(request).await
}

fn query_pairs(request: &Request) -> Vec<(String, String)> {
    request
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

async fn search(State(state): State<Arc<ReplayConfig>>, request: Request) -> Response {
    let pairs = query_pairs(&request);
    let get_one = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let gte = get_one("conditions[publication_date][gte]").unwrap_or("");
    let agencies: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "conditions[agencies][]")
        .map(|(_, v)| v.as_str())
        .collect();
    let fields: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "fields[]")
        .map(|(_, v)| v.as_str())
        .collect();
    let page: usize = get_one("page")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);

    let matching: Vec<&ReplayDocument> = state
        .documents
        .iter()
        .filter(|d| d.publication_date() >= gte)
        .filter(|d| {
            agencies.is_empty()
                || d.metadata["agencies"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|ag| agencies.contains(&ag["slug"].as_str().unwrap_or("")))
                })
        })
        .collect();
    let size = state.page_size.max(1);
    let total_pages = matching.len().div_ceil(size);
    let results: Vec<Value> = matching
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|d| select_fields(&d.metadata, &fields))
        .collect();

    let mut body = BTreeMap::new();
    body.insert("count", json!(matching.len()));
    body.insert(
        "description",
        json!(format!(
            "Documents published on or after {gte} from Industry and Security Bureau"
        )),
    );
    body.insert("total_pages", json!(total_pages));
    if page < total_pages {
        let mut next = url::Url::parse(&format!("{OFFICIAL_BASE}/api/v1/documents.json"))
            .expect("the official base is a valid URL");
        {
            let mut q = next.query_pairs_mut();
            for (k, v) in pairs.iter().filter(|(k, _)| k != "page") {
                q.append_pair(k, v);
            }
            q.append_pair("page", &(page + 1).to_string());
        }
        body.insert("next_page_url", json!(next.as_str()));
    }
    body.insert("results", json!(results));
    axum::Json(body).into_response()
}

fn select_fields(metadata: &Value, fields: &[&str]) -> Value {
    if fields.is_empty() {
        return metadata.clone();
    }
    let mut out = serde_json::Map::new();
    for f in fields {
        out.insert(
            (*f).to_string(),
            metadata.get(*f).cloned().unwrap_or(Value::Null),
        );
    }
    Value::Object(out)
}

async fn public_inspection(State(state): State<Arc<ReplayConfig>>) -> Response {
    axum::Json(json!({
        "count": state.public_inspection.len(),
        "results": state.public_inspection,
    }))
    .into_response()
}

async fn full_text(State(state): State<Arc<ReplayConfig>>, request: Request) -> Response {
    let path = request.uri().path();
    match state
        .documents
        .iter()
        .find(|d| d.xml_path().as_deref() == Some(path))
    {
        Some(doc) => (
            [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
            Body::from(doc.xml.clone()),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

async fn ecfr_versions(State(state): State<Arc<ReplayConfig>>) -> Response {
    match &state.codified.ecfr_versions {
        Some(body) => (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(body.clone()),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

async fn ecfr_full(
    State(state): State<Arc<ReplayConfig>>,
    axum::extract::Path(date): axum::extract::Path<String>,
    request: Request,
) -> Response {
    let pairs = query_pairs(&request);
    let wants = |k: &str, v: &str| pairs.iter().any(|(n, x)| n == k && x == v);
    // The versioner answers the Supplement only to the query that names it.
    if !wants("part", "744") || !wants("appendix", "Supplement No. 4 to Part 744") {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    match state.codified.ecfr_supplements.get(&date) {
        Some(xml) => (
            [(header::CONTENT_TYPE, "application/xml")],
            Body::from(xml.clone()),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

async fn csl_bulk(State(state): State<Arc<ReplayConfig>>, request: Request) -> Response {
    use sha2::Digest;
    let Some(body) = &state.codified.csl_bulk else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let tag = format!("\"{}\"", &hex::encode(sha2::Sha256::digest(body))[..16]);
    let current = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    if current {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::ETAG, tag),
        ],
        Body::from(body.clone()),
    )
        .into_response()
}
