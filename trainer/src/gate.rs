//! The quality gate and publishing.
//!
//! Every trained model is published as a new version with its metrics, so nothing trained is
//! lost and every decision can be audited. The `production` alias moves only when the
//! challenger beats the champion, scored on the *same* held-out data, by at least
//! `--min-improvement`. The comparison is recorded in the manifest (`gate`) and in the alias
//! revision's reason. The alias move is compare-and-swap against the champion the gate saw, so
//! a person who moved `production` meanwhile (a rollback) is never overridden.

use serde::Serialize;
use serde::de::DeserializeOwned;
use shared_lib::artifact::{EncodedArtifact, ModelKind};
use shared_lib::model_id::{AliasName, ModelName, ModelVersion};
use shared_lib::registry::Change;
use shared_lib::registry::manifest::{GateDecision, Manifest, NewVersion};

use crate::Error;
use crate::publisher::{MoveOutcome, Publisher};

/// Which metric decides, in which direction, by how much.
#[derive(Debug, Clone)]
pub struct GatePolicy {
    pub metric: String,
    pub higher_is_better: bool,
    pub min_improvement: f64,
}

/// The current champion and its score on the challenger's held-out data.
#[derive(Debug, Clone, Copy)]
pub struct ChampionScore {
    pub version: ModelVersion,
    pub score: f64,
}

impl GatePolicy {
    /// Decides: no champion means promote; otherwise the challenger must improve the metric
    /// (strictly) by at least `min_improvement`.
    pub fn decide(&self, challenger: f64, champion: Option<ChampionScore>) -> GateDecision {
        let promoted = match champion {
            None => true,
            Some(c) => {
                let improvement = if self.higher_is_better {
                    challenger - c.score
                } else {
                    c.score - challenger
                };
                improvement > 0.0 && improvement >= self.min_improvement
            }
        };
        GateDecision {
            metric: self.metric.clone(),
            higher_is_better: self.higher_is_better,
            champion_version: champion.map(|c| c.version),
            champion_score: champion.map(|c| c.score),
            challenger_score: challenger,
            min_improvement: self.min_improvement,
            promoted,
        }
    }
}

/// What a training run published.
#[derive(Debug, Clone, Serialize)]
pub struct Publication {
    pub model: ModelName,
    pub version: ModelVersion,
    pub sha256: String,
    /// True when `production` now points to this version.
    pub promoted: bool,
    pub gate: GateDecision,
}

/// What `production` holds now, and that model if it can be compared with a challenger.
#[derive(Debug)]
pub struct Champion<T> {
    /// The version `production` points to: the expected value of the promotion's
    /// compare-and-swap, whether or not the champion could be scored.
    pub production: Option<ModelVersion>,
    /// The champion's manifest and model; `None` when there is none, or it is of another kind,
    /// or it no longer loads (a server could not serve it either).
    pub loaded: Option<(Manifest, T)>,
}

/// Loads the model `production` points to, if any, to score it on the new held-out data.
///
/// # Errors
/// Store or registry failures (an unreachable store must not look like "no champion").
pub async fn load_champion<T: DeserializeOwned>(
    publisher: &Publisher,
    model: &ModelName,
    kinds: &[ModelKind],
) -> Result<Champion<T>, Error> {
    let Some(version) = publisher
        .resolve_alias(model, &AliasName::production())
        .await?
    else {
        tracing::info!(%model, "No production model yet; the challenger is the first.");
        return Ok(Champion {
            production: None,
            loaded: None,
        });
    };
    let loaded = match publisher.load::<T>(model, version, kinds).await {
        Ok(loaded) => Some(loaded),
        Err(
            e @ (Error::Registry { status: None, .. }
            | Error::Library(shared_lib::Error::Store { .. })),
        ) => {
            return Err(e);
        }
        Err(e) => {
            tracing::warn!(%model, %version, error = %e, "The champion cannot be compared; gating as if there were none.");
            None
        }
    };
    Ok(Champion {
        production: Some(version),
        loaded,
    })
}

