//! `spawn_app`: the real application on a loopback port, its store an in-process S3 server.

use std::time::Duration;

use bytes::Bytes;
use fraud::Settings;
use shared_lib::artifact::{ModelKind, encode_artifact};
use shared_lib::model_id::{AliasName, ModelName, ModelVersion};
use shared_lib::models::forest::FraudModel;
use shared_lib::registry::manifest::Manifest;
use shared_lib::registry::{Change, Registry};
use shared_lib::settings::Env;
use shared_lib::store::{ObjectStore, StoreLocation};
use shared_lib::testing::TestS3;

pub use shared_lib::testing::threshold_fraud_model as threshold_model;
pub const BUCKET: &str = "fraud-models";

/// Version 1 flags amounts above 100 as fraud.
pub fn flags_large() -> FraudModel {
    threshold_model(100.0, 0.1, 0.9)
}

/// The opposite model: flags amounts up to 100.
pub fn flags_small() -> FraudModel {
    threshold_model(100.0, 0.9, 0.1)
}

pub struct S3Fixture {
    pub s3: TestS3,
    pub registry: Registry,
}

impl S3Fixture {
    pub async fn start() -> Self {
        let s3 = TestS3::start().await;
        let settings = s3.bucket(BUCKET, Some("suite"));
        let store = ObjectStore::open(&StoreLocation::S3(settings))
            .await
            .unwrap();
        Self {
            s3,
            registry: Registry::new(store),
        }
    }

    pub async fn publish(&self, model: &FraudModel) -> Manifest {
        let artifact = encode_artifact(ModelKind::FraudRandomForest, model).unwrap();
        let draft = shared_lib::testing::fraud_draft("test");
        self.registry
            .publish(draft, Bytes::from(artifact.bytes), Some(&artifact.digest))
            .await
            .unwrap()
    }

    pub async fn promote(&self, version: u32) {
        let fraud = ModelName::parse("fraud").unwrap();
        let production = AliasName::production();
        let current = self.registry.resolve_alias(&fraud, &production).await.ok();
        let who = Change {
            actor: "test",
            reason: None,
        };
        self.registry
            .move_alias(
                &fraud,
                &production,
                ModelVersion::new(version).unwrap(),
                current,
                &who,
            )
            .await
            .unwrap();
    }

    /// The environment of a service using this store.
    pub fn env(&self) -> Vec<(String, String)> {
        with(
            self.s3.service_env(BUCKET, Some("suite")),
            &[("MODEL_POLL_SECONDS", "0.1")],
        )
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts the service with `env` (later pairs override earlier ones).
pub async fn spawn_app(env: Vec<(String, String)>) -> TestApp {
    shared_lib::telemetry::install_tls_provider();
    let settings = Settings::from_env(Env::from_pairs(env)).unwrap();
    let app = fraud::build(&settings).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        server,
    }
}

pub fn with(mut env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    pub async fn post_batch(&self, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/classify", self.address))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        shared_lib::testing::wait_until_ready(&self.address).await;
    }

    /// Waits (up to 10 s) until `check` is true.
    pub async fn wait_for<'a, F, Fut>(&'a self, check: F)
    where
        F: Fn(&'a TestApp) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        shared_lib::testing::eventually("the condition", Duration::from_secs(10), || check(self))
            .await;
    }

    pub async fn served_version(&self, query: &str) -> String {
        let res = self.get(&format!("/classify?{query}")).await;
        assert_eq!(res.status(), 200);
        res.headers()["x-model-version"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }
}

pub use shared_lib::testing::metric_sum;
