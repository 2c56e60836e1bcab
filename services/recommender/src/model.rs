//! The ALS model as this service loads it.

use shared_lib::Error;
use shared_lib::artifact::{ModelKind, decode_artifact};
use shared_lib::models::als::{AlsModel, Filter, ServingAls};
use shared_lib::registry::manifest::Manifest;
use shared_lib::serving::ServableModel;

/// A loaded, validated, indexed and warmed-up ALS model.
pub struct Recommender(pub ServingAls);

impl ServableModel for Recommender {
    fn accepts(kind: ModelKind) -> bool {
        kind == ModelKind::RecommenderAls
    }

    fn load(manifest: &Manifest, artifact: &[u8]) -> Result<Self, Error> {
        let model: AlsModel = decode_artifact(
            artifact,
            &manifest.artifact.sha256,
            ModelKind::RecommenderAls,
        )?;
        let serving = model.prepare()?;
        // Warm-up: one scan of the catalogue, so a model that loads but cannot score is refused.
        if serving.model().n_users() > 0 {
            let top = serving.recommend(0, 1, Filter::default());
            if top.iter().any(|s| !s.score.is_finite()) {
                return Err(Error::CorruptArtifact {
                    reason: "warm-up produced a non-finite score".into(),
                });
            }
        }
        Ok(Self(serving))
    }
}
