//! A small ALS model with known structure, and `spawn_app`.
//!
//! Items `a1..a4` point along the first factor, `b1..b4` along the second. `alice` likes the
//! first direction and has seen `a1`; `bob` the second and has seen `b1`. `b2` is the most popular.

use recommender::Settings;
use recommender::scoring::ScoringLimiter;
use shared_lib::artifact::{ArtifactDigest, ModelKind, encode_artifact};
use shared_lib::models::als::{AlsModel, Feedback};
use shared_lib::models::drift::DriftProfile;
use shared_lib::registry::Registry;
use shared_lib::settings::Env;
use shared_lib::store::{ObjectStore, StoreLocation};
use shared_lib::testing::TestS3;

pub fn two_cluster_model() -> AlsModel {
    let items = ["a1", "a2", "a3", "a4", "b1", "b2", "b3", "b4"];
    let item_factors = vec![
        1.0, 0.05, 0.95, 0.1, 0.9, 0.0, 0.85, 0.15, //
        0.05, 1.0, 0.1, 0.95, 0.0, 0.9, 0.15, 0.85,
    ];
    AlsModel {
        feedback: Feedback::Implicit,
        rank: 2,
        lambda: 0.1,
        alpha: 1.0,
        user_ids: vec!["alice".into(), "bob".into()],
        item_ids: items.map(String::from).to_vec(),
        user_factors: vec![1.0, 0.0, 0.0, 1.0],
        item_factors,
        seen_offsets: vec![0, 1, 2],
        seen_items: vec![0, 4],
        item_popularity: vec![5, 4, 3, 2, 6, 9, 1, 0],
        index: None,
        graph: None,
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// The app's bound on scoring work, shared: a test may take its permits.
    pub scoring: ScoringLimiter,
    _s3: TestS3,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Where the app under test keeps its clicks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clicks {
    Memory,
    /// The Redis `scripts/test.sh` starts (`E2E_REDIS_URL`), under a key prefix of the test's own.
    Redis,
}

impl Clicks {
    fn env(self) -> Vec<(String, String)> {
        match self {
            Self::Memory => Vec::new(),
            Self::Redis => {
                let url = std::env::var("E2E_REDIS_URL").unwrap_or_else(|_| {
                    panic!("E2E_REDIS_URL is not set: start Redis with scripts/redis.sh or run scripts/test.sh")
                });
                let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
                vec![
                    ("CLICKS_URL".into(), url),
                    ("CLICKS_KEY_PREFIX".into(), prefix),
                ]
            }
        }
    }
}

/// A test body run once per click store: `in_memory` always, `in_redis` with the suite's Redis
/// (ignored without it, as the other tests that need a server are).
#[macro_export]
macro_rules! in_both_click_stores {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn in_memory() {
                super::$case($crate::helpers::Clicks::Memory).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs Redis (E2E_REDIS_URL): run scripts/test.sh"]
            async fn in_redis() {
                super::$case($crate::helpers::Clicks::Redis).await;
            }
        }
    )*};
}

/// Publishes `models` as versions 1, 2, … and starts the service with `extra` settings.
pub async fn spawn_app(models: &[AlsModel], extra: &[(&str, &str)]) -> TestApp {
    spawn_app_with_clicks(models, extra, Clicks::Memory).await
}

/// [`spawn_app`] with clicks kept in `clicks`.
pub async fn spawn_app_with_clicks(
    models: &[AlsModel],
    extra: &[(&str, &str)],
    clicks: Clicks,
) -> TestApp {
    let artifacts = models.iter().map(|m| (encoded(m), None)).collect();
    spawn(artifacts, extra, clicks).await
}

/// [`spawn_app`] with version 1's manifest carrying `drift`.
pub async fn spawn_app_with_drift(model: &AlsModel, drift: DriftProfile) -> TestApp {
    spawn(vec![(encoded(model), Some(drift))], &[], Clicks::Memory).await
}

/// [`spawn_app`] with artifacts already encoded, published through the registry as they are.
pub async fn spawn_app_with_artifacts(artifacts: Vec<Vec<u8>>, extra: &[(&str, &str)]) -> TestApp {
    let artifacts = artifacts.into_iter().map(|a| (a, None)).collect();
    spawn(artifacts, extra, Clicks::Memory).await
}

/// `model` as the trainer writes it.
pub fn encoded(model: &AlsModel) -> Vec<u8> {
    encode_artifact(ModelKind::RecommenderAls, model)
        .unwrap()
        .bytes
}

async fn spawn(
    artifacts: Vec<(Vec<u8>, Option<DriftProfile>)>,
    extra: &[(&str, &str)],
    clicks: Clicks,
) -> TestApp {
    let s3 = TestS3::start().await;
    let store = ObjectStore::open(&StoreLocation::S3(s3.bucket("recommender-models", None)))
        .await
        .unwrap();
    let registry = Registry::new(store);
    for (bytes, drift) in artifacts {
        let mut draft = shared_lib::testing::recommender_draft("test");
        draft.drift = drift;
        let digest = ArtifactDigest::of(&bytes);
        registry
            .publish(draft, bytes::Bytes::from(bytes), Some(&digest))
            .await
            .unwrap();
    }
    let mut env = s3.service_env("recommender-models", None);
    env.extend(
        [("MODEL_VERSION", "1"), ("MODEL_POLL_SECONDS", "0.1")]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    env.extend(clicks.env());
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let settings = Settings::from_env(Env::from_pairs(env)).unwrap();
    let scoring = ScoringLimiter::new(settings.scoring.clone());
    let app = recommender::startup::build_with_limiter(&settings, scoring.clone())
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    shared_lib::telemetry::install_tls_provider();
    let test_app = TestApp {
        address,
        client: reqwest::Client::new(),
        scoring,
        _s3: s3,
        server,
    };
    shared_lib::testing::wait_until_ready(&test_app.address).await;
    test_app
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let res = self.get(path).await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// Waits (up to 10 s) until every slot (A, B, shadow) has a model loaded: readiness only
    /// waits for A.
    pub async fn wait_all_slots_loaded(&self) {
        shared_lib::testing::eventually(
            "every slot loaded",
            std::time::Duration::from_secs(10),
            || async {
                let models = self.get_json("/v1/models").await;
                models["slots"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|slot| !slot["version"].is_null())
            },
        )
        .await;
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// The item ids of a recommendations answer.
pub fn item_ids(answer: &serde_json::Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item_id"].as_str().unwrap().to_owned())
        .collect()
}
