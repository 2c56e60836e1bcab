//! Publishing through the registry service (`REGISTRY_URL`): the real registry app over HTTP,
//! its store an in-process S3 server; the trainer holds only the token.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use clap::Parser as _;
use secrecy::SecretString;
use shared_lib::settings::Env;
use shared_lib::testing::TestS3;
use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use trainer::cli::{Cli, Command, TrainCommand};
use trainer::pipeline::Context;
use trainer::progress::Progress;
use trainer::registry_client::{ModelRegistry, RegistryClient};

const TOKEN: &str = "trainer-test-token-0123";

/// The registry, with one credential: `trainer`, holding the scopes the trainer needs (read
/// the champion, publish, promote) and no more.
async fn start_registry(s3: &TestS3) -> String {
    suite_telemetry::install_tls_provider();
    let credentials = tempfile::NamedTempFile::new().unwrap();
    let hash: String = shared_lib::http::token::TokenDigest::of(TOKEN).to_hex();
    std::fs::write(
        credentials.path(),
        format!("trainer read,publish,promote {hash}\n"),
    )
    .unwrap();
    let mut env = s3.service_env("trainer-registry", Some("models"));
    env.push((
        "REGISTRY_CREDENTIALS_FILE".to_owned(),
        credentials.path().to_str().unwrap().to_owned(),
    ));
    // The file is read once, at start-up.
    let settings = registry::Settings::from_env(Env::from_pairs(env)).unwrap();
    drop(credentials);
    let app = registry::build(&settings).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    shared_lib::testing::wait_until_ready(&url).await;
    url
}

fn context(url: &str, token: &str) -> Context {
    Context {
        registry: ModelRegistry::Api(RegistryClient::new(url, SecretString::from(token))),
        actor: "trainer@test".into(),
        progress: Progress::hidden(),
    }
}

