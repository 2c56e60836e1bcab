//! Held-out metrics for recommenders: RMSE for predicted ratings, and precision@k, recall@k and
//! NDCG@k (binary relevance) for top-k lists.
//!
//! Definitions, per user with at least one held-out item, then averaged over those users:
//! precision@k = hits / k; recall@k = hits / |relevant|; NDCG@k = DCG / ideal DCG with
//! DCG = Σ 1 / log2(rank + 1) over the hits' ranks (1-based) and the ideal placing
//! min(k, |relevant|) hits first.

use serde::Serialize;

/// Root mean squared error of `(predicted, actual)` pairs; `None` for no pairs.
pub fn rmse(pairs: impl IntoIterator<Item = (f32, f32)>) -> Option<f64> {
    let (mut sum, mut n) = (0.0f64, 0usize);
    for (p, a) in pairs {
        let d = f64::from(p) - f64::from(a);
        sum += d * d;
        n += 1;
    }
    (n > 0).then(|| (sum / n as f64).sqrt())
}

/// Averaged ranking metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RankingMetrics {
    pub k: usize,
    pub precision_at_k: f64,
    pub recall_at_k: f64,
    pub ndcg_at_k: f64,
    /// Users evaluated.
    pub users: usize,
}

/// Accumulates per-user results.
#[derive(Debug, Clone)]
pub struct RankingAccumulator {
    k: usize,
    precision: f64,
    recall: f64,
    ndcg: f64,
    users: usize,
}

impl RankingAccumulator {
    pub fn new(k: usize) -> Self {
        Self {
            k,
            precision: 0.0,
            recall: 0.0,
            ndcg: 0.0,
            users: 0,
        }
    }

    /// Adds one user: `recommended` best first (only the first k count), `relevant` the held-out
    /// items (any order, no duplicates). Users with nothing relevant are not counted.
    pub fn add<T: PartialEq>(&mut self, recommended: &[T], relevant: &[T]) {
        if relevant.is_empty() || self.k == 0 {
            return;
        }
        let mut hits = 0usize;
        let mut dcg = 0.0f64;
        for (rank, item) in recommended.iter().take(self.k).enumerate() {
            if relevant.contains(item) {
                hits += 1;
                dcg += 1.0 / (rank as f64 + 2.0).log2();
            }
        }
        let ideal: f64 = (0..self.k.min(relevant.len()))
            .map(|rank| 1.0 / (rank as f64 + 2.0).log2())
            .sum();
        self.precision += hits as f64 / self.k as f64;
        self.recall += hits as f64 / relevant.len() as f64;
        self.ndcg += dcg / ideal;
        self.users += 1;
    }

    /// Sums two accumulators (for parallel evaluation).
    pub fn merge(mut self, other: &Self) -> Self {
        self.precision += other.precision;
        self.recall += other.recall;
        self.ndcg += other.ndcg;
        self.users += other.users;
        self
    }

    pub fn finish(&self) -> RankingMetrics {
        let n = self.users.max(1) as f64;
        RankingMetrics {
            k: self.k,
            precision_at_k: self.precision / n,
            recall_at_k: self.recall / n,
            ndcg_at_k: self.ndcg / n,
            users: self.users,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmse_of_known_errors() {
        assert_eq!(rmse([]), None);
        let r = rmse([(1.0, 2.0), (3.0, 3.0), (0.0, -1.0), (2.0, 2.0)]).unwrap();
        assert!((r - 0.5f64.sqrt()).abs() < 1e-12, "{r}");
    }

    #[test]
    fn ranking_metrics_match_hand_computed_values() {
        let mut acc = RankingAccumulator::new(3);
        // Hits at ranks 1 and 3 of 3; 4 relevant.
        acc.add(&[10, 11, 12, 13], &[10, 12, 13, 99]);
        let m = acc.finish();
        assert!((m.precision_at_k - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.recall_at_k - 0.5).abs() < 1e-12);
        let dcg = 1.0 + 1.0 / 4f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((m.ndcg_at_k - dcg / idcg).abs() < 1e-12);
        // A second user with a perfect list averages in; users with nothing relevant do not.
        acc.add(&[5], &[5]);
        acc.add(&[1, 2, 3], &[]);
        let m = acc.finish();
        assert_eq!(m.users, 2);
        assert!((m.ndcg_at_k - (dcg / idcg + 1.0) / 2.0).abs() < 1e-12);
        assert!((m.precision_at_k - (2.0 / 3.0 + 1.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn merging_equals_adding_in_one_accumulator() {
        let mut one = RankingAccumulator::new(2);
        let (mut a, mut b) = (RankingAccumulator::new(2), RankingAccumulator::new(2));
        one.add(&[1, 2], &[2]);
        one.add(&[3, 4], &[3, 9]);
        a.add(&[1, 2], &[2]);
        b.add(&[3, 4], &[3, 9]);
        assert_eq!(a.merge(&b).finish(), one.finish());
    }
}