/// Publishes the challenger with the gate's decision, then moves `production` if it won.
///
/// # Errors
/// Registry errors from publishing; a lost alias race is not an error (it is logged, and the
/// result says not promoted).
///
/// `production` is what the alias held when the champion was looked up ([`Champion::production`]);
/// the promotion is a compare-and-swap against it, so a rollback made meanwhile wins.
pub async fn publish_and_gate(
    publisher: &Publisher,
    mut draft: NewVersion,
    artifact: EncodedArtifact,
    decision: GateDecision,
    production: Option<ModelVersion>,
    actor: &str,
) -> Result<Publication, Error> {
    let mut decision = decision;
    // A champion that could not be scored is still recorded as the one passed over.
    if decision.champion_version.is_none() {
        decision.champion_version = production;
    }
    draft.gate = Some(decision.clone());
    let manifest = publisher.publish(draft, artifact).await?;
    let mut promoted = false;
    if decision.promoted {
        let reason = gate_reason(&decision);
        let change = Change {
            actor,
            reason: Some(&reason),
        };
        match publisher
            .move_alias(
                &manifest.model,
                &AliasName::production(),
                manifest.version,
                production,
                &change,
            )
            .await?
        {
            MoveOutcome::Moved => promoted = true,
            MoveOutcome::Conflict(why) => {
                tracing::warn!(reason = %why, "Production moved while training; leaving it alone.");
            }
        }
    }
    tracing::info!(
        model = %manifest.model,
        version = %manifest.version,
        promoted,
        metric = %decision.metric,
        challenger = decision.challenger_score,
        champion = ?decision.champion_score,
        "Published."
    );
    Ok(Publication {
        model: manifest.model,
        version: manifest.version,
        sha256: manifest.artifact.sha256.to_string(),
        promoted,
        gate: decision,
    })
}

fn gate_reason(d: &GateDecision) -> String {
    match (d.champion_version, d.champion_score) {
        (Some(v), Some(score)) => format!(
            "quality gate: {} {:.6} vs champion v{v} {:.6} (min improvement {})",
            d.metric, d.challenger_score, score, d.min_improvement
        ),
        (Some(v), None) => format!(
            "quality gate: champion v{v} not comparable on this data; challenger {} {:.6}",
            d.metric, d.challenger_score
        ),
        (None, _) => format!(
            "quality gate: first model, {} {:.6}",
            d.metric, d.challenger_score
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auc_policy(min: f64) -> GatePolicy {
        GatePolicy {
            metric: "roc_auc".into(),
            higher_is_better: true,
            min_improvement: min,
        }
    }

    fn champion(score: f64) -> Option<ChampionScore> {
        Some(ChampionScore {
            version: ModelVersion::FIRST,
            score,
        })
    }

    #[test]
    fn gate_decisions_go_both_ways() {
        let rmse = GatePolicy {
            metric: "rmse".into(),
            higher_is_better: false,
            min_improvement: 0.01,
        };
        let cases = [
            (auc_policy(0.0), 0.90, None, true, "first model"),
            (
                auc_policy(0.005),
                0.91,
                champion(0.90),
                true,
                "beats by more than the margin",
            ),
            (
                auc_policy(0.02),
                0.91,
                champion(0.90),
                false,
                "beats by less than the margin",
            ),
            (
                auc_policy(0.0),
                0.90,
                champion(0.90),
                false,
                "a tie is not a win",
            ),
            (auc_policy(0.0), 0.85, champion(0.90), false, "worse"),
            (rmse.clone(), 0.80, champion(0.90), true, "lower rmse wins"),
            (
                rmse,
                0.895,
                champion(0.90),
                false,
                "lower rmse by less than the margin",
            ),
        ];
        for (policy, challenger, champ, promoted, why) in cases {
            let d = policy.decide(challenger, champ);
            assert_eq!(d.promoted, promoted, "{why}");
            assert_eq!(d.challenger_score, challenger);
            assert_eq!(d.champion_score, champ.map(|c| c.score));
        }
    }
}
