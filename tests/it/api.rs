//! Issue 15, item 1: the HTTP API v1, black-box over HTTP on SQLite and PostgreSQL — the
//! service in-process with its watcher, worker and API on port 0, 84 FR 54002 replayed from a
//! local Federal Register so the list, the change feed and the entries' history are real.
//!
//! Every endpoint, with 401/403, 413, bad JSON, unknown fields, a cursor from another query
//! and unknown ids; every JSON answer is checked against `schemas/openapi.json`, and the
//! document's routes are checked against the router's.

use std::collections::BTreeSet;
use std::time::Duration;

use entitywatch::app::{ServiceSpec, WatcherOutput, WatcherSpec};
use entitywatch::domain::Scope;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::app::{settings, spawn_app, TestApp};
use crate::common::scenario::rule_server;
use crate::common::wait::poll_until;
use crate::common::{fresh_db, Db, TestDb};

const OPENAPI: &str = include_str!("../../schemas/openapi.json");

on_both!(
    suppliers_are_upserted_screened_paged_and_deleted,
    a_batch_stores_every_good_line_and_names_each_bad_one,
    names_are_screened_in_bulk_and_by_delta,
    alerts_are_listed_shown_and_reviewed_by_the_token_holder,
    the_audit_trail_streams_and_resumes_by_cursor,
    the_change_feed_and_entries_show_what_the_rule_did,
);

/// The service with 84 FR 54002 applied, and a token of each scope.
struct Api {
    _federal_register: entitywatch::federal_register::replay::ReplayServer,
    app: Option<TestApp>,
    base: String,
    client: reqwest::Client,
    read: String,
    review: String,
    admin: String,
    db: TestDb,
    doc: Value,
}

const HIKVISION: &str = "CN/hangzhou-hikvision-digital-technology-co-ltd";

impl Api {
    async fn start(kind: Db) -> Api {
        Self::start_with(kind, None).await
    }

    async fn start_with(kind: Db, max_body: Option<usize>) -> Api {
        let db = fresh_db(kind).await;
        let fr = rule_server().await;
        let mut s = settings(&db.url, &fr.base_url());
        if let Some(m) = max_body {
            s.api_max_body = m;
        }
        let store = entitywatch::store::Store::connect(&db.url).await.unwrap();
        let token = |name: &'static str, scope| {
            let store = store.clone();
            async move {
                let (_, secret) = store.create_token(name, scope).await.unwrap();
                secret.expose().to_string()
            }
        };
        let (read, review, admin) = (
            token("reader", Scope::Read).await,
            token("ana.lyst", Scope::Review).await,
            token("admin", Scope::Admin).await,
        );
        let spec = ServiceSpec {
            watcher: Some(WatcherSpec {
                interval: Duration::from_secs(60),
                since: chrono::NaiveDate::from_ymd_opt(2019, 1, 1),
                public_inspection: false,
                output: WatcherOutput::Bus,
            }),
            worker: true,
            ..ServiceSpec::default()
        };
        let app = spawn_app(&s, spec).await;
        assert!(
            poll_until(Duration::from_secs(30), || {
                let store = store.clone();
                async move {
                    let key = entitywatch::events::EntityKey::parse(HIKVISION).unwrap();
                    store.listed_entry(&key).await.unwrap().is_some()
                }
            })
            .await,
            "84 FR 54002 reached the snapshot"
        );
        // The rule's other entries are applied one change at a time: wait until the
        // snapshot stops growing, so every test sees the whole rule.
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = store.listed_entry_count().await.unwrap();
            if now == last {
                break;
            }
            last = now;
        }
        store.close().await;
        Api {
            _federal_register: fr,
            base: format!("http://{}", app.http),
            app: Some(app),
            client: reqwest::Client::new(),
            read,
            review,
            admin,
            db,
            doc: serde_json::from_str(OPENAPI).unwrap(),
        }
    }

    async fn stop(mut self) {
        self.app.take().unwrap().stop().await;
    }

    fn request(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends, and checks the answer against the OpenAPI document's schema for `template`.
    async fn call(
        &self,
        method: Method,
        template: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.request(method.clone(), path, token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let response = r.send().await.unwrap();
        self.checked(method, template, response).await
    }

    async fn checked(
        &self,
        method: Method,
        template: &str,
        response: reqwest::Response,
    ) -> (StatusCode, Value) {
        let status = response.status();
        let ctype = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{template}: {e}: {text}"))
        };
        if !status.is_success() {
            assert_eq!(
                ctype, "application/problem+json",
                "{template} {status}: {text}"
            );
            assert_eq!(body["status"], status.as_u16());
        }
        conforms(&self.doc, &method, template, status, &ctype, &body);
        (status, body)
    }

    async fn put_supplier(&self, id: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::PUT,
            "/v1/suppliers/{id}",
            &format!("/v1/suppliers/{id}"),
            Some(&self.review),
            Some(body),
        )
        .await
    }
}

