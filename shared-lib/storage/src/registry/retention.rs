//! Retention: which versions a policy retires, decided by a pure function of the registry's
//! state so that every rule is testable with made-up clocks.
//!
//! A version is retained when any rule holds:
//! - it is among the newest `retain_versions` versions that are not deleted;
//! - it was created within the last `retain_days` days;
//! - it is marked to keep (how an operator protects a version pinned with `MODEL_VERSION`);
//! - an alias points to it now, or pointed to it at any time within the window.
//!
//! The window is the time the other rules cover: since the creation of the oldest version the
//! count rule keeps, or the last `retain_days` days, whichever reaches further back (all time
//! while the count rule still keeps everything). So "which version was production at T" keeps
//! a loadable answer for every T in the window. Every other version that is not yet deleted is
//! retired.
//!
//! Artifact objects that no version names (orphans) are removed with the retired versions'
//! objects, except orphans younger than [`UPLOAD_GRACE_SECS`]: an artifact is uploaded before
//! the version naming it is registered, and that registration must find it.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use suite_models::model_id::{AliasName, ModelName, ModelVersion};

use super::records::AliasRecord;

/// The largest `retain_days` a service should accept (a century); larger values only mean
/// "keep everything by age", and windows before year 1 cannot be written as RFC 3339.
pub const MAX_RETAIN_DAYS: u32 = 36_500;

/// How long an uploaded artifact that no version names yet is safe from retention: one hour,
/// far more than a client takes between its upload and its registration, and short enough that
/// abandoned uploads do not pile up.
pub const UPLOAD_GRACE_SECS: i64 = 3600;

/// How much history to keep; at least one rule is set (see [`RetentionPolicy::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    retain_versions: Option<NonZeroU32>,
    retain_days: Option<NonZeroU32>,
}

impl RetentionPolicy {
    /// A policy from its two rules; `None` when neither is set (there is nothing to apply).
    pub fn new(
        retain_versions: Option<NonZeroU32>,
        retain_days: Option<NonZeroU32>,
    ) -> Option<Self> {
        (retain_versions.is_some() || retain_days.is_some()).then_some(Self {
            retain_versions,
            retain_days,
        })
    }

    pub fn retain_versions(&self) -> Option<NonZeroU32> {
        self.retain_versions
    }

    pub fn retain_days(&self) -> Option<NonZeroU32> {
        self.retain_days
    }
}

impl std::fmt::Display for RetentionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.retain_versions, self.retain_days) {
            (Some(n), Some(d)) => write!(
                f,
                "keep the newest {n} versions and those of the last {d} days"
            ),
            (Some(n), None) => write!(f, "keep the newest {n} versions"),
            (None, Some(d)) => write!(f, "keep the versions of the last {d} days"),
            (None, None) => f.write_str("keep everything"),
        }
    }
}

/// What retention knows of one version.
#[derive(Debug, Clone)]
pub(crate) struct VersionFacts {
    pub version: ModelVersion,
    pub created_at: DateTime<Utc>,
    pub kept: bool,
}

/// A version retention leaves alone, and every rule that protects it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retained {
    pub version: ModelVersion,
    pub reasons: Vec<String>,
}

/// What one retention run did (or, for a dry run, would do).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionReport {
    pub model: ModelName,
    pub policy: RetentionPolicy,
    pub dry_run: bool,
    /// Alias moves since this time protect their versions; `None`: all time.
    pub window_start: Option<DateTime<Utc>>,
    /// Versions marked deleted by this run, oldest first.
    pub retired: Vec<ModelVersion>,
    /// Versions not deleted, oldest first, with why each stays.
    pub retained: Vec<Retained>,
    /// Artifact objects removed because no version that is not deleted references them.
    pub artifacts_deleted: Vec<String>,
}

/// The decision of one run: the window, what stays (with reasons) and what goes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub window_start: Option<DateTime<Utc>>,
    pub retained: Vec<Retained>,
    pub retire: Vec<ModelVersion>,
}

