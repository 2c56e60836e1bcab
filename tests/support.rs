//! Support for the end-to-end tests: where the real S3 store is.
//!
//! `scripts/test.sh` starts Garage and exports `E2E_S3_*`; the tests that need it are
//! `#[ignore]`d so a plain `cargo test` without Garage skips them visibly rather than failing,
//! and the test script runs them with `--run-ignored all`.

use secrecy::SecretString;
use shared_lib::store::{ObjectKey, S3Credentials, S3Settings};

/// S3 settings for the store started by `scripts/garage.sh`, under a fresh prefix per test.
///
/// # Panics
/// When `E2E_S3_ENDPOINT` and friends are not set: run the tests through `scripts/test.sh`.
pub fn garage_settings(prefix: &str) -> S3Settings {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: start Garage with scripts/garage.sh or run scripts/test.sh")
        })
    };
    let prefix = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
    S3Settings {
        bucket: var("E2E_S3_BUCKET"),
        prefix: Some(ObjectKey::parse(&prefix).unwrap_or_else(|e| panic!("{e}"))),
        endpoint: Some(var("E2E_S3_ENDPOINT")),
        region: var("E2E_S3_REGION"),
        force_path_style: true,
        credentials: Some(S3Credentials {
            access_key_id: var("E2E_S3_ACCESS_KEY_ID"),
            secret_access_key: SecretString::from(var("E2E_S3_SECRET_ACCESS_KEY")),
            session_token: None,
        }),
    }
}

/// Starts the registry service on a loopback port with `env`; returns its base URL.
///
/// # Panics
/// When the settings are invalid or the service cannot start.
pub async fn start_registry(env: Vec<(String, String)>) -> String {
    let settings = registry::Settings::from_env(shared_lib::settings::Env::from_pairs(env))
        .unwrap_or_else(|e| panic!("registry settings: {e}"));
    let app = registry::build(&settings)
        .await
        .unwrap_or_else(|e| panic!("registry start: {e}"));
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    shared_lib::testing::wait_until_ready(&url).await;
    url
}

/// A registration body for the registry API with a small valid artifact.
///
/// # Panics
/// Never for these inputs.
pub fn registration(seed: f64, metric: f64) -> serde_json::Value {
    use base64::Engine as _;
    let artifact = shared_lib::artifact::encode_artifact(
        shared_lib::artifact::ModelKind::FraudRandomForest,
        &vec![seed; 4],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    serde_json::json!({
        "manifest": {
            "run_id": uuid::Uuid::new_v4(),
            "algorithm": "random_forest",
            "metrics": {"roc_auc": metric},
            "trainer_version": "e2e",
            "created_by": "e2e"
        },
        "artifact_base64": base64::engine::general_purpose::STANDARD.encode(&artifact.bytes),
        "artifact_sha256": artifact.digest.to_string(),
    })
}
