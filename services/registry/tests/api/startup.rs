//! Start-up: the index is rebuilt from the store, and a corrupt or foreign manifest is skipped
//! and reported instead of keeping the registry from ever becoming ready.

use bytes::Bytes;
use registry::Settings;
use serde_json::Value;
use shared_lib::artifact::{ModelKind, encode_artifact};
use shared_lib::registry::Registry;
use shared_lib::settings::Env;
use shared_lib::store::{ObjectKey, ObjectStore, PutMode, StoreLocation};
use shared_lib::testing::{TestS3, fraud_draft, metric_sum};

use crate::helpers::TOKEN;

const BUCKET: &str = "registry-models";
const PREFIX: &str = "reg";

/// Publishes five fraud versions straight into the store, as an earlier registry did.
async fn seed_five_versions(s3: &TestS3) -> ObjectStore {
    let store = ObjectStore::open(&StoreLocation::S3(s3.bucket(BUCKET, Some(PREFIX))))
        .await
        .unwrap();
    let registry = Registry::new(store.clone());
    for seed in 1..=5 {
        let artifact =
            encode_artifact(ModelKind::FraudRandomForest, &vec![f64::from(seed); 4]).unwrap();
        registry
            .publish(fraud_draft("seeder"), Bytes::from(artifact.bytes), None)
            .await
            .unwrap();
    }
    store
}

async fn overwrite_manifest(store: &ObjectStore, version: u32, bytes: &'static [u8]) {
    let key = ObjectKey::parse(&format!(
        "models/fraud/versions/{version:010}/manifest.json"
    ))
    .unwrap();
    assert!(store.exists(&key).await.unwrap(), "{key}");
    store
        .put(&key, Bytes::from_static(bytes), PutMode::Overwrite)
        .await
        .unwrap();
}

/// Starts the registry on the seeded store; returns its address once `/readyz` is 200.
async fn start_registry(s3: &TestS3) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let mut env = s3.service_env(BUCKET, Some(PREFIX));
    env.push(("REGISTRY_TOKEN".to_owned(), TOKEN.to_owned()));
    let app = registry::build(&Settings::from_env(Env::from_pairs(env)).unwrap())
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    shared_lib::testing::wait_until_ready(&address).await;
    (address, server)
}

async fn get(address: &str, path: &str) -> reqwest::Response {
    shared_lib::telemetry::install_tls_provider();
    reqwest::get(format!("{address}{path}")).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_is_ready_and_lists_the_good_versions_when_one_manifest_is_corrupt_and_one_foreign()
 {
    // Arrange: v2's manifest is garbage bytes, v4's valid JSON of another shape.
    let s3 = TestS3::start().await;
    let store = seed_five_versions(&s3).await;
    overwrite_manifest(&store, 2, b"\x00\x9f\x92\x96 not json at all").await;
    overwrite_manifest(
        &store,
        4,
        br#"{"kind": "something else", "version": "four"}"#,
    )
    .await;

    // Act: start-up (waits for /readyz 200, which never came before: the rebuild failed on
    // the first bad manifest and retried forever).
    let (address, server) = start_registry(&s3).await;

    // Assert: ready, with the skipped ones named in the detail ...
    let ready: Value = get(&address, "/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    let detail = ready["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("2 manifests skipped"), "{detail}");
    assert!(detail.contains("fraud v2, fraud v4"), "{detail}");
    // ... counted in the metric ...
    let metrics = get(&address, "/metrics").await.text().await.unwrap();
    assert_eq!(metric_sum(&metrics, "registry_manifests_skipped", &[]), 2.0);
    // ... and the newest good version's creation time exported, for the "no publish" alert.
    let published = metric_sum(
        &metrics,
        "registry_last_publish_timestamp_seconds",
        &[("model", "fraud")],
    );
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(
        (now - 600.0..=now + 1.0).contains(&published),
        "{published} vs {now}"
    );
    // ... and the good versions listed and readable.
    let listing: Value = get(&address, "/v1/models/fraud/versions?order=asc")
        .await
        .json()
        .await
        .unwrap();
    let listed: Vec<u64> = listing["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, [1, 3, 5], "{listing}");
    assert_eq!(
        get(&address, "/v1/models/fraud/versions/3").await.status(),
        200
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_with_only_good_manifests_reports_no_detail_and_zero_skipped() {
    // Arrange
    let s3 = TestS3::start().await;
    seed_five_versions(&s3).await;

    // Act
    let (address, server) = start_registry(&s3).await;

    // Assert
    let ready: Value = get(&address, "/readyz").await.json().await.unwrap();
    assert_eq!(ready, serde_json::json!({"status": "ready"}));
    let metrics = get(&address, "/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("registry_manifests_skipped") && l.ends_with(" 0")),
        "{metrics}"
    );
    server.abort();
}
