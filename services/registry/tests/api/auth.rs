//! Credentials, scopes, auth before the body, the page behind Basic auth, and the audit actor.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TOKEN, TestApp, error_message, registration, spawn_app, token_of};

/// Every route that changes something, with a body it could take.
const MUTATIONS: [(&str, &str); 7] = [
    ("POST", "/v1/models/fraud/versions"),
    ("PUT", "/v1/models/fraud/aliases/production"),
    ("POST", "/v1/models/fraud/aliases/production/rollback"),
    ("POST", "/v1/models/fraud/versions/1/archive"),
    ("POST", "/v1/models/fraud/versions/1/keep"),
    ("POST", "/v1/models/fraud/versions/1/unkeep"),
    ("POST", "/v1/models/fraud/gc"),
];

/// Sends a request head announcing a `declared`-byte JSON body, then only the first bytes of
/// it, and returns the status line the server answers with, if it answers within 5 s.
fn status_before_body(app: &TestApp, method: &str, path: &str, auth: Option<&str>) -> String {
    let addr = app.address.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let declared: u64 = 200 * 1000 * 1000;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {declared}\r\n{auth}\r\n{{\"manifest\": "
    )
    .unwrap();
    stream.flush().unwrap();
    let mut answer = vec![0u8; 1024];
    let n = stream.read(&mut answer).unwrap_or(0);
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or("no answer within 5 s")
        .to_owned()
}

/// The registry answers 401 (or 403 for a credential without the scope) from the headers
/// alone: the client has sent a few bytes of a 200 MB body and the answer comes anyway. Were a
/// body extractor polled before the credential check, the server would wait for the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_upload_is_refused_before_its_body_is_sent() {
    // Arrange
    let app = std::sync::Arc::new(spawn_app(&[]).await);
    let reader = format!("Bearer {}", token_of("reader"));
    for (method, path) in MUTATIONS {
        for (auth, expected) in [
            (None, "HTTP/1.1 401"),
            (Some("Bearer not-a-valid-token-at-all"), "HTTP/1.1 401"),
            (Some(reader.as_str()), "HTTP/1.1 403"),
        ] {
            // Act
            let app2 = app.clone();
            let auth2 = auth.map(str::to_owned);
            let status = tokio::task::spawn_blocking(move || {
                status_before_body(&app2, method, path, auth2.as_deref())
            })
            .await
            .unwrap();
            // Assert
            assert!(
                status.starts_with(expected),
                "{method} {path} with {auth:?}: {status}"
            );
        }
    }
}

/// A malformed body from a caller without a credential is 401, not 400: the body was never
/// parsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_body_without_a_credential_is_401_not_400() {
    let app = spawn_app(&[]).await;
    for (method, path) in MUTATIONS {
        let res = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .header("content-type", "application/json")
            .body("{ this is not json")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{method} {path}");
    }
}

async fn send_as(app: &TestApp, identity: &str, method: &str, path: &str, body: &Value) -> u16 {
    let mut request = app
        .client
        .request(method.parse().unwrap(), app.url(path))
        .bearer_auth(token_of(identity));
    if method != "GET" {
        request = request.json(body);
    }
    request.send().await.unwrap().status().as_u16()
}

