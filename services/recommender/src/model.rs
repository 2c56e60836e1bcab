//! The ALS model as this service loads it.

use shared_lib::Error;
use shared_lib::artifact::{ModelKind, decode_artifact};
use shared_lib::models::als::{AlsModel, Filter, ServingAls};
use shared_lib::registry::manifest::Manifest;
use shared_lib::serving::ServableModel;

use crate::clicks::ItemKey;
use crate::drift::Drift;

/// A loaded, validated, indexed and warmed-up ALS model, with its items by [`ItemKey`] and its
/// drift state (the windows live and die with the loaded version).
pub struct Recommender(pub ServingAls, pub ItemKeys, pub Drift);

/// The catalogue's item indices by [`ItemKey`] (sorted, 16 bytes an item), so stored clicks,
/// which keep only the key, find their item in whichever model serves them.
pub struct ItemKeys(Vec<(ItemKey, u32)>);

impl ItemKeys {
    pub fn new(model: &ServingAls) -> Self {
        let n = model.model().n_items();
        let mut keys: Vec<(ItemKey, u32)> = (0..n)
            .filter_map(|i| u32::try_from(i).ok())
            .map(|i| (ItemKey::of(model.item_id(i)), i))
            .collect();
        keys.sort_unstable();
        let collisions = keys.windows(2).filter(|w| w[0].0 == w[1].0).count();
        if collisions > 0 {
            // 64-bit keys: about n² / 2⁶⁵, i.e. 3e-8 for a million items. Clicks on the
            // colliding items count for one of them.
            tracing::warn!(collisions, "Item ids share an item key.");
        }
        Self(keys)
    }

    /// The item index of `key` in this model, if the catalogue has it.
    pub fn index(&self, key: ItemKey) -> Option<u32> {
        let pos = self.0.partition_point(|(k, _)| *k < key);
        self.0.get(pos).filter(|(k, _)| *k == key).map(|(_, i)| *i)
    }
}

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
        let keys = ItemKeys::new(&serving);
        Ok(Self(serving, keys, Drift::new(manifest.drift.as_ref())))
    }
}

#[cfg(test)]
mod tests {
    use shared_lib::models::als::synthetic::{Shape, random_model};

    use super::*;

    #[test]
    fn every_item_is_found_by_its_key_and_unknown_keys_are_not() {
        let model = random_model(&Shape {
            users: 3,
            items: 500,
            rank: 2,
            seed: 1,
            seen_min: 0,
            seen_max: 1,
        })
        .prepare()
        .unwrap();
        let keys = ItemKeys::new(&model);
        for i in 0..500u32 {
            assert_eq!(keys.index(ItemKey::of(model.item_id(i))), Some(i));
        }
        assert_eq!(keys.index(ItemKey::of("not-an-item")), None);
    }
}
