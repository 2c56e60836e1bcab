//! Read-side use cases shared by the JSON API and the web page: model summaries, version
//! listings with their status and aliases, and event histories; manifests come from the index.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared_lib::Error;
use shared_lib::model_id::{ModelName, ModelVersion};
use shared_lib::registry::manifest::Manifest;
use shared_lib::registry::records::{AliasRecord, Event, VersionState};

use crate::routes::AppState;

/// A version as listed.
#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    pub version: ModelVersion,
    pub status: &'static str,
    /// Marked to keep: retention never deletes it.
    pub kept: bool,
    pub aliases: Vec<String>,
    pub algorithm: String,
    pub metrics: BTreeMap<String, f64>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub run_id: uuid::Uuid,
    pub sha256: String,
    pub size: u64,
    pub promoted_by_gate: Option<bool>,
}

/// A model as listed.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub name: ModelName,
    pub versions: usize,
    pub latest_version: Option<ModelVersion>,
    pub aliases: BTreeMap<String, ModelVersion>,
}

/// Every version of `model`, oldest first, with status and aliases.
///
/// # Errors
/// [`Error::UnknownModel`], store failures.
pub async fn versions(
    state: &AppState,
    model: &ModelName,
) -> Result<(Vec<VersionView>, Vec<AliasRecord>), Error> {
    let versions = indexed_versions(state, model).await?;
    let aliases = state.registry.list_aliases(model).await?;
    let mut out = Vec::with_capacity(versions.len());
    for (s, m) in versions {
        out.push(VersionView {
            version: s.version,
            status: s.status().as_str(),
            kept: s.kept,
            aliases: aliases
                .iter()
                .filter(|a| a.version == s.version)
                .map(|a| a.alias.to_string())
                .collect(),
            algorithm: m.algorithm.clone(),
            metrics: m.metrics.clone(),
            created_at: m.created_at,
            created_by: m.created_by.clone(),
            run_id: m.run_id,
            sha256: m.artifact.sha256.to_string(),
            size: m.artifact.size,
            promoted_by_gate: m.gate.as_ref().map(|g| g.promoted),
        });
    }
    Ok((out, aliases))
}

/// Every model with its version count, latest version and aliases.
///
/// # Errors
/// Store failures.
pub async fn models(state: &AppState) -> Result<Vec<ModelSummary>, Error> {
    let mut out = Vec::new();
    for name in state.registry.list_models().await? {
        let versions = match state.registry.list_versions(&name).await {
            Ok(v) => v,
            Err(Error::UnknownModel { .. }) => continue,
            Err(e) => return Err(e),
        };
        let aliases = state.registry.list_aliases(&name).await?;
        out.push(ModelSummary {
            latest_version: versions.last().map(|v| v.version),
            versions: versions.len(),
            aliases: aliases
                .into_iter()
                .map(|a| (a.alias.to_string(), a.version))
                .collect(),
            name,
        });
    }
    Ok(out)
}

/// The event history of `model` (as [`shared_lib::registry::Registry::history`]), its
/// manifests from the index rather than read again from the store.
///
/// # Errors
/// [`Error::UnknownModel`], store failures.
pub async fn history(state: &AppState, model: &ModelName) -> Result<Vec<Event>, Error> {
    let versions = indexed_versions(state, model).await?;
    state
        .registry
        .history_of(model, versions.iter().map(|(s, m)| (s, m.as_ref())))
        .await
}

/// Every version of `model` with its manifest, from the index (read from the store only the
/// first time); versions whose manifest is corrupt or foreign are left out.
async fn indexed_versions(
    state: &AppState,
    model: &ModelName,
) -> Result<Vec<(VersionState, Arc<Manifest>)>, Error> {
    let states = state.registry.list_versions(model).await?;
    let mut versions = Vec::with_capacity(states.len());
    for s in states {
        match state
            .index
            .manifest(&state.registry, model, s.version)
            .await
        {
            Ok(manifest) => versions.push((s, manifest)),
            // Corrupt or foreign: logged once and reported at start-up (gauge, /readyz);
            // one bad object must not hide the model's other versions.
            Err(Error::CorruptRecord { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(versions)
}
