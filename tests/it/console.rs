//! Issue 15, item 4: the review console, served by the in-process app with alerts in its store.
//!
//! Without a browser, on SQLite and PostgreSQL: signing in takes a live token and leaves only a
//! session cookie (`HttpOnly`, `SameSite=Strict`), which sign-out and revocation end; form
//! posts without the session's CSRF value are refused; a read token can look but not review; a
//! review leaves the queue and enters the audit export; hostile names are escaped.
//!
//! In a real browser (Debian's chromium driven by playwright-core, `tests/browser/console.mjs`):
//! sign in, open the queue, dismiss an alert with a reason, see it leave the queue and appear in
//! the audit export. `CONSOLE_SCREENSHOTS=docs` makes that run write the README's screenshots.
//! A missing browser, node or playwright-core fails the test naming `scripts/services.sh`,
//! which installs them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use entitywatch::app::{ServiceSpec, WatcherOutput, WatcherSpec};
use entitywatch::domain::{AlertStatus, Scope};
use entitywatch::federal_register::replay::ReplayServer;
use entitywatch::store::{AlertQuery, Store};
use futures::TryStreamExt;
use reqwest::header::{HeaderMap, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::app::TestApp;
use crate::common::{self, entitywatch, fixture, fresh_db, run, Db, TestDb};

/// The app serving the console, with the alerts its store holds.
struct Console {
    db: TestDb,
    app: TestApp,
    base: String,
    store: Store,
    _rules: Option<ReplayServer>,
}

impl Console {
    async fn stop(self) {
        self.store.close().await;
        self.app.stop().await;
        drop(self.db);
    }

    /// A token of `scope` made in the store, its secret.
    async fn token(&self, name: &str, scope: Scope) -> String {
        let (_, secret) = self.store.create_token(name, scope).await.unwrap();
        secret.expose().to_string()
    }

    async fn open_alerts(&self) -> Vec<entitywatch::store::StoredAlert> {
        self.store
            .alerts(&AlertQuery {
                status: Some(AlertStatus::Open),
                ..AlertQuery::default()
            })
            .await
            .unwrap()
    }
}

async fn import_suppliers(db: &TestDb, csv: &str) {
    let path = db.dir.path().join("suppliers.csv");
    std::fs::write(&path, csv).unwrap();
    let r = run(common::suppliers_import(&db.url, &path, &[])).await;
    assert!(r.status.success(), "suppliers import: {}", r.stderr);
}

/// The app with a watcher on a local Federal Register serving `rules` and a worker, after
/// `suppliers` were imported: once every rule is processed and every change handled, the
/// alerts are in the store, each entry with its history.
async fn console_after_rules(kind: Db, rules: &[&str], suppliers: &str) -> Console {
    let db = fresh_db(kind).await;
    import_suppliers(&db, suppliers).await;
    let server = common::scenario::rules_server(rules).await;
    let settings = common::app::settings(&db.url, &server.base_url());
    let sinks = entitywatch::alerts::SinkSettings {
        claim_lease: entitywatch::worker::DEFAULT_CLAIM_LEASE,
        ..Default::default()
    };
    let spec = ServiceSpec {
        watcher: Some(WatcherSpec {
            interval: Duration::from_secs(60),
            since: chrono::NaiveDate::from_ymd_opt(2019, 1, 1),
            public_inspection: false,
            output: WatcherOutput::Bus,
        }),
        worker: true,
        sinks,
        ready_max_poll_age: Duration::from_secs(1800),
        ..ServiceSpec::default()
    };
    let app = common::app::spawn_app(&settings, spec).await;
    let store = Store::connect(&db.url).await.unwrap();
    let topic = entitywatch::bus::kafka::ENTITY_CHANGES_TOPIC;
    let caught_up = common::wait::poll_until(Duration::from_secs(60), || async {
        let processed = store.processed_documents().await.unwrap().len();
        let length = store.log_length(topic).await.unwrap();
        let at = store
            .consumer_position("entitywatch-workers", topic)
            .await
            .unwrap();
        processed == rules.len() && length > 0 && at == length
    })
    .await;
    assert!(caught_up, "every rule processed and handled within 60 s");
    Console {
        base: format!("http://{}", app.http),
        db,
        app,
        store,
        _rules: Some(server),
    }
}

/// 84 FR 54002 and the scenario's suppliers: alerts on Hikvision, Dahua and iFlytek.
async fn console_with_three_alerts(kind: Db) -> Console {
    let c = console_after_rules(kind, &["2019-22210"], common::scenario::SUPPLIERS).await;
    assert_eq!(c.open_alerts().await.len(), 3);
    c
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `Set-Cookie` headers of a response.
fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// `NAME=value` of the cookie `name` a response sets.
fn cookie_set(headers: &HeaderMap, name: &str) -> Option<String> {
    set_cookies(headers)
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_string())
}

/// The value of hidden field `name` in a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in:\n{html}"))
        + marker.len();
    html[at..].split('"').next().unwrap().to_string()
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .map(|l| l.to_str().unwrap())
            .unwrap_or("")
    }

    fn problem(&self) -> Value {
        assert_eq!(
            self.headers[CONTENT_TYPE], "application/problem+json",
            "{}",
            self.body
        );
        serde_json::from_str(&self.body).unwrap()
    }
}