/// The start of the window over the versions that are not deleted (any order); `None` when the
/// count rule still keeps every version (the window is then all time).
pub(crate) fn window_start(
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    live: &[VersionFacts],
) -> Option<DateTime<Utc>> {
    let by_days = match policy.retain_days {
        None => None,
        Some(days) => match days_before(now, days) {
            Some(since) => Some(since),
            // Before the first representable time: every version is recent.
            None => return None,
        },
    };
    let by_count = match policy.retain_versions {
        None => None,
        Some(n) => {
            let mut newest: Vec<&VersionFacts> = live.iter().collect();
            newest.sort_by_key(|v| std::cmp::Reverse(v.version));
            match newest.get(n.get() as usize - 1) {
                Some(nth) => Some(nth.created_at),
                // Fewer versions than the count: all of them are kept, the window is all time.
                None => return None,
            }
        }
    };
    match (by_days, by_count) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Decides what stays and what goes. `aliases` holds, per alias, its revisions oldest first:
/// at least every revision in force at or after `window_start`.
pub(crate) fn plan(
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    live: &[VersionFacts],
    aliases: &[Vec<AliasRecord>],
) -> Plan {
    let start = window_start(policy, now, live);
    let mut reasons: BTreeMap<ModelVersion, Vec<String>> = BTreeMap::new();
    let mut add = |version: ModelVersion, reason: String| {
        reasons.entry(version).or_default().push(reason);
    };
    if let Some(n) = policy.retain_versions {
        let mut newest: Vec<ModelVersion> = live.iter().map(|v| v.version).collect();
        newest.sort_unstable_by(|a, b| b.cmp(a));
        for version in newest.into_iter().take(n.get() as usize) {
            add(version, format!("among the {n} newest versions"));
        }
    }
    if let Some(days) = policy.retain_days {
        let since = days_before(now, days);
        for v in live
            .iter()
            .filter(|v| since.is_none_or(|since| v.created_at >= since))
        {
            add(v.version, format!("created within the last {days} days"));
        }
    }
    for v in live.iter().filter(|v| v.kept) {
        add(v.version, "marked to keep".to_owned());
    }
    for revisions in aliases {
        for (version, alias, now) in alias_versions_in_window(revisions, start) {
            if now {
                add(version, format!("alias {alias} points to it"));
            } else {
                add(
                    version,
                    format!("alias {alias} pointed to it within the window"),
                );
            }
        }
    }
    let live_versions: BTreeSet<ModelVersion> = live.iter().map(|v| v.version).collect();
    let retire = live_versions
        .iter()
        .filter(|v| !reasons.contains_key(v))
        .copied()
        .collect();
    let retained = reasons
        .into_iter()
        .filter(|(v, _)| live_versions.contains(v))
        .map(|(version, mut reasons)| {
            reasons.dedup();
            Retained { version, reasons }
        })
        .collect();
    Plan {
        window_start: start,
        retained,
        retire,
    }
}

/// `days` days before `now`; `None` when that is before the first representable time.
fn days_before(now: DateTime<Utc>, days: NonZeroU32) -> Option<DateTime<Utc>> {
    now.checked_sub_signed(Duration::try_days(i64::from(days.get()))?)
}

/// The versions an alias pointed to at some time at or after `start` (all, for `None`), each
/// with whether it is the current one. A revision is in force from its time until the next's.
fn alias_versions_in_window(
    revisions: &[AliasRecord],
    start: Option<DateTime<Utc>>,
) -> Vec<(ModelVersion, &AliasName, bool)> {
    let mut out = Vec::new();
    for (i, record) in revisions.iter().enumerate() {
        let next = revisions.get(i + 1);
        let in_force_in_window = match (next, start) {
            (None, _) | (_, None) => true,
            (Some(next), Some(start)) => next.provenance.at > start,
        };
        if in_force_in_window {
            out.push((record.version, &record.alias, next.is_none()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::records::Provenance;

    fn v(n: u32) -> ModelVersion {
        ModelVersion::new(n).unwrap()
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// Versions 1..=n, version i created i hours after t0.
    fn hourly(n: u32) -> Vec<VersionFacts> {
        (1..=n)
            .map(|i| VersionFacts {
                version: v(i),
                created_at: t0() + Duration::hours(i64::from(i)),
                kept: false,
            })
            .collect()
    }

    /// An alias's revisions: (version, hours after t0).
    fn alias(moves: &[(u32, i64)]) -> Vec<AliasRecord> {
        moves
            .iter()
            .enumerate()
            .map(|(i, &(version, hour))| AliasRecord {
                model: ModelName::parse("fraud").unwrap(),
                alias: AliasName::production(),
                revision: i as u64 + 1,
                version: v(version),
                previous: None,
                rolled_back_from: None,
                provenance: Provenance {
                    at: t0() + Duration::hours(hour),
                    actor: "gate".into(),
                    reason: None,
                },
            })
            .collect()
    }

    fn policy(versions: Option<u32>, days: Option<u32>) -> RetentionPolicy {
        RetentionPolicy::new(
            versions.and_then(NonZeroU32::new),
            days.and_then(NonZeroU32::new),
        )
        .unwrap()
    }

    fn retired(plan: &Plan) -> Vec<u32> {
        plan.retire.iter().map(|v| v.get()).collect()
    }

    #[test]
    fn days_beyond_the_calendar_keep_everything_instead_of_panicking() {
        let live = hourly(3);
        let plan = plan(&policy(Some(1), Some(u32::MAX)), t0(), &live, &[]);
        assert_eq!((plan.window_start, plan.retire.len()), (None, 0));
    }

    #[test]
    fn no_rule_is_no_policy() {
        assert_eq!(RetentionPolicy::new(None, None), None);
    }

    #[test]
    fn count_keeps_the_newest_and_the_versions_aliased_within_the_window() {
        // Arrange: 20 hourly versions; production at v3 (hour 3), v12 (hour 12), v18 (hour 18).
        let live = hourly(20);
        let production = alias(&[(3, 3), (12, 12), (18, 18)]);
        let now = t0() + Duration::hours(21);
        // Act
        let plan = plan(&policy(Some(5), None), now, &live, &[production]);
        // Assert: the newest 5 are 16..=20, the window starts at v16's creation (hour 16), when
        // production held v12 (until hour 18): v12 stays, v3 goes.
        assert_eq!(plan.window_start, Some(t0() + Duration::hours(16)));
        assert_eq!(
            retired(&plan),
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15]
        );
        let v12 = plan.retained.iter().find(|r| r.version == v(12)).unwrap();
        assert_eq!(
            v12.reasons,
            ["alias production pointed to it within the window"]
        );
        let v18 = plan.retained.iter().find(|r| r.version == v(18)).unwrap();
        assert_eq!(
            v18.reasons,
            [
                "among the 5 newest versions",
                "alias production points to it"
            ]
        );
    }

    #[test]
    fn days_keep_recent_versions_and_the_longer_rule_sets_the_window() {
        let live = hourly(100);
        let now = t0() + Duration::hours(100);
        // One day back from hour 100 is hour 76: versions 76..=100 are recent.
        let plan_days = plan(&policy(None, Some(1)), now, &live, &[]);
        assert_eq!(plan_days.window_start, Some(t0() + Duration::hours(76)));
        assert_eq!(plan_days.retire.len(), 75);
        // With the count rule keeping 30 (71..=100) as well, the window reaches hour 71.
        let both = plan(&policy(Some(30), Some(1)), now, &live, &[]);
        assert_eq!(both.window_start, Some(t0() + Duration::hours(71)));
        assert_eq!(retired(&both), (1..=70).collect::<Vec<_>>());
    }

    #[test]
    fn kept_versions_and_current_aliases_stay_whatever_their_age() {
        let mut live = hourly(10);
        live[1].kept = true; // v2
        let staging = {
            let mut s = alias(&[(4, 4)]);
            s[0].alias = AliasName::parse("staging").unwrap();
            s
        };
        let now = t0() + Duration::days(365);
        let plan = plan(&policy(Some(1), Some(7)), now, &live, &[staging]);
        assert_eq!(retired(&plan), [1, 3, 5, 6, 7, 8, 9]);
        assert_eq!(plan.retained[0].reasons, ["marked to keep"]);
        assert_eq!(plan.retained[1].reasons, ["alias staging points to it"]);
    }

    #[test]
    fn while_the_count_keeps_everything_nothing_goes_and_the_window_is_all_time() {
        let live = hourly(3);
        let plan = plan(&policy(Some(5), None), t0(), &live, &[alias(&[(1, 1)])]);
        assert_eq!(plan.window_start, None);
        assert!(plan.retire.is_empty());
    }

    #[test]
    fn an_alias_revision_that_ended_exactly_at_the_window_start_does_not_protect() {
        // Window starts at hour 8 (the 3rd newest of 10). Production: v2 until hour 8, then v4
        // until hour 9, then v10.
        let live = hourly(10);
        let production = alias(&[(2, 2), (4, 8), (10, 9)]);
        let plan = plan(&policy(Some(3), None), t0(), &live, &[production]);
        assert_eq!(plan.window_start, Some(t0() + Duration::hours(8)));
        assert_eq!(retired(&plan), [1, 2, 3, 5, 6, 7]);
    }
}
