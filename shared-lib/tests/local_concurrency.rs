//! Publishers that share nothing but a directory: sixteen independent `Registry` values (no
//! shared lock, as if sixteen trainer processes) publish into one local store at once. Only the
//! store's create-new (`link(2)`) keeps their version numbers apart.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use bytes::Bytes;
use shared_lib::Error;
use shared_lib::artifact::{ModelKind, encode_artifact};
use shared_lib::model_id::{AliasName, ModelName, ModelVersion};
use shared_lib::registry::manifest::NewVersion;
use shared_lib::registry::{Change, Registry};
use shared_lib::store::{ObjectStore, StoreLocation};

fn draft(i: u32) -> NewVersion {
    NewVersion {
        model: ModelName::parse("fraud").unwrap(),
        run_id: uuid::Uuid::new_v4(),
        algorithm: "random_forest".into(),
        parameters: BTreeMap::new(),
        feature_schema: Default::default(),
        training_data: Default::default(),
        metrics: BTreeMap::from([("publisher".into(), f64::from(i))]),
        trainer_version: "test".into(),
        created_by: format!("publisher-{i}"),
        gate: None,
        held_out: None,
        drift: None,
    }
}

async fn independent_registry(dir: &std::path::Path) -> Registry {
    Registry::new(
        ObjectStore::open(&StoreLocation::Local(dir.to_path_buf()))
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_independent_publishers_get_sixteen_distinct_consecutive_versions() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    // Act
    let tasks: Vec<_> = (0..16u32)
        .map(|i| {
            let path = dir.path().to_path_buf();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let registry = independent_registry(&path).await;
                let artifact =
                    encode_artifact(ModelKind::FraudRandomForest, &vec![f64::from(i); 4]).unwrap();
                barrier.wait().await;
                let manifest = registry
                    .publish(draft(i), Bytes::from(artifact.bytes), None)
                    .await
                    .unwrap();
                (manifest.version.get(), i)
            })
        })
        .collect();
    let mut by_version = BTreeMap::new();
    for task in tasks {
        let (version, publisher) = task.await.unwrap();
        assert!(
            by_version.insert(version, publisher).is_none(),
            "version {version} given twice"
        );
    }
    // Assert: 1..=16, and each manifest is the one its publisher wrote (nothing overwritten).
    assert_eq!(
        by_version.keys().copied().collect::<BTreeSet<_>>(),
        (1..=16).collect()
    );
    let reader = independent_registry(dir.path()).await;
    let fraud = ModelName::parse("fraud").unwrap();
    for (version, publisher) in by_version {
        let manifest = reader
            .manifest(&fraud, ModelVersion::new(version).unwrap())
            .await
            .unwrap();
        assert_eq!(manifest.created_by, format!("publisher-{publisher}"));
        assert_eq!(manifest.metrics["publisher"], f64::from(publisher));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn independent_alias_movers_with_the_same_expectation_have_exactly_one_winner() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let setup = independent_registry(dir.path()).await;
    for i in 0..8 {
        let artifact = encode_artifact(ModelKind::FraudRandomForest, &vec![f64::from(i)]).unwrap();
        setup
            .publish(draft(i), Bytes::from(artifact.bytes), None)
            .await
            .unwrap();
    }
    let fraud = ModelName::parse("fraud").unwrap();
    let v1 = ModelVersion::FIRST;
    let who = Change {
        actor: "setup",
        reason: None,
    };
    setup
        .move_alias(&fraud, &AliasName::production(), v1, None, &who)
        .await
        .unwrap();
    // Act
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(7));
    let tasks: Vec<_> = (2..=8u32)
        .map(|target| {
            let path = dir.path().to_path_buf();
            let barrier = barrier.clone();
            let fraud = fraud.clone();
            tokio::spawn(async move {
                let registry = independent_registry(&path).await;
                barrier.wait().await;
                let who = Change {
                    actor: "racer",
                    reason: None,
                };
                registry
                    .move_alias(
                        &fraud,
                        &AliasName::production(),
                        ModelVersion::new(target).unwrap(),
                        Some(v1),
                        &who,
                    )
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(record) => winners.push(record.version),
            Err(Error::AliasConflict { .. }) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    // Assert
    assert_eq!(winners.len(), 1, "{winners:?}");
    let history = setup
        .alias_history(&fraud, &AliasName::production())
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].version, winners[0]);
}
