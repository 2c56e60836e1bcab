//! The quality gate and publishing.
//!
//! Every trained model is published as a new version with its metrics, so nothing trained is
//! lost and every decision can be audited. The `production` alias moves only when the
//! challenger beats the champion, scored on the *same* held-out data, by at least
//! `--min-improvement`. The comparison is recorded in the manifest (`gate`) and in the alias
//! revision's reason. The alias move is compare-and-swap against the champion the gate saw, so
//! a person who moved `production` meanwhile (a rollback) is never overridden.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared_lib::artifact::{EncodedArtifact, ModelKind};
use shared_lib::model_id::{AliasName, ModelName, ModelVersion};
use shared_lib::registry::manifest::{GateDecision, Manifest, NewVersion};
use shared_lib::registry::{Change, Registry};

use crate::Error;

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

/// Loads the model `production` points to, if any, to score it on the new held-out data.
/// A champion whose artifact no longer loads is reported and treated as absent: a server could
/// not serve it either.
///
/// # Errors
/// Store failures (an unreachable store must not look like "no champion").
pub async fn load_champion<T: DeserializeOwned>(
    registry: &Registry,
    model: &ModelName,
    kind: ModelKind,
) -> Result<Option<(Manifest, T)>, Error> {
    let version = match registry
        .resolve_alias(model, &AliasName::production())
        .await
    {
        Ok(version) => version,
        Err(shared_lib::Error::UnknownAlias { .. } | shared_lib::Error::UnknownModel { .. }) => {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let manifest = registry.manifest(model, version).await?;
    match registry.load_model::<T>(&manifest, kind).await {
        Ok(champion) => Ok(Some((manifest, champion))),
        Err(e @ shared_lib::Error::Store { .. }) => Err(e.into()),
        Err(e) => {
            tracing::warn!(%model, %version, error = %e, "The champion does not load; gating as if there were none.");
            Ok(None)
        }
    }
}

/// Publishes the challenger with the gate's decision, then moves `production` if it won.
///
/// # Errors
/// Registry errors from publishing; a lost alias race is not an error (it is logged, and the
/// result says not promoted).
pub async fn publish_and_gate(
    registry: &Registry,
    mut draft: NewVersion,
    artifact: EncodedArtifact,
    decision: GateDecision,
    actor: &str,
) -> Result<Publication, Error> {
    draft.gate = Some(decision.clone());
    let manifest = registry
        .publish(draft, Bytes::from(artifact.bytes), Some(&artifact.digest))
        .await?;
    let mut promoted = false;
    if decision.promoted {
        let reason = gate_reason(&decision);
        let change = Change {
            actor,
            reason: Some(&reason),
        };
        match registry
            .move_alias(
                &manifest.model,
                &AliasName::production(),
                manifest.version,
                decision.champion_version,
                &change,
            )
            .await
        {
            Ok(_) => promoted = true,
            Err(e @ shared_lib::Error::AliasConflict { .. }) => {
                tracing::warn!(error = %e, "Production moved while training; leaving it alone.");
            }
            Err(e) => return Err(e.into()),
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
        _ => format!(
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
