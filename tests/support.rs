//! Support for the end-to-end tests: where the real S3 store is.
//!
//! `scripts/test.sh` starts Garage and exports `E2E_S3_*`; the tests that need it are
//! `#[ignore]`d so a plain `cargo test` without Garage skips them visibly rather than failing,
//! and the test script runs them with `--run-ignored all`.
//!
//! The fault tests (`e2e/faults.rs`) run the real binaries ([`process`]), against a Garage of
//! their own where the store must go away ([`garage`]), with a proxy that stops a request
//! part-way ([`proxy`]). The click-store tests use the Redis `scripts/test.sh` starts
//! (`E2E_REDIS_URL`) or one of their own to kill ([`redis`]). The registry console test drives
//! headless Chromium over the DevTools protocol ([`cdp`]).

#[path = "support/cdp.rs"]
pub mod cdp;
#[path = "support/garage.rs"]
pub mod garage;
#[path = "support/process.rs"]
pub mod process;
#[path = "support/promql.rs"]
pub mod promql;
#[path = "support/proxy.rs"]
pub mod proxy;
#[path = "support/redis.rs"]
pub mod redis;

use secrecy::SecretString;
use shared_lib::artifact::{ModelKind, encode_artifact};
use shared_lib::models::forest::FraudModel;
use shared_lib::store::{ObjectKey, S3Credentials, S3Settings};

use crate::process::Service;

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

