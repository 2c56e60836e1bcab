//! Registering, listing, reading, downloading and archiving versions; auth; bad input.

use std::collections::BTreeSet;

use serde_json::json;

use crate::helpers::{TOKEN, error_message, registration, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_version_reads_back_and_downloads_verified() {
    // Arrange
    let app = spawn_app(&[]).await;
    let body = registration(1.0);
    // Act
    let res = app.register("fraud", &body).await;
    // Assert
    assert_eq!(res.status(), 201);
    let manifest: serde_json::Value = res.json().await.unwrap();
    assert_eq!(manifest["version"], 1);
    assert_eq!(
        manifest["created_by"], "admin",
        "the credential's identity, not the body's created_by"
    );
    let read = app.get_json("/v1/models/fraud/versions/1").await;
    assert_eq!(read["manifest"], manifest);
    assert_eq!(read["status"], "active");
    let download = app
        .get_authorized("/v1/models/fraud/versions/1/artifact")
        .await;
    assert_eq!(
        download.headers()["x-artifact-sha256"],
        body["artifact_sha256"].as_str().unwrap()
    );
    assert_eq!(
        download.headers()["content-length"],
        body.artifact.bytes.len().to_string().as_str()
    );
    let bytes = download.bytes().await.unwrap();
    assert_eq!(bytes.as_ref(), body.artifact.bytes.as_slice());
    let models = app.get_json("/v1/models").await;
    assert_eq!(models["models"][0]["name"], "fraud");
    assert_eq!(models["models"][0]["latest_version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_registrations_get_twenty_distinct_consecutive_versions() {
    let app = std::sync::Arc::new(spawn_app(&[]).await);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let res = app.register("fraud", &registration(f64::from(i))).await;
                assert_eq!(res.status(), 201);
                res.json::<serde_json::Value>().await.unwrap()["version"]
                    .as_u64()
                    .unwrap()
            })
        })
        .collect();
    let mut versions = BTreeSet::new();
    for t in tasks {
        assert!(versions.insert(t.await.unwrap()), "duplicate version");
    }
    assert_eq!(versions, (1..=20).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_filters_orders_and_pages() {
    let app = spawn_app(&[]).await;
    for i in 0..5 {
        assert_eq!(
            app.register("fraud", &registration(f64::from(i)))
                .await
                .status(),
            201
        );
    }
    app.move_alias("fraud", "production", &json!({"version": 4}))
        .await;
    app.post(
        "/v1/models/fraud/versions/2/archive",
        &json!({"reason": "old"}),
    )
    .await;

    let page1 = app.get_json("/v1/models/fraud/versions?page_size=2").await;
    let versions = |v: &serde_json::Value| {
        v["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["version"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(versions(&page1), [5, 4]);
    let token = page1["next_page_token"].as_u64().unwrap();
    let page2 = app
        .get_json(&format!(
            "/v1/models/fraud/versions?page_size=2&page_token={token}"
        ))
        .await;
    assert_eq!(versions(&page2), [3, 2]);
    assert_eq!(
        versions(
            &app.get_json("/v1/models/fraud/versions?order=asc&status=archived")
                .await
        ),
        [2]
    );
    assert_eq!(
        versions(
            &app.get_json("/v1/models/fraud/versions?alias=production")
                .await
        ),
        [4]
    );
    assert_eq!(
        versions(
            &app.get_json("/v1/models/fraud/versions?status=active&order=asc")
                .await
        ),
        [1, 3, 4, 5]
    );
    let cmp = app.get_json("/v1/models/fraud/compare?a=1&b=3").await;
    assert!(
        (cmp["delta"]["roc_auc"].as_f64().unwrap() - 0.02).abs() < 1e-9,
        "{cmp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_need_the_token_and_reads_can_too() {
    let app = spawn_app(&[]).await;
    let url = app.url("/v1/models/fraud/versions");
    let none = app
        .client
        .post(&url)
        .json(&*registration(1.0))
        .send()
        .await
        .unwrap();
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    assert!(
        error_message(none, 401)
            .await
            .contains("bearer token is required")
    );
    let wrong = app
        .client
        .post(&url)
        .bearer_auth("not-the-token-at-all")
        .json(&*registration(1.0))
        .send()
        .await
        .unwrap();
    assert!(error_message(wrong, 401).await.contains("not valid"));
    assert_eq!(
        app.get("/v1/models").await.status(),
        200,
        "reads are open by default"
    );

    let locked = spawn_app(&[("REGISTRY_READ_AUTH", "true")]).await;
    assert_eq!(locked.get("/v1/models").await.status(), 401);
    let ok = locked
        .client
        .get(locked.url("/v1/models"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_nothing_is_written() {
    // Arrange
    let app = spawn_app(&[("MAX_UPLOAD_BYTES", "4096")]).await;
    let good = registration(1.0).artifact;
    let sha = good.digest.to_string();
    let hello = b"hello world".to_vec();
    let hello_sha = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
    let mut truncated = good.bytes.clone();
    truncated.truncate(good.bytes.len() - 1);
    let truncated_sha = shared_lib::artifact::ArtifactDigest::of(&truncated).to_string();
    let cases = [
        (
            "fraud",
            "0".repeat(64),
            good.bytes.clone(),
            422,
            "digest mismatch",
        ),
        (
            "fraud",
            hello_sha.to_owned(),
            hello,
            422,
            "not a model artifact",
        ),
        (
            "fraud",
            truncated_sha,
            truncated,
            422,
            "the envelope declares",
        ),
        (
            "fraud",
            sha.clone(),
            vec![0; 4097],
            413,
            "limit of 4096 bytes",
        ),
        ("fraud", "abc".into(), good.bytes.clone(), 400, "path"),
        ("Fraud!", sha.clone(), good.bytes.clone(), 400, "path"),
    ];
    for (model, sha256, bytes, status, needle) in cases {
        // Act
        let message = error_message(app.upload(model, &sha256, bytes).await, status).await;
        // Assert
        assert!(message.contains(needle), "{needle}: {message}");
        assert_eq!(app.artifact_objects("fraud").await, 0, "{needle}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registrations_are_refused_and_nothing_is_written() {
    let app = spawn_app(&[]).await;
    let never_uploaded = registration(1.0);
    let mut no_algorithm = registration(1.0);
    no_algorithm["manifest"]
        .as_object_mut()
        .unwrap()
        .remove("algorithm");
    let mut extra_field = registration(1.0);
    extra_field["manifest"]["colour"] = json!("blue");
    let mut nan_metric = registration(1.0);
    nan_metric["manifest"]["metrics"] = json!({"roc_auc": "high"});
    let mut old_api = registration(1.0);
    old_api["artifact_base64"] = json!("aGVsbG8gd29ybGQ=");
    let mut big = registration(1.0);
    big["manifest"]["parameters"] = json!({"padding": "x".repeat(1024 * 1024)});
    let cases = [
        (
            never_uploaded.body,
            409,
            "upload it first",
            "artifact not uploaded",
        ),
        (
            no_algorithm.body,
            400,
            "algorithm",
            "missing manifest field",
        ),
        (extra_field.body, 400, "colour", "unknown manifest field"),
        (nan_metric.body, 400, "invalid type", "non-numeric metric"),
        (
            old_api.body,
            400,
            "artifact_base64",
            "the old inline artifact",
        ),
        (big.body, 413, "JSON", "oversized registration"),
    ];
    for (body, status, needle, why) in cases {
        let message = error_message(app.register_json("fraud", &body).await, status).await;
        assert!(message.contains(needle), "{why}: {message}");
    }
    let bad_name = app.register("Fraud!", &registration(1.0)).await;
    assert_eq!(bad_name.status(), 400);
    assert!(
        error_message(app.get("/v1/models/fraud/versions").await, 404)
            .await
            .contains("unknown model fraud")
    );
    assert_eq!(app.get_json("/v1/models").await["models"], json!([]));
}

/// `MAX_UPLOAD_BYTES` is exact: an artifact of exactly that many bytes is accepted, one byte
/// more is a 413 whose JSON error names the limit, and nothing is written for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_of_exactly_max_upload_bytes_passes_and_one_byte_more_is_refused() {
    // An artifact whose payload pads it to exactly `len` bytes.
    let artifact_of = |len: usize| {
        let mut pad = len;
        for _ in 0..10 {
            let a = shared_lib::artifact::encode_artifact(
                shared_lib::artifact::ModelKind::FraudRandomForest,
                &"x".repeat(pad),
            )
            .unwrap();
            if a.bytes.len() == len {
                return a;
            }
            pad = pad + len - a.bytes.len().min(pad + len);
        }
        panic!("cannot pad an artifact to exactly {len} bytes");
    };
    let app = spawn_app(&[("MAX_UPLOAD_BYTES", "4096")]).await;
    let over = artifact_of(4097);
    let res = app
        .upload("fraud", &over.digest.to_string(), over.bytes)
        .await;
    let message = error_message(res, 413).await;
    assert!(message.contains("limit of 4096 bytes"), "{message}");
    assert_eq!(app.artifact_objects("fraud").await, 0);
    let at = artifact_of(4096);
    let res = app.upload("fraud", &at.digest.to_string(), at.bytes).await;
    assert_eq!(res.status(), 201);
    let uploaded: serde_json::Value = res.json().await.unwrap();
    assert_eq!(uploaded["size"], 4096);
    assert_eq!(uploaded["kind"], "fraud-random-forest");
    assert_eq!(app.artifact_objects("fraud").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_things_are_404_and_malformed_paths_400() {
    let app = spawn_app(&[]).await;
    app.register("fraud", &registration(1.0)).await;
    let cases = [
        ("/v1/models/nope/versions/1", 404, "unknown model nope"),
        ("/v1/models/fraud/versions/9", 404, "unknown version 9"),
        (
            "/v1/models/fraud/versions/9/artifact",
            404,
            "unknown version 9",
        ),
        (
            "/v1/models/fraud/aliases/production",
            404,
            "has no alias production",
        ),
        ("/v1/models/fraud/versions/0", 400, "path"),
        ("/v1/models/fraud/versions/abc", 400, "path"),
        ("/v1/models/fraud/versions?status=gone", 400, "status"),
        ("/v1/models/fraud/versions?page_size=0", 400, "page_size"),
        ("/v1/models/fraud/compare?a=1", 400, "query"),
        ("/v2/nothing", 404, "no route"),
    ];
    for (path, status, needle) in cases {
        let message = error_message(app.get_authorized(path).await, status).await;
        assert!(message.contains(needle), "{path}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_lists_models_versions_aliases_events_and_a_chart() {
    let app = spawn_app(&[]).await;
    for i in 0..3 {
        app.register("fraud", &registration(f64::from(i))).await;
    }
    app.move_alias(
        "fraud",
        "production",
        &json!({"version": 3, "reason": "<b>best</b>"}),
    )
    .await;
    let res = app.get("/").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = res.text().await.unwrap();
    for needle in [
        "<h2>fraud</h2>",
        "production → v3",
        "<svg",
        "roc_auc across versions",
        "v1",
        "&lt;b&gt;best&lt;/b&gt;",
    ] {
        assert!(html.contains(needle), "{needle} missing from the page");
    }
    assert!(!html.contains("<b>best</b>"), "reasons must be escaped");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route() {
    let app = spawn_app(&[]).await;
    let doc = app.get_json("/openapi.json").await;
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/models",
        "/v1/models/{model}/versions",
        "/v1/models/{model}/versions/{version}",
        "/v1/models/{model}/versions/{version}/artifact",
        "/v1/models/{model}/versions/{version}/archive",
        "/v1/models/{model}/artifacts/{sha256}",
        "/v1/models/{model}/versions/{version}/keep",
        "/v1/models/{model}/versions/{version}/unkeep",
        "/v1/models/{model}/gc",
        "/v1/models/{model}/aliases",
        "/v1/models/{model}/aliases/{alias}",
        "/v1/models/{model}/aliases/{alias}/rollback",
        "/v1/models/{model}/events",
        "/v1/models/{model}/compare",
        "/",
        "/console",
        "/console/sign-in",
        "/console/sign-out",
        "/console/models/{model}/promote",
        "/console/models/{model}/rollback",
        "/console/models/{model}/archive",
        "/console/models/{model}/compare",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert_eq!(
        paths.len(),
        26,
        "a route is documented that the service does not have, or the list above is stale"
    );
}

/// Every operation that needs a scope says which, offers bearer and basic, and documents 401
/// and 403; every other operation but the probes documents them too (reads can be protected).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_states_the_security_of_every_operation() {
    let app = spawn_app(&[]).await;
    let doc = app.get_json("/openapi.json").await;
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(
        (
            schemes["bearer"]["scheme"].as_str(),
            schemes["basic"]["scheme"].as_str()
        ),
        (Some("bearer"), Some("basic"))
    );
    let scoped = [
        ("post", "/v1/models/{model}/versions", "publish"),
        ("put", "/v1/models/{model}/artifacts/{sha256}", "publish"),
        (
            "get",
            "/v1/models/{model}/versions/{version}/artifact",
            "read",
        ),
        (
            "post",
            "/v1/models/{model}/versions/{version}/archive",
            "archive",
        ),
        (
            "post",
            "/v1/models/{model}/versions/{version}/keep",
            "archive",
        ),
        (
            "post",
            "/v1/models/{model}/versions/{version}/unkeep",
            "archive",
        ),
        ("put", "/v1/models/{model}/aliases/{alias}", "promote"),
        (
            "post",
            "/v1/models/{model}/aliases/{alias}/rollback",
            "promote",
        ),
        ("post", "/v1/models/{model}/gc", "archive"),
    ];
    let open = ["/healthz", "/readyz", "/metrics", "/openapi.json"];
    // The console's forms need its session cookie; sign-in needs nothing but the token.
    let console = [
        ("post", "/console/sign-in", None),
        ("post", "/console/sign-out", None),
        ("post", "/console/models/{model}/promote", Some("promote")),
        ("post", "/console/models/{model}/rollback", Some("promote")),
        ("post", "/console/models/{model}/archive", Some("archive")),
    ];
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, op) in operations.as_object().unwrap() {
            let what = format!("{method} {path}");
            if open.contains(&path.as_str()) {
                assert!(op.get("security").is_none(), "{what}");
                continue;
            }
            if path.starts_with("/console") {
                let security = op["security"].as_array().unwrap();
                let needs = console
                    .iter()
                    .find(|(m, p, _)| m == method && p == path)
                    .map(|c| c.2);
                if needs.is_some() && path != "/console/sign-in" {
                    assert_eq!(security, &[json!({"session": []})], "{what}");
                    assert_eq!(op["x-required-scope"].as_str(), needs.flatten(), "{what}");
                }
                for status in ["401", "403"] {
                    assert!(op["responses"].get(status).is_some(), "{what}: no {status}");
                }
                continue;
            }
            let scope = scoped
                .iter()
                .find(|(m, p, _)| m == method && p == path)
                .map(|s| s.2);
            assert_eq!(op["x-required-scope"].as_str(), scope, "{what}");
            let security = op["security"].as_array().unwrap();
            assert!(security.contains(&json!({"bearer": []})), "{what}");
            assert!(security.contains(&json!({"basic": []})), "{what}");
            assert_eq!(
                security.contains(&json!({})),
                scope.is_none(),
                "{what}: anonymous exactly when no scope is required"
            );
            for status in ["401", "403"] {
                assert!(op["responses"].get(status).is_some(), "{what}: no {status}");
            }
        }
    }
}
