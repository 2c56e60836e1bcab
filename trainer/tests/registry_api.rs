//! Publishing through the registry service (`REGISTRY_URL`): the real registry app over HTTP,
//! its store an in-process S3 server; the trainer holds only the token.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use clap::Parser as _;
use secrecy::SecretString;
use shared_lib::settings::Env;
use shared_lib::testing::TestS3;
use trainer::cli::{Cli, Command, Context, TrainCommand};
use trainer::progress::Progress;
use trainer::publisher::{Publisher, RegistryClient};

const TOKEN: &str = "trainer-test-token-0123";

async fn start_registry(s3: &TestS3) -> String {
    let mut env = s3.service_env("trainer-registry", Some("models"));
    env.push(("REGISTRY_TOKEN".to_owned(), TOKEN.to_owned()));
    let app = registry::build(&registry::Settings::from_env(Env::from_pairs(env)).unwrap())
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    shared_lib::testing::wait_until_ready(&url).await;
    url
}

fn context(url: &str, token: &str) -> Context {
    Context {
        publisher: Publisher::Api(RegistryClient::new(url, SecretString::from(token))),
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
    assert_eq!(production["actor"], "trainer@test");
    let v2: serde_json::Value = reqwest::get(format!("{url}/v1/models/fraud/versions/2"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v2["manifest"]["gate"]["champion_version"], 1);
    assert_eq!(v2["manifest"]["gate"]["promoted"], false);
    assert_eq!(v2["manifest"]["created_by"], "trainer@test");
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
