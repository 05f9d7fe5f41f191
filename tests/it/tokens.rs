//! Issue 15, item 2: API tokens on the command line, on SQLite and PostgreSQL — made once and
//! shown once, kept only as a digest, listed without the secret, revoked at once — and
//! `/metrics` behind a token when `--metrics-scope` asks for it.

use entitywatch::app::ServiceSpec;
use entitywatch::domain::Scope;

use crate::common::{self, entitywatch, fresh_db, run, Db, Run, TestDb};

fn cmd(db: &TestDb, args: &[&str]) -> tokio::process::Command {
    let mut c = entitywatch();
    c.arg("--database-url").arg(&db.url).args(args);
    c
}

async fn ok(db: &TestDb, args: &[&str]) -> Run {
    let r = run(cmd(db, args)).await;
    assert!(r.status.success(), "{args:?}: {}\n{}", r.status, r.stderr);
    r
}

on_both!(a_token_is_shown_once_kept_as_a_digest_and_revoked_at_once);

async fn a_token_is_shown_once_kept_as_a_digest_and_revoked_at_once(kind: Db) {
    let db = fresh_db(kind).await;
    let made = ok(
        &db,
        &[
            "tokens", "create", "--name", "ana.lyst", "--scope", "review",
        ],
    )
    .await;
    let secret = made.stdout.trim().to_string();
    assert!(
        secret.starts_with("ew_") && secret.len() == 67 && made.stdout.lines().count() == 1,
        "the secret alone on stdout: {:?}",
        made.stdout
    );
    assert!(made.stderr.contains("tok_") && !made.stderr.contains(&secret));

    let again = run(cmd(
        &db,
        &["tokens", "create", "--name", "ana.lyst", "--scope", "read"],
    ))
    .await;
    assert!(!again.status.success());
    assert!(
        again.stderr.contains("a live token named \"ana.lyst\""),
        "{}",
        again.stderr
    );
    let bad = run(cmd(
        &db,
        &["tokens", "create", "--name", "x", "--scope", "write"],
    ))
    .await;
    assert!(!bad.status.success());
    assert!(
        bad.stderr.contains("unknown scope \"write\""),
        "{}",
        bad.stderr
    );

    let listed = ok(&db, &["tokens", "list", "--json"]).await;
    let rows: Vec<serde_json::Value> = listed
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "ana.lyst");
    assert_eq!(rows[0]["scope"], "review");
    assert!(rows[0]["revoked_at"].is_null());
    let table = ok(&db, &["tokens", "list"]).await.stdout;
    for out in [&listed.stdout, &table] {
        assert!(
            !out.contains(&secret[3..]),
            "a listing never shows the secret"
        );
    }

    // Only the digest is stored: the secret is nowhere in the tokens table.
    let store = entitywatch::store::Store::connect(&db.url).await.unwrap();
    let parsed = entitywatch::domain::TokenSecret::parse(&secret).unwrap();
    let who = store
        .authenticate(&parsed)
        .await
        .unwrap()
        .expect("the token is live");
    assert_eq!((who.name.as_str(), who.scope), ("ana.lyst", Scope::Review));
    let kept: Vec<String> = store
        .tokens()
        .await
        .unwrap()
        .iter()
        .map(|t| format!("{t:?}"))
        .collect();
    assert!(kept.iter().all(|t| !t.contains(&secret[3..])));

    let id = rows[0]["token_id"].as_str().unwrap();
    let revoked = ok(&db, &["tokens", "revoke", id]).await;
    assert!(
        revoked.stderr.contains("revoked token"),
        "{}",
        revoked.stderr
    );
    assert!(
        store.authenticate(&parsed).await.unwrap().is_none(),
        "revoked at once"
    );
    let twice = run(cmd(&db, &["tokens", "revoke", "ana.lyst"])).await;
    assert!(!twice.status.success());
    assert!(twice.stderr.contains("no live token"), "{}", twice.stderr);
    // The name is free again once its token is revoked.
    ok(
        &db,
        &["tokens", "create", "--name", "ana.lyst", "--scope", "read"],
    )
    .await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_put_behind_a_token_and_the_probes_stay_open() {
    let db = fresh_db(Db::Sqlite).await;
    let read = ok(
        &db,
        &[
            "tokens",
            "create",
            "--name",
            "prometheus",
            "--scope",
            "read",
        ],
    )
    .await
    .stdout
    .trim()
    .to_string();
    let mut settings = common::app::settings(&db.url, "http://127.0.0.1:9/");
    settings.metrics_scope = Some(Scope::Review);
    let spec = ServiceSpec {
        worker: true,
        ..ServiceSpec::default()
    };
    let app = common::app::spawn_app(&settings, spec).await;
    let review = {
        let store = entitywatch::store::Store::connect(&db.url).await.unwrap();
        let (_, secret) = store.create_token("scraper", Scope::Review).await.unwrap();
        store.close().await;
        secret.expose().to_string()
    };
    let client = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut r = client.get(format!("http://{}{path}", app.http));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            get(path, None).await.unwrap().status(),
            200,
            "{path} stays open"
        );
    }
    let none = get("/metrics", None).await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["content-type"], "application/problem+json");
    assert!(none.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let body: serde_json::Value = none.json().await.unwrap();
    assert_eq!(body["status"], 401);
    assert_eq!(body["field"], "Authorization");
    let wrong = format!("ew_{}", "0".repeat(64));
    assert_eq!(get("/metrics", Some(&wrong)).await.unwrap().status(), 401);
    assert_eq!(
        get("/metrics", Some("nonsense")).await.unwrap().status(),
        401
    );
    let small = get("/metrics", Some(&read)).await.unwrap();
    assert_eq!(
        small.status(),
        403,
        "a read token is below the review scope asked for"
    );
    let scraped = get("/metrics", Some(&review)).await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("entitywatch_"));
    app.stop().await;
}

/// A token never reaches the log, at debug level, whether it is good, wrong or malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_reach_the_logs() {
    let db = fresh_db(Db::Sqlite).await;
    let good = ok(
        &db,
        &["tokens", "create", "--name", "ana", "--scope", "read"],
    )
    .await
    .stdout
    .trim()
    .to_string();
    let wrong = format!("ew_{}", "7".repeat(64));
    let malformed = "ew_not-a-token-but-secret-anyway";
    let mut cmd = common::run_embedded(&db.url, "http://127.0.0.1:9/");
    cmd.env("ENTITYWATCH_LOG", "debug");
    let service = common::service::Service::start(cmd).await;
    let client = reqwest::Client::new();
    for (token, want) in [(&good, 200), (&wrong, 401), (&malformed.to_string(), 401)] {
        let answer = client
            .get(format!("http://{}/v1/alerts", service.http))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), want);
        let body = answer.text().await.unwrap();
        assert!(
            !body.contains(&token[3..]),
            "an answer echoed the token: {body}"
        );
    }
    let (_, logs) = service.terminate(std::time::Duration::from_secs(20)).await;
    assert!(
        logs.contains("DEBUG") || logs.contains("debug"),
        "debug logs were on: {logs}"
    );
    for token in [&good, &wrong, &malformed.to_string()] {
        assert!(!logs.contains(&token[3..]), "a token was logged:\n{logs}");
    }
}
