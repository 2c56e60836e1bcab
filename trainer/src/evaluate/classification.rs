//! Binary classification metrics on a held-out split: ROC AUC, PR AUC (average precision), and
//! precision, recall, F1 and the confusion matrix at a threshold.
//!
//! Definitions follow scikit-learn's, so numbers compare with the Python baseline:
//! - ROC AUC is the probability that a random positive scores above a random negative, ties
//!   counting one half (the trapezoidal area under the ROC curve);
//! - average precision is `Σ (Rₙ − Rₙ₋₁) · Pₙ` over distinct score thresholds, descending
//!   (no interpolation), as `sklearn.metrics.average_precision_score`;
//! - a score at or above the threshold is class 1, as the served model's `class_of`;
//! - precision with no predicted positives, and F1 with precision + recall = 0, are 0.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::Error;

/// Counts at a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConfusionMatrix {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// Everything reported for one scored held-out set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationMetrics {
    pub roc_auc: f64,
    pub pr_auc: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub threshold: f64,
    pub confusion: ConfusionMatrix,
}

impl ClassificationMetrics {
    /// Scores `scores` (P(class 1)) against `labels` (0/1).
    ///
    /// # Errors
    /// [`Error::Training`] if the lengths differ, a score is NaN, or the labels hold only one
    /// class (AUC is undefined then).
    pub fn compute(scores: &[f64], labels: &[u8], threshold: f64) -> Result<Self, Error> {
        Ok(Self {
            roc_auc: roc_auc(scores, labels)?,
            pr_auc: average_precision(scores, labels)?,
            confusion: confusion_at(scores, labels, threshold),
            threshold,
            precision: 0.0,
            recall: 0.0,
            f1: 0.0,
        }
        .with_rates())
    }

    fn with_rates(mut self) -> Self {
        let c = self.confusion;
        self.precision = ratio(c.tp, c.tp + c.fp);
        self.recall = ratio(c.tp, c.tp + c.fn_);
        self.f1 = if self.precision + self.recall > 0.0 {
            2.0 * self.precision * self.recall / (self.precision + self.recall)
        } else {
            0.0
        };
        self
    }

    /// Flat `name → value` for a manifest's metrics.
    pub fn to_map(&self) -> BTreeMap<String, f64> {
        let c = self.confusion;
        [
            ("roc_auc", self.roc_auc),
            ("pr_auc", self.pr_auc),
            ("precision", self.precision),
            ("recall", self.recall),
            ("f1", self.f1),
            ("threshold", self.threshold),
            ("tp", c.tp as f64),
            ("fp", c.fp as f64),
            ("tn", c.tn as f64),
            ("fn", c.fn_ as f64),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Predicted class 1 when `score >= threshold`.
pub fn confusion_at(scores: &[f64], labels: &[u8], threshold: f64) -> ConfusionMatrix {
    let mut c = ConfusionMatrix {
        tp: 0,
        fp: 0,
        tn: 0,
        fn_: 0,
    };
    for (&s, &y) in scores.iter().zip(labels) {
        match (s >= threshold, y == 1) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, false) => c.tn += 1,
            (false, true) => c.fn_ += 1,
        }
    }
    c
}

/// `(score, label)` pairs sorted by score descending, with the class counts.
struct Ranked {
    pairs: Vec<(f64, u8)>,
    positives: u64,
    negatives: u64,
}

/// Ranks the scored rows, after checking the inputs.
fn sorted_desc(scores: &[f64], labels: &[u8]) -> Result<Ranked, Error> {
    if scores.len() != labels.len() {
        return Err(Error::Training(format!(
            "{} scores for {} labels",
            scores.len(),
            labels.len()
        )));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(Error::Training("a score is NaN".into()));
    }
    let positives = labels.iter().filter(|&&y| y == 1).count() as u64;
    let negatives = labels.len() as u64 - positives;
    if positives == 0 || negatives == 0 {
        return Err(Error::Training(format!(
            "the held-out set needs both classes to score; it has {positives} positives and \
             {negatives} negatives"
        )));
    }
    let mut pairs: Vec<(f64, u8)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(Ranked {
        pairs,
        positives,
        negatives,
    })
}

/// Groups of equal scores, descending: `(positives, negatives)` per distinct score.
fn tie_groups(pairs: &[(f64, u8)]) -> impl Iterator<Item = (u64, u64)> + '_ {
    pairs.chunk_by(|a, b| a.0 == b.0).map(|group| {
        let pos = group.iter().filter(|p| p.1 == 1).count() as u64;
        (pos, group.len() as u64 - pos)
    })
}

