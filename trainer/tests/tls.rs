//! The `trainer` binary publishing to `REGISTRY_URL=https://…`: rustls with the platform
//! verifier, the registry's certificate from a CA trusted only through `SSL_CERT_FILE`; and
//! the bounded wait for a registry that is not ready.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use shared_lib::settings::Env;
use shared_lib::testing::TestS3;
use shared_lib::testing::tls::TlsProxy;

const BIN: &str = env!("CARGO_BIN_EXE_trainer");
const TOKEN: &str = "trainer-tls-token-0123456789";

/// The registry app in this process (plain HTTP), its store an in-process S3 server.
async fn start_registry(s3: &TestS3) -> std::net::SocketAddr {
    suite_telemetry::install_tls_provider();
    let mut env = s3.service_env("trainer-tls", Some("models"));
    env.push(("REGISTRY_TOKEN".to_owned(), TOKEN.to_owned()));
    let settings = registry::Settings::from_env(Env::from_pairs(env)).unwrap();
    let app = registry::build(&settings).await.unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], app.port()));
    tokio::spawn(app.run_until_stopped());
    shared_lib::testing::wait_until_ready(&format!("http://{addr}")).await;
    addr
}

/// Runs the binary with only `vars` set (no SSL_CERT_FILE unless given).
async fn trainer(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env_clear()
            .env("RUST_LOG", "warn")
            .envs(vars)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

async fn fraud_data(dir: &std::path::Path) -> String {
    let data = dir.join("fraud.csv").to_str().unwrap().to_owned();
    let out = trainer(
        &["generate", "fraud", "--rows", "3000", "--out", &data],
        &[],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainer_publishes_through_an_https_registry_whose_ca_it_is_given() {
    // Arrange
    let s3 = TestS3::start().await;
    let registry = start_registry(&s3).await;
    let tls = TlsProxy::start(registry).await;
    let dir = tempfile::tempdir().unwrap();
    let data = fraud_data(dir.path()).await;
    let ca = tls.ca_file().to_str().unwrap().to_owned();
    let train = ["train", "fraud", "--data", data.as_str(), "--trees", "5"];

    // Act
    let trusted = trainer(
        &train,
        &[
            ("REGISTRY_URL", tls.url.as_str()),
            ("REGISTRY_TOKEN", TOKEN),
            ("SSL_CERT_FILE", ca.as_str()),
        ],
    )
    .await;
    let untrusted = trainer(
        &train,
        &[
            ("REGISTRY_URL", tls.url.as_str()),
            ("REGISTRY_TOKEN", TOKEN),
            ("REGISTRY_WAIT_SECONDS", "2"),
        ],
    )
    .await;

    // Assert: published over TLS; without the CA, refused on the certificate
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let versions: serde_json::Value =
        reqwest::get(format!("http://{registry}/v1/models/fraud/versions"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(
        versions["versions"].as_array().map(Vec::len),
        Some(1),
        "{versions}"
    );
    let said = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(4), "{said}");
    assert!(said.to_lowercase().contains("certificate"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainer_waits_for_the_registry_a_bounded_time_then_says_so() {
    // Arrange: nothing listens there
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = fraud_data(dir.path()).await;
    let url = format!("http://{closed}");

    // Act
    let started = Instant::now();
    let out = trainer(
        &["train", "fraud", "--data", &data, "--trees", "5"],
        &[
            ("REGISTRY_URL", url.as_str()),
            ("REGISTRY_TOKEN", TOKEN),
            ("REGISTRY_WAIT_SECONDS", "3"),
        ],
    )
    .await;
    let took = started.elapsed();

    // Assert
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(said.contains("not ready after"), "{said}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(15),
        "waited {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainer_writes_to_an_https_s3_store_whose_ca_it_is_given() {
    // Arrange: the S3 server behind TLS; the trainer told it is the store's only writer (no
    // registry), so it talks to the store itself, through the SDK's client on ring.
    let s3 = TestS3::start().await;
    let env = s3.service_env("models", Some("suite"));
    let upstream: std::net::SocketAddr = s3.endpoint.trim_start_matches("http://").parse().unwrap();
    let tls = TlsProxy::start(upstream).await;
    let dir = tempfile::tempdir().unwrap();
    let data = fraud_data(dir.path()).await;
    let ca = tls.ca_file().to_str().unwrap().to_owned();
    let mut vars: Vec<(&str, &str)> = env
        .iter()
        .filter(|(k, _)| k.starts_with("AWS_") || k == "MODEL_STORE")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    vars.extend([
        ("S3_ENDPOINT_URL", tls.url.as_str()),
        ("TRAINER_SOLE_WRITER", "true"),
    ]);
    let train = ["train", "fraud", "--data", data.as_str(), "--trees", "5"];
    let mut trusting = vars.clone();
    trusting.push(("SSL_CERT_FILE", ca.as_str()));

    // Act
    let untrusted = trainer(&train, &vars).await;
    let written_untrusted = files_under(&s3.bucket_dir("models"));
    let trusted = trainer(&train, &trusting).await;

    // Assert: without the CA nothing is written; with it, version 1 is published over TLS
    assert!(!untrusted.status.success(), "{untrusted:?}");
    assert_eq!(written_untrusted, 0);
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&trusted.stdout).unwrap();
    assert_eq!(result["publication"]["version"], 1, "{result}");
}

fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| {
                let path = e.path();
                if path.is_dir() { files_under(&path) } else { 1 }
            })
            .sum()
    })
}
