//! Scoring a served ALS model on held-out data, the same way for the challenger and the champion.
//!
//! Everything is matched by the ids in the files, so a champion trained on other data (with other
//! indices) is scored on exactly the challenger's held-out rows:
//! - **RMSE**: a (user, item) pair the model does not know is predicted as the training split's
//!   mean rating, for either model, so both are scored on every held-out row.
//! - **Ranking**: for each user with held-out interactions, the model's top k excluding the
//!   user's items in *this* training split (not the model's own "seen" lists, which for a champion
//!   reflect other data). A user the model does not know gets its popular items (what the service
//!   serves a cold user). Held-out items a model does not know still count as relevant.

use std::collections::HashMap;

use rayon::prelude::*;
use suite_models::als::{Filter, ServingAls};

use crate::data::ratings::Ratings;
use crate::evaluate::ranking::{RankingAccumulator, RankingMetrics, rmse};

/// One user's ranking case, items in the combined (train ∪ test) id space.
#[derive(Debug, Clone)]
struct Case {
    user: String,
    /// The user's training items, sorted.
    train_items: Vec<u32>,
    /// Held-out items, deduplicated.
    relevant: Vec<u32>,
}

/// A training split and its held-out rows.
#[derive(Debug, Clone)]
pub struct Holdout {
    pub train: Ratings,
    pub test: Ratings,
    train_mean: f32,
    /// Combined item ids: the training items first (same indices), then test-only items.
    item_ids: Vec<String>,
    item_index: HashMap<String, u32>,
    cases: Vec<Case>,
}

