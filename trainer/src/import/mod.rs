//! Models trained elsewhere, served here through the same registry, gate and rollback:
//!
//! - [`spark`]: a Spark `ALSModel.save` directory → the served ALS recommender;
//! - [`onnx`]: a scikit-learn forest exported by skl2onnx (`TreeEnsembleClassifier`) → the
//!   served fraud forest.
//!
//! With held-out data (`--test-ratings`, `--test-data`) an imported model is scored and goes
//! through [`crate::pipeline::gate_and_publish`] exactly as a trained challenger does. Without
//! it there is nothing to gate on: the model is published as a candidate, and `production` moves
//! only with `--promote`, recorded in the event log as the operator's decision
//! ([`publish_without_gate`]).

pub mod onnx;
pub mod spark;

use serde::Serialize;
use suite_models::artifact::EncodedArtifact;
use suite_models::model_id::{AliasName, ModelName, ModelVersion};
use suite_storage::registry::manifest::{GateDecision, NewVersion};

use crate::Error;
use crate::pipeline::{Context, Publication, move_production};
use crate::registry_client::MoveOutcome;

#[derive(Debug, clap::Subcommand)]
pub enum ImportCommand {
    /// A directory written by pyspark.ml.recommendation.ALSModel.save (local or s3://).
    SparkAls(spark::SparkArgs),
    /// A scikit-learn forest converted by skl2onnx (TreeEnsembleClassifier, zipmap False).
    Onnx(onnx::OnnxArgs),
}

/// What an import published.
#[derive(Debug, Clone, Serialize)]
pub struct ImportPublication {
    pub model: ModelName,
    pub version: ModelVersion,
    pub sha256: String,
    /// True when `production` now points to this version.
    pub promoted: bool,
    /// The gate's decision, when there was held-out data to gate on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateDecision>,
    /// How `production` was decided, in words.
    pub decision: String,
}

impl From<Publication> for ImportPublication {
    fn from(p: Publication) -> Self {
        Self {
            decision: p
                .gate
                .reason
                .clone()
                .unwrap_or_else(|| "the quality gate decided".into()),
            model: p.model,
            version: p.version,
            sha256: p.sha256,
            promoted: p.promoted,
            gate: Some(p.gate),
        }
    }
}

/// Publishes a model that has no held-out data: a candidate, and with `promote` the new
/// `production`, moved by compare-and-swap from the version it held, the event recording the
/// operator's decision.
///
/// # Errors
/// Registry errors; a lost alias race is not an error (logged, not promoted).
pub async fn publish_without_gate(
    ctx: &Context,
    draft: NewVersion,
    artifact: EncodedArtifact,
    promote: bool,
) -> Result<ImportPublication, Error> {
    let model = draft.model.clone();
    let production = if promote {
        ctx.registry
            .resolve_alias(&model, &AliasName::production())
            .await?
    } else {
        None
    };
    let manifest = ctx.registry.publish(draft, artifact).await?;
    let mut promoted = false;
    let decision = if promote {
        let reason = format!(
            "operator's decision (--promote): imported v{} without held-out data, not gated",
            manifest.version
        );
        match move_production(ctx, &model, manifest.version, production, &reason).await? {
            MoveOutcome::Moved => {
                promoted = true;
                reason
            }
            MoveOutcome::Conflict(why) => {
                tracing::warn!(reason = %why, "Production moved during the import; leaving it alone.");
                format!("--promote given, but production moved meanwhile ({why}); not promoted")
            }
        }
    } else {
        "no held-out data: published as a candidate; production not moved (pass --promote to \
         move it, or --test-ratings / --test-data to gate)"
            .to_owned()
    };
    tracing::info!(%model, version = %manifest.version, promoted, decision, "Imported.");
    Ok(ImportPublication {
        model: manifest.model,
        version: manifest.version,
        sha256: manifest.artifact.sha256.to_string(),
        promoted,
        gate: None,
        decision,
    })
}
