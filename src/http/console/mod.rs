//! The review console: the web pages where analysts work through alerts, served by the same
//! binary at `/` beside the probes and the API. It reads the store directly (the queue, an
//! alert with its supplier, listed entry and history, a supplier's alerts, the audit trail) and
//! records reviews through [`Store::review_alert`], as `alerts review` does.
//!
//! Pages are rendered on the server from templates and one style sheet compiled into the
//! binary; they need no script, so the Content-Security-Policy forbids every script. A browser
//! signs in with an API token once and then holds only a session cookie ([`session`]); every
//! form carries the session's CSRF value, and reviewing needs a token of scope `review`.
//!
//! It must never put a token or session id in a page, a URL or a log line, never render a
//! value unescaped (alerts carry names from the Federal Register and from customers' files),
//! and never change anything on a GET.

mod session;
mod views;

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use futures::TryStreamExt;
use serde::Deserialize;
use tracing::{info, warn};

use crate::alerts::Alert;
use crate::domain::{AlertStatus, ReviewDecision, Scope};
use crate::events::{normalise_document_number, EntityKey};
use crate::http::auth::{principal_for, AuthFailure};
use crate::http::problem::Problem;
use crate::store::{AlertQuery, AuditRecord, ReviewError, Store, StoredAlert};
use session::{local_target, same_secret, SignedIn};
use views::{
    AffiliateView, AlertPage, AlertRow, Chrome, DeliveryRow, EntryView, HistoryRow, LoginPage,
    NotFoundPage, QueueFilter, QueuePage, ReviewRow, SupplierPage, SupplierView,
};

pub use session::{LOGIN_COOKIE, SESSION_COOKIE};

/// How long a sign-in lasts unless the browser signs out or the token is revoked first: a
/// working day, so an analyst signs in once a day and a forgotten browser does not stay in.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);

/// Alerts per page of the queue.
const PAGE_SIZE: usize = 50;

/// The longest review reason accepted, in characters.
const MAX_REASON_CHARS: usize = 4000;

/// No script, no frames, no other origin: the pages are HTML and one style sheet.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How the console is served.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// Mark cookies `Secure`: set when the console is reached over HTTPS (behind a TLS proxy),
    /// so a browser never sends the session over plain HTTP.
    pub secure_cookie: bool,
    pub session_lifetime: Duration,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            secure_cookie: false,
            session_lifetime: DEFAULT_SESSION_LIFETIME,
        }
    }
}

/// What every console handler has at hand.
#[derive(Clone)]
pub struct Console {
    store: Store,
    settings: Arc<ConsoleSettings>,
}

/// The console's routes, for [`crate::http::HttpServer::bind`]'s services.
pub fn router(store: Store, settings: ConsoleSettings) -> Router {
    let console = Console {
        store,
        settings: Arc::new(settings),
    };
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/alerts", get(queue))
        .route("/alerts/:id", get(alert_page))
        .route("/alerts/:id/review", post(review))
        .route("/suppliers/:id", get(supplier_page))
        .route("/audit.csv", get(audit_csv))
        .route("/console.css", get(stylesheet))
        .layer(middleware::map_response(security_headers))
        .with_state(console)
}

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Alert and supplier ids are in the console's URLs; links out to the Federal Register
    // need not carry them.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Why a console request was not answered with its page.
#[derive(Debug, thiserror::Error)]
enum Fault {
    /// The request cannot be done as asked: a problem the caller can fix.
    #[error("{}", .0.detail)]
    Refused(Box<Problem>),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("alert {alert_id} is stored unreadable: {source}")]
    Unreadable {
        alert_id: String,
        source: serde_json::Error,
    },
    #[error("cannot render the page: {0}")]
    Render(#[from] askama::Error),
}

impl From<Problem> for Fault {
    fn from(p: Problem) -> Self {
        Fault::Refused(Box::new(p))
    }
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        match self {
            Fault::Refused(p) => p.into_response(),
            other => Problem::internal(&other).into_response(),
        }
    }
}

type Answer = Result<Response, Fault>;

fn html(status: StatusCode, page: &impl Template) -> Answer {
    Ok((status, Html(page.render()?)).into_response())
}

fn chrome(who: &SignedIn) -> Chrome {
    Chrome {
        user: who.principal.name.clone(),
        scope: who.principal.scope.as_str().to_string(),
        csrf: who.csrf_token.clone(),
    }
}

fn not_found(who: &SignedIn, what: String) -> Answer {
    html(
        StatusCode::NOT_FOUND,
        &NotFoundPage {
            chrome: chrome(who),
            what,
        },
    )
}

