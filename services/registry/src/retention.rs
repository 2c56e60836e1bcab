//! Retention use cases: the automatic run after each registration and the explicit `gc`, both
//! through [`shared_lib::registry::Registry::retire`], counted in metrics.

use prometheus::{IntCounterVec, Opts, Registry as Prometheus};
use shared_lib::Error;
use shared_lib::http::register_metric;
use shared_lib::model_id::{ModelName, ModelVersion};
use shared_lib::registry::Change;
use shared_lib::registry::retention::{RetentionPolicy, RetentionReport};

use crate::routes::AppState;

/// Who the automatic runs are recorded as, in `deleted.json` and the event history.
pub const RETENTION_ACTOR: &str = "registry-retention";

/// `registry_versions_retired_total{model}`, `registry_artifacts_deleted_total{model}` and
/// `registry_retention_runs_total{result}` (`ok` or `failed`: alert on failures, the store
/// then grows until a run succeeds).
#[derive(Clone)]
pub struct RetentionMetrics {
    retired: IntCounterVec,
    artifacts: IntCounterVec,
    runs: IntCounterVec,
}

impl RetentionMetrics {
    /// # Errors
    /// [`Error::Telemetry`] when a name is already registered (a bug).
    pub fn register(registry: &Prometheus) -> Result<Self, Error> {
        let counter = |name: &str, help: &str, label: &str| {
            register_metric(
                registry,
                IntCounterVec::new(Opts::new(name, help), &[label]),
            )
        };
        Ok(Self {
            retired: counter(
                "registry_versions_retired_total",
                "Versions marked deleted by retention.",
                "model",
            )?,
            artifacts: counter(
                "registry_artifacts_deleted_total",
                "Artifact objects removed by retention.",
                "model",
            )?,
            runs: counter(
                "registry_retention_runs_total",
                "Retention runs, by result.",
                "result",
            )?,
        })
    }
}

/// Applies `policy` to `model` (or reports what it would do, for a dry run).
///
/// # Errors
/// As [`shared_lib::registry::Registry::retire`].
pub async fn apply(
    state: &AppState,
    model: &ModelName,
    policy: &RetentionPolicy,
    change: &Change<'_>,
    dry_run: bool,
) -> Result<RetentionReport, Error> {
    let result = state.registry.retire(model, policy, change, dry_run).await;
    let metrics = &state.retention_metrics;
    match &result {
        Ok(report) => {
            metrics.runs.with_label_values(&["ok"]).inc();
            if !dry_run {
                let label = [model.as_str()];
                metrics
                    .retired
                    .with_label_values(&label)
                    .inc_by(report.retired.len() as u64);
                metrics
                    .artifacts
                    .with_label_values(&label)
                    .inc_by(report.artifacts_deleted.len() as u64);
            }
        }
        Err(_) => metrics.runs.with_label_values(&["failed"]).inc(),
    }
    result
}

/// The configured retention, run after `version` of `model` was registered. A failure is
/// logged and counted, never returned: the registration itself succeeded, and the next run
/// finishes the work.
pub async fn after_registration(state: &AppState, model: &ModelName, version: ModelVersion) {
    let Some(policy) = state.retention else {
        return;
    };
    let reason = format!("retention after registering v{version}: {policy}");
    let change = Change {
        actor: RETENTION_ACTOR,
        reason: Some(&reason),
    };
    match apply(state, model, &policy, &change, false).await {
        Ok(report) if !report.retired.is_empty() || !report.artifacts_deleted.is_empty() => {
            tracing::info!(%model, retired = ?report.retired, artifacts = report.artifacts_deleted.len(), "Retention deleted versions.");
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(%model, error = %shared_lib::error_chain(&e), "Retention failed; the next registration or gc retries.");
        }
    }
}
