//! The quality gate: promote a challenger only if it meets an absolute floor and beats the
//! champion, scored on rows neither model trained on, by at least `--min-improvement`.
//!
//! Any doubt means no promotion: when the champion cannot be found, loaded or scored on rows it
//! provably never saw, the challenger is published as a candidate, `production` stays, the
//! decision records why ([`GateOutcome::ChampionUnavailable`]) and the run fails
//! ([`crate::Error::GateFailedClosed`], exit code 5). Only "this model has no `production`
//! alias" lets a first model through, and only above the floor.

use suite_models::model_id::ModelVersion;
use suite_storage::registry::manifest::{GateDecision, GateOutcome};

/// The metric a gate decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateMetric {
    /// Fraud: ROC AUC, higher is better.
    RocAuc,
    /// Explicit ratings: RMSE, lower is better.
    Rmse,
    /// Implicit feedback: NDCG@k, higher is better.
    NdcgAtK,
}

impl GateMetric {
    /// The name used in metrics maps, manifests and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RocAuc => "roc_auc",
            Self::Rmse => "rmse",
            Self::NdcgAtK => "ndcg_at_k",
        }
    }

    pub fn higher_is_better(self) -> bool {
        match self {
            Self::RocAuc | Self::NdcgAtK => true,
            Self::Rmse => false,
        }
    }

    /// How much better `a` is than `b` (positive when better).
    fn improvement(self, a: f64, b: f64) -> f64 {
        if self.higher_is_better() {
            a - b
        } else {
            b - a
        }
    }

    /// True when `score` is on the right side of `floor` (a tie meets it).
    fn meets(self, score: f64, floor: f64) -> bool {
        if self.higher_is_better() {
            score >= floor
        } else {
            score <= floor
        }
    }
}

impl std::fmt::Display for GateMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which metric decides, the absolute floor, and by how much a challenger must win.
#[derive(Debug, Clone, Copy)]
pub struct GatePolicy {
    pub metric: GateMetric,
    /// At least this (higher-is-better metrics) or at most this (lower-is-better), on all of
    /// the challenger's held-out rows, even for a first model.
    pub floor: f64,
    pub min_improvement: f64,
}

/// What the pipeline found out about the champion.
#[derive(Debug, Clone)]
pub enum ChampionScore {
    /// The model has no `production` alias: the challenger is the first.
    None,
    /// Both models scored on the rows held out from both.
    Compared {
        version: ModelVersion,
        champion: f64,
        challenger: f64,
        rows: u64,
    },
    /// `production` could not be found, loaded or scored on rows it never saw.
    Unavailable {
        version: Option<ModelVersion>,
        reason: String,
    },
}