fn parsed(stored: &StoredAlert) -> Result<Alert, Fault> {
    serde_json::from_str(&stored.payload).map_err(|source| Fault::Unreadable {
        alert_id: stored.alert_id.clone(),
        source,
    })
}

async fn home() -> Redirect {
    Redirect::to("/alerts?status=open")
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("console.css"),
    )
        .into_response()
}

// --- signing in and out -------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

fn login_page(console: &Console, status: StatusCode, next: &str, error: Option<String>) -> Answer {
    let nonce = session::login_nonce();
    let mut response = html(
        status,
        &LoginPage {
            nonce: nonce.clone(),
            next: local_target(Some(next)),
            error,
        },
    )?;
    response.headers_mut().append(
        header::SET_COOKIE,
        session::login_cookie(&nonce, console.settings.secure_cookie),
    );
    Ok(response)
}

async fn login_form(
    State(console): State<Console>,
    signed_in: Option<SignedIn>,
    Query(q): Query<LoginQuery>,
) -> Answer {
    let next = local_target(q.next.as_deref());
    if signed_in.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    login_page(&console, StatusCode::OK, &next, None)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    nonce: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Answer {
    let expected = session::cookie_value(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !same_secret(&form.nonce, &expected) {
        return Err(session::csrf_refused().at("nonce").into());
    }
    let refused = |reason: String| {
        warn!(%reason, "console sign-in refused");
        login_page(&console, StatusCode::UNAUTHORIZED, &form.next, Some(reason))
    };
    let principal = match principal_for(&console.store, &form.token).await {
        Ok(p) => p,
        Err(AuthFailure::Store(e)) => return Err(e.into()),
        Err(failure) => return refused(failure.to_string()),
    };
    let Some(opened) = console
        .store
        .open_console_session(&principal.token_id, console.settings.session_lifetime)
        .await?
    else {
        // Revoked between the check and the session.
        return refused(AuthFailure::Unknown.to_string());
    };
    info!(token = %principal.token_id, name = %principal.name, "console sign-in");
    let secure = console.settings.secure_cookie;
    let max_age = i64::try_from(console.settings.session_lifetime.as_secs()).unwrap_or(i64::MAX);
    let mut response = Redirect::to(&local_target(Some(&form.next))).into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        session::session_cookie(&opened.secret, max_age, secure),
    );
    h.append(header::SET_COOKIE, session::login_cookie_removal(secure));
    Ok(response)
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(console): State<Console>,
    who: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Answer {
    who.check_csrf(&form.csrf)?;
    console.store.end_console_session(&who.secret).await?;
    info!(token = %who.principal.token_id, "console sign-out");
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session::session_cookie_removal(console.settings.secure_cookie),
    );
    Ok(response)
}

// --- the queue ----------------------------------------------------------------------------

/// The queue's query parameters. Their names are a contract: the Slack digest links to
/// `/alerts?status=open&document=DOC`.
#[derive(Debug, Default, Deserialize)]
struct QueueParams {
    status: Option<String>,
    supplier_id: Option<String>,
    entity_key: Option<String>,
    document: Option<String>,
    page: Option<String>,
}

fn trimmed(v: Option<String>) -> String {
    v.map(|s| s.trim().to_string()).unwrap_or_default()
}

impl QueueParams {
    fn filter(self) -> Result<(QueueFilter, usize), Problem> {
        let status = match trimmed(self.status).as_str() {
            "" => None,
            s => Some(
                s.parse::<AlertStatus>()
                    .map_err(|e| Problem::bad_request(e.to_string()).at("status"))?,
            ),
        };
        let page = match trimmed(self.page).as_str() {
            "" => 1,
            p => p.parse::<usize>().ok().filter(|p| *p >= 1).ok_or_else(|| {
                Problem::bad_request(format!("page {p:?} is not a page number (1, 2, ...)"))
                    .at("page")
            })?,
        };
        let filter = QueueFilter {
            status,
            supplier_id: trimmed(self.supplier_id),
            entity_key: trimmed(self.entity_key),
            document: normalise_document_number(&trimmed(self.document)),
        };
        Ok((filter, page))
    }
}

/// Whether `alert` came from document `document`: its entry's, or for an affiliate alert the
/// document of any listed entry behind it.
fn from_document(alert: &Alert, document: &str) -> bool {
    normalise_document_number(&alert.entry.document_number) == document
        || alert.affiliate.as_ref().is_some_and(|a| {
            a.listed_entries.iter().any(|e| {
                e.document_number
                    .as_deref()
                    .is_some_and(|d| normalise_document_number(d) == document)
            })
        })
}

async fn queue(
    State(console): State<Console>,
    who: SignedIn,
    Query(params): Query<QueueParams>,
) -> Answer {
    let (filter, page) = params.filter()?;
    let stored = console
        .store
        .alerts(&AlertQuery {
            status: filter.status,
            supplier_id: Some(filter.supplier_id.clone()).filter(|s| !s.is_empty()),
            entity_key: Some(filter.entity_key.clone()).filter(|s| !s.is_empty()),
            since: None,
            limit: None,
        })
        .await?;
    let mut rows = Vec::new();
    for s in &stored {
        let alert = parsed(s)?;
        if filter.document.is_empty() || from_document(&alert, &filter.document) {
            rows.push(AlertRow::new(s, &alert));
        }
    }
    let total = rows.len();
    let start = (page - 1).saturating_mul(PAGE_SIZE).min(total);
    let end = (start + PAGE_SIZE).min(total);
    let rows: Vec<AlertRow> = rows.into_iter().skip(start).take(end - start).collect();
    html(
        StatusCode::OK,
        &QueuePage {
            chrome: chrome(&who),
            heading: QueuePage::heading_for(&filter),
            statuses: QueuePage::statuses(filter.status),
            previous_href: (page > 1).then(|| filter.href(page - 1)),
            next_href: (end < total).then(|| filter.href(page + 1)),
            first: if rows.is_empty() { 0 } else { start + 1 },
            last: end,
            total,
            rows,
            filter,
        },
    )
}

// --- one alert ----------------------------------------------------------------------------

async fn alert_page(
    State(console): State<Console>,
    who: SignedIn,
    Path(id): Path<String>,
) -> Answer {
    let store = &console.store;
    let Some(stored) = store.alert(&id).await? else {
        return not_found(&who, format!("There is no alert with id {id}."));
    };
    let alert = parsed(&stored)?;
    let reviews = store.alert_reviews(&stored.alert_id).await?;
    let deliveries = store.alert_deliveries(&stored.alert_id).await?;
    let supplier = store.supplier(&stored.supplier_id).await?;
    let (entry, history) = match EntityKey::parse(&stored.entity_key) {
        Ok(k) => (
            store.listed_entry(&k).await?,
            store.entry_history(&k).await?,
        ),
        Err(_) => (None, Vec::new()),
    };
    let no_review = if alert.kind == crate::alerts::AlertKind::Cleared {
        Some(
            "This is a notice that the entry was removed from the list: there is nothing to \
             decide."
                .to_string(),
        )
    } else if !who.principal.scope.allows(Scope::Review) {
        Some(format!(
            "You signed in with a token of scope {}: deciding needs scope review.",
            who.principal.scope
        ))
    } else {
        None
    };
    html(
        StatusCode::OK,
        &AlertPage {
            chrome: chrome(&who),
            action: format!("{}/review", views::alert_href(&stored.alert_id)),
            alert_id: stored.alert_id.clone(),
            status: stored.status.as_str(),
            kind: alert.kind.as_str(),
            raised_at: views::day_and_time(&stored.raised_at),
            score: views::score_text(&alert),
            explanation: alert.explanation.clone(),
            changes: alert.changes.clone(),
            supplier: SupplierView::new(
                &stored.supplier_id,
                &alert.supplier.name,
                supplier.as_ref(),
            ),
            entry: EntryView::new(&alert, entry.as_ref()),
            affiliate: AffiliateView::new(&alert),
            history: history
                .iter()
                .map(|h| HistoryRow::new(h, stored.entry_version))
                .collect(),
            reviews: reviews.iter().map(ReviewRow::from).collect(),
            deliveries: deliveries
                .into_iter()
                .map(|(sink, state, at)| DeliveryRow {
                    sink,
                    state,
                    at: views::day_and_time(&at),
                })
                .collect(),
            decisions: views::decision_choices(),
            no_review,
        },
    )
}

#[derive(Deserialize)]
struct ReviewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
}