/// Area under the ROC curve, ties counting one half.
///
/// # Errors
/// As [`ClassificationMetrics::compute`].
pub fn roc_auc(scores: &[f64], labels: &[u8]) -> Result<f64, Error> {
    let Ranked {
        pairs,
        positives,
        negatives,
    } = sorted_desc(scores, labels)?;
    // Walking down the ranking, each negative loses to every positive already passed and ties
    // with the positives of its own score group (one half each).
    let mut positives_above = 0u64;
    let mut wins = 0.0f64;
    for (pos, neg) in tie_groups(&pairs) {
        wins += neg as f64 * (positives_above as f64 + pos as f64 / 2.0);
        positives_above += pos;
    }
    Ok(wins / (positives as f64 * negatives as f64))
}

/// Average precision: precision at each distinct threshold weighted by the recall it adds.
///
/// # Errors
/// As [`ClassificationMetrics::compute`].
pub fn average_precision(scores: &[f64], labels: &[u8]) -> Result<f64, Error> {
    let Ranked {
        pairs, positives, ..
    } = sorted_desc(scores, labels)?;
    let (mut tp, mut seen, mut ap) = (0u64, 0u64, 0.0f64);
    for (pos, neg) in tie_groups(&pairs) {
        tp += pos;
        seen += pos + neg;
        if pos > 0 {
            ap += (pos as f64 / positives as f64) * (tp as f64 / seen as f64);
        }
    }
    Ok(ap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn roc_auc_matches_hand_counts() {
        // Positives 0.8, 0.4; negatives 0.9, 0.3, 0.1 -> pairs won: 0.8 beats 0.3, 0.1 (2);
        // 0.4 beats 0.3, 0.1 (2) -> 4 of 6.
        let scores = [0.9, 0.8, 0.4, 0.3, 0.1];
        let labels = [0, 1, 1, 0, 0];
        assert!(close(roc_auc(&scores, &labels).unwrap(), 4.0 / 6.0));
        // A perfect and a reversed ranking.
        assert!(close(roc_auc(&[0.9, 0.1], &[1, 0]).unwrap(), 1.0));
        assert!(close(roc_auc(&[0.1, 0.9], &[1, 0]).unwrap(), 0.0));
    }

    #[test]
    fn roc_auc_counts_ties_as_half() {
        // All tied: 0.5. One positive tied with one of two negatives: (1 + 0.5) / 2.
        assert!(close(roc_auc(&[0.5; 4], &[1, 0, 1, 0]).unwrap(), 0.5));
        assert!(close(roc_auc(&[0.7, 0.7, 0.2], &[1, 0, 0]).unwrap(), 0.75));
    }

    #[test]
    fn average_precision_matches_hand_computation() {
        // Descending: 0.9 (neg), 0.8 (pos), 0.4 (pos), 0.3, 0.1.
        // At 0.8: recall 1/2, precision 1/2; at 0.4: recall 2/2, precision 2/3.
        // AP = 0.5 * 0.5 + 0.5 * 2/3 = 7/12.
        let scores = [0.9, 0.8, 0.4, 0.3, 0.1];
        let labels = [0, 1, 1, 0, 0];
        assert!(close(
            average_precision(&scores, &labels).unwrap(),
            7.0 / 12.0
        ));
        // Ties: one group holding both classes: recall 1 at precision 1/2.
        assert!(close(average_precision(&[0.5, 0.5], &[1, 0]).unwrap(), 0.5));
    }

    #[test]
    fn threshold_metrics_match_hand_counts() {
        let scores = [0.9, 0.8, 0.5, 0.4, 0.3, 0.1];
        let labels = [1, 0, 1, 1, 0, 0];
        let m = ClassificationMetrics::compute(&scores, &labels, 0.5).unwrap();
        // >= 0.5: 0.9 (tp), 0.8 (fp), 0.5 (tp); below: 0.4 (fn), 0.3, 0.1 (tn).
        assert_eq!(
            m.confusion,
            ConfusionMatrix {
                tp: 2,
                fp: 1,
                tn: 2,
                fn_: 1
            }
        );
        assert!(close(m.precision, 2.0 / 3.0));
        assert!(close(m.recall, 2.0 / 3.0));
        assert!(close(m.f1, 2.0 / 3.0));
        let map = m.to_map();
        assert_eq!(map["tp"], 2.0);
        assert_eq!(map["fn"], 1.0);
        // Nothing predicted positive: precision and F1 are 0, not NaN.
        let none = ClassificationMetrics::compute(&scores, &labels, 0.95).unwrap();
        assert_eq!((none.precision, none.recall, none.f1), (0.0, 0.0, 0.0));
    }

    #[test]
    fn undefined_inputs_are_errors() {
        assert!(roc_auc(&[0.1, 0.2], &[0, 0]).is_err());
        assert!(roc_auc(&[0.1], &[0, 1]).is_err());
        assert!(average_precision(&[f64::NAN, 0.2], &[0, 1]).is_err());
    }
}
