//! The ALS model as this service loads it.

use std::io::Read;

use prometheus::{GaugeVec, Opts, Registry};
use serde::Serialize;
use shared_lib::Error;
use shared_lib::artifact::{ModelKind, decode_artifact_from};
use shared_lib::http::register_metric;
use shared_lib::models::als::{AlsModel, AnnIndex, Filter, Search, ServingAls};
use shared_lib::registry::manifest::Manifest;
use shared_lib::serving::ServableModel;

use crate::clicks::ItemKey;
use crate::drift::Drift;

/// Users whose top 10 are compared with the exact scan's when a version loads: enough for a
/// recall estimate within a few tenths of a percent, few enough to add seconds, not minutes,
/// to loading a 1M-item catalogue.
pub const RECALL_SAMPLE_USERS: usize = 100;
/// The `n` recall is measured at.
const RECALL_N: usize = 10;

/// A loaded, validated, indexed and warmed-up ALS model, with its items by [`ItemKey`], what
/// its search mode was measured to cost, and its drift state (the windows live and die with the
/// loaded version).
pub struct Recommender(pub ServingAls, pub ItemKeys, pub SearchReport, pub Drift);

/// How every version is loaded: the search mode (`RECOMMEND_SEARCH`) and the gauge its
/// measured recall goes to.
pub struct LoadConfig {
    pub search: Search,
    pub recall: GaugeVec,
}

impl LoadConfig {
    /// # Errors
    /// When the gauge cannot be registered (a duplicate: a bug).
    pub fn new(search: Search, registry: &Registry) -> Result<Self, Error> {
        let recall = register_metric(
            registry,
            GaugeVec::new(
                Opts::new(
                    "recommender_search_recall_at_10",
                    "Recall@10 of the loaded version's search mode against the exact scan, \
                     measured at load on a fixed sample of users (1 in exact mode).",
                ),
                &["version", "mode"],
            ),
        )?;
        Ok(Self { search, recall })
    }
}

/// The search mode of a loaded version and its measured recall, for `/v1/models`.
#[derive(Debug, Clone, Serialize)]
pub struct SearchReport {
    #[serde(flatten)]
    pub search: Search,
    /// In ann mode, the index searched: `hnsw` (the model's graph) or `ivf`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<AnnIndex>,
    /// Recall@10 against the exact scan on [`RECALL_SAMPLE_USERS`] users; 1 in exact mode.
    pub recall_at_10: f64,
    /// Users the recall was measured on (0 in exact mode, where it is 1 by definition).
    pub recall_users: usize,
    /// Bytes of item factors held for searching (f32, plus int8 codes in int8 mode, plus the
    /// graph, or the lists' codes and orders, in ann mode).
    pub item_factor_bytes: usize,
}

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
    type Config = LoadConfig;

    fn accepts(kind: ModelKind) -> bool {
        kind == ModelKind::RecommenderAls
    }

    fn load(
        manifest: &Manifest,
        artifact: &mut dyn Read,
        config: &LoadConfig,
    ) -> Result<Self, Error> {
        let model: AlsModel =
            decode_artifact_from(artifact, &manifest.artifact, ModelKind::RecommenderAls)?;
        let serving = model.prepare()?.with_search(config.search)?;
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
        let report = measure_search(&serving);
        config
            .recall
            .with_label_values(&[&manifest.version.to_string(), report.search.as_str()])
            .set(report.recall_at_10);
        tracing::info!(
            version = %manifest.version,
            mode = report.search.as_str(),
            recall_at_10 = report.recall_at_10,
            item_factor_bytes = report.item_factor_bytes,
            "Search mode measured."
        );
        Ok(Self(
            serving,
            keys,
            report,
            Drift::new(manifest.drift.as_ref()),
        ))
    }

    fn details(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.2).ok()
    }
}

/// Recall@10 of the model's search mode on a fixed sample of users. Runs while the version
/// loads (on the blocking pool, before it is swapped in), so never on a request's path.
pub(crate) fn measure_search(serving: &ServingAls) -> SearchReport {
    let search = serving.search();
    let (recall_at_10, recall_users) = match search {
        Search::Exact => (1.0, 0),
        Search::Int8 { .. } | Search::Ann { .. } => {
            let users = serving.recall_sample(RECALL_SAMPLE_USERS);
            (serving.recall_at(&users, RECALL_N), users.len())
        }
    };
    SearchReport {
        search,
        index: serving.ann_index(),
        recall_at_10,
        recall_users,
        item_factor_bytes: serving.item_factor_bytes(),
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