async fn review(
    State(console): State<Console>,
    who: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<ReviewForm>,
) -> Answer {
    who.check_csrf(&form.csrf)?;
    who.require(Scope::Review)?;
    let decision = form
        .decision
        .trim()
        .parse::<ReviewDecision>()
        .map_err(|e| Problem::bad_request(e.to_string()).at("decision"))?;
    let reason = form.reason.trim();
    if reason.is_empty() {
        return Err(
            Problem::bad_request("say why: the reason is kept in the audit trail")
                .at("reason")
                .into(),
        );
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(Problem::bad_request(format!(
            "a reason is at most {MAX_REASON_CHARS} characters"
        ))
        .at("reason")
        .into());
    }
    let review = match console
        .store
        .review_alert(&id, decision, reason, &who.principal.name)
        .await
    {
        Ok(review) => review,
        Err(e @ ReviewError::UnknownAlert(_)) => {
            return Err(Problem::not_found(e.to_string()).into())
        }
        Err(e @ ReviewError::NotReviewable(_)) => {
            return Err(Problem::new(StatusCode::CONFLICT, e.to_string()).into())
        }
        Err(ReviewError::Store(e)) => return Err(e.into()),
    };
    info!(
        alert = %review.alert_id,
        decision = %decision,
        reviewer = %who.principal.name,
        "alert reviewed in the console"
    );
    Ok(Redirect::to(&views::alert_href(&review.alert_id)).into_response())
}