async fn page(r: reqwest::RequestBuilder) -> Page {
    let r = r.send().await.unwrap();
    Page {
        status: r.status(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

async fn get(base: &str, path: &str, cookie: Option<&str>) -> Page {
    let mut r = client().get(format!("{base}{path}"));
    if let Some(c) = cookie {
        r = r.header(COOKIE, c);
    }
    page(r).await
}

async fn post(
    base: &str,
    path: &str,
    cookie: Option<&str>,
    form: &(impl serde::Serialize + ?Sized),
) -> Page {
    let mut r = client().post(format!("{base}{path}")).form(form);
    if let Some(c) = cookie {
        r = r.header(COOKIE, c);
    }
    page(r).await
}

/// Posts the sign-in form as a browser does: load it (its one-off cookie and value), post the
/// token with them.
async fn try_sign_in(base: &str, token: &str, next: &str) -> Page {
    let form = get(base, "/login", None).await;
    assert_eq!(form.status, 200);
    let login_cookie = cookie_set(&form.headers, "ew_login").expect("the sign-in form's cookie");
    let nonce = hidden(&form.body, "nonce");
    post(
        base,
        "/login",
        Some(&login_cookie),
        &[("token", token), ("nonce", &nonce), ("next", next)],
    )
    .await
}

/// Signs in; the `Cookie` header value of the session.
async fn sign_in(base: &str, token: &str) -> String {
    let r = try_sign_in(base, token, "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    cookie_set(&r.headers, "ew_session").expect("a session cookie")
}

/// The CSRF value of the session `cookie`, as its pages carry it.
async fn csrf(base: &str, cookie: &str) -> String {
    let p = get(base, "/alerts", Some(cookie)).await;
    assert_eq!(p.status, 200, "{}", p.body);
    hidden(&p.body, "csrf")
}

fn rows(html: &str) -> usize {
    html.matches("data-alert=\"").count()
}

on_both!(
    sign_in_takes_a_live_token_and_the_cookie_holds_only_a_session,
    forms_without_the_sessions_csrf_value_are_refused,
    a_read_token_can_look_but_not_review,
    a_review_leaves_the_queue_and_enters_the_audit_export,
    hostile_names_are_escaped_everywhere,
);

async fn sign_in_takes_a_live_token_and_the_cookie_holds_only_a_session(kind: Db) {
    let c = console_with_three_alerts(kind).await;
    let base = c.base.as_str();
    let token = c.token("ana.lyst", Scope::Review).await;

    // Signed out, pages send the browser to sign in, and back afterwards.
    let away = get(base, "/alerts?status=open", None).await;
    assert_eq!(away.status, StatusCode::SEE_OTHER);
    assert_eq!(away.location(), "/login?next=%2Falerts%3Fstatus%3Dopen");
    assert_eq!(get(base, "/", None).await.location(), "/alerts?status=open");

    for (bad, says) in [
        ("nonsense", "malformed"),
        (
            "ew_0000000000000000000000000000000000000000000000000000000000000000",
            "unknown or revoked",
        ),
    ] {
        let r = try_sign_in(base, bad, "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert!(r.body.contains(says), "{says} in:\n{}", r.body);
        assert!(r.body.contains("name=\"token\""), "the form again");
        assert_eq!(cookie_set(&r.headers, "ew_session"), None, "no session");
    }
    // The sign-in form's own value is needed (a forged cross-site sign-in has none).
    let form = get(base, "/login", None).await;
    let nonce = hidden(&form.body, "nonce");
    let forged = post(
        base,
        "/login",
        None,
        &[("token", &token), ("nonce", &nonce)],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(cookie_set(&forged.headers, "ew_session"), None);

    let r = try_sign_in(base, &token, "/suppliers/S-2").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.location(),
        "/suppliers/S-2",
        "back where the browser was sent from"
    );
    let set = set_cookies(&r.headers)
        .into_iter()
        .find(|c| c.starts_with("ew_session="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(
        !set.contains("Secure"),
        "plain HTTP unless --console-secure-cookie"
    );
    let cookie = cookie_set(&r.headers, "ew_session").unwrap();
    let session_id = cookie.trim_start_matches("ew_session=");
    assert_eq!(session_id.len(), 64);
    assert!(!cookie.contains(&token[3..]), "the cookie is not the token");
    let everything = format!("{:?}{}", r.headers, r.body);
    assert!(
        !everything.contains(&token[3..]),
        "the token is never sent back"
    );
    // A crafted link cannot send a signed-in browser elsewhere.
    let r = try_sign_in(base, &token, "https://evil.example/").await;
    assert_eq!(r.location(), "/");

    // Only a digest of the session id is stored.
    let stored: Vec<String> = sqlx::query_scalar("SELECT session_digest FROM console_sessions")
        .fetch_all(c.store.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|d| d != session_id && d.len() == 64));

    let queue = get(base, "/alerts?status=open", Some(&cookie)).await;
    assert_eq!(queue.status, 200);
    assert!(queue.headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(rows(&queue.body), 3, "{}", queue.body);
    assert!(!queue.body.contains(&token[3..]) && !queue.body.contains(session_id));
    assert!(queue.body.contains("ana.lyst"), "who is signed in");

    // Signing out ends the session on the server, not only in the browser.
    let csrf_value = hidden(&queue.body, "csrf");
    let out = post(base, "/logout", Some(&cookie), &[("csrf", &csrf_value)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/login");
    assert!(cookie_set(&out.headers, "ew_session").is_some());
    assert!(set_cookies(&out.headers)
        .iter()
        .any(|c| c.contains("Max-Age=0")));
    let after = get(base, "/alerts", Some(&cookie)).await;
    assert_eq!(
        after.status,
        StatusCode::SEE_OTHER,
        "the old cookie opens nothing"
    );

    // Revoking the token ends every session opened with it.
    let cookie = sign_in(base, &token).await;
    assert_eq!(get(base, "/alerts", Some(&cookie)).await.status, 200);
    c.store.revoke_token("ana.lyst").await.unwrap();
    let revoked = get(base, "/alerts", Some(&cookie)).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert!(revoked.location().starts_with("/login"));
    let again = try_sign_in(base, &token, "").await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    // The next sign-in clears the sessions that ended.
    sign_in(base, &c.token("bo", Scope::Read).await).await;
    let left: Vec<String> = sqlx::query_scalar("SELECT token_id FROM console_sessions")
        .fetch_all(c.store.pool())
        .await
        .unwrap();
    assert_eq!(left.len(), 1, "only bo's session: {left:?}");
    c.stop().await;
}

async fn forms_without_the_sessions_csrf_value_are_refused(kind: Db) {
    let c = console_with_three_alerts(kind).await;
    let base = c.base.as_str();
    let token = c.token("ana.lyst", Scope::Review).await;
    let (a, b) = (sign_in(base, &token).await, sign_in(base, &token).await);
    let (csrf_a, csrf_b) = (csrf(base, &a).await, csrf(base, &b).await);
    assert_ne!(csrf_a, csrf_b, "one CSRF value per session");
    let alert = c.open_alerts().await[0].alert_id.clone();
    let path = format!("/alerts/{alert}/review");
    let form = |csrf: &str| {
        [
            ("decision", "dismiss".to_string()),
            ("reason", "not them".to_string()),
            ("csrf", csrf.to_string()),
        ]
    };

    let none = post(base, &path, Some(&a), &form("")).await;
    assert_eq!(none.status, StatusCode::FORBIDDEN);
    assert_eq!(none.problem()["field"], "csrf");
    let without_field = post(
        base,
        &path,
        Some(&a),
        &[("decision", "dismiss"), ("reason", "not them")],
    )
    .await;
    assert_eq!(without_field.status, StatusCode::FORBIDDEN);
    let other = post(base, &path, Some(&a), &form(&csrf_b)).await;
    assert_eq!(
        other.status,
        StatusCode::FORBIDDEN,
        "another session's value"
    );
    let no_session = post(base, &path, None, &form(&csrf_a)).await;
    assert_eq!(no_session.status, StatusCode::UNAUTHORIZED);
    assert_eq!(no_session.problem()["status"], 401);
    let logout = post(base, "/logout", Some(&a), &[("csrf", "")]).await;
    assert_eq!(logout.status, StatusCode::FORBIDDEN);
    assert_eq!(
        get(base, "/alerts", Some(&a)).await.status,
        200,
        "still signed in"
    );

    assert!(c.store.alert_reviews(&alert).await.unwrap().is_empty());
    assert_eq!(c.open_alerts().await.len(), 3, "nothing was decided");

    // The same post with the session's own value goes through.
    let ok = post(base, &path, Some(&a), &form(&csrf_a)).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let reviews = c.store.alert_reviews(&alert).await.unwrap();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].reviewer, "ana.lyst");
    c.stop().await;
}

async fn a_read_token_can_look_but_not_review(kind: Db) {
    let c = console_with_three_alerts(kind).await;
    let base = c.base.as_str();
    let read = sign_in(base, &c.token("auditor", Scope::Read).await).await;
    let dahua = c
        .open_alerts()
        .await
        .into_iter()
        .find(|a| a.supplier_id == "S-2")
        .unwrap();
    let path = format!("/alerts/{}", dahua.alert_id);

    let p = get(base, &path, Some(&read)).await;
    assert_eq!(p.status, 200, "{}", p.body);
    for shown in [
        "Zhejiang Dahua Technology Co., Ltd.",
        "Dahua Technology",
        "CHINA, PEOPLE&#39;S REPUBLIC OF",
        "What the listing means",
        "Presumption of denial",
        "BIS presumes licence applications will be denied",
        "84 FR 54002",
        "href=\"https://www.federalregister.gov/documents/2019/10/09/2019-22210/",
        "0.89",
        "Entry history",
        "href=\"https://www.federalregister.gov/d/2019-22210\"",
        "alert-topic",
        "href=\"/suppliers/S-2\"",
        "deciding needs scope review",
    ] {
        assert!(
            p.body.contains(shown),
            "{shown:?} on the alert page:\n{}",
            p.body
        );
    }
    assert!(
        !p.body.contains("name=\"decision\""),
        "no review form for a read token"
    );

    let csrf_value = hidden(&p.body, "csrf");
    let refused = post(
        base,
        &format!("{path}/review"),
        Some(&read),
        &[
            ("decision", "dismiss"),
            ("reason", "not them"),
            ("csrf", &csrf_value),
        ],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.problem()["detail"]
            .as_str()
            .unwrap()
            .contains("scope review"),
        "{}",
        refused.body
    );
    assert!(c
        .store
        .alert_reviews(&dahua.alert_id)
        .await
        .unwrap()
        .is_empty());

    // A read token sees suppliers and the audit trail too.
    let supplier = get(base, "/suppliers/S-2", Some(&read)).await;
    assert_eq!(supplier.status, 200);
    assert_eq!(rows(&supplier.body), 1);
    assert_eq!(
        get(base, "/suppliers/nobody", Some(&read)).await.status,
        404
    );
    assert_eq!(
        get(base, "/alerts/0123456789abcdef", Some(&read))
            .await
            .status,
        404
    );
    let audit = get(base, "/audit.csv", Some(&read)).await;
    assert_eq!(audit.status, 200);
    assert_eq!(audit.headers[CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(audit.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"entitywatch-audit-"));
    let mut lines = audit.body.lines();
    assert_eq!(
        lines.next().unwrap(),
        entitywatch::store::AuditRecord::CSV_HEADER.join(",")
    );
    let decisions = c
        .store
        .audit_trail(None)
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.record == "decision")
        .count();
    assert!(decisions >= 3);
    assert_eq!(
        lines.filter(|l| l.contains(",decision,")).count(),
        decisions,
        "every decision in the trail"
    );
    c.stop().await;
}

async fn a_review_leaves_the_queue_and_enters_the_audit_export(kind: Db) {
    let c = console_with_three_alerts(kind).await;
    let base = c.base.as_str();
    let cookie = sign_in(base, &c.token("ana.lyst", Scope::Review).await).await;
    let csrf_value = csrf(base, &cookie).await;
    let alert = c
        .open_alerts()
        .await
        .into_iter()
        .find(|a| a.supplier_id == "S-2")
        .unwrap();

    let by_document = get(
        base,
        "/alerts?status=open&document=2019-22210",
        Some(&cookie),
    )
    .await;
    assert_eq!(rows(&by_document.body), 3, "the Slack digest's link");
    let other = get(
        base,
        "/alerts?status=open&document=2020-15827",
        Some(&cookie),
    )
    .await;
    assert_eq!(rows(&other.body), 0);
    assert!(other.body.contains("No alerts match"));
    let by_supplier = get(base, "/alerts?supplier_id=S-2", Some(&cookie)).await;
    assert_eq!(rows(&by_supplier.body), 1);
    let by_entry = get(
        base,
        &format!(
            "/alerts?entity_key={}",
            alert.entity_key.replace('/', "%2F")
        ),
        Some(&cookie),
    )
    .await;
    assert_eq!(rows(&by_entry.body), 1);
    let bad = get(base, "/alerts?status=closed", Some(&cookie)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.problem()["field"], "status");

    let path = format!("/alerts/{}/review", alert.alert_id);
    let empty = post(
        base,
        &path,
        Some(&cookie),
        &[
            ("decision", "dismiss"),
            ("reason", "  "),
            ("csrf", &csrf_value),
        ],
    )
    .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(empty.problem()["field"], "reason");
    let unknown = post(
        base,
        &path,
        Some(&cookie),
        &[
            ("decision", "approve"),
            ("reason", "x"),
            ("csrf", &csrf_value),
        ],
    )
    .await;
    assert_eq!(unknown.problem()["field"], "decision");

    let reason = "a logistics firm of the same name, \"=HYPERLINK\" not them";
    let done = post(
        base,
        &path,
        Some(&cookie),
        &[
            ("decision", "dismiss"),
            ("reason", reason),
            ("csrf", &csrf_value),
        ],
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), format!("/alerts/{}", alert.alert_id));
    let shown = get(base, done.location(), Some(&cookie)).await;
    assert!(shown.body.contains("badge dismissed"), "{}", shown.body);
    assert!(shown.body.contains("a logistics firm of the same name"));

    let open = get(base, "/alerts?status=open", Some(&cookie)).await;
    assert_eq!(rows(&open.body), 2);
    assert!(
        !open.body.contains(&alert.alert_id[..12]),
        "it left the queue"
    );
    let dismissed = get(base, "/alerts?status=dismissed", Some(&cookie)).await;
    assert_eq!(rows(&dismissed.body), 1);
    assert!(dismissed.body.contains(&alert.alert_id[..12]));
    let stored = c.store.alert(&alert.alert_id).await.unwrap().unwrap();
    assert_eq!(stored.status, AlertStatus::Dismissed);
    assert!(c
        .store
        .is_dismissed("S-2", &alert.entity_key, alert.entry_version)
        .await
        .unwrap());

    let audit = get(base, "/audit.csv", Some(&cookie)).await;
    let review_lines: Vec<&str> = audit
        .body
        .lines()
        .filter(|l| l.contains(",review,"))
        .collect();
    assert_eq!(review_lines.len(), 1, "{}", audit.body);
    let line = review_lines[0];
    for field in [",S-2,", ",dismiss,", ",ana.lyst,", alert.alert_id.as_str()] {
        assert!(line.contains(field), "{field} in {line}");
    }
    assert!(line.contains("a logistics firm of the same name"), "{line}");
    c.stop().await;
}

/// An Entity List row and a supplier whose names and licence text are markup. (The templates
/// escape as numeric references: `&#60;` for `<`, `&#34;` for `"`.)
const HOSTILE_NAME: &str = "Evil <script>alert(1)</script> Optics Co., Ltd.";
const HOSTILE_POLICY: &str = "Presumption of denial.\"><img src=x onerror=alert(2)>";
const HOSTILE_SUPPLIER_ID: &str = "X\"><svg onload=alert(3)>";

async fn hostile_names_are_escaped_everywhere(kind: Db) {
    let db = fresh_db(kind).await;
    let header = std::fs::read_to_string(fixture(
        "csl/EL_only_from_watchman_consolidated_2022-05.csv",
    ))
    .unwrap()
    .lines()
    .next()
    .unwrap()
    .to_string();
    let list = db.dir.path().join("list.csv");
    let mut w = csv::Writer::from_writer(Vec::new());
    let columns = header.split(',').count();
    let mut row = vec![String::new(); columns];
    let at = |name: &str| header.split(',').position(|c| c == name).unwrap();
    row[at("_id")] = "hostile1".into();
    row[at("source")] = "Entity List (EL) - Bureau of Industry and Security".into();
    row[at("name")] = HOSTILE_NAME.into();
    row[at("addresses")] = "<b>1 Road</b>, Shenzhen, CN".into();
    row[at("federal_register_notice")] = "89 FR 1".into();
    row[at("license_requirement")] = "For all items subject to the EAR.<iframe>".into();
    row[at("license_policy")] = HOSTILE_POLICY.into();
    row[at("alt_names")] = "<i>Evil Optics</i>".into();
    w.write_record(header.split(',')).unwrap();
    w.write_record(&row).unwrap();
    std::fs::write(&list, w.into_inner().unwrap()).unwrap();
    let mut cmd = entitywatch();
    cmd.arg("--database-url")
        .arg(&db.url)
        .args(["list", "import"])
        .arg(&list);
    let r = run(cmd).await;
    assert!(r.status.success(), "list import: {}", r.stderr);
    let mut suppliers = csv::Writer::from_writer(Vec::new());
    suppliers.write_record(["id", "name", "country"]).unwrap();
    suppliers
        .write_record([HOSTILE_SUPPLIER_ID, HOSTILE_NAME, "CN"])
        .unwrap();
    import_suppliers(
        &db,
        &String::from_utf8(suppliers.into_inner().unwrap()).unwrap(),
    )
    .await;

    let settings = common::app::settings(&db.url, "http://127.0.0.1:9/");
    let app = common::app::spawn_app(
        &settings,
        ServiceSpec {
            worker: true,
            ..ServiceSpec::default()
        },
    )
    .await;
    let store = Store::connect(&db.url).await.unwrap();
    let c = Console {
        base: format!("http://{}", app.http),
        db,
        app,
        store,
        _rules: None,
    };
    let base = c.base.as_str();
    let alerts = c.open_alerts().await;
    assert_eq!(
        alerts.len(),
        1,
        "the hostile supplier matches the hostile entry"
    );
    let cookie = sign_in(base, &c.token("ana.lyst", Scope::Review).await).await;

    let queue = get(base, "/alerts?status=open", Some(&cookie)).await;
    let supplier_link = "/suppliers/X%22%3E%3Csvg%20onload%3Dalert%283%29%3E";
    assert!(queue.body.contains(supplier_link), "{}", queue.body);
    let alert_page = get(
        base,
        &format!("/alerts/{}", alerts[0].alert_id),
        Some(&cookie),
    )
    .await;
    let supplier = get(base, supplier_link, Some(&cookie)).await;
    assert_eq!(supplier.status, 200, "the encoded id finds the supplier");
    for (what, p) in [
        ("queue", &queue),
        ("alert", &alert_page),
        ("supplier", &supplier),
    ] {
        assert_eq!(p.status, 200, "{what}");
        for raw in [
            "<script>",
            "<img",
            "<svg",
            "<iframe",
            "<b>1 Road",
            "<i>Evil",
        ] {
            assert!(
                !p.body.contains(raw),
                "{raw} unescaped on the {what} page:\n{}",
                p.body
            );
        }
        assert!(
            p.body
                .contains("Evil &#60;script&#62;alert(1)&#60;/script&#62; Optics Co., Ltd."),
            "the name shown escaped on the {what} page:\n{}",
            p.body
        );
        let csp = p.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("script-src"),
            "no script may run: {csp}"
        );
        assert_eq!(p.headers["x-content-type-options"], "nosniff");
    }
    for escaped in [
        "&#60;img src=x onerror=alert(2)&#62;",
        "&#60;iframe&#62;",
        "&#60;b&#62;1 Road&#60;/b&#62;",
        "X&#34;&#62;&#60;svg onload=alert(3)&#62;",
    ] {
        assert!(
            alert_page.body.contains(escaped),
            "{escaped} on the alert page:\n{}",
            alert_page.body
        );
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_https_the_cookies_are_secure() {
    let db = fresh_db(Db::Sqlite).await;
    let mut settings = common::app::settings(&db.url, "http://127.0.0.1:9/");
    settings.console_secure_cookie = true;
    let spec = ServiceSpec {
        worker: true,
        ..ServiceSpec::default()
    };
    let app = common::app::spawn_app(&settings, spec).await;
    let store = Store::connect(&db.url).await.unwrap();
    let (_, secret) = store.create_token("ana.lyst", Scope::Read).await.unwrap();
    let base = format!("http://{}", app.http);
    let form = get(&base, "/login", None).await;
    let signed_in = try_sign_in(&base, secret.expose(), "").await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    for (what, headers) in [
        ("sign-in form", &form.headers),
        ("session", &signed_in.headers),
    ] {
        let cookies = set_cookies(headers);
        assert!(!cookies.is_empty());
        assert!(
            cookies.iter().all(|c| c.contains("; Secure")),
            "{what}: {cookies:?}"
        );
    }
    store.close().await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// In a real browser

/// What the browser test needs, or why it cannot run: it fails then, naming the script that
/// installs it, rather than passing without a browser.
fn browser_tooling() -> (PathBuf, PathBuf) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "no browser at {}: run scripts/services.sh start (it installs Debian's chromium)",
        chromium.display()
    );
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "no node on PATH: run scripts/services.sh start (it installs nodejs and npm)"
    );
    let playwright = root.join("tests/browser/node_modules/playwright-core/package.json");
    assert!(
        playwright.exists(),
        "no playwright-core in tests/browser/node_modules: run scripts/services.sh start (it \
         runs npm ci there)"
    );
    (root, chromium)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_dismisses_an_alert_in_a_real_browser() {
    let (root, chromium) = browser_tooling();
    // The demo's six rules and supplier master: a queue as an analyst would see it, entries
    // with histories (added, then revised).
    let rules = [
        "2019-13245",
        "2019-22210",
        "2020-15827",
        "2021-04505",
        "2025-00480",
        "2025-00704",
    ];
    let c = console_after_rules(Db::Sqlite, &rules, entitywatch::demo::SUPPLIERS_CSV).await;
    let before = c.open_alerts().await;
    assert!(before.len() >= 3, "{} open alerts", before.len());
    let mut make = entitywatch();
    make.arg("--database-url").arg(&c.db.url).args([
        "tokens", "create", "--name", "ana.lyst", "--scope", "review",
    ]);
    let made = run(make).await;
    assert!(made.status.success(), "{}", made.stderr);
    let token = made.stdout.trim().to_string();

    let mut browser = tokio::process::Command::new("node");
    browser
        .arg(root.join("tests/browser/console.mjs"))
        .arg(&c.base)
        .arg(&token)
        .current_dir(&root)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true);
    if let Some(dir) = std::env::var_os("CONSOLE_SCREENSHOTS") {
        let dir = root.join(Path::new(&dir));
        std::fs::create_dir_all(&dir).unwrap();
        browser.env("CONSOLE_SCREENSHOTS", dir);
    }
    let out = common::wait::bounded(
        "the browser test",
        Duration::from_secs(180),
        browser.output(),
    )
    .await
    .expect("node runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["open_before"], before.len());
    assert_eq!(summary["open_after"], before.len() - 1);

    // What the browser did, seen from the store.
    let dismissed = c
        .store
        .alerts(&AlertQuery {
            status: Some(AlertStatus::Dismissed),
            ..AlertQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(dismissed.len(), 1);
    assert!(dismissed[0]
        .alert_id
        .starts_with(summary["dismissed"].as_str().unwrap()));
    let reviews = c.store.alert_reviews(&dismissed[0].alert_id).await.unwrap();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].reviewer, "ana.lyst");
    assert!(
        reviews[0].reason.starts_with("browser test"),
        "{:?}",
        reviews[0]
    );
    assert_eq!(c.open_alerts().await.len(), before.len() - 1);
    c.stop().await;
}
