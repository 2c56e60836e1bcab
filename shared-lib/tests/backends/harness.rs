//! The backends under test, and small helpers shared by the cases.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shared_lib::artifact::{EncodedArtifact, ModelKind, encode_artifact};
use shared_lib::model_id::ModelName;
use shared_lib::registry::manifest::{FeatureSchema, FeatureSpec, FeatureType, NewVersion};
use shared_lib::registry::{Change, Registry};
use shared_lib::store::{ObjectStore, StoreLocation};
use shared_lib::testing::TestS3;

pub struct Backend {
    pub store: ObjectStore,
    _local: Option<tempfile::TempDir>,
    _s3: Option<TestS3>,
}

impl Backend {
    pub async fn local() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(&StoreLocation::Local(dir.path().join("models")))
            .await
            .unwrap();
        Self {
            store,
            _local: Some(dir),
            _s3: None,
        }
    }

    pub async fn s3() -> Self {
        let s3 = TestS3::start().await;
        let store = s3.store("model-bucket").await.unwrap();
        Self {
            store,
            _local: None,
            _s3: Some(s3),
        }
    }

    /// What a failed streamed write could leave behind: temporary files of the local store,
    /// open multipart uploads on S3.
    pub fn upload_leftovers(&self) -> usize {
        match (&self._local, &self._s3) {
            (Some(dir), _) => std::fs::read_dir(dir.path().join("models/.tmp"))
                .unwrap()
                .count(),
            (None, Some(s3)) => s3.open_multipart_uploads(),
            (None, None) => 0,
        }
    }

    pub fn registry(&self) -> Registry {
        Registry::new(self.store.clone())
    }
}

/// A stand-in model: the registry does not care what is inside, only that it round-trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToyModel {
    pub weights: Vec<f64>,
}

pub fn toy_artifact(seed: f64) -> EncodedArtifact {
    encode_artifact(
        ModelKind::FraudRandomForest,
        &ToyModel {
            weights: vec![seed, seed * 2.0, -seed],
        },
    )
    .unwrap()
}

pub fn fraud() -> ModelName {
    ModelName::parse("fraud").unwrap()
}

pub fn draft(by: &str) -> NewVersion {
    NewVersion {
        model: fraud(),
        run_id: uuid::Uuid::new_v4(),
        algorithm: "random_forest".into(),
        parameters: BTreeMap::from([("n_trees".into(), serde_json::json!(100))]),
        feature_schema: FeatureSchema {
            features: ["txn_amount", "amount_spent_past_mo", "txns_same_merchant"]
                .into_iter()
                .map(|name| FeatureSpec {
                    name: name.into(),
                    dtype: FeatureType::Float,
                    min: Some(0.0),
                    max: None,
                })
                .collect(),
        },
        training_data: Default::default(),
        metrics: BTreeMap::from([("roc_auc".into(), 0.95)]),
        trainer_version: "test".into(),
        created_by: by.into(),
        gate: None,
        held_out: None,
        drift: None,
    }
}

pub async fn publish(registry: &Registry, seed: f64) -> shared_lib::registry::manifest::Manifest {
    let artifact = toy_artifact(seed);
    registry
        .publish(
            draft("tester"),
            Bytes::from(artifact.bytes),
            Some(&artifact.digest),
        )
        .await
        .unwrap()
}

pub fn change<'a>(actor: &'a str, reason: &'a str) -> Change<'a> {
    Change {
        actor,
        reason: Some(reason),
    }
}

pub async fn publish_many(registry: &Registry, count: u32) {
    for seed in 1..=count {
        publish(registry, f64::from(seed)).await;
    }
}

pub async fn production_of(registry: &Registry) -> shared_lib::model_id::ModelVersion {
    registry
        .resolve_alias(&fraud(), &shared_lib::model_id::AliasName::production())
        .await
        .unwrap()
}