type Case<'a> = (&'a str, &'a str, &'a str, &'a Value, Result<u16, &'a str>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scope_opens_only_its_own_routes_and_403_names_the_missing_scope() {
    // Arrange: v1 and v2 registered, production at v1.
    let app = spawn_app(&[]).await;
    for i in 0..2 {
        app.register("fraud", &registration(f64::from(i))).await;
    }
    app.move_alias("fraud", "production", &json!({"version": 1}))
        .await;
    let artifact = "/v1/models/fraud/versions/1/artifact";
    let register = "/v1/models/fraud/versions";
    let alias = "/v1/models/fraud/aliases/staging";
    let keep = "/v1/models/fraud/versions/2/keep";
    let gc = "/v1/models/fraud/gc";
    let new_version = registration(9.0);
    // Its artifact is uploaded (by the admin) so that registering it can succeed.
    let uploaded = app
        .upload(
            "fraud",
            &new_version.artifact.digest.to_string(),
            new_version.artifact.bytes.clone(),
        )
        .await;
    assert_eq!(uploaded.status(), 201);
    let to_v2 = json!({"version": 2});
    let dry_gc = json!({"retain_versions": 5, "dry_run": true});
    // (identity, method, path, body, the status or the scope a 403 names)
    let cases: [Case; 14] = [
        ("reader", "GET", artifact, &Value::Null, Ok(200)),
        ("reader", "POST", register, &new_version, Err("publish")),
        ("reader", "PUT", alias, &to_v2, Err("promote")),
        ("reader", "POST", keep, &json!({}), Err("archive")),
        ("publisher", "GET", artifact, &Value::Null, Err("read")),
        ("publisher", "POST", register, &new_version, Ok(201)),
        ("publisher", "POST", gc, &dry_gc, Err("archive")),
        ("promoter", "PUT", alias, &to_v2, Ok(200)),
        ("promoter", "POST", keep, &json!({}), Err("archive")),
        ("archivist", "POST", keep, &json!({}), Ok(200)),
        ("archivist", "POST", gc, &dry_gc, Ok(200)),
        (
            "archivist",
            "PUT",
            alias,
            &json!({"version": 1}),
            Err("promote"),
        ),
        ("trainer", "GET", artifact, &Value::Null, Ok(200)),
        ("trainer", "POST", gc, &dry_gc, Err("archive")),
    ];
    for (identity, method, path, body, expected) in cases {
        // Act
        let mut request = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .bearer_auth(token_of(identity));
        if !body.is_null() {
            request = request.json(body);
        }
        let res = request.send().await.unwrap();
        // Assert
        let case = format!("{identity} {method} {path}");
        match expected {
            Ok(status) => assert_eq!(res.status(), status, "{case}"),
            Err(scope) => {
                assert_eq!(res.status(), 403, "{case}");
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["error"]["code"], "forbidden", "{case}");
                let message = body["error"]["message"].as_str().unwrap();
                assert_eq!(
                    message,
                    format!("{identity} may not do this: it needs the {scope} scope"),
                    "{case}"
                );
            }
        }
    }
}

