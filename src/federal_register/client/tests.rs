use super::transport::retry_after;
use super::url_policy::redacted;
use super::*;

use std::sync::atomic::AtomicUsize;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

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
        upstream: super::Upstream::FederalRegister,
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
                let full = page(vec![bis_rule("2019-22210", "2019-10-09")], 1, None).to_string();
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
                    Some("https://evil.example.com/api/v1/documents.json?page=2&token=x".into()),
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

#[test]
fn a_long_query_is_logged_short() {
    let fields: String = (0..12)
        .map(|i| format!("&fields%5B%5D=field_{i}"))
        .collect();
    let u = Url::parse(&format!(
        "https://www.federalregister.gov/api/v1/documents.json?per_page=100{fields}"
    ))
    .expect("url");
    let shown = loggable(&u);
    assert!(shown.starts_with("/api/v1/documents.json?per_page=100&fields%5B%5D=field_0"));
    assert!(shown.len() < 140, "{} characters: {shown}", shown.len());
    assert!(shown.ends_with("more bytes)"), "{shown}");
}

#[tokio::test]
async fn a_conditional_get_sends_the_tag_and_honours_a_304() {
    let router = Router::new().route(
        "/consolidated.json",
        get(|headers: axum::http::HeaderMap| async move {
            if headers
                .get(header::IF_NONE_MATCH)
                .map(HeaderValue::as_bytes)
                == Some(b"\"v1\"")
            {
                (StatusCode::NOT_MODIFIED, [(header::ETAG, "\"v1\"")]).into_response()
            } else {
                ([(header::ETAG, "\"v1\"")], "{\"results\":[]}").into_response()
            }
        }),
    );
    let base = serve(router).await;
    let c = client(test_config(base));
    assert_eq!(
        c.fetch_conditional("consolidated.json", "application/json", None)
            .await
            .unwrap(),
        ConditionalBody::Body {
            bytes: b"{\"results\":[]}".to_vec(),
            etag: Some("\"v1\"".into())
        }
    );
    assert_eq!(
        c.fetch_conditional("consolidated.json", "application/json", Some("\"v1\""))
            .await
            .unwrap(),
        ConditionalBody::NotModified {
            etag: Some("\"v1\"".into())
        }
    );
    // A stale tag gets the body.
    assert!(matches!(
        c.fetch_conditional("consolidated.json", "application/json", Some("\"v0\""))
            .await
            .unwrap(),
        ConditionalBody::Body { .. }
    ));
    // Another host is refused before any request, as for every Federal Register URL.
    assert!(matches!(
        c.fetch_conditional(
            "http://csl.example.invalid/x.json",
            "application/json",
            None
        )
        .await,
        Err(ClientError::ForeignHost { .. })
    ));
}
