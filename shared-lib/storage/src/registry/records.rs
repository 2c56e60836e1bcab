//! The create-only records besides manifests, and the event history built from them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use suite_models::model_id::{AliasName, ModelName, ModelVersion};

/// Written to take a version number, before the artifact's manifest is written.
///
/// Its bytes must differ between writers: an S3 create-new that finds identical bytes takes
/// them for its own retried write (see `PutMode::CreateNew`). The run id (a fresh uuid per
/// training run) and the claim time make them differ.
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
    /// What the alias pointed to before this revision.
    pub previous: Option<ModelVersion>,
    /// Set when this revision is a rollback: the version rolled back from, which later
    /// rollbacks never choose again. Records written before the field existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_from: Option<ModelVersion>,
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

/// Marks a version deleted by retention: its manifest stays (the history stays whole), its
/// artifact is removed once no live version shares it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeletedRecord {
    #[serde(flatten)]
    pub provenance: Provenance,
}

/// One revision of a version's keep marker (`keep-<n>.json`): the latest says whether
/// retention must leave the version alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeepRecord {
    pub keep: bool,
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
        /// True when the move was a rollback (away from `from`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        rollback: bool,
    },
    Archived {
        version: ModelVersion,
    },
    /// Retention deleted the version: its manifest stays, its artifact is gone.
    Deleted {
        version: ModelVersion,
    },
    /// An operator marked the version to keep: retention leaves it alone.
    Kept {
        version: ModelVersion,
    },
    /// The keep marker was lifted: retention may delete the version again.
    Unkept {
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
    /// Retired by retention: the manifest stays, the model cannot be loaded or aliased.
    #[serde(default)]
    pub deleted: bool,
    /// Marked to keep: retention never deletes it.
    #[serde(default)]
    pub kept: bool,
}

impl VersionState {
    pub fn status(&self) -> VersionStatus {
        if self.deleted {
            VersionStatus::Deleted
        } else if self.archived {
            VersionStatus::Archived
        } else {
            VersionStatus::Active
        }
    }
}

/// A version's lifecycle: active, archived (no alias may point at it), deleted (artifact gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionStatus {
    Active,
    Archived,
    Deleted,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Archived => "archived",
            Self::Deleted => "deleted",
        }
    }
}

/// Which version `alias` pointed to at time `at`, given the alias's revisions in order.
pub fn alias_version_at(revisions: &[AliasRecord], at: DateTime<Utc>) -> Option<ModelVersion> {
    revisions
        .iter()
        .take_while(|r| r.provenance.at <= at)
        .last()
        .map(|r| r.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_records_written_before_rolled_back_from_existed_still_parse() {
        let old = r#"{"model":"fraud","alias":"production","revision":3,"version":1,
            "previous":2,"at":"2026-01-02T03:04:05Z","actor":"oncall","reason":"rollback"}"#;
        let record: AliasRecord = serde_json::from_str(old).unwrap();
        assert_eq!(record.rolled_back_from, None);
        assert_eq!(record.previous, ModelVersion::new(2).ok());
        let written = serde_json::to_value(&record).unwrap();
        assert!(written.get("rolled_back_from").is_none(), "{written}");
    }

    #[test]
    fn status_names_deleted_before_archived() {
        let state = |archived, deleted| VersionState {
            version: ModelVersion::FIRST,
            archived,
            deleted,
            kept: false,
        };
        assert_eq!(state(false, false).status().as_str(), "active");
        assert_eq!(state(true, false).status().as_str(), "archived");
        assert_eq!(state(true, true).status().as_str(), "deleted");
        assert_eq!(state(false, true).status().as_str(), "deleted");
    }
}