/// Refusals are counted by reason and scope, so token guessing shows in the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_by_reason_and_scope() {
    // Arrange
    let app = spawn_app(&[]).await;
    let artifact = "/v1/models/fraud/versions/1/artifact";
    // Act: one missing, two invalid, one forbidden.
    app.get(artifact).await;
    for token in ["guess-0123456789abcdef", "guess-fedcba9876543210"] {
        app.client
            .get(app.url(artifact))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
    }
    send_as(&app, "reader", "POST", "/v1/models/fraud/gc", &json!({})).await;
    // Assert
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let count = |reason: &str, scope: &str| {
        shared_lib::testing::metric_sum(
            &metrics,
            "registry_auth_refusals_total",
            &[("reason", reason), ("scope", scope)],
        )
    };
    assert_eq!(
        (
            count("missing", "read"),
            count("invalid", "read"),
            count("forbidden", "archive")
        ),
        (1.0, 2.0, 1.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifact_downloads_need_a_read_credential_while_metadata_stays_open() {
    let app = spawn_app(&[]).await;
    app.register("fraud", &registration(1.0)).await;
    let artifact = "/v1/models/fraud/versions/1/artifact";
    let anonymous = app.get(artifact).await;
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert!(
        error_message(anonymous, 401)
            .await
            .contains("bearer token is required")
    );
    for path in [
        "/",
        "/v1/models",
        "/v1/models/fraud/versions",
        "/v1/models/fraud/versions/1",
        "/v1/models/fraud/events",
    ] {
        assert_eq!(app.get(path).await.status(), 200, "{path} is open");
    }
    assert_eq!(
        send_as(&app, "reader", "GET", artifact, &Value::Null).await,
        200
    );

    // With no credentials at all, nothing downloads either.
    let s3 = shared_lib::testing::TestS3::start().await;
    let env = s3.service_env("registry-open", None);
    let settings =
        registry::Settings::from_env(shared_lib::settings::Env::from_pairs(env)).unwrap();
    let bare = registry::build(&settings).await.unwrap();
    let url = format!("http://127.0.0.1:{}", bare.port());
    let server = tokio::spawn(bare.run_until_stopped());
    shared_lib::testing::wait_until_ready(&url).await;
    let res = app
        .client
        .get(format!("{url}{artifact}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(
        error_message(res, 401)
            .await
            .contains("the registry has no credentials")
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_reads_protected_the_page_asks_for_basic_auth_and_renders_with_it() {
    // Arrange
    let app = spawn_app(&[("REGISTRY_READ_AUTH", "true")]).await;
    app.register("fraud", &registration(1.0)).await;
    let page = |identity: &str, token: &str| {
        app.client
            .get(app.url("/"))
            .basic_auth(identity, Some(token))
            .send()
    };

    // Act + Assert: anonymous, the page challenges for Basic and the API for Bearer.
    let anonymous = app.get("/").await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Basic realm=\"model registry\", charset=\"UTF-8\""
    );
    let api = app.get("/v1/models").await;
    assert_eq!(api.status(), 401);
    assert_eq!(api.headers()["www-authenticate"], "Bearer");

    // A reader's Basic credentials render the page, and work on the API too.
    let signed_in = page("reader", &token_of("reader")).await.unwrap();
    assert_eq!(signed_in.status(), 200);
    assert!(signed_in.text().await.unwrap().contains("<h2>fraud</h2>"));
    let api = app
        .client
        .get(app.url("/v1/models"))
        .basic_auth("trainer", Some(token_of("trainer")))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);

    // A wrong token, or a right token under another identity, is 401; no read scope is 403.
    let cases = [
        (
            "reader",
            "wrong-token-0123456789".to_owned(),
            401,
            "wrong token",
        ),
        (
            "publisher",
            token_of("reader"),
            401,
            "another identity's token",
        ),
        ("publisher", token_of("publisher"), 403, "no read scope"),
        ("admin", TOKEN.to_owned(), 200, "the legacy token as admin"),
    ];
    for (identity, token, status, why) in cases {
        let res = page(identity, &token).await.unwrap();
        assert_eq!(res.status(), status, "{why}");
    }
    let bearer = app
        .client
        .get(app.url("/"))
        .bearer_auth(token_of("reader"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200, "the page takes a bearer token too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_actor_is_the_credential_identity_whatever_the_client_claims() {
    // Arrange
    let app = spawn_app(&[]).await;
    let claimed = |request: reqwest::RequestBuilder, identity: &str| {
        request
            .bearer_auth(token_of(identity))
            .header("x-actor", "mallory")
    };
    let mut body = registration(1.0);
    body["manifest"]["created_by"] = json!("mallory");
    let uploaded = app
        .client
        .put(app.url(&format!(
            "/v1/models/fraud/artifacts/{}",
            body.artifact.digest
        )))
        .bearer_auth(token_of("publisher"))
        .body(body.artifact.bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);

    // Act: each identity claims to be mallory, in the body and in X-Actor.
    let registered = claimed(
        app.client.post(app.url("/v1/models/fraud/versions")),
        "publisher",
    )
    .json(&body.body)
    .send()
    .await
    .unwrap();
    let moved = claimed(
        app.client
            .put(app.url("/v1/models/fraud/aliases/production")),
        "promoter",
    )
    .json(&json!({"version": 1, "reason": "first", "actor": "mallory"}))
    .send()
    .await
    .unwrap();
    let kept = claimed(
        app.client.post(app.url("/v1/models/fraud/versions/1/keep")),
        "archivist",
    )
    .json(&json!({"actor": "mallory"}))
    .send()
    .await
    .unwrap();

    // Assert
    assert_eq!(registered.status(), 201);
    assert_eq!(moved.status(), 200);
    assert_eq!(kept.status(), 200);
    let manifest = app.get_json("/v1/models/fraud/versions/1").await;
    assert_eq!(manifest["manifest"]["created_by"], "publisher");
    let events = app.get_json("/v1/models/fraud/events").await;
    let actors: Vec<(&str, &str)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actors,
        [
            ("registered", "publisher"),
            ("alias_moved", "promoter"),
            ("kept", "archivist")
        ]
    );
}