/// The environment of a service whose model store is `settings` (e.g. [`garage_settings`]):
/// `MODEL_STORE` and the S3 variables.
///
/// # Panics
/// When `settings` has no endpoint or no static credentials.
pub fn store_env(settings: &S3Settings) -> Vec<(String, String)> {
    use secrecy::ExposeSecret as _;
    let credentials = settings
        .credentials
        .as_ref()
        .unwrap_or_else(|| panic!("no static credentials"));
    let store = match &settings.prefix {
        Some(prefix) => format!("s3://{}/{prefix}", settings.bucket),
        None => format!("s3://{}", settings.bucket),
    };
    [
        ("MODEL_STORE", store),
        (
            "S3_ENDPOINT_URL",
            settings
                .endpoint
                .clone()
                .unwrap_or_else(|| panic!("no endpoint")),
        ),
        ("AWS_REGION", settings.region.clone()),
        ("AWS_ACCESS_KEY_ID", credentials.access_key_id.clone()),
        (
            "AWS_SECRET_ACCESS_KEY",
            credentials.secret_access_key.expose_secret().to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
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

/// A registration for the registry API: the artifact to upload and the JSON body that then
/// registers it by sha256.
pub struct Registration {
    pub artifact: Vec<u8>,
    pub sha256: String,
    pub body: serde_json::Value,
}

/// A registration for the registry API with a small valid artifact.
///
/// # Panics
/// Never for these inputs.
pub fn registration(seed: f64, metric: f64) -> Registration {
    let artifact = shared_lib::artifact::encode_artifact(
        shared_lib::artifact::ModelKind::FraudRandomForest,
        &vec![seed; 4],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let body = serde_json::json!({
        "manifest": {
            "run_id": uuid::Uuid::new_v4(),
            "algorithm": "random_forest",
            "metrics": {"roc_auc": metric},
            "trainer_version": "e2e",
            "created_by": "e2e"
        },
        "artifact_sha256": artifact.digest.to_string(),
    });
    Registration {
        sha256: artifact.digest.to_string(),
        artifact: artifact.bytes,
        body,
    }
}

/// Publishes through the registry API as the trainer does: uploads the artifact, then
/// registers the version; returns the answer of the registration (or of a failed upload).
///
/// # Panics
/// When the registry cannot be reached.
pub async fn publish(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    model: &str,
    registration: &Registration,
) -> reqwest::Response {
    let uploaded = client
        .put(format!(
            "{url}/v1/models/{model}/artifacts/{}",
            registration.sha256
        ))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(registration.artifact.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload: {e}"));
    if uploaded.status() != 201 {
        return uploaded;
    }
    client
        .post(format!("{url}/v1/models/{model}/versions"))
        .bearer_auth(token)
        .json(&registration.body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("register: {e}"))
}

/// A one-split fraud forest: `txn_amount` above `cut` scores 0.9, else 0.1.
pub fn fraud_model(cut: f64) -> FraudModel {
    shared_lib::testing::threshold_fraud_model(cut, 0.1, 0.9)
}

/// A registration for the registry API: `model` encoded as a fraud forest artifact of any
/// serialisable shape (a real [`fraud_model`], or something that is not one).
///
/// # Panics
/// When `model` cannot be encoded.
pub fn fraud_registration(model: &impl serde::Serialize) -> Registration {
    let artifact =
        encode_artifact(ModelKind::FraudRandomForest, model).unwrap_or_else(|e| panic!("{e}"));
    let draft = shared_lib::testing::fraud_draft("e2e");
    let mut manifest = serde_json::to_value(&draft).unwrap_or_else(|e| panic!("{e}"));
    if let Some(fields) = manifest.as_object_mut() {
        fields.remove("model");
    }
    Registration {
        body: serde_json::json!({
            "manifest": manifest,
            "artifact_sha256": artifact.digest.to_string(),
        }),
        sha256: artifact.digest.to_string(),
        artifact: artifact.bytes,
    }
}

/// The token the fault tests give the registry binary.
pub const REGISTRY_TOKEN: &str = "e2e-token-0123456789";

/// The registry binary, reached over HTTP like the trainer and an operator reach it.
pub struct RegistryApi {
    pub service: Service,
}

impl RegistryApi {
    /// Starts the registry binary on the store in `store_env` and waits until it is ready.
    pub async fn start(store_env: &[(String, String)]) -> Self {
        let mut env = store_env.to_vec();
        env.push(("REGISTRY_TOKEN".into(), REGISTRY_TOKEN.into()));
        Self {
            service: Service::start_ready("registry", &env).await,
        }
    }

    pub fn url(&self) -> &str {
        &self.service.url
    }

    /// Uploads the artifact and registers a version of `model`; returns its number.
    ///
    /// # Panics
    /// Unless the registry answers 201.
    pub async fn register(&self, model: &str, registration: &Registration) -> u64 {
        let res = publish(
            &self.service.client,
            self.url(),
            REGISTRY_TOKEN,
            model,
            registration,
        )
        .await;
        let status = res.status();
        let answer: serde_json::Value = res.json().await.unwrap_or_default();
        assert_eq!(status, 201, "register {model}: {answer}");
        answer["version"]
            .as_u64()
            .unwrap_or_else(|| panic!("no version in {answer}"))
    }

    /// Moves `alias` of `model` to `version` if it holds `expected`; returns the status.
    pub async fn move_alias(
        &self,
        model: &str,
        alias: &str,
        version: u64,
        expected: Option<u64>,
    ) -> u16 {
        self.service
            .client
            .put(format!("{}/v1/models/{model}/aliases/{alias}", self.url()))
            .bearer_auth(REGISTRY_TOKEN)
            .json(&serde_json::json!({"version": version, "expected_version": expected}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("move alias: {e}"))
            .status()
            .as_u16()
    }

    /// Moves `production` of `model` from where it is to `version`.
    ///
    /// # Panics
    /// Unless the move succeeds.
    pub async fn promote(&self, model: &str, version: u64) {
        let current = self.alias(model, "production").await;
        let status = self.move_alias(model, "production", version, current).await;
        assert_eq!(status, 200, "move production of {model} to {version}");
    }

    /// The version `alias` points to, if it exists.
    pub async fn alias(&self, model: &str, alias: &str) -> Option<u64> {
        let res = self
            .service
            .get(&format!("/v1/models/{model}/aliases/{alias}"))
            .await;
        if res.status() == 404 {
            return None;
        }
        let record: serde_json::Value = res.json().await.unwrap_or_default();
        record["version"].as_u64()
    }

    /// The listed versions of `model`, oldest first (empty for an unknown model), each checked
    /// to be whole: its manifest reads and its artifact downloads with the manifest's size and
    /// sha256.
    ///
    /// # Panics
    /// When a listed version is not whole.
    pub async fn complete_versions(&self, model: &str) -> Vec<u64> {
        let res = self
            .service
            .get(&format!(
                "/v1/models/{model}/versions?order=asc&page_size=500"
            ))
            .await;
        if res.status() == 404 {
            return Vec::new();
        }
        let listing: serde_json::Value = res.json().await.unwrap_or_default();
        let versions: Vec<u64> = listing["versions"]
            .as_array()
            .unwrap_or_else(|| panic!("no versions in {listing}"))
            .iter()
            .filter_map(|v| v["version"].as_u64())
            .collect();
        for v in &versions {
            let manifest = self
                .service
                .get_json(&format!("/v1/models/{model}/versions/{v}"))
                .await["manifest"]
                .clone();
            let artifact = self
                .service
                .client
                .get(format!(
                    "{}/v1/models/{model}/versions/{v}/artifact",
                    self.url()
                ))
                .bearer_auth(REGISTRY_TOKEN)
                .send()
                .await
                .unwrap_or_else(|e| panic!("artifact of version {v}: {e}"));
            assert_eq!(artifact.status(), 200, "artifact of version {v}");
            let bytes = artifact
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("artifact of version {v}: {e}"));
            let digest = shared_lib::artifact::ArtifactDigest::of(&bytes).to_string();
            assert_eq!(
                manifest["artifact"]["sha256"].as_str(),
                Some(digest.as_str()),
                "version {v}: the artifact does not match its manifest"
            );
            assert_eq!(
                manifest["artifact"]["size"].as_u64(),
                Some(bytes.len() as u64)
            );
        }
        versions
    }
}
