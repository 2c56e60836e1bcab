//! Which version a rollback returns to: a pure function of the alias's revisions and the
//! versions' states.
//!
//! A rollback walks the alias's history back from its current revision and takes the most
//! recent version the alias held that is not the current one, was never rolled back from
//! (the `rolled_back_from` field of a revision, not its free-text reason), and is neither
//! archived nor deleted. So a second rollback goes further back instead of returning to the
//! version the first one left. To return to a version once rolled back from, move the alias
//! to it explicitly.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use suite_models::model_id::ModelVersion;

use super::records::{AliasRecord, VersionState};

/// Why a rollback passed over a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// An earlier rollback left it.
    RolledBackFrom,
    Archived,
    Deleted,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RolledBackFrom => "rolled back from",
            Self::Archived => "archived",
            Self::Deleted => "deleted",
        }
    }
}

/// A version a rollback passed over, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub version: ModelVersion,
    pub reason: SkipReason,
}

/// The outcome of the walk: the chosen version (if any) and what was passed over, newest first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Choice {
    pub current: ModelVersion,
    pub target: Option<ModelVersion>,
    pub skipped: Vec<Skipped>,
}

/// Chooses the rollback target from `revisions` (oldest first, non-empty) and the states of
/// the model's versions.
pub(crate) fn choose(
    revisions: &[AliasRecord],
    states: &BTreeMap<ModelVersion, VersionState>,
) -> Option<Choice> {
    let current = revisions.last()?.version;
    let rolled_back_from: BTreeSet<ModelVersion> = revisions
        .iter()
        .filter_map(|r| r.rolled_back_from)
        .collect();
    let mut seen = BTreeSet::from([current]);
    let mut skipped = Vec::new();
    for record in revisions.iter().rev() {
        let version = record.version;
        if !seen.insert(version) {
            continue;
        }
        let state = states.get(&version);
        let reason = if rolled_back_from.contains(&version) {
            Some(SkipReason::RolledBackFrom)
        } else if state.is_none_or(|s| s.deleted) {
            Some(SkipReason::Deleted)
        } else if state.is_some_and(|s| s.archived) {
            Some(SkipReason::Archived)
        } else {
            None
        };
        match reason {
            Some(reason) => skipped.push(Skipped { version, reason }),
            None => {
                return Some(Choice {
                    current,
                    target: Some(version),
                    skipped,
                });
            }
        }
    }
    Some(Choice {
        current,
        target: None,
        skipped,
    })
}

/// Says in words what was passed over, e.g. `v3 (rolled back from), v1 (archived)`.
pub(crate) fn describe_skipped(skipped: &[Skipped]) -> String {
    skipped
        .iter()
        .map(|s| format!("v{} ({})", s.version, s.reason.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::registry::records::Provenance;
    use suite_models::model_id::{AliasName, ModelName};

    fn v(n: u32) -> ModelVersion {
        ModelVersion::new(n).unwrap()
    }

    /// Revisions from (version, rolled back from).
    fn revisions(moves: &[(u32, Option<u32>)]) -> Vec<AliasRecord> {
        moves
            .iter()
            .enumerate()
            .map(|(i, &(version, from))| AliasRecord {
                model: ModelName::parse("fraud").unwrap(),
                alias: AliasName::production(),
                revision: i as u64 + 1,
                version: v(version),
                previous: None,
                rolled_back_from: from.map(v),
                provenance: Provenance {
                    at: Utc::now(),
                    actor: "t".into(),
                    reason: None,
                },
            })
            .collect()
    }

    fn states(n: u32, archived: &[u32], deleted: &[u32]) -> BTreeMap<ModelVersion, VersionState> {
        (1..=n)
            .map(|i| {
                (
                    v(i),
                    VersionState {
                        version: v(i),
                        archived: archived.contains(&i),
                        deleted: deleted.contains(&i),
                        kept: false,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn each_rollback_goes_one_further_back() {
        let all = states(4, &[], &[]);
        let mut history = vec![(1, None), (2, None), (3, None), (4, None)];
        for expected in [3, 2, 1] {
            let choice = choose(&revisions(&history), &all).unwrap();
            assert_eq!(choice.target, Some(v(expected)), "{history:?}");
            history.push((expected, Some(choice.current.get())));
        }
        let last = choose(&revisions(&history), &all).unwrap();
        assert_eq!(last.target, None);
        assert_eq!(
            describe_skipped(&last.skipped),
            "v2 (rolled back from), v3 (rolled back from), v4 (rolled back from)"
        );
    }

    #[test]
    fn archived_and_deleted_versions_are_passed_over() {
        let choice = choose(
            &revisions(&[(1, None), (2, None), (3, None), (4, None)]),
            &states(4, &[3], &[2]),
        )
        .unwrap();
        assert_eq!(choice.target, Some(v(1)));
        assert_eq!(
            describe_skipped(&choice.skipped),
            "v3 (archived), v2 (deleted)"
        );
    }

    #[test]
    fn a_version_held_twice_is_considered_once_and_the_current_one_never() {
        // 1 -> 2 -> 1 -> 3: rolling back from 3 goes to 1 (its latest holding), then 2.
        let history = [(1, None), (2, None), (1, None), (3, None)];
        let choice = choose(&revisions(&history), &states(3, &[], &[])).unwrap();
        assert_eq!((choice.target, choice.skipped.len()), (Some(v(1)), 0));
        let single = choose(&revisions(&[(1, None)]), &states(1, &[], &[])).unwrap();
        assert_eq!((single.target, single.skipped.len()), (None, 0));
    }
}
