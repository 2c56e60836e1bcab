//! The classic contract, batches, model listing, and every bad-input case.

use serde_json::json;

use crate::helpers::{S3Fixture, TestApp, flags_large, metric_sum, spawn_app, with};

async fn ready_app(extra: &[(&str, &str)]) -> (S3Fixture, TestApp) {
    let fixture = S3Fixture::start().await;
    fixture.publish(&flags_large()).await;
    fixture.promote(1).await;
    let app = spawn_app(with(fixture.env(), extra)).await;
    app.wait_ready().await;
    (fixture, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classify_answers_the_classic_contract_with_serving_headers() {
    // Arrange
    let (_fixture, app) = ready_app(&[]).await;
    // Act
    let fraud = app.get("/classify?f1=500&f2=20&f3=0").await;
    let legit = app.get("/classify?f1=12.5&f2=300&f3=4").await;
    // Assert
    assert_eq!(fraud.status(), 200);
    assert_eq!(fraud.headers()["x-model-version"], "1");
    assert_eq!(fraud.headers()["x-variant"], "a");
    assert!(fraud.headers().contains_key("x-request-id"));
    assert_eq!(fraud.json::<Vec<u8>>().await.unwrap(), [1]);
    assert_eq!(legit.json::<Vec<u8>>().await.unwrap(), [0]);
    assert_eq!(app.get("/healthz").await.text().await.unwrap(), "Healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_can_be_given_by_their_schema_names() {
    let (_fixture, app) = ready_app(&[]).await;
    let res = app
        .get("/classify?txn_amount=500&amount_spent_past_mo=20&txns_same_merchant=0&card_id=c1")
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Vec<u8>>().await.unwrap(), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_get_a_4xx_naming_the_problem() {
    let (_fixture, app) = ready_app(&[]).await;
    let cases = [
        (
            "f1=1&f2=2",
            422,
            "missing feature(s): f3",
            "missing feature",
        ),
        (
            "f1=1&f2=2&f3=3&f4=4",
            422,
            "unknown field(s): f4",
            "extra feature",
        ),
        (
            "f1=x&f2=2&f3=3",
            422,
            "feature f1 is not a number",
            "non-numeric",
        ),
        ("f1=NaN&f2=2&f3=3", 422, "finite", "NaN"),
        ("f1=inf&f2=2&f3=3", 422, "finite", "infinite"),
        ("f1=1e999&f2=2&f3=3", 422, "finite", "overflowing number"),
        ("f1=1&f1=2&f2=2&f3=3", 422, "more than once", "duplicate"),
        ("", 422, "missing feature(s)", "no features"),
        (
            "f1=%ZZ&f2=2&f3=3",
            422,
            "not a number",
            "malformed percent-encoding",
        ),
    ];
    for (query, status, needle, why) in cases {
        let res = app.get(&format!("/classify?{query}")).await;
        assert_eq!(res.status(), status, "{why}");
        let body: serde_json::Value = res.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{why}: {message}");
    }
    let metrics = app.metrics().await;
    let classify_5xx = [("route", "/classify"), ("outcome", "server_error")];
    assert_eq!(
        metric_sum(&metrics, "http_requests_total", &classify_5xx),
        0.0
    );
    let classify_4xx = [("route", "/classify"), ("outcome", "client_error")];
    assert_eq!(
        metric_sum(&metrics, "http_requests_total", &classify_4xx),
        cases.len() as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_return_class_probability_version_and_variant_per_row() {
    let (_fixture, app) = ready_app(&[]).await;
    let res = app
        .post_batch(&json!({"instances": [
            [500, 20, 0],
            {"txn_amount": 5, "amount_spent_past_mo": 200, "txns_same_merchant": 3},
            {"f1": 101, "f2": 0, "f3": 0, "card_id": "c-7"}
        ]}))
        .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let predictions = body["predictions"].as_array().unwrap();
    let classes: Vec<u64> = predictions
        .iter()
        .map(|p| p["class"].as_u64().unwrap())
        .collect();
    assert_eq!(classes, [1, 0, 1]);
    let first = &predictions[0];
    assert!(
        (first["probability"].as_f64().unwrap() - 0.9).abs() < 1e-6,
        "{first}"
    );
    assert_eq!(first["version"], 1);
    assert_eq!(first["variant"], "a");
    assert_eq!(body["model"], "fraud");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batches_get_a_4xx_naming_the_problem() {
    let (_fixture, app) = ready_app(&[("MAX_BATCH_ROWS", "5"), ("MAX_BODY_BYTES", "2000")]).await;
    let url = format!("{}/v1/classify", app.address);
    let too_many = json!({"instances": vec![[1, 2, 3]; 6]});
    let cases: Vec<(reqwest::RequestBuilder, u16, &str, &str)> = vec![
        (
            app.client.post(&url).json(&too_many),
            413,
            "limit is 5",
            "oversized batch",
        ),
        (
            app.client.post(&url).json(&json!({"instances": []})),
            400,
            "no instances",
            "empty batch",
        ),
        (
            app.client.post(&url).json(&json!({"instances": [[1, 2]]})),
            422,
            "instance 0: expected 3 features",
            "wrong count",
        ),
        (
            app.client
                .post(&url)
                .json(&json!({"instances": [[1, 2, 3], [1, "x", 3]]})),
            422,
            "instance 1",
            "non-numeric",
        ),
        (
            app.client.post(&url).json(&json!({"rows": [[1, 2, 3]]})),
            400,
            "rows",
            "unknown top-level field",
        ),
        (
            app.client
                .post(&url)
                .header("content-type", "application/json")
                .body("{\"instances\": ["),
            400,
            "JSON",
            "malformed JSON",
        ),
        (
            app.client
                .post(&url)
                .header("content-type", "text/csv")
                .body("1,2,3"),
            415,
            "Content type",
            "wrong content type",
        ),
        (
            app.client
                .post(&url)
                .json(&json!({"instances": vec![[123_456.789, 2.5, 3.25]; 100]})),
            413,
            "JSON",
            "body over MAX_BODY_BYTES",
        ),
    ];
    for (request, status, needle, why) in cases {
        let res = request.send().await.unwrap();
        assert_eq!(res.status(), status, "{why}");
        let body: serde_json::Value = res.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{why}: {message}");
    }
}

/// `body` padded with JSON whitespace to exactly `len` bytes.
fn padded(body: &serde_json::Value, len: usize) -> String {
    let text = body.to_string();
    assert!(text.len() <= len, "{} bytes already", text.len());
    format!("{text}{}", " ".repeat(len - text.len()))
}

/// The limits are exact: the largest allowed batch and body pass, one more row or byte is a
/// 413 whose JSON error names the limit (issue #5, part 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_allowed_batch_and_body_pass_and_one_more_is_refused() {
    let (_fixture, app) = ready_app(&[("MAX_BATCH_ROWS", "5"), ("MAX_BODY_BYTES", "2000")]).await;
    let url = format!("{}/v1/classify", app.address);
    let post = |body: String| {
        app.client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let five = json!({"instances": vec![[500, 1, 1]; 5]});
    let six = json!({"instances": vec![[500, 1, 1]; 6]});
    let one = json!({"instances": [[500, 1, 1]]});

    let at_rows = post(five.to_string()).await.unwrap();
    assert_eq!(at_rows.status(), 200);
    let answer: serde_json::Value = at_rows.json().await.unwrap();
    assert_eq!(answer["predictions"].as_array().unwrap().len(), 5);
    let over_rows = post(six.to_string()).await.unwrap();
    assert_eq!(over_rows.status(), 413);
    let message = over_rows.json::<serde_json::Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("limit is 5"), "{message}");

    let at_bytes = post(padded(&one, 2000)).await.unwrap();
    assert_eq!(at_bytes.status(), 200, "a body of exactly MAX_BODY_BYTES");
    let over_bytes = post(padded(&one, 2001)).await.unwrap();
    assert_eq!(over_bytes.status(), 413);
    let message = over_bytes.json::<serde_json::Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("limit: 2000 bytes"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_the_loaded_version_digest_and_split() {
    let (fixture, app) = ready_app(&[]).await;
    let manifest = fixture
        .registry
        .manifest(&"fraud".parse().unwrap(), "1".parse().unwrap())
        .await
        .unwrap();
    let body: serde_json::Value = app.get("/v1/models").await.json().await.unwrap();
    let slot = &body["slots"][0];
    assert_eq!(slot["role"], "a");
    assert_eq!(slot["selector"], "production");
    assert_eq!(slot["version"], 1);
    assert_eq!(slot["sha256"], manifest.artifact.sha256.to_string());
    assert_eq!(slot["traffic_percent"], 100);
    let metrics = app.metrics().await;
    let info = format!("sha256=\"{}\"", manifest.artifact.sha256);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("model_info{") && l.contains(&info)),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route() {
    let (_fixture, app) = ready_app(&[]).await;
    let doc: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    for path in [
        "/classify",
        "/v1/classify",
        "/v1/models",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
        let res = match path {
            "/v1/classify" => app.post_batch(&json!({"instances": [[1, 2, 3]]})).await,
            "/classify" => app.get("/classify?f1=1&f2=2&f3=3").await,
            _ => app.get(path).await,
        };
        assert_eq!(res.status(), 200, "{path} documented but not served");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_any_model_loads_the_service_is_not_ready_and_says_so() {
    // Arrange: an empty store: nothing to load.
    let fixture = S3Fixture::start().await;
    let app = spawn_app(fixture.env()).await;
    // Act + Assert
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 503);
    let res = app.get("/classify?f1=1&f2=2&f3=3").await;
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    // The model appears: the service becomes ready by itself.
    fixture.publish(&flags_large()).await;
    fixture.promote(1).await;
    app.wait_ready().await;
    assert_eq!(app.get("/classify?f1=500&f2=1&f3=1").await.status(), 200);
}
