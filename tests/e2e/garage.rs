//! End-to-end against Garage: the real aws-sdk-s3 client, a production S3 store, loopback.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use e2e::garage_settings;
use serde::{Deserialize, Serialize};
use shared_lib::Error;
use shared_lib::artifact::{ModelKind, encode_artifact};
use shared_lib::model_id::{AliasName, ModelName, ModelVersion};
use shared_lib::registry::manifest::NewVersion;
use shared_lib::registry::{Change, Registry};
use shared_lib::store::{ObjectKey, ObjectStore, PutMode, StoreLocation};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Forest {
    trees: Vec<Vec<f64>>,
}

fn draft(by: &str) -> NewVersion {
    NewVersion {
        model: ModelName::parse("fraud").unwrap(),
        run_id: uuid::Uuid::new_v4(),
        algorithm: "random_forest".into(),
        parameters: BTreeMap::new(),
        feature_schema: Default::default(),
        training_data: Default::default(),
        metrics: BTreeMap::from([("roc_auc".into(), 0.97)]),
        trainer_version: env!("CARGO_PKG_VERSION").into(),
        created_by: by.into(),
        gate: None,
    }
}

async fn registry(prefix: &str) -> Registry {
    let store = ObjectStore::open(&StoreLocation::S3(garage_settings(prefix)))
        .await
        .unwrap();
    Registry::new(store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Garage: run scripts/test.sh"]
async fn model_round_trips_through_garage() {
    // Arrange
    let registry = registry("round-trip").await;
    let forest = Forest {
        trees: (0..50)
            .map(|t| (0..64).map(|n| f64::from(t * n) / 7.0).collect())
            .collect(),
    };
    let artifact = encode_artifact(ModelKind::FraudRandomForest, &forest).unwrap();
    let fraud = ModelName::parse("fraud").unwrap();

    // Act: publish, promote, then read back as a server would.
    let published = registry
        .publish(
            draft("e2e"),
            Bytes::from(artifact.bytes.clone()),
            Some(&artifact.digest),
        )
        .await
        .unwrap();
    let who = Change {
        actor: "e2e",
        reason: Some("first model"),
    };
    registry
        .move_alias(
            &fraud,
            &AliasName::production(),
            published.version,
            None,
            &who,
        )
        .await
        .unwrap();
    let version = registry
        .resolve_alias(&fraud, &AliasName::production())
        .await
        .unwrap();
    let manifest = registry.manifest(&fraud, version).await.unwrap();
    let loaded: Forest = registry
        .load_model(&manifest, ModelKind::FraudRandomForest)
        .await
        .unwrap();

    // Assert
    assert_eq!(loaded, forest);
    assert_eq!(manifest, published);
    println!(
        "garage round trip: {} v{} via alias production, {} bytes, sha256 {}, store {}",
        manifest.model,
        manifest.version,
        manifest.artifact.size,
        manifest.artifact.sha256,
        registry.store().describe()
    );

    // A damaged artifact in the store is refused on load.
    let key = ObjectKey::parse(&manifest.artifact.key).unwrap();
    let mut bytes = registry.store().get(&key).await.unwrap().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    registry
        .store()
        .put(&key, Bytes::from(bytes), PutMode::Overwrite)
        .await
        .unwrap();
    let err = registry
        .load_model::<Forest>(&manifest, ModelKind::FraudRandomForest)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    println!("garage round trip: flipped byte refused: {err}");
}

/// Garage ignores `If-None-Match` on PutObject; our create-new still refuses an existing key
/// (the HEAD check), and the registry's single writer keeps concurrent publishes apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Garage: run scripts/test.sh"]
async fn single_writer_keeps_versions_distinct_on_a_store_without_conditional_writes() {
    // Arrange
    let registry = registry("single-writer").await;
    let settings = garage_settings("probe");
    let raw = raw_client(&settings);
    let key = format!("{}/probe", settings.prefix.as_ref().unwrap());
    raw.put_object()
        .bucket(&settings.bucket)
        .key(&key)
        .body(Bytes::from_static(b"one").into())
        .send()
        .await
        .unwrap();
    let second = raw
        .put_object()
        .bucket(&settings.bucket)
        .key(&key)
        .if_none_match("*")
        .body(Bytes::from_static(b"two").into())
        .send()
        .await;
    let honoured = second.is_err();
    println!("garage honours If-None-Match on PutObject: {honoured}");

    // Act: 20 concurrent publishers through one registry (the registry service's situation).
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let registry = registry.clone();
            tokio::spawn(async move {
                let artifact = encode_artifact(
                    ModelKind::FraudRandomForest,
                    &Forest {
                        trees: vec![vec![f64::from(i)]],
                    },
                )
                .unwrap();
                registry
                    .publish(
                        draft(&format!("publisher-{i}")),
                        Bytes::from(artifact.bytes),
                        None,
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut versions = BTreeSet::new();
    for task in tasks {
        let manifest = task.await.unwrap();
        assert!(
            versions.insert(manifest.version.get()),
            "duplicate version {}",
            manifest.version
        );
    }

    // Assert
    assert_eq!(versions, (1..=20).collect::<BTreeSet<u32>>());
    let fraud = ModelName::parse("fraud").unwrap();
    for v in 1..=20 {
        let manifest = registry
            .manifest(&fraud, ModelVersion::new(v).unwrap())
            .await
            .unwrap();
        assert!(manifest.created_by.starts_with("publisher-"));
    }
    println!("garage: 20 concurrent publishes -> versions 1..=20, none lost");
}

fn raw_client(settings: &shared_lib::store::S3Settings) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use secrecy::ExposeSecret;
    let creds = settings.credentials.as_ref().unwrap();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(settings.region.clone()))
        .endpoint_url(settings.endpoint.clone().unwrap())
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.expose_secret().to_owned(),
            None,
            None,
            "e2e",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The registry service on Garage: concurrent registrations and alias moves over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage: run scripts/test.sh"]
async fn registry_service_on_garage_allocates_distinct_versions_and_one_cas_winner() {
    // Arrange
    let settings = garage_settings("registry-service");
    let var = |name: &str| std::env::var(name).unwrap();
    let env: Vec<(String, String)> = [
        (
            "MODEL_STORE",
            format!(
                "s3://{}/{}",
                settings.bucket,
                settings.prefix.as_ref().unwrap()
            ),
        ),
        ("S3_ENDPOINT_URL", var("E2E_S3_ENDPOINT")),
        ("AWS_REGION", var("E2E_S3_REGION")),
        ("AWS_ACCESS_KEY_ID", var("E2E_S3_ACCESS_KEY_ID")),
        ("AWS_SECRET_ACCESS_KEY", var("E2E_S3_SECRET_ACCESS_KEY")),
        ("HOST", "127.0.0.1".into()),
        ("PORT", "0".into()),
        ("REGISTRY_TOKEN", "e2e-token-0123456789".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let url = e2e::start_registry(env).await;
    let client = reqwest::Client::new();

    // Act: 20 concurrent registrations.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let res = client
                    .post(format!("{url}/v1/models/fraud/versions"))
                    .bearer_auth("e2e-token-0123456789")
                    .json(&e2e::registration(f64::from(i), 0.9))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
                res.json::<serde_json::Value>().await.unwrap()["version"]
                    .as_u64()
                    .unwrap()
            })
        })
        .collect();
    let mut versions = BTreeSet::new();
    for t in tasks {
        assert!(versions.insert(t.await.unwrap()), "duplicate version");
    }
    assert_eq!(versions, (1..=20).collect::<BTreeSet<u64>>());

    // Act: concurrent moves of production, all expecting it absent.
    let moves: Vec<_> = (1..=8)
        .map(|v| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                client
                    .put(format!("{url}/v1/models/fraud/aliases/production"))
                    .bearer_auth("e2e-token-0123456789")
                    .json(&serde_json::json!({"version": v, "expected_version": null}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for m in moves {
        statuses.push(m.await.unwrap());
    }
    statuses.sort_unstable();
    // Assert
    assert_eq!(statuses, [200, 409, 409, 409, 409, 409, 409, 409]);
    println!(
        "garage registry service: 20 registrations -> 1..=20; 8 racing alias moves -> {statuses:?}"
    );
}
