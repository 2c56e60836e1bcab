//! Ann mode's two indexes behind one interface: building either one with its probe tuned to a
//! target recall (what the trainer stores and records in the manifest), and the index as a
//! service searches it.
//!
//! **Which index.** The graph (`hnsw`) answers fastest at a given recall: a request reads a few
//! thousand item rows. IVF (`ivf`) builds in minutes where the graph takes much longer, and
//! costs 8 bytes an item where the graph costs `4 × degree`. A model carries either or both;
//! ann mode searches the graph when there is one. "Probe" is each index's breadth: IVF lists
//! scanned, or the graph search's `ef`; the trainer picks the smallest that reaches the target
//! recall@10 on a sample of users ([`ServingAls::tune_probe`]) and the service measures recall
//! again at load.

use serde::Serialize;

use super::hnsw::{HnswParams, MAX_EF, build_hnsw};
use super::ivf::{AnnLists, IvfParams, build_ivf};
use super::{Search, ServingAls};
use crate::Error;

/// The two kinds of index, named as in the manifest's `ann_index` and `/v1/models`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnIndex {
    Hnsw,
    Ivf,
}

impl AnnIndex {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hnsw => "hnsw",
            Self::Ivf => "ivf",
        }
    }
}

/// How an index is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "index")]
pub enum AnnParams {
    Ivf(IvfParams),
    Hnsw(HnswParams),
}

impl AnnParams {
    pub fn kind(&self) -> AnnIndex {
        match self {
            Self::Ivf(_) => AnnIndex::Ivf,
            Self::Hnsw(_) => AnnIndex::Hnsw,
        }
    }
}

/// What building an index did, for the manifest and reports.
#[derive(Debug, Clone, Serialize)]
pub struct AnnBuild {
    pub params: AnnParams,
    /// The probe chosen: the smallest reaching `target_recall` on `recall_users` users.
    pub probe: usize,
    pub target_recall: f64,
    /// Recall@10 against the exact scan at that probe.
    pub recall_at_10: f64,
    pub recall_users: usize,
    /// The candidates' oversampling the recall was measured with.
    pub oversample: usize,
    pub build_seconds: f64,
}