impl Holdout {
    pub fn new(train: Ratings, test: Ratings) -> Self {
        let mut item_ids = train.item_ids.clone();
        let mut item_index: HashMap<String, u32> = item_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as u32))
            .collect();
        for id in &test.item_ids {
            if !item_index.contains_key(id) {
                item_index.insert(id.clone(), item_ids.len() as u32);
                item_ids.push(id.clone());
            }
        }
        let mut train_items: Vec<Vec<u32>> = vec![Vec::new(); train.n_users()];
        for (&u, &i) in train.users.iter().zip(&train.items) {
            train_items[u as usize].push(i);
        }
        let train_user: HashMap<&str, usize> = train
            .user_ids
            .iter()
            .enumerate()
            .map(|(u, id)| (id.as_str(), u))
            .collect();
        let mut relevant: Vec<Vec<u32>> = vec![Vec::new(); test.n_users()];
        for ((&u, &i), &v) in test.users.iter().zip(&test.items).zip(&test.values) {
            if v > 0.0 {
                relevant[u as usize].push(item_index[&test.item_ids[i as usize]]);
            }
        }
        let cases = relevant
            .into_iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
            .map(|(u, mut relevant)| {
                relevant.sort_unstable();
                relevant.dedup();
                let user = test.user_ids[u].clone();
                let mut items = train_user
                    .get(user.as_str())
                    .map(|&t| train_items[t].clone())
                    .unwrap_or_default();
                items.sort_unstable();
                items.dedup();
                Case {
                    user,
                    train_items: items,
                    relevant,
                }
            })
            .collect();
        Self {
            train_mean: train.mean(),
            train,
            test,
            item_ids,
            item_index,
            cases,
        }
    }

    /// Held-out RMSE; unknown pairs predicted as the training mean.
    pub fn rmse(&self, model: &ServingAls) -> f64 {
        let users: Vec<Option<u32>> = self
            .test
            .user_ids
            .iter()
            .map(|id| model.user_index(id))
            .collect();
        let items: Vec<Option<u32>> = self
            .test
            .item_ids
            .iter()
            .map(|id| model.item_index(id))
            .collect();
        let pairs = (0..self.test.len()).map(|row| {
            let u = users[self.test.users[row] as usize];
            let i = items[self.test.items[row] as usize];
            let predicted = match (u, i) {
                (Some(u), Some(i)) => model.model().predict(u, i),
                _ => self.train_mean,
            };
            (predicted, self.test.values[row])
        });
        rmse(pairs).unwrap_or(f64::NAN)
    }

    /// The RMSE of predicting the training mean for every held-out row: the floor an explicit
    /// model must beat to be worth serving.
    pub fn mean_baseline_rmse(&self) -> f64 {
        let mean = self.train_mean;
        rmse(self.test.values.iter().map(|&v| (mean, v))).unwrap_or(f64::NAN)
    }

    /// Held-out pairs the model cannot score (unknown user or item).
    pub fn unscored_pairs(&self, model: &ServingAls) -> usize {
        (0..self.test.len())
            .filter(|&row| {
                model
                    .user_index(&self.test.user_ids[self.test.users[row] as usize])
                    .is_none()
                    || model
                        .item_index(&self.test.item_ids[self.test.items[row] as usize])
                        .is_none()
            })
            .count()
    }

    /// precision@k, recall@k and NDCG@k of the model's top-k lists.
    pub fn ranking(&self, model: &ServingAls, k: usize) -> RankingMetrics {
        let to_model: Vec<Option<u32>> = self
            .item_ids
            .iter()
            .map(|id| model.item_index(id))
            .collect();
        let from_model: Vec<u32> = model
            .model()
            .item_ids
            .iter()
            .map(|id| self.item_index.get(id).copied().unwrap_or(u32::MAX))
            .collect();
        self.score_lists(k, |case| {
            let excluded: Vec<u32> = case
                .train_items
                .iter()
                .filter_map(|&i| to_model[i as usize])
                .collect();
            let recs = match model.user_index(&case.user) {
                Some(u) => model.recommend_vector(
                    model.model().user_factors(u),
                    k,
                    &excluded,
                    Filter::default(),
                ),
                None => model.popular(k, &excluded, Filter::default()),
            };
            recs.iter().map(|s| from_model[s.item as usize]).collect()
        })
    }

    /// The score the model gives its #1 item, as the service serves a known user without
    /// clicks (`recommend(user, 1)`, the model's seen items excluded), for each held-out user
    /// the model knows, in user order; and how many held-out users it does not know (the
    /// service gives them cold-start answers).
    pub fn top_item_scores(&self, model: &ServingAls) -> (Vec<f64>, usize) {
        let tops: Vec<Option<Option<f64>>> = self
            .test
            .user_ids
            .par_iter()
            .map(|id| {
                let user = model.user_index(id)?;
                let top = model.recommend(user, 1, Filter::default());
                Some(top.first().map(|s| f64::from(s.score)))
            })
            .collect();
        let unknown = tops.iter().filter(|t| t.is_none()).count();
        (tops.into_iter().flatten().flatten().collect(), unknown)
    }

    /// The same metrics for "the k most popular training items the user has not seen".
    pub fn popularity_baseline(&self, k: usize) -> RankingMetrics {
        let mut counts = vec![0u32; self.train.n_items()];
        self.train
            .items
            .iter()
            .for_each(|&i| counts[i as usize] += 1);
        let mut order: Vec<u32> = (0..counts.len() as u32).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(counts[i as usize]), i));
        self.score_lists(k, |case| {
            order
                .iter()
                .copied()
                .filter(|i| case.train_items.binary_search(i).is_err())
                .take(k)
                .collect()
        })
    }

    /// Lists are computed in parallel, then summed in user order (deterministic metrics).
    fn score_lists(
        &self,
        k: usize,
        recommend: impl Fn(&Case) -> Vec<u32> + Sync,
    ) -> RankingMetrics {
        let lists: Vec<Vec<u32>> = self.cases.par_iter().map(&recommend).collect();
        let mut acc = RankingAccumulator::new(k);
        for (case, list) in self.cases.iter().zip(&lists) {
            acc.add(list, &case.relevant);
        }
        acc.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ratings::Builder;
    use suite_models::als::{AlsModel, Feedback};

    fn ratings(rows: &[(&str, &str, f32)]) -> Ratings {
        let mut b = Builder::default();
        rows.iter().for_each(|(u, i, v)| b.push(u, i, *v));
        b.finish()
    }

    /// Users a, b; items x, y, z with rank-1 factors.
    fn model() -> ServingAls {
        AlsModel {
            feedback: Feedback::Explicit,
            rank: 1,
            lambda: 0.1,
            alpha: 1.0,
            user_ids: vec!["a".into(), "b".into()],
            item_ids: vec!["x".into(), "y".into(), "z".into()],
            user_factors: vec![1.0, 2.0],
            item_factors: vec![1.0, 2.0, 3.0],
            seen_offsets: vec![0, 3, 3],
            seen_items: vec![0, 1, 2],
            item_popularity: vec![1, 5, 3],
            index: None,
            graph: None,
        }
        .prepare()
        .unwrap()
    }

    #[test]
    fn unknown_pairs_fall_back_to_the_training_mean() {
        let train = ratings(&[("a", "x", 2.0), ("a", "y", 4.0)]);
        let test = ratings(&[("a", "z", 3.0), ("c", "x", 1.0)]);
        let h = Holdout::new(train, test);
        // a·z = 3 (exact); c unknown → mean 3, error 2.
        assert!((h.rmse(&model()) - (4.0f64 / 2.0).sqrt()).abs() < 1e-9);
        assert_eq!(h.unscored_pairs(&model()), 1);
    }

    #[test]
    fn ranking_excludes_this_splits_training_items_not_the_models_seen_lists() {
        // The model has "seen" all three items for user a; the split's training has only x.
        let train = ratings(&[("a", "x", 1.0), ("b", "x", 1.0), ("b", "y", 1.0)]);
        let test = ratings(&[("a", "z", 1.0), ("d", "y", 1.0)]);
        let h = Holdout::new(train, test);
        let m = h.ranking(&model(), 1);
        // a gets z (score 3) → hit; d is unknown → popular item y → hit.
        assert_eq!(m.users, 2);
        assert_eq!(m.precision_at_k, 1.0);
        let base = h.popularity_baseline(1);
        // Training popularity: x (2) first: a has seen x → y (miss); d → x (miss).
        assert_eq!(base.precision_at_k, 0.0);
    }
}
