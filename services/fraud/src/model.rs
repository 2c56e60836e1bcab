//! The fraud model as this service loads it.

use std::io::Read;

use shared_lib::Error;
use shared_lib::artifact::{ModelKind, decode_artifact_from};
use shared_lib::models::drift::DriftTracker;
use shared_lib::models::forest::{CompiledForest, FraudModel};
use shared_lib::registry::manifest::Manifest;
use shared_lib::serving::ServableModel;

/// A loaded, validated, warmed-up fraud model, and its drift state when its manifest has a
/// drift profile (the window lives and dies with the loaded version).
pub struct Classifier(pub CompiledForest, pub Option<DriftTracker>);

impl ServableModel for Classifier {
    type Config = ();

    fn accepts(kind: ModelKind) -> bool {
        matches!(
            kind,
            ModelKind::FraudRandomForest | ModelKind::FraudDecisionTree
        )
    }

    fn load(manifest: &Manifest, artifact: &mut dyn Read, (): &()) -> Result<Self, Error> {
        let model: FraudModel =
            decode_artifact_from(artifact, &manifest.artifact, manifest.artifact.kind)?;
        let schema =
            (!manifest.feature_schema.features.is_empty()).then_some(&manifest.feature_schema);
        let nodes = model.node_count();
        let model = model.compile(schema)?;
        // Warm-up: score one row, so a model that loads but cannot score is never swapped in.
        let row: Vec<f64> = manifest
            .feature_schema
            .features
            .iter()
            .map(|f| f.min.unwrap_or(0.0))
            .chain(std::iter::repeat(0.0))
            .take(model.n_features())
            .collect();
        let p = model.predict_proba(&row);
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::CorruptArtifact {
                reason: format!("warm-up score {p} is not a probability"),
            });
        }
        tracing::debug!(trees = model.n_trees(), nodes, "Fraud model warmed up.");
        let drift = manifest
            .drift
            .as_ref()
            .map(|profile| DriftTracker::new(profile, model.feature_names()));
        Ok(Self(model, drift))
    }
}
