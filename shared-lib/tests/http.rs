//! The shared HTTP pieces mounted in a real actix-web server on loopback, exercised with a
//! real HTTP client: request ids, the error envelope, health, readiness, metrics, serving headers.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use shared_lib::http::{self, ApiError, Metrics, Readiness, ServedBy};

#[derive(Deserialize)]
struct ScoreQuery {
    x: f64,
}

async fn score(query: web::Query<ScoreQuery>) -> Result<HttpResponse, ApiError> {
    if !query.x.is_finite() {
        return Err(ApiError::invalid_features(
            "feature x must be a finite number",
        ));
    }
    ServedBy {
        model: "toy".into(),
        version: "3".into(),
        variant: "b".into(),
    }
    .record();
    Ok(HttpResponse::Ok().json(vec![i32::from(query.x > 0.5)]))
}

async fn echo(body: web::Json<serde_json::Value>) -> HttpResponse {
    HttpResponse::Ok().json(body.into_inner())
}

struct TestApp {
    address: String,
    readiness: Readiness,
    client: reqwest::Client,
}

async fn spawn_app() -> TestApp {
    let metrics = Metrics::new("toy-service").unwrap();
    let readiness = Readiness::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = http::run_server(listener, metrics, readiness.clone(), Some(1), |cfg| {
        cfg.route("/score", web::get().to(score))
            .route("/echo", web::post().to(echo));
    })
    .unwrap();
    tokio::spawn(server);
    shared_lib::telemetry::install_tls_provider();
    TestApp {
        address,
        readiness,
        client: reqwest::Client::new(),
    }
}

impl TestApp {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }
}

async fn error_body(res: reqwest::Response) -> serde_json::Value {
    assert_eq!(res.headers()["content-type"], "application/json");
    res.json().await.unwrap()
}

#[tokio::test]
async fn healthz_answers_healthy_like_the_classic_service() {
    let app = spawn_app().await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "Healthy");
}

#[tokio::test]
async fn readyz_is_503_until_ready_then_200() {
    let app = spawn_app().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    assert_eq!(error_body(res).await["error"]["code"], "unavailable");
    app.readiness.set_ready(true);
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn readyz_shows_a_detail_only_when_one_is_set() {
    // Arrange
    let app = spawn_app().await;
    app.readiness.set_ready(true);
    let plain: serde_json::Value = app.get("/readyz").await.json().await.unwrap();

    // Act
    app.readiness
        .set_detail(Some("2 manifests skipped: fraud v2, fraud v4".into()));
    let with_detail: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    app.readiness.set_ready(false);
    let not_ready = app.get("/readyz").await;

    // Assert: unchanged without a detail; the detail beside the status, or in the 503.
    assert_eq!(plain, serde_json::json!({"status": "ready"}));
    assert_eq!(
        with_detail,
        serde_json::json!({"status": "ready", "detail": "2 manifests skipped: fraud v2, fraud v4"})
    );
    assert_eq!(not_ready.status(), 503);
    assert_eq!(
        error_body(not_ready).await["error"]["message"],
        "not ready: 2 manifests skipped: fraud v2, fraud v4"
    );
}

#[tokio::test]
async fn every_response_has_a_request_id_and_a_callers_id_is_echoed() {
    let app = spawn_app().await;
    let generated = app.get("/healthz").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    let echoed = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-42");

    let replaced = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", "bad id!")
        .send()
        .await
        .unwrap();
    assert_ne!(replaced.headers()["x-request-id"], "bad id!");
}

#[tokio::test]
async fn served_requests_carry_model_headers() {
    let app = spawn_app().await;
    let res = app.get("/score?x=0.9").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-model-version"], "3");
    assert_eq!(res.headers()["x-variant"], "b");
    assert_eq!(res.json::<Vec<i32>>().await.unwrap(), [1]);
}

#[tokio::test]
async fn bad_input_gets_a_json_4xx_naming_the_problem_and_the_request_id() {
    let app = spawn_app().await;
    let cases = [
        (
            "/score",
            400,
            "invalid_request",
            "x",
            "missing query parameter",
        ),
        (
            "/score?x=abc",
            400,
            "invalid_request",
            "invalid",
            "non-numeric",
        ),
        ("/score?x=NaN", 422, "invalid_features", "finite", "NaN"),
        (
            "/score?x=inf",
            422,
            "invalid_features",
            "finite",
            "infinite",
        ),
        ("/nope", 404, "not_found", "/nope", "unknown route"),
    ];
    let wrong_method = app
        .client
        .delete(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong_method.status(),
        405,
        "a known path with another method"
    );
    assert_eq!(
        error_body(wrong_method).await["error"]["code"],
        "method_not_allowed"
    );
    for (path, status, code, needle, why) in cases {
        let res = app
            .client
            .get(format!("{}{path}", app.address))
            .header("x-request-id", "req-7")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{why}");
        let body = error_body(res).await;
        assert_eq!(body["error"]["code"], code, "{why}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{why}: {body}"
        );
        assert_eq!(body["request_id"], "req-7", "{why}");
    }
}

#[tokio::test]
async fn malformed_json_and_wrong_content_type_are_4xx_envelopes() {
    let app = spawn_app().await;
    let url = format!("{}/echo", app.address);
    let bad_json = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"a\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);
    assert_eq!(
        error_body(bad_json).await["error"]["code"],
        "invalid_request"
    );

    let text = app
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    assert_eq!(
        error_body(text).await["error"]["code"],
        "unsupported_media_type"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_model_version_variant_and_outcome() {
    let app = spawn_app().await;
    app.get("/score?x=0.1").await;
    app.get("/score?x=0.2").await;
    app.get("/score?x=NaN").await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    let ok = r#"http_requests_total{model="toy",outcome="success",route="/score",variant="b",version="3",service="toy-service"} 2"#;
    let refused = r#"http_requests_total{model="",outcome="client_error",route="/score",variant="",version="",service="toy-service"} 1"#;
    assert!(text.contains(ok), "{text}");
    assert!(text.contains(refused), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "{text}"
    );
}