// --- one supplier ---------------------------------------------------------------------------

async fn supplier_page(
    State(console): State<Console>,
    who: SignedIn,
    Path(id): Path<String>,
) -> Answer {
    let store = &console.store;
    let record = store.supplier(&id).await?;
    let stored = store
        .alerts(&AlertQuery {
            supplier_id: Some(id.clone()),
            ..AlertQuery::default()
        })
        .await?;
    if record.is_none() && stored.is_empty() {
        return not_found(&who, format!("There is no supplier with id {id}."));
    }
    let mut rows = Vec::new();
    let mut alerted_name = None;
    for s in &stored {
        let alert = parsed(s)?;
        alerted_name.get_or_insert_with(|| alert.supplier.name.clone());
        rows.push(AlertRow::new(s, &alert));
    }
    html(
        StatusCode::OK,
        &SupplierPage {
            chrome: chrome(&who),
            supplier: SupplierView::new(
                &id,
                alerted_name.as_deref().unwrap_or(&id),
                record.as_ref(),
            ),
            open: stored
                .iter()
                .filter(|s| s.status == AlertStatus::Open)
                .count(),
            rows,
        },
    )
}

// --- the audit export -----------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct AuditParams {
    since: Option<String>,
}

/// Records per chunk of the download: large enough to write efficiently, small enough that
/// memory stays flat whatever the trail's length.
const AUDIT_CHUNK_RECORDS: usize = 1000;

async fn audit_csv(
    State(console): State<Console>,
    _who: SignedIn,
    Query(params): Query<AuditParams>,
) -> Answer {
    let since = match trimmed(params.since).as_str() {
        "" => None,
        s => {
            let day = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                Problem::bad_request(format!("since {s:?} is not a date (YYYY-MM-DD)")).at("since")
            })?;
            let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
            Some(midnight.and_utc().to_rfc3339())
        }
    };
    // The trail is read on its own task and handed over in chunks through a small channel:
    // the response streams while the store is read, and a slow browser slows the reading
    // instead of filling memory.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = console.store.clone();
    tokio::spawn(async move {
        if let Err(e) = write_audit_csv(&store, since.as_deref(), &tx).await {
            warn!(error = %e, "the console's audit export stopped");
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    let filename = format!(
        "attachment; filename=\"entitywatch-audit-{}.csv\"",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&filename).expect("digits and ASCII"),
            ),
        ],
        body,
    )
        .into_response())
}

#[derive(Debug, thiserror::Error)]
enum AuditExportError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot write the CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("cannot write the CSV: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes the audit trail as CSV chunks into `tx`; returns early once the browser is gone.
async fn write_audit_csv(
    store: &Store,
    since: Option<&str>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), AuditExportError> {
    let records = store.audit_trail(since).await?;
    futures::pin_mut!(records);
    let mut chunk = csv_chunk();
    chunk.write_record(AuditRecord::CSV_HEADER)?;
    let mut in_chunk = 0usize;
    while let Some(r) = records.try_next().await? {
        chunk.write_record(r.csv_row())?;
        in_chunk += 1;
        if in_chunk == AUDIT_CHUNK_RECORDS {
            let full = std::mem::replace(&mut chunk, csv_chunk());
            if !send_chunk(tx, full).await? {
                return Ok(());
            }
            in_chunk = 0;
        }
    }
    send_chunk(tx, chunk).await?;
    Ok(())
}

fn csv_chunk() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new())
}

/// Sends one chunk; `false` once the receiving browser went away.
async fn send_chunk(
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    chunk: csv::Writer<Vec<u8>>,
) -> Result<bool, AuditExportError> {
    let bytes = chunk
        .into_inner()
        .map_err(|e| AuditExportError::Io(e.into_error()))?;
    Ok(tx.send(Ok(Bytes::from(bytes))).await.is_ok())
}
