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
use shared_lib::store::{
    ConditionalWrites, ObjectKey, ObjectStore, PROBE_PREFIX, PutMode, StoreLocation,
};

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
        held_out: None,
        drift: None,
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
    // Garage accepts the second write and overwrites: `If-None-Match` is silently ignored, as
    // the README says. (Should a Garage release start honouring it, this fails, and the README
    // and the one-writer rule can be revisited.)
    assert!(
        second.is_ok(),
        "Garage refused a PutObject with If-None-Match: * on an existing key: {second:?}"
    );
    let stored = raw
        .get_object()
        .bucket(&settings.bucket)
        .key(&key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(
        stored.as_ref(),
        b"two",
        "the ignored condition let the write through"
    );
    // Our create-new still refuses the existing key: the HEAD check.
    let store = ObjectStore::open(&StoreLocation::S3(settings.clone()))
        .await
        .unwrap();
    let create_new = store
        .put(
            &ObjectKey::parse("probe").unwrap(),
            Bytes::from_static(b"three"),
            PutMode::CreateNew,
        )
        .await;
    assert!(
        matches!(create_new, Err(Error::ObjectExists { .. })),
        "create-new over an existing key on Garage: {create_new:?}"
    );

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

/// Garage ignores `If-None-Match`: the probe must say so, and the trainer must refuse to
/// publish straight into it (exit code 2, pointing at `REGISTRY_URL`) unless told it is the
/// only writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Garage and the built binaries: run scripts/test.sh"]
async fn probe_finds_garage_ignores_conditional_writes_and_the_trainer_refuses_it() {
    use e2e::process::Proc;
    use std::time::Duration;

    // Arrange
    let settings = garage_settings("one-writer");
    let store = ObjectStore::open(&StoreLocation::S3(settings.clone()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fraud.csv");
    let data = data.to_str().unwrap();
    let mut generate = Proc::spawn(
        "trainer",
        &["generate", "fraud", "--rows", "2000", "--out", data],
        &[],
    );
    assert!(generate.wait(Duration::from_secs(60)).await.success());
    let train = ["train", "fraud", "--data", data, "--trees", "5"];
    let env = e2e::store_env(&settings);

    // Act 1: the probe.
    let answer = store.probe_conditional_writes().await.unwrap();

    // Assert 1: ignored, and the probe object is gone.
    assert_eq!(answer, ConditionalWrites::Ignored);
    let probe_prefix = ObjectKey::parse(PROBE_PREFIX).unwrap();
    assert_eq!(store.list(&probe_prefix).await.unwrap(), Vec::new());

    // Act 2: the trainer, publishing straight into Garage.
    let mut refused = Proc::spawn("trainer", &train, &env);
    let status = refused.wait(Duration::from_secs(120)).await;

    // Assert 2: refused as a configuration error, nothing published.
    assert_eq!(status.code(), Some(2), "{}", refused.tail(20));
    let said = refused.output().join("\n");
    assert!(said.contains("REGISTRY_URL"), "{said}");
    let models = ObjectKey::parse("models").unwrap();
    assert_eq!(store.list(&models).await.unwrap(), Vec::new());

    // Act 3: told it is the only writer.
    let mut sole = env.clone();
    sole.push(("TRAINER_SOLE_WRITER".into(), "true".into()));
    let mut published = Proc::spawn("trainer", &train, &sole);
    let status = published.wait(Duration::from_secs(120)).await;

    // Assert 3: it publishes.
    assert!(status.success(), "{}", published.tail(20));
    let result: serde_json::Value = serde_json::from_str(&published.stdout().join("\n")).unwrap();
    assert_eq!(result["publication"]["version"], 1, "{result}");
    println!(
        "garage: probe -> {answer:?}; trainer straight into it -> exit 2 naming REGISTRY_URL; \
         with TRAINER_SOLE_WRITER=true -> v1"
    );
}

fn raw_client(settings: &shared_lib::store::S3Settings) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use secrecy::ExposeSecret;
    let creds = settings.credentials.as_ref().unwrap();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(shared_lib::store::https_client())
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

/// The registry binary on Garage: 20 concurrent registrations and 20 racing alias moves over
/// HTTP (issue #5's concurrent-publishers fault): no version lost or duplicated, exactly one
/// compare-and-swap winner per round, and the alias holds the winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage and the built binaries: run scripts/test.sh"]
async fn registry_service_on_garage_allocates_distinct_versions_and_one_cas_winner() {
    // Arrange
    let registry = std::sync::Arc::new(
        e2e::RegistryApi::start(&e2e::store_env(&garage_settings("registry-service"))).await,
    );

    // Act: 20 concurrent registrations.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let registry = registry.clone();
            tokio::spawn(async move {
                registry
                    .register("fraud", &e2e::registration(f64::from(i), 0.9))
                    .await
            })
        })
        .collect();
    let mut versions = BTreeSet::new();
    for t in tasks {
        assert!(versions.insert(t.await.unwrap()), "duplicate version");
    }

    // Assert: 1..=20 handed out, and all 20 listed, each whole.
    assert_eq!(versions, (1..=20).collect::<BTreeSet<u64>>());
    assert_eq!(
        registry.complete_versions("fraud").await,
        (1..=20).collect::<Vec<u64>>()
    );

    // Act: two rounds of racing moves of production: 20 expecting it absent, then 19 (to
    // every other version) expecting the first round's winner.
    let mut winners = Vec::new();
    let mut expected = None;
    for round in 0..2 {
        let moves: Vec<_> = (1..=20u64)
            .filter(|v| Some(*v) != expected)
            .map(|to| {
                let registry = registry.clone();
                tokio::spawn(async move {
                    let status = registry
                        .move_alias("fraud", "production", to, expected)
                        .await;
                    (to, status)
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for m in moves {
            outcomes.push(m.await.unwrap());
        }
        // Assert: one 200, every other one 409, and the alias holds the one that won.
        let won: Vec<u64> = outcomes
            .iter()
            .filter(|(_, s)| *s == 200)
            .map(|(v, _)| *v)
            .collect();
        let lost = outcomes.iter().filter(|(_, s)| *s == 409).count();
        assert_eq!(
            (won.len(), lost),
            (1, outcomes.len() - 1),
            "round {round}: {outcomes:?}"
        );
        assert_eq!(registry.alias("fraud", "production").await, Some(won[0]));
        expected = Some(won[0]);
        winners.push(won[0]);
    }
    println!(
        "garage registry binary: 20 concurrent registrations -> versions 1..=20, all listed \
         and whole; racing alias moves (20 from absent, then 19 from the winner) -> exactly one \
         winner each ({winners:?}), the rest 409"
    );
}