async fn train_fraud(
    ctx: &Context,
    data: &str,
    extra: &[&str],
) -> Result<serde_json::Value, trainer::Error> {
    let mut words = vec!["trainer", "train", "fraud", "--data", data];
    words.extend_from_slice(extra);
    let Command::Train(TrainCommand::Fraud(args)) = Cli::try_parse_from(words).unwrap().command
    else {
        unreachable!()
    };
    trainer::fraud::train(ctx, &args)
        .await
        .map(|r| serde_json::to_value(r).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_publishes_and_gates_through_the_registry_api() {
    // Arrange
    let s3 = TestS3::start().await;
    let url = start_registry(&s3).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fraud.csv");
    let Command::Generate(trainer::cli::GenerateCommand::Fraud(gen_args)) = Cli::try_parse_from([
        "trainer",
        "generate",
        "fraud",
        "--rows",
        "3000",
        "--seed",
        "3",
        "--out",
        data.to_str().unwrap(),
    ])
    .unwrap()
    .command
    else {
        unreachable!()
    };
    trainer::fraud::generate(&gen_args).unwrap();
    let ctx = context(&url, TOKEN);
    let data = data.to_str().unwrap();

    // Act: a first model, then the same training again (a tie), then a weak one.
    let first = train_fraud(&ctx, data, &["--trees", "10"]).await.unwrap();
    let tie = train_fraud(&ctx, data, &["--trees", "10"]).await.unwrap();
    let weak = train_fraud(&ctx, data, &["--trees", "1", "--max-depth", "1"])
        .await
        .unwrap();

    // Assert: three versions registered through the API; production moved only once.
    assert_eq!(first["publication"]["version"], 1);
    assert_eq!(first["publication"]["promoted"], true);
    assert_eq!(
        (
            tie["publication"]["version"].as_u64(),
            tie["publication"]["promoted"].as_bool()
        ),
        (Some(2), Some(false))
    );
    assert_eq!(
        (
            weak["publication"]["version"].as_u64(),
            weak["publication"]["promoted"].as_bool()
        ),
        (Some(3), Some(false))
    );
    let production: serde_json::Value =
        reqwest::get(format!("{url}/v1/models/fraud/aliases/production"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(production["version"], 1);
    // Through the registry, the actor is the credential's identity, not TRAINER_ACTOR.
    assert_eq!(production["actor"], "trainer");
    let v2: serde_json::Value = reqwest::get(format!("{url}/v1/models/fraud/versions/2"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v2["manifest"]["gate"]["champion_version"], 1);
    assert_eq!(v2["manifest"]["gate"]["promoted"], false);
    assert_eq!(v2["manifest"]["created_by"], "trainer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_fails_the_run_with_the_registry_exit_code_and_writes_nothing() {
    let s3 = TestS3::start().await;
    let url = start_registry(&s3).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fraud.csv");
    std::fs::write(
        &data,
        "txn_amount,amount_spent_past_mo,txns_same_merchant,is_fraud\n",
    )
    .unwrap();
    let Command::Generate(trainer::cli::GenerateCommand::Fraud(gen_args)) = Cli::try_parse_from([
        "trainer",
        "generate",
        "fraud",
        "--rows",
        "2000",
        "--seed",
        "4",
        "--out",
        data.to_str().unwrap(),
    ])
    .unwrap()
    .command
    else {
        unreachable!()
    };
    trainer::fraud::generate(&gen_args).unwrap();

    let err = train_fraud(
        &context(&url, "not-the-token-at-all"),
        data.to_str().unwrap(),
        &["--trees", "5"],
    )
    .await
    .unwrap_err();

    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(
        err.to_string().contains("bearer token is not valid"),
        "{err}"
    );
    let models: serde_json::Value = reqwest::get(format!("{url}/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["models"], serde_json::json!([]));
}

/// A front for the registry that answers one path with an error status and passes the rest
/// through: a registry hiccup on exactly the champion's manifest or artifact.
#[derive(Clone)]
struct FaultyFront {
    upstream: String,
    fault: Arc<Mutex<Option<(String, u16)>>>,
}

async fn pass_or_fail(
    req: HttpRequest,
    body: web::Bytes,
    front: web::Data<FaultyFront>,
) -> HttpResponse {
    let fault = front.fault.lock().unwrap().clone();
    let damage = match &fault {
        Some((path, code @ (FLIP_LAST_BYTE | DROP_LAST_BYTE))) if req.path() == path => Some(*code),
        _ => None,
    };
    if let Some((path, status)) = fault
        && req.path() == path
        && damage.is_none()
    {
        let status = actix_web::http::StatusCode::from_u16(status).unwrap();
        return HttpResponse::build(status)
            .json(serde_json::json!({"error": {"code": "injected", "message": "injected fault"}}));
    }
    let url = format!("{}{}", front.upstream, req.uri());
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let mut forward = reqwest::Client::new()
        .request(method, url)
        .body(body.to_vec());
    for name in ["authorization", "content-type"] {
        if let Some(value) = req.headers().get(name) {
            forward = forward.header(name, value.to_str().unwrap());
        }
    }
    let res = forward.send().await.unwrap();
    let status = actix_web::http::StatusCode::from_u16(res.status().as_u16()).unwrap();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let mut body = res.bytes().await.unwrap().to_vec();
    match damage {
        Some(FLIP_LAST_BYTE) => *body.last_mut().unwrap() ^= 1,
        Some(_) => {
            body.pop();
        }
        None => {}
    }
    HttpResponse::build(status)
        .content_type(content_type)
        .body(body)
}

/// Fault "statuses" that pass the request through and damage the answer's body instead.
const FLIP_LAST_BYTE: u16 = 0;
const DROP_LAST_BYTE: u16 = 1;

async fn start_faulty_front(upstream: &str) -> (String, Arc<Mutex<Option<(String, u16)>>>) {
    let front = FaultyFront {
        upstream: upstream.to_owned(),
        fault: Arc::default(),
    };
    let fault = front.fault.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(web::Data::new(front.clone()))
            .app_data(web::PayloadConfig::new(64 << 20))
            .default_service(web::to(pass_or_fail))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    (format!("http://127.0.0.1:{port}"), fault)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_errors_on_the_champion_fail_the_gate_closed() {
    // Arrange: a champion v1, published through a front that can fail chosen requests.
    let s3 = TestS3::start().await;
    let registry = start_registry(&s3).await;
    let (url, fault) = start_faulty_front(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fraud.csv");
    trainer::fraud::generate(&trainer::fraud::GenerateArgs {
        rows: 3000,
        seed: 5,
        out: data.clone(),
    })
    .unwrap();
    let data = data.to_str().unwrap();
    let ctx = context(&url, TOKEN);
    let weak = ["--trees", "1", "--max-depth", "2"];
    train_fraud(&ctx, data, &weak).await.unwrap();

    // Act: a much better challenger, while the registry answers 503 or 500 on the champion's
    // manifest or artifact.
    let cases = [
        ("/v1/models/fraud/versions/1", 503),
        ("/v1/models/fraud/versions/1", 500),
        ("/v1/models/fraud/versions/1/artifact", 503),
        ("/v1/models/fraud/versions/1/artifact", 500),
    ];
    for (n, (path, status)) in cases.into_iter().enumerate() {
        *fault.lock().unwrap() = Some((path.to_owned(), status));
        let err = train_fraud(&ctx, data, &["--trees", "10"])
            .await
            .unwrap_err();

        // Assert: published as a candidate, exit code 5, production still v1.
        assert_eq!(err.exit_code(), 5, "{path} {status}: {err}");
        assert!(err.to_string().contains("champion v1"), "{err}");
        let production: serde_json::Value =
            reqwest::get(format!("{registry}/v1/models/fraud/aliases/production"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        assert_eq!(production["version"], 1, "{path} {status}");
        let version = n + 2;
        let manifest: serde_json::Value =
            reqwest::get(format!("{registry}/v1/models/fraud/versions/{version}"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        let gate = &manifest["manifest"]["gate"];
        assert_eq!(gate["outcome"], "champion_unavailable", "{gate}");
        assert_eq!(gate["promoted"], false);
    }

    // And once the registry is healthy again, the better model is promoted.
    *fault.lock().unwrap() = None;
    let healthy = train_fraud(&ctx, data, &["--trees", "10"]).await.unwrap();
    assert_eq!(healthy["publication"]["promoted"], true, "{healthy}");
}

/// The trainer verifies a champion's artifact as it downloads it: a body whose size or sha256
/// differs from the manifest's is refused, whatever the registry sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_artifact_download_is_refused_by_size_and_digest() {
    // Arrange: v1 published through a front that can damage chosen answers.
    let s3 = TestS3::start().await;
    let registry = start_registry(&s3).await;
    let (url, fault) = start_faulty_front(&registry).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fraud.csv");
    trainer::fraud::generate(&trainer::fraud::GenerateArgs {
        rows: 500,
        seed: 5,
        out: data.clone(),
    })
    .unwrap();
    let ctx = context(&url, TOKEN);
    train_fraud(
        &ctx,
        data.to_str().unwrap(),
        &["--trees", "1", "--max-depth", "2"],
    )
    .await
    .unwrap();
    let model = shared_lib::model_id::ModelName::parse("fraud").unwrap();
    let v1 = shared_lib::model_id::ModelVersion::FIRST;
    let kinds = [
        shared_lib::artifact::ModelKind::FraudRandomForest,
        shared_lib::artifact::ModelKind::FraudDecisionTree,
    ];
    let load = || {
        ctx.registry
            .load::<serde::de::IgnoredAny>(&model, v1, &kinds)
    };
    assert!(load().await.is_ok(), "the undamaged download loads");
    let artifact = "/v1/models/fraud/versions/1/artifact".to_owned();
    for (damage, needle) in [
        (DROP_LAST_BYTE, "size mismatch"),
        (FLIP_LAST_BYTE, "digest mismatch"),
    ] {
        // Act
        *fault.lock().unwrap() = Some((artifact.clone(), damage));
        let err = load().await.unwrap_err().to_string();
        // Assert
        assert!(err.contains(needle), "{needle}: {err}");
    }
}