impl AnnBuild {
    /// Manifest `parameters` entries: how the index was built and the probe it serves with.
    pub fn manifest_parameters(&self) -> Vec<(String, serde_json::Value)> {
        let mut entries = vec![("ann_index", serde_json::json!(self.params.kind().as_str()))];
        match &self.params {
            AnnParams::Ivf(p) => entries.extend([
                ("ann_lists", serde_json::json!(p.lists)),
                ("ann_train_items", serde_json::json!(p.train_items)),
                ("ann_iterations", serde_json::json!(p.iterations)),
                ("ann_seed", serde_json::json!(p.seed)),
            ]),
            AnnParams::Hnsw(p) => entries.extend([
                ("ann_degree", serde_json::json!(p.degree)),
                ("ann_upper_degree", serde_json::json!(p.upper_degree)),
                ("ann_ef_construction", serde_json::json!(p.ef_construction)),
                ("ann_seed", serde_json::json!(p.seed)),
            ]),
        }
        entries.extend([
            ("ann_probe", serde_json::json!(self.probe)),
            ("ann_oversample", serde_json::json!(self.oversample)),
            ("ann_target_recall", serde_json::json!(self.target_recall)),
        ]);
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    /// Manifest `metrics` entries: the measured recall and the build time.
    pub fn manifest_metrics(&self) -> Vec<(String, f64)> {
        vec![
            ("ann_recall_at_10".to_owned(), self.recall_at_10),
            ("ann_recall_users".to_owned(), self.recall_users as f64),
            ("ann_build_seconds".to_owned(), self.build_seconds),
        ]
    }
}

/// `model` with the index `params` builds (replacing any index of that kind), its probe the
/// smallest that reaches `target_recall` (recall@10 with `oversample`) on `sample_users` users
/// spread over the model. A graph is searched in preference to lists, so building lists drops
/// the model's graph.
///
/// # Errors
/// [`Error::CorruptArtifact`] when the model is invalid.
pub fn with_ann_index(
    mut model: super::AlsModel,
    params: &AnnParams,
    target_recall: f64,
    oversample: usize,
    sample_users: usize,
) -> Result<(super::AlsModel, AnnBuild), Error> {
    let started = std::time::Instant::now();
    model.index = None;
    model.graph = None;
    model.validate()?;
    let k = model.k();
    let params = match params {
        AnnParams::Ivf(p) => {
            let index = build_ivf(&model.item_factors, k, p);
            let lists = index.lists();
            model.index = Some(index);
            AnnParams::Ivf(IvfParams { lists, ..*p })
        }
        AnnParams::Hnsw(p) => {
            model.graph = Some(build_hnsw(&model.item_factors, k, p));
            *params
        }
    };
    let mut serving = model.prepare()?.with_search(Search::Ann {
        probe: 0,
        oversample,
    })?;
    let users = serving.recall_sample(sample_users);
    let (probe, recall_at_10) = serving.tune_probe(&users, 10, target_recall);
    let mut model = serving.into_model();
    if let Some(graph) = &mut model.graph {
        graph.ef = probe as u32;
    } else if let Some(index) = &mut model.index {
        index.probe = probe as u32;
    }
    let build = AnnBuild {
        params,
        probe,
        target_recall,
        recall_at_10,
        recall_users: users.len(),
        oversample,
        build_seconds: started.elapsed().as_secs_f64(),
    };
    Ok((model, build))
}

/// The index ann mode searches, laid out for serving.
#[derive(Debug, Clone)]
pub(super) enum Ann {
    /// IVF lists with the item codes in list order.
    Lists(AnnLists),
    /// The model's graph, which stays in the model.
    Graph,
}

impl Ann {
    pub(super) fn kind(&self) -> AnnIndex {
        match self {
            Self::Lists(_) => AnnIndex::Ivf,
            Self::Graph => AnnIndex::Hnsw,
        }
    }

    /// The largest useful probe: every list, or the largest breadth.
    pub(super) fn max_probe(&self) -> usize {
        match self {
            Self::Lists(lists) => lists.lists(),
            Self::Graph => MAX_EF,
        }
    }
}

impl ServingAls {
    /// The smallest probe (doubling from 1, then bisecting) whose recall@`n` on `users` reaches
    /// `target`, with that recall; all lists when none below does. The model must be in ann mode.
    ///
    /// # Panics
    /// If the model has no index or is not in ann mode.
    pub fn tune_probe(&mut self, users: &[u32], n: usize, target: f64) -> (usize, f64) {
        let Search::Ann { oversample, .. } = self.search else {
            panic!("tune_probe needs ann mode");
        };
        let lists = self
            .ann
            .as_ref()
            .expect("ann mode has an index")
            .max_probe();
        let exact = self.exact_answers(users, n);
        let mut recall_with = |probe: usize| {
            self.search = Search::Ann { probe, oversample };
            self.recall_against(&exact)
        };
        // The largest probe known to miss and the smallest known to reach the target.
        let (mut low, mut high) = (0usize, lists);
        let mut high_recall = None;
        let mut probe = 1;
        while probe < lists {
            let r = recall_with(probe);
            if r >= target {
                (high, high_recall) = (probe, Some(r));
                break;
            }
            low = probe;
            probe *= 2;
        }
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            let r = recall_with(mid);
            if r >= target {
                (high, high_recall) = (mid, Some(r));
            } else {
                low = mid;
            }
        }
        let recall = high_recall.unwrap_or_else(|| recall_with(high));
        self.search = Search::Ann {
            probe: high,
            oversample,
        };
        (high, recall)
    }
}