/// The answer conforms to what the document says `method template` answers with `status`.
fn conforms(
    doc: &Value,
    method: &Method,
    template: &str,
    status: StatusCode,
    ctype: &str,
    body: &Value,
) {
    let op = &doc["paths"][template][method.as_str().to_lowercase()];
    assert!(
        op.is_object(),
        "{method} {template} is in the OpenAPI document"
    );
    let response = &op["responses"][status.as_str()];
    assert!(
        response.is_object(),
        "{method} {template} documents status {status}"
    );
    let media = ctype.split(';').next().unwrap().trim();
    let Some(schema) = response["content"][media]["schema"].as_object() else {
        assert!(
            response.get("content").is_none() && body.is_null(),
            "{method} {template} {status}: {media} documented"
        );
        return;
    };
    let mut root = Value::Object(schema.clone());
    root["components"] = doc["components"].clone();
    let validator = jsonschema::validator_for(&root).expect("the document's schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {template} {status} breaks its schema: {errors:?}\n{body:#}"
    );
}

fn problem_field(body: &Value) -> &str {
    body["field"].as_str().unwrap_or("")
}

async fn suppliers_are_upserted_screened_paged_and_deleted(kind: Db) {
    let api = Api::start(kind).await;
    let (status, created) = api
        .put_supplier(
            "S-1",
            json!({"name": "HANGZHOU HIKVISION DIGITAL TECHNOLOGY CO LTD", "country": "CN"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["created"], true);
    let best = &created["matches"][0];
    assert_eq!(best["entity_key"], HIKVISION);
    assert_eq!(best["is_match"], true);
    assert_eq!(best["entry_document"], "2019-22210");
    assert_eq!(created["alerts"]["delivered"], 1);

    // The same record again: stored, screened, and no second alert (the import's ledger).
    let (status, again) = api
        .put_supplier(
            "S-1",
            json!({"id": "S-1", "name": "HANGZHOU HIKVISION DIGITAL TECHNOLOGY CO LTD", "country": "CN"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["created"], false);
    assert_eq!(again["alerts"]["delivered"], 0, "{again}");
    assert_eq!(again["matches"][0]["entity_key"], HIKVISION);
    let topic = crate::common::alert_topic(&api.db).await;
    assert_eq!(topic.len(), 1, "one alert on the alert topic: {topic:?}");

    let (status, look_alike) = api
        .put_supplier("L-5", json!({"name": "Siemens AG", "country": "DE"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(look_alike["matches"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["is_match"] == false));
    api.put_supplier("S-3", json!({"name": "iFlytek Co., Ltd.", "country": "CN", "aliases": ["iFlytek"], "references": {"erp": "4711"}}))
        .await;

    // Refused bodies name their field.
    for (body, field) in [
        (json!({"name": "X", "colour": "red"}), "/colour"),
        (json!({"name": "X", "country": "Atlantis"}), "/country"),
        (json!({"name": "  "}), "/name"),
        (json!({"id": "S-9", "name": "X"}), "/id"),
        (json!({"name": 7}), "/name"),
        (json!({"name": "X", "schema": "Robot"}), "/schema"),
    ] {
        let (status, p) = api.put_supplier("S-2", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {p}");
        assert_eq!(problem_field(&p), field, "{body}: {p}");
    }
    let broken = api
        .request(Method::PUT, "/v1/suppliers/S-2", Some(&api.review))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let (status, p) = api.checked(Method::PUT, "/v1/suppliers/{id}", broken).await;
    assert_eq!(
        (status, problem_field(&p)),
        (StatusCode::BAD_REQUEST, "body")
    );

    // Scopes: a read token may read, not write; deleting needs admin.
    let (status, _) = api
        .call(
            Method::PUT,
            "/v1/suppliers/{id}",
            "/v1/suppliers/S-2",
            Some(&api.read),
            Some(json!({"name": "X"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, p) = api
        .call(
            Method::GET,
            "/v1/suppliers/{id}",
            "/v1/suppliers/S-1",
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, problem_field(&p)),
        (StatusCode::UNAUTHORIZED, "Authorization")
    );
    let (status, p) = api
        .call(
            Method::GET,
            "/v1/suppliers/{id}",
            "/v1/suppliers/S-1",
            Some("ew_nonsense"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{p}");
    let (status, one) = api
        .call(
            Method::GET,
            "/v1/suppliers/{id}",
            "/v1/suppliers/S-3",
            Some(&api.read),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["aliases"], json!(["iFlytek"]));
    assert_eq!(one["references"]["erp"], "4711");
    let (status, _) = api
        .call(
            Method::GET,
            "/v1/suppliers/{id}",
            "/v1/suppliers/NOPE",
            Some(&api.read),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Pages by cursor, each id once.
    let mut seen = Vec::new();
    let mut path = "/v1/suppliers?limit=2".to_string();
    let mut cursor_of_suppliers = None;
    loop {
        let (status, page) = api
            .call(Method::GET, "/v1/suppliers", &path, Some(&api.read), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for s in page["items"].as_array().unwrap() {
            seen.push(s["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => {
                cursor_of_suppliers = Some(c.to_string());
                path = format!("/v1/suppliers?limit=2&cursor={c}");
            }
            None => break,
        }
    }
    assert_eq!(seen, ["L-5", "S-1", "S-3"]);
    let cursor = cursor_of_suppliers.expect("three suppliers make two pages");
    let (status, p) = api
        .call(
            Method::GET,
            "/v1/alerts",
            &format!("/v1/alerts?cursor={cursor}"),
            Some(&api.read),
            None,
        )
        .await;
    assert_eq!(
        (status, problem_field(&p)),
        (StatusCode::BAD_REQUEST, "cursor"),
        "{p}"
    );
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "colour=red",
        "cursor=zz",
    ] {
        let (status, p) = api
            .call(
                Method::GET,
                "/v1/suppliers",
                &format!("/v1/suppliers?{bad}"),
                Some(&api.read),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {p}");
        assert!(!problem_field(&p).is_empty(), "{bad}: {p}");
    }

    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/suppliers/{id}",
            "/v1/suppliers/L-5",
            Some(&api.review),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/suppliers/{id}",
            "/v1/suppliers/L-5",
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/suppliers/{id}",
            "/v1/suppliers/L-5",
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    api.stop().await;
}

async fn a_batch_stores_every_good_line_and_names_each_bad_one(kind: Db) {
    let owned = Api::start_with(kind, Some(4096)).await;
    let api = &owned;
    let lines = [
        r#"{"id": "S-2", "name": "Zhejiang Dahua Technology Co., Ltd.", "country": "CN"}"#,
        r#"{"id": "B-1", "name": ""}"#,
        "",
        "not json",
        r#"{"name": "no id"}"#,
        r#"{"id": "B-2", "name": "Hefei Wangjiang Road Printing Co", "country": "CN", "shoe": 1}"#,
        r#"{"id": "B-3", "name": "Hefei Wangjiang Road Printing Co", "country": "CN"}"#,
    ];
    let post = |body: String, token: String| {
        api.request(Method::POST, "/v1/suppliers/batch", Some(&token))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
    };
    let r = post(lines.join("\n"), api.review.clone()).await.unwrap();
    let (status, out) = api.checked(Method::POST, "/v1/suppliers/batch", r).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(
        (out["stored"].as_u64(), out["rejected"].as_u64()),
        (Some(2), Some(4)),
        "{out}"
    );
    let errors: Vec<(u64, &str)> = out["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [(2, "/name"), (4, "body"), (5, "/id"), (6, "/shoe")]
    );
    assert_eq!(out["alerts"]["delivered"], 1, "Dahua alerts once: {out}");
    for id in ["S-2", "B-3"] {
        let (status, _) = api
            .call(
                Method::GET,
                "/v1/suppliers/{id}",
                &format!("/v1/suppliers/{id}"),
                Some(&api.read),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{id} stored");
    }
    let (status, _) = api
        .call(
            Method::GET,
            "/v1/suppliers/{id}",
            "/v1/suppliers/B-2",
            Some(&api.read),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Over the body limit (4 KiB here): 413, nothing stored.
    let big: Vec<String> = (0..100)
        .map(|i| format!(r#"{{"id": "X-{i}", "name": "Filler Company Number {i}"}}"#))
        .collect();
    let r = post(big.join("\n"), api.review.clone()).await.unwrap();
    let (status, p) = api.checked(Method::POST, "/v1/suppliers/batch", r).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{p}");
    let (status, _) = api
        .call(
            Method::GET,
            "/v1/suppliers/{id}",
            "/v1/suppliers/X-0",
            Some(&api.read),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let r = post(lines[0].to_string(), api.read.clone()).await.unwrap();
    let (status, _) = api.checked(Method::POST, "/v1/suppliers/batch", r).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    owned.stop().await;
}

async fn names_are_screened_in_bulk_and_by_delta(kind: Db) {
    let owned = Api::start(kind).await;
    let api = &owned;
    let screen = |body: Value| {
        api.call(
            Method::POST,
            "/v1/screen",
            "/v1/screen",
            Some(&api.read),
            Some(body),
        )
    };
    let (status, out) = screen(json!({"queries": [
        {"name": "Zhejiang Dahua Technology Co Ltd", "country": "CN"},
        {"name": "Siemens AG", "country": "DE"},
        {"name": "iFlytek", "aliases": ["Anhui USTC iFlytek"], "schema": "Company"},
    ]}))
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0]["matches"][0]["entity_key"],
        "CN/dahua-technology"
    );
    assert_eq!(results[0]["matches"][0]["is_match"], true);
    assert!(results[0]["matches"][0]["explanation"]["matched"].is_array());
    assert!(results[1]["matches"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["is_match"] == false));
    assert_eq!(results[2]["matches"][0]["entity_key"], "CN/iflytek");

    // Delta: the rule's entries changed after 2019, none after 2100.
    let (_, recent) = screen(json!({"queries": [{"name": "Zhejiang Dahua Technology Co Ltd"}], "changed_since": "2019-01-01"})).await;
    assert_eq!(
        recent["results"][0]["matches"][0]["entity_key"],
        "CN/dahua-technology"
    );
    let (_, none) = screen(json!({"queries": [{"name": "Zhejiang Dahua Technology Co Ltd"}], "changed_since": "2100-01-01T00:00:00Z"})).await;
    assert_eq!(none["results"][0]["matches"], json!([]));

    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"name": format!("Name {i}")}))
        .collect();
    for (body, field) in [
        (json!({"queries": many}), "/queries"),
        (json!({"queries": []}), "/queries"),
        (
            json!({"queries": [{"name": "X", "nickname": "Y"}]}),
            "/queries/0/nickname",
        ),
        (
            json!({"queries": [{"name": "X"}, {"name": "Y", "country": "Narnia"}]}),
            "/queries/1/country",
        ),
        (
            json!({"queries": [{"name": "X", "schema": "Robot"}]}),
            "/queries/0/schema",
        ),
        (json!({"queries": [{"name": "--"}]}), "/queries/0/name"),
        (
            json!({"queries": [{"name": "X"}], "changed_since": "yesterday"}),
            "/changed_since",
        ),
        (json!({"queries": [{"name": "X"}], "limit": 0}), "/limit"),
        (json!({"names": ["X"]}), "/names"),
    ] {
        let (status, p) = screen(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
        assert_eq!(problem_field(&p), field, "{p}");
    }
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/screen",
            "/v1/screen",
            None,
            Some(json!({"queries": [{"name": "X"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    owned.stop().await;
}

async fn alerts_are_listed_shown_and_reviewed_by_the_token_holder(kind: Db) {
    let owned = Api::start(kind).await;
    let api = &owned;
    api.put_supplier(
        "S-1",
        json!({"name": "HANGZHOU HIKVISION DIGITAL TECHNOLOGY CO LTD", "country": "CN"}),
    )
    .await;
    api.put_supplier(
        "S-2",
        json!({"name": "Zhejiang Dahua Technology Co., Ltd.", "country": "CN"}),
    )
    .await;
    let list = |query: &str| {
        let path = format!("/v1/alerts{query}");
        async move {
            api.call(Method::GET, "/v1/alerts", &path, Some(&api.read), None)
                .await
        }
    };
    let (status, all) = list("").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{all}");
    assert!(items.iter().all(|a| a["status"] == "open"));
    let (_, first) = list("?limit=1").await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("two alerts, two pages")
        .to_string();
    let (_, second) = list(&format!("?limit=1&cursor={cursor}")).await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_ne!(
        first["items"][0]["alert_id"],
        second["items"][0]["alert_id"]
    );
    assert!(second["next_cursor"].is_null());
    let (status, p) = list(&format!("?limit=1&status=open&cursor={cursor}")).await;
    assert_eq!(
        (status, problem_field(&p)),
        (StatusCode::BAD_REQUEST, "cursor"),
        "another query's cursor"
    );
    let (_, s1) = list("?supplier_id=S-1").await;
    assert_eq!(s1["items"].as_array().unwrap().len(), 1);
    let id = s1["items"][0]["alert_id"].as_str().unwrap().to_string();
    let (_, by_entry) = list(&format!("?entity_key={HIKVISION}&since=2019-01-01")).await;
    assert_eq!(by_entry["items"][0]["alert_id"], id.as_str());
    let (_, later) = list("?since=2100-01-01").await;
    assert_eq!(later["items"], json!([]));
    for bad in ["?status=maybe", "?since=soon"] {
        let (status, p) = list(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {p}");
    }

    let show = |id: String| async move {
        api.call(
            Method::GET,
            "/v1/alerts/{id}",
            &format!("/v1/alerts/{id}"),
            Some(&api.read),
            None,
        )
        .await
    };
    let (status, whole) = show(id.clone()).await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    assert_eq!(whole["supplier"]["id"], "S-1");
    assert_eq!(whole["entry"]["entity_key"], HIKVISION);
    assert!(whole["score"].as_f64().unwrap() > 0.9);
    assert!(!whole["explanation"].as_str().unwrap().is_empty());
    assert_eq!(whole["entry_history"][0]["document_number"], "2019-22210");
    assert_eq!(whole["deliveries"][0]["sink"], "alert-topic");
    assert_eq!(whole["deliveries"][0]["state"], "delivered");
    let (status, by_prefix) = show(id[..12].to_string()).await;
    assert_eq!(
        (status, by_prefix["alert_id"].as_str()),
        (StatusCode::OK, Some(id.as_str()))
    );
    let (status, _) = show("0000000000000000".to_string()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let review = |id: String, token: String, body: Value| async move {
        api.call(
            Method::POST,
            "/v1/alerts/{id}/review",
            &format!("/v1/alerts/{id}/review"),
            Some(&token),
            Some(body),
        )
        .await
    };
    let dismiss = json!({"decision": "dismiss", "reason": "a different Hangzhou firm"});
    let (status, _) = review(id.clone(), api.read.clone(), dismiss.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "reading is not reviewing");
    for (body, field) in [
        (json!({"decision": "ignore", "reason": "x"}), "/decision"),
        (json!({"decision": "dismiss", "reason": "  "}), "/reason"),
        (json!({"decision": "dismiss"}), "body"),
        (
            json!({"decision": "dismiss", "reason": "x", "reviewer": "someone else"}),
            "/reviewer",
        ),
    ] {
        let (status, p) = review(id.clone(), api.review.clone(), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {p}");
        assert_eq!(problem_field(&p), field, "{body}: {p}");
    }
    let (status, _) = review(
        "0000000000000000".into(),
        api.review.clone(),
        dismiss.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, done) = review(id.clone(), api.review.clone(), dismiss).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(
        done["reviewer"], "ana.lyst",
        "the reviewer is the token's name"
    );
    assert_eq!(done["status"], "dismissed");
    let (_, open) = list("?status=open").await;
    assert_eq!(open["items"].as_array().unwrap().len(), 1);
    assert_eq!(open["items"][0]["supplier"]["id"], "S-2");
    let (_, dismissed) = list("?status=dismissed").await;
    assert_eq!(dismissed["items"][0]["alert_id"], id.as_str());
    let (_, whole) = show(id.clone()).await;
    assert_eq!(whole["reviews"][0]["reviewer"], "ana.lyst");
    assert_eq!(whole["status"], "dismissed");
    // Dismissed: the same supplier record screened again raises nothing.
    let (_, again) = api
        .put_supplier(
            "S-1",
            json!({"name": "HANGZHOU HIKVISION DIGITAL TECHNOLOGY CO LTD", "country": "CN"}),
        )
        .await;
    assert_eq!(again["alerts"]["delivered"], 0, "{again}");
    owned.stop().await;
}

async fn the_audit_trail_streams_and_resumes_by_cursor(kind: Db) {
    let owned = Api::start(kind).await;
    let api = &owned;
    api.put_supplier(
        "S-1",
        json!({"name": "HANGZHOU HIKVISION DIGITAL TECHNOLOGY CO LTD", "country": "CN"}),
    )
    .await;
    api.put_supplier(
        "S-2",
        json!({"name": "Zhejiang Dahua Technology Co., Ltd.", "country": "CN"}),
    )
    .await;
    let (_, alerts) = api
        .call(
            Method::GET,
            "/v1/alerts",
            "/v1/alerts?supplier_id=S-2",
            Some(&api.read),
            None,
        )
        .await;
    let id = alerts["items"][0]["alert_id"].as_str().unwrap().to_string();
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/alerts/{id}/review",
            &format!("/v1/alerts/{id}/review"),
            Some(&api.review),
            Some(json!({"decision": "escalate", "reason": "=HYPERLINK(\"x\") needs legal"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let get = |query: String, token: Option<String>| async move {
        api.request(Method::GET, &format!("/v1/audit{query}"), token.as_deref())
            .send()
            .await
            .unwrap()
    };
    let r = get(String::new(), Some(api.read.clone())).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = r
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["record"].as_str().unwrap(),
                l["supplier_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("decision", "S-1")) && kinds.contains(&("decision", "S-2")),
        "{kinds:?}"
    );
    let last = lines.last().unwrap();
    assert_eq!(
        (last["record"].as_str(), last["reviewer"].as_str()),
        (Some("review"), Some("ana.lyst"))
    );
    assert_eq!(last["outcome"], "escalate");
    let ats: Vec<chrono::DateTime<chrono::FixedOffset>> = lines
        .iter()
        .map(|l| chrono::DateTime::parse_from_rfc3339(l["at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(ats.windows(2).all(|w| w[0] <= w[1]), "in time order");

    // Resumed after the first record: exactly the rest.
    let cursor = lines[0]["cursor"].as_str().unwrap();
    let rest: Vec<Value> = get(format!("?cursor={cursor}"), Some(api.read.clone()))
        .await
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rest, lines[1..], "resumed after the cursor's record");
    let r = get(
        format!("?since=2019-01-01&cursor={cursor}"),
        Some(api.read.clone()),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "another query's cursor"
    );

    let csv = get("?format=csv".into(), Some(api.read.clone())).await;
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(reader.headers().unwrap().get(0), Some("at"));
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), lines.len());
    assert!(
        rows.last().unwrap()[7].starts_with("'="),
        "formula neutralised: {:?}",
        rows.last()
    );

    let r = get("?since=2100-01-01".into(), Some(api.read.clone())).await;
    assert_eq!(r.text().await.unwrap(), "");
    for (query, token, status) in [
        ("", None, StatusCode::UNAUTHORIZED),
        (
            "?format=xml",
            Some(api.read.clone()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "?since=later",
            Some(api.read.clone()),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = get(query.to_string(), token).await;
        let (got, p) = api.checked(Method::GET, "/v1/audit", r).await;
        assert_eq!(got, status, "{query}: {p}");
    }
    owned.stop().await;
}

async fn the_change_feed_and_entries_show_what_the_rule_did(kind: Db) {
    let api = Api::start(kind).await;
    let mut changes = Vec::new();
    let mut path = "/v1/changes?since=2019-01-01&limit=10".to_string();
    let mut a_cursor = None;
    loop {
        let (status, page) = api
            .call(Method::GET, "/v1/changes", &path, Some(&api.read), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        changes.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => {
                a_cursor = Some(c.to_string());
                path = format!("/v1/changes?since=2019-01-01&limit=10&cursor={c}");
            }
            None => break,
        }
    }
    // 84 FR 54002 added 28 entries (the fixture's count), each once.
    let keys: BTreeSet<&str> = changes
        .iter()
        .map(|c| c["entity_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), changes.len(), "each change once across pages");
    assert!(changes.len() > 10, "{} changes", changes.len());
    assert!(keys.contains(HIKVISION));
    assert!(changes
        .iter()
        .all(|c| c["action"] == "added" && c["document_number"] == "2019-22210"));
    let cursor = a_cursor.unwrap();
    let (status, p) = api
        .call(
            Method::GET,
            "/v1/changes",
            &format!("/v1/changes?cursor={cursor}"),
            Some(&api.read),
            None,
        )
        .await;
    assert_eq!(
        (status, problem_field(&p)),
        (StatusCode::BAD_REQUEST, "cursor")
    );
    let (_, none) = api
        .call(
            Method::GET,
            "/v1/changes",
            "/v1/changes?since=2100-01-01",
            Some(&api.read),
            None,
        )
        .await;
    assert_eq!(none["items"], json!([]));

    let (status, entry) = api
        .call(
            Method::GET,
            "/v1/entries/{entity_key}",
            &format!("/v1/entries/{HIKVISION}"),
            Some(&api.read),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{entry}");
    assert_eq!(entry["entity_key"], HIKVISION);
    assert_eq!(entry["aliases"], json!(["Hikvision"]));
    assert_eq!(entry["versions"][0]["version"], 1);
    assert_eq!(entry["versions"][0]["document_number"], "2019-22210");
    assert_eq!(
        entry["versions"][0]["document_url"],
        "https://www.federalregister.gov/d/2019-22210"
    );
    for (path, status) in [
        ("/v1/entries/CN/no-such-entry", StatusCode::NOT_FOUND),
        ("/v1/entries/not-a-key", StatusCode::BAD_REQUEST),
    ] {
        let (got, _) = api
            .call(
                Method::GET,
                "/v1/entries/{entity_key}",
                path,
                Some(&api.read),
                None,
            )
            .await;
        assert_eq!(got, status, "{path}");
    }
    let (status, found) = api
        .call(
            Method::GET,
            "/v1/entries",
            "/v1/entries?q=hikvision",
            Some(&api.read),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["items"][0]["entity_key"], HIKVISION);
    let (_, by_alias) = api
        .call(
            Method::GET,
            "/v1/entries",
            "/v1/entries?q=DAHUA&limit=1",
            Some(&api.read),
            None,
        )
        .await;
    assert_eq!(by_alias["items"].as_array().unwrap().len(), 1);
    let (status, p) = api
        .call(
            Method::GET,
            "/v1/entries",
            "/v1/entries",
            Some(&api.read),
            None,
        )
        .await;
    assert_eq!((status, problem_field(&p)), (StatusCode::BAD_REQUEST, "q"));
    api.stop().await;
}

/// The routes `src/http/api/mod.rs` builds, as (method, OpenAPI path), read from its source.
fn router_routes() -> BTreeSet<(String, String)> {
    let source = include_str!("../../src/http/api/mod.rs");
    let mut out = BTreeSet::new();
    for part in source.split(".route(\"").skip(1) {
        let (path, rest) = part.split_once('"').unwrap();
        let method = rest
            .trim_start_matches(',')
            .trim_start()
            .split('(')
            .next()
            .unwrap()
            .to_string();
        let path = path
            .split('/')
            .map(
                |seg| match seg.strip_prefix(':').or_else(|| seg.strip_prefix('*')) {
                    Some(name) => format!("{{{name}}}"),
                    None => seg.to_string(),
                },
            )
            .collect::<Vec<_>>()
            .join("/");
        out.insert((method, path));
    }
    out
}

fn document_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                out.insert((method.to_string(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_valid_served_open_and_matches_the_router() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every schema is a valid JSON Schema (2020-12, OpenAPI 3.1's dialect), and every $ref
    // in the document resolves.
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        jsonschema::meta::validate(schema).unwrap_or_else(|e| panic!("schema {name}: {e}"));
    }
    let text = OPENAPI.to_string();
    for r in text.split("\"$ref\": \"").skip(1) {
        let target = r.split('"').next().unwrap();
        let pointer = target.strip_prefix('#').expect("local refs only");
        assert!(doc.pointer(pointer).is_some(), "{target} resolves");
    }
    for (method, path) in document_routes(&doc) {
        let op = &doc["paths"][&path][&method];
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path}"
        );
        for p in path.split('/').filter_map(|s| s.strip_prefix('{')) {
            let name = p.trim_end_matches('}');
            let declared = doc["paths"][&path]["parameters"]
                .as_array()
                .into_iter()
                .chain(op["parameters"].as_array())
                .flatten()
                .any(|d| d["name"] == name && d["in"] == "path");
            assert!(declared, "{method} {path} declares path parameter {name}");
        }
    }
    assert_eq!(
        router_routes(),
        document_routes(&doc),
        "every route of the router is documented, and only those"
    );

    // Served without a token, equal to the committed file; every other documented route is
    // there (401 without a token, not 404 or 405).
    let db = fresh_db(Db::Sqlite).await;
    let spec = ServiceSpec {
        worker: true,
        ..ServiceSpec::default()
    };
    let app = spawn_app(&settings(&db.url, "http://127.0.0.1:9/"), spec).await;
    let client = reqwest::Client::new();
    let served: Value = client
        .get(format!("http://{}/v1/openapi.json", app.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, doc);
    for (method, path) in document_routes(&doc) {
        if path == "/v1/openapi.json" {
            continue;
        }
        let concrete = path
            .replace("{id}", "S-1")
            .replace("{entity_key}", "CN/dahua-technology");
        let r = client
            .request(
                method.to_uppercase().parse().unwrap(),
                format!("http://{}{concrete}", app.http),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} is routed and guarded"
        );
    }
    app.stop().await;
}