impl GatePolicy {
    /// Decides. `challenger` is the challenger's score on all its held-out rows (what the
    /// floor applies to); a comparison with the champion uses the scores on shared rows.
    pub fn decide(&self, challenger: f64, champion: &ChampionScore) -> GateDecision {
        let metric = self.metric;
        let meets_floor = challenger.is_finite() && metric.meets(challenger, self.floor);
        let floor_note = format!("{metric} {challenger:.6} is below the floor {}", self.floor);
        let (outcome, reason, compared) = match champion {
            // Checked first: a broken champion must fail the run even for a weak challenger.
            ChampionScore::Unavailable { version, reason } => (
                GateOutcome::ChampionUnavailable,
                match version {
                    Some(v) => format!("champion v{v} could not be compared: {reason}"),
                    None => format!("the champion could not be looked up: {reason}"),
                },
                None,
            ),
            _ if !meets_floor => (GateOutcome::BelowFloor, floor_note, None),
            ChampionScore::None => (
                GateOutcome::FirstModel,
                format!(
                    "first model, {metric} {challenger:.6} meets the floor {}",
                    self.floor
                ),
                None,
            ),
            ChampionScore::Compared {
                version,
                champion,
                challenger: on_shared,
                rows,
            } => {
                let improvement = metric.improvement(*on_shared, *champion);
                let wins = improvement > 0.0 && improvement >= self.min_improvement;
                let verdict = if wins { "beats" } else { "does not beat" };
                (
                    if wins {
                        GateOutcome::BeatsChampion
                    } else {
                        GateOutcome::NotBetter
                    },
                    format!(
                        "{metric} {on_shared:.6} {verdict} champion v{version} {champion:.6} on \
                         {rows} rows held out from both (min improvement {})",
                        self.min_improvement
                    ),
                    Some((*version, *champion, *on_shared, *rows)),
                )
            }
        };
        let promoted = matches!(
            outcome,
            GateOutcome::FirstModel | GateOutcome::BeatsChampion
        );
        GateDecision {
            metric: metric.as_str().to_owned(),
            higher_is_better: metric.higher_is_better(),
            champion_version: match champion {
                ChampionScore::Compared { version, .. } => Some(*version),
                ChampionScore::Unavailable { version, .. } => *version,
                ChampionScore::None => None,
            },
            champion_score: compared.map(|c| c.1),
            challenger_score: compared.map_or(challenger, |c| c.2),
            min_improvement: self.min_improvement,
            promoted,
            floor: Some(self.floor),
            compared_rows: compared.map(|c| c.3),
            outcome: Some(outcome),
            reason: Some(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(metric: GateMetric, floor: f64, min: f64) -> GatePolicy {
        GatePolicy {
            metric,
            floor,
            min_improvement: min,
        }
    }

    fn compared(champion: f64, challenger: f64) -> ChampionScore {
        ChampionScore::Compared {
            version: ModelVersion::FIRST,
            champion,
            challenger,
            rows: 100,
        }
    }

    #[test]
    fn gate_decisions_go_both_ways() {
        use GateMetric::{NdcgAtK, Rmse, RocAuc};
        let unavailable = ChampionScore::Unavailable {
            version: Some(ModelVersion::FIRST),
            reason: "registry answered 503".into(),
        };
        let cases = [
            (
                policy(RocAuc, 0.6, 0.0),
                0.90,
                ChampionScore::None,
                GateOutcome::FirstModel,
            ),
            (
                policy(RocAuc, 0.6, 0.0),
                0.55,
                ChampionScore::None,
                GateOutcome::BelowFloor,
            ),
            (
                policy(RocAuc, 0.6, 0.005),
                0.5,
                compared(0.4, 0.5),
                GateOutcome::BelowFloor,
            ),
            (
                policy(RocAuc, 0.6, 0.005),
                0.9,
                compared(0.90, 0.91),
                GateOutcome::BeatsChampion,
            ),
            (
                policy(RocAuc, 0.6, 0.02),
                0.9,
                compared(0.90, 0.91),
                GateOutcome::NotBetter,
            ),
            (
                policy(RocAuc, 0.6, 0.0),
                0.9,
                compared(0.90, 0.90),
                GateOutcome::NotBetter,
            ),
            (
                policy(RocAuc, 0.6, 0.0),
                0.9,
                compared(0.90, 0.85),
                GateOutcome::NotBetter,
            ),
            (
                policy(RocAuc, 0.6, 0.0),
                0.99,
                unavailable.clone(),
                GateOutcome::ChampionUnavailable,
            ),
            (
                policy(RocAuc, 0.6, 0.0),
                0.5,
                unavailable.clone(),
                GateOutcome::ChampionUnavailable,
            ),
            (
                policy(Rmse, 1.0, 0.01),
                0.8,
                compared(0.90, 0.80),
                GateOutcome::BeatsChampion,
            ),
            (
                policy(Rmse, 1.0, 0.01),
                0.9,
                compared(0.90, 0.895),
                GateOutcome::NotBetter,
            ),
            (
                policy(Rmse, 1.0, 0.0),
                1.2,
                ChampionScore::None,
                GateOutcome::BelowFloor,
            ),
            (
                policy(NdcgAtK, 0.1, 0.0),
                0.3,
                compared(0.2, 0.3),
                GateOutcome::BeatsChampion,
            ),
            (
                policy(NdcgAtK, 0.1, 0.0),
                f64::NAN,
                ChampionScore::None,
                GateOutcome::BelowFloor,
            ),
        ];
        for (policy, challenger, champion, expected) in cases {
            let d = policy.decide(challenger, &champion);
            assert_eq!(
                d.outcome,
                Some(expected),
                "{policy:?} {challenger} {champion:?}"
            );
            let promoted = matches!(
                expected,
                GateOutcome::FirstModel | GateOutcome::BeatsChampion
            );
            assert_eq!(d.promoted, promoted, "{expected:?}");
            assert_eq!(d.floor, Some(policy.floor));
        }
    }

    #[test]
    fn the_decision_records_the_shared_rows_and_says_why() {
        let d = policy(GateMetric::RocAuc, 0.6, 0.0).decide(0.93, &compared(0.9, 0.95));
        assert_eq!((d.champion_score, d.challenger_score), (Some(0.9), 0.95));
        assert_eq!(d.compared_rows, Some(100));
        let reason = d.reason.unwrap();
        assert!(
            reason.contains("roc_auc 0.950000 beats champion v1 0.900000 on 100 rows"),
            "{reason}"
        );
        let d = policy(GateMetric::RocAuc, 0.6, 0.0).decide(
            0.93,
            &ChampionScore::Unavailable {
                version: Some(ModelVersion::FIRST),
                reason: "registry answered 503".into(),
            },
        );
        assert_eq!(d.champion_version, Some(ModelVersion::FIRST));
        assert!(
            d.reason
                .unwrap()
                .contains("champion v1 could not be compared: registry answered 503")
        );
    }
}
