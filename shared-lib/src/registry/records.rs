//! The create-only records besides manifests, and the event history built from them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model_id::{AliasName, ModelName, ModelVersion};

/// Written to take a version number, before the artifact's manifest is written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claim {
    pub run_id: Uuid,
    pub claimed_at: DateTime<Utc>,
    pub claimed_by: String,
}

/// Who did something, when, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub at: DateTime<Utc>,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One revision of an alias: it pointed to `version` from `provenance.at` until the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasRecord {
    pub model: ModelName,
    pub alias: AliasName,
    /// 1 for the alias's first revision, then +1 per move.
    pub revision: u64,
    pub version: ModelVersion,
    /// What the alias pointed to before this revision; `rollback` returns to it.
    pub previous: Option<ModelVersion>,
    #[serde(flatten)]
    pub provenance: Provenance,
}

/// The hint stored in `head.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AliasHead {
    pub revision: u64,
}

/// Marks a version archived: no alias may point at it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ArchiveRecord {
    #[serde(flatten)]
    pub provenance: Provenance,
}

/// What happened, in the event history of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Registered {
        version: ModelVersion,
        run_id: Uuid,
    },
    AliasMoved {
        alias: AliasName,
        from: Option<ModelVersion>,
        to: ModelVersion,
        revision: u64,
    },
    Archived {
        version: ModelVersion,
    },
}

/// One entry of a model's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub model: ModelName,
    #[serde(flatten)]
    pub kind: EventKind,
    #[serde(flatten)]
    pub provenance: Provenance,
}

/// The state of one version, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionState {
    pub version: ModelVersion,
    pub archived: bool,
}

/// Which version `alias` pointed to at time `at`, given the alias's revisions in order.
pub fn alias_version_at(revisions: &[AliasRecord], at: DateTime<Utc>) -> Option<ModelVersion> {
    revisions
        .iter()
        .take_while(|r| r.provenance.at <= at)
        .last()
        .map(|r| r.version)
}
