use std::collections::BTreeSet;
use std::num::NonZeroU32;

use bytes::Bytes;
use shared_lib::Error;
use shared_lib::artifact::{ArtifactDigest, ModelKind};
use shared_lib::model_id::{AliasName, ModelName, ModelVersion};
use shared_lib::registry::records::{EventKind, alias_version_at};
use shared_lib::registry::retention::RetentionPolicy;
use shared_lib::registry::rollback::SkipReason;
use shared_lib::store::{ObjectKey, PutMode};

use crate::harness::{
    Backend, ToyModel, change, draft, fraud, production_of, publish, publish_many, toy_artifact,
};

fn v(n: u32) -> ModelVersion {
    ModelVersion::new(n).unwrap()
}

fn production() -> AliasName {
    AliasName::production()
}

pub async fn published_version_reads_back_and_loads(b: &Backend) {
    // Arrange
    let registry = b.registry();
    let artifact = toy_artifact(1.5);
    // Act
    let published = registry
        .publish(draft("alice"), Bytes::from(artifact.bytes.clone()), None)
        .await
        .unwrap();
    // Assert
    let read = registry
        .manifest(&fraud(), published.version)
        .await
        .unwrap();
    assert_eq!(read, published);
    assert_eq!(read.version, v(1));
    assert_eq!(read.artifact.sha256, artifact.digest);
    assert_eq!(read.artifact.size, artifact.bytes.len() as u64);
    assert_eq!(read.artifact.kind, ModelKind::FraudRandomForest);
    assert_eq!(read.feature_schema.features[0].name, "txn_amount");
    let model: ToyModel = registry
        .load_model(&read, ModelKind::FraudRandomForest)
        .await
        .unwrap();
    assert_eq!(model.weights, vec![1.5, 3.0, -1.5]);
    assert_eq!(registry.list_models().await.unwrap(), [fraud()]);
}

pub async fn versions_are_numbered_consecutively_from_one(b: &Backend) {
    let registry = b.registry();
    publish_many(&registry, 3).await;
    // Re-publishing identical bytes is a new version sharing the content-addressed artifact.
    let again = publish(&registry, 1.0).await;
    let versions: Vec<u32> = registry
        .list_versions(&fraud())
        .await
        .unwrap()
        .iter()
        .map(|s| s.version.get())
        .collect();
    assert_eq!(versions, [1, 2, 3, 4]);
    assert_eq!(
        again.artifact.key,
        registry
            .manifest(&fraud(), v(1))
            .await
            .unwrap()
            .artifact
            .key
    );
}

pub async fn garbage_artifact_is_refused_and_nothing_is_written(b: &Backend) {
    let registry = b.registry();
    let cases: [(&str, Vec<u8>); 3] = [
        ("empty", vec![]),
        ("not msgpack", b"#!/bin/sh\nrm -rf /".to_vec()),
        ("truncated", toy_artifact(2.0).bytes[..20].to_vec()),
    ];
    for (why, bytes) in cases {
        let err = registry
            .publish(draft("mallory"), Bytes::from(bytes), None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::CorruptArtifact { .. }), "{why}: {err}");
    }
    let err = registry.list_versions(&fraud()).await.unwrap_err();
    assert!(matches!(err, Error::UnknownModel { .. }), "{err}");
    assert!(
        b.store
            .list(&ObjectKey::parse("models").unwrap())
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn wrong_upload_digest_is_refused(b: &Backend) {
    let registry = b.registry();
    let artifact = toy_artifact(3.0);
    let wrong = ArtifactDigest::of(b"something else");
    let err = registry
        .publish(draft("bob"), Bytes::from(artifact.bytes), Some(&wrong))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(registry.list_versions(&fraud()).await.is_err());
}

pub async fn unknown_model_version_and_alias_are_named(b: &Backend) {
    let registry = b.registry();
    let other = ModelName::parse("recommender").unwrap();
    let err = registry.manifest(&other, v(1)).await.unwrap_err();
    assert!(
        matches!(&err, Error::UnknownModel { model } if model == &other),
        "{err}"
    );

    publish(&registry, 1.0).await;
    let err = registry.manifest(&fraud(), v(9)).await.unwrap_err();
    assert!(
        matches!(err, Error::UnknownVersion { version, .. } if version == v(9)),
        "{err}"
    );
    assert!(
        err.to_string().contains("unknown version 9 of model fraud"),
        "{err}"
    );

    let err = registry.alias(&fraud(), &production()).await.unwrap_err();
    assert!(matches!(err, Error::UnknownAlias { .. }), "{err}");
}

pub async fn alias_moves_are_compare_and_swap(b: &Backend) {
    // Arrange
    let registry = b.registry();
    publish_many(&registry, 3).await;
    let who = change("gate", "beats champion");
    // Act + Assert: create (expects absent), move, then a stale expectation loses.
    registry
        .move_alias(&fraud(), &production(), v(1), None, &who)
        .await
        .unwrap();
    let err = registry
        .move_alias(&fraud(), &production(), v(2), None, &who)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AliasConflict { expected: None, actual: Some(a), .. } if a == v(1)),
        "{err}"
    );
    let moved = registry
        .move_alias(&fraud(), &production(), v(2), Some(v(1)), &who)
        .await
        .unwrap();
    assert_eq!(
        (moved.revision, moved.version, moved.previous),
        (2, v(2), Some(v(1)))
    );
    let err = registry
        .move_alias(&fraud(), &production(), v(3), Some(v(1)), &who)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AliasConflict { actual: Some(a), .. } if a == v(2)),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("points to version 2, not the expected version 1"),
        "{err}"
    );
    assert_eq!(production_of(&registry).await, v(2));

    let err = registry
        .move_alias(&fraud(), &production(), v(7), Some(v(2)), &who)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownVersion { .. }),
        "moving to a missing version: {err}"
    );
    assert_eq!(production_of(&registry).await, v(2));
}

pub async fn rollback_returns_to_the_previous_version(b: &Backend) {
    let registry = b.registry();
    publish_many(&registry, 2).await;
    let who = change("oncall", "v2 misbehaves");
    registry
        .move_alias(&fraud(), &production(), v(1), None, &who)
        .await
        .unwrap();
    let err = registry
        .rollback_alias(&fraud(), &production(), &who)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NothingToRollBack { .. }), "{err}");

    registry
        .move_alias(&fraud(), &production(), v(2), Some(v(1)), &who)
        .await
        .unwrap();
    let rolled = registry
        .rollback_alias(&fraud(), &production(), &who)
        .await
        .unwrap();
    assert_eq!(
        (
            rolled.record.version,
            rolled.record.previous,
            rolled.record.revision,
            rolled.record.rolled_back_from
        ),
        (v(1), Some(v(2)), 3, Some(v(2)))
    );
    assert_eq!(
        rolled.record.provenance.reason.as_deref(),
        Some("v2 misbehaves")
    );
    assert_eq!(production_of(&registry).await, v(1));
}

pub async fn archived_versions_cannot_be_aliased_and_aliased_ones_cannot_be_archived(b: &Backend) {
    let registry = b.registry();
    publish_many(&registry, 2).await;
    let who = change("ops", "cleanup");
    registry
        .move_alias(&fraud(), &production(), v(2), None, &who)
        .await
        .unwrap();

    let err = registry
        .archive_version(&fraud(), v(2), &who)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::VersionInUse { alias, .. } if alias == &production()),
        "{err}"
    );

    registry
        .archive_version(&fraud(), v(1), &who)
        .await
        .unwrap();
    registry
        .archive_version(&fraud(), v(1), &who)
        .await
        .unwrap();
    let states = registry.list_versions(&fraud()).await.unwrap();
    assert!(states[0].archived && !states[1].archived, "{states:?}");

    let err = registry
        .move_alias(&fraud(), &production(), v(1), Some(v(2)), &who)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::VersionArchived { .. }), "{err}");
}

pub async fn history_records_who_did_what_and_why_in_order(b: &Backend) {
    let registry = b.registry();
    publish(&registry, 1.0).await;
    publish(&registry, 2.0).await;
    registry
        .move_alias(
            &fraud(),
            &production(),
            v(1),
            None,
            &change("gate", "first model"),
        )
        .await
        .unwrap();
    let before_move = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    registry
        .move_alias(
            &fraud(),
            &production(),
            v(2),
            Some(v(1)),
            &change("carol", "better AUC"),
        )
        .await
        .unwrap();
    registry
        .archive_version(&fraud(), v(1), &change("dave", "superseded"))
        .await
        .unwrap();

    let history = registry.history(&fraud()).await.unwrap();
    let summary: Vec<String> = history
        .iter()
        .map(|e| match &e.kind {
            EventKind::Registered { version, .. } => {
                format!("registered {version} by {}", e.provenance.actor)
            }
            EventKind::AliasMoved {
                alias, from, to, ..
            } => {
                let from = from.map_or("none".to_owned(), |f| f.to_string());
                format!(
                    "{alias} {from}->{to} by {} ({})",
                    e.provenance.actor,
                    e.provenance.reason.clone().unwrap_or_default()
                )
            }
            EventKind::Archived { version } => {
                format!("archived {version} by {}", e.provenance.actor)
            }
            other => format!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "registered 1 by tester",
            "registered 2 by tester",
            "production none->1 by gate (first model)",
            "production 1->2 by carol (better AUC)",
            "archived 1 by dave",
        ]
    );
    let revisions = registry
        .alias_history(&fraud(), &production())
        .await
        .unwrap();
    assert_eq!(alias_version_at(&revisions, before_move), Some(v(1)));
    assert_eq!(alias_version_at(&revisions, chrono::Utc::now()), Some(v(2)));
    assert_eq!(
        alias_version_at(
            &revisions,
            revisions[0].provenance.at - chrono::Duration::seconds(1)
        ),
        None
    );
}

async fn damage_artifact(
    b: &Backend,
    damage: impl Fn(&mut Vec<u8>),
) -> shared_lib::registry::manifest::Manifest {
    let registry = b.registry();
    let manifest = publish(&registry, 4.0).await;
    let key = ObjectKey::parse(&manifest.artifact.key).unwrap();
    let mut bytes = b.store.get(&key).await.unwrap().to_vec();
    damage(&mut bytes);
    b.store
        .put(&key, Bytes::from(bytes), PutMode::Overwrite)
        .await
        .unwrap();
    manifest
}

pub async fn flipped_byte_in_a_stored_artifact_is_refused_on_load(b: &Backend) {
    let manifest = damage_artifact(b, |bytes| bytes[10] ^= 0x40).await;
    let err = b
        .registry()
        .load_model::<ToyModel>(&manifest, ModelKind::FraudRandomForest)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
}

pub async fn truncated_stored_artifact_is_refused_on_load(b: &Backend) {
    let manifest = damage_artifact(b, |bytes| bytes.truncate(bytes.len() / 2)).await;
    let err = b
        .registry()
        .load_model::<ToyModel>(&manifest, ModelKind::FraudRandomForest)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
}

pub async fn claim_without_manifest_is_invisible_and_its_number_is_skipped(b: &Backend) {
    // Arrange: a publisher took version 2 and died before writing its manifest.
    let registry = b.registry();
    publish(&registry, 1.0).await;
    let claim = ObjectKey::parse("models/fraud/versions/0000000002/claim.json").unwrap();
    b.store
        .put(&claim, Bytes::from_static(b"{}"), PutMode::CreateNew)
        .await
        .unwrap();
    // Act
    let next = publish(&registry, 2.0).await;
    // Assert
    assert_eq!(next.version, v(3));
    let versions: Vec<u32> = registry
        .list_versions(&fraud())
        .await
        .unwrap()
        .iter()
        .map(|s| s.version.get())
        .collect();
    assert_eq!(versions, [1, 3]);
    assert!(matches!(
        registry.manifest(&fraud(), v(2)).await,
        Err(Error::UnknownVersion { .. })
    ));
}

pub async fn stale_alias_head_hint_is_probed_past(b: &Backend) {
    let registry = b.registry();
    publish(&registry, 1.0).await;
    publish(&registry, 2.0).await;
    let who = change("gate", "promote");
    registry
        .move_alias(&fraud(), &production(), v(1), None, &who)
        .await
        .unwrap();
    registry
        .move_alias(&fraud(), &production(), v(2), Some(v(1)), &who)
        .await
        .unwrap();
    // A writer that died between the revision and the hint leaves the hint one behind.
    let head = ObjectKey::parse("models/fraud/aliases/production/head.json").unwrap();
    b.store
        .put(
            &head,
            Bytes::from_static(br#"{"revision":1}"#),
            PutMode::Overwrite,
        )
        .await
        .unwrap();

    assert_eq!(production_of(&registry).await, v(2));
    let err = registry
        .move_alias(&fraud(), &production(), v(1), Some(v(1)), &who)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AliasConflict { actual: Some(a), .. } if a == v(2)),
        "{err}"
    );
}

pub async fn concurrent_publishes_through_one_registry_get_distinct_consecutive_versions(
    b: &Backend,
) {
    let registry = b.registry();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let registry = registry.clone();
            tokio::spawn(async move { publish(&registry, f64::from(i)).await.version.get() })
        })
        .collect();
    let mut got = BTreeSet::new();
    for task in tasks {
        assert!(got.insert(task.await.unwrap()), "duplicate version");
    }
    assert_eq!(got, (1..=16).collect::<BTreeSet<u32>>());
    assert_eq!(registry.list_versions(&fraud()).await.unwrap().len(), 16);
}

pub async fn concurrent_alias_moves_with_the_same_expectation_have_one_winner(b: &Backend) {
    let registry = b.registry();
    publish_many(&registry, 5).await;
    registry
        .move_alias(&fraud(), &production(), v(1), None, &change("gate", "init"))
        .await
        .unwrap();
    let tasks: Vec<_> = (2..=5)
        .map(|target| {
            let registry = registry.clone();
            tokio::spawn(async move {
                registry
                    .move_alias(
                        &fraud(),
                        &AliasName::production(),
                        v(target),
                        Some(v(1)),
                        &change("racer", "race"),
                    )
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(record) => winners.push(record.version),
            Err(Error::AliasConflict { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(production_of(&registry).await, winners[0]);
    assert_eq!(
        registry
            .alias_history(&fraud(), &production())
            .await
            .unwrap()
            .len(),
        2
    );
}

// --- retention -------------------------------------------------------------------------------

fn keep_newest(n: u32) -> RetentionPolicy {
    RetentionPolicy::new(NonZeroU32::new(n), None).unwrap()
}

async fn artifact_objects(b: &Backend) -> Vec<String> {
    b.store
        .list(&ObjectKey::parse("models/fraud/artifacts").unwrap())
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect()
}

async fn statuses(registry: &shared_lib::registry::Registry) -> Vec<(u32, &'static str)> {
    registry
        .list_versions(&fraud())
        .await
        .unwrap()
        .iter()
        .map(|s| (s.version.get(), s.status().as_str()))
        .collect()
}

pub async fn sixty_publishes_with_retention_ten_keep_ten_plus_aliased_artifacts_and_time_travel_answers(
    b: &Backend,
) {
    // Arrange: 60 runs, each publishing distinct bytes then applying "keep the newest 10", as
    // the registry service does after each registration; production is promoted now and then.
    let registry = b.registry();
    let promoted_at = [5, 20, 35, 50, 55];
    let mut champion: Option<ModelVersion> = None;
    let mut seen = Vec::new(); // (time, what production was then)
    for i in 1..=60 {
        let manifest = publish(&registry, f64::from(i)).await;
        if promoted_at.contains(&i) {
            registry
                .move_alias(
                    &fraud(),
                    &production(),
                    manifest.version,
                    champion,
                    &change("gate", "beats champion"),
                )
                .await
                .unwrap();
            champion = Some(manifest.version);
        }
        registry
            .retire(
                &fraud(),
                &keep_newest(10),
                &change("registry", "retention"),
                false,
            )
            .await
            .unwrap();
        seen.push((chrono::Utc::now(), champion));
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }

    // Assert: v51..=v60 and v50 (production from before v51 until v55) stay; 49 are deleted.
    let live: Vec<u32> = statuses(&registry)
        .await
        .into_iter()
        .filter(|(_, status)| *status != "deleted")
        .map(|(v, _)| v)
        .collect();
    assert_eq!(live, (50..=60).collect::<Vec<_>>());
    let artifacts = artifact_objects(b).await;
    let aliased_beyond_newest = 1;
    assert!(
        artifacts.len() <= 10 + aliased_beyond_newest,
        "{artifacts:?}"
    );
    assert_eq!(artifacts.len(), live.len());
    // Every manifest remains, and the history names each deletion.
    assert_eq!(registry.list_versions(&fraud()).await.unwrap().len(), 60);
    registry.manifest(&fraud(), v(1)).await.unwrap();
    let history = registry.history(&fraud()).await.unwrap();
    let deleted = history
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Deleted { .. }))
        .count();
    assert_eq!(deleted, 49);
    // "Which version was production at T" answers, with a loadable model, for every T in
    // the window (since v51 was created).
    let window_start = registry.manifest(&fraud(), v(51)).await.unwrap().created_at;
    let revisions = registry
        .alias_history(&fraud(), &production())
        .await
        .unwrap();
    let in_window: Vec<_> = seen.iter().filter(|(t, _)| *t >= window_start).collect();
    assert_eq!(in_window.len(), 10);
    for (t, expected) in in_window {
        let answer = alias_version_at(&revisions, *t);
        assert_eq!(answer, *expected, "at {t}");
        let manifest = registry.manifest(&fraud(), answer.unwrap()).await.unwrap();
        registry
            .load_model::<ToyModel>(&manifest, ModelKind::FraudRandomForest)
            .await
            .unwrap();
    }
    // Before the window the answer is still known, though that model is gone.
    assert_eq!(alias_version_at(&revisions, seen[9].0), Some(v(5)));
}

pub async fn shared_artifacts_are_deleted_only_when_no_retained_version_references_them(
    b: &Backend,
) {
    // Arrange: v1 and v3 share bytes A; v2 has bytes B.
    let registry = b.registry();
    let v1 = publish(&registry, 1.0).await;
    let v2 = publish(&registry, 2.0).await;
    let v3 = publish(&registry, 1.0).await;
    assert_eq!(v1.artifact.key, v3.artifact.key);
    // Act
    let report = registry
        .retire(&fraud(), &keep_newest(1), &change("ops", "trim"), false)
        .await
        .unwrap();
    // Assert: both old versions are deleted, but only B's object is removed.
    assert_eq!(report.retired, [v(1), v(2)]);
    assert_eq!(report.artifacts_deleted, [v2.artifact.key.as_str()]);
    assert_eq!(artifact_objects(b).await, [v3.artifact.key.as_str()]);
    registry
        .load_model::<ToyModel>(&v3, ModelKind::FraudRandomForest)
        .await
        .unwrap();
    // v1 is deleted even though its bytes are still stored for v3.
    let err = registry.fetch_artifact(&v1).await.unwrap_err();
    assert!(
        matches!(err, Error::VersionDeleted { version, .. } if version == v(1)),
        "{err}"
    );
    // Publishing B's bytes again stores them again.
    let v4 = publish(&registry, 2.0).await;
    assert_eq!(v4.artifact.key, v2.artifact.key);
    registry
        .load_model::<ToyModel>(&v4, ModelKind::FraudRandomForest)
        .await
        .unwrap();
    // A second run finds nothing more to do.
    let again = registry
        .retire(&fraud(), &keep_newest(2), &change("ops", "trim"), false)
        .await
        .unwrap();
    assert!(
        again.retired.is_empty() && again.artifacts_deleted.is_empty(),
        "{again:?}"
    );
}

pub async fn kept_and_aliased_versions_survive_retention_and_unkeeping_releases(b: &Backend) {
    // Arrange
    let registry = b.registry();
    publish_many(&registry, 5).await;
    let staging = AliasName::parse("staging").unwrap();
    registry
        .move_alias(&fraud(), &staging, v(1), None, &change("qa", "soak"))
        .await
        .unwrap();
    assert!(
        registry
            .keep_version(
                &fraud(),
                v(2),
                true,
                &change("oncall", "pinned by MODEL_VERSION=2")
            )
            .await
            .unwrap()
    );
    assert!(
        !registry
            .keep_version(&fraud(), v(2), true, &change("oncall", "again"))
            .await
            .unwrap(),
        "keeping twice changes nothing"
    );
    // Act + Assert: a dry run reports and changes nothing.
    let dry = registry
        .retire(&fraud(), &keep_newest(1), &change("ops", "trim"), true)
        .await
        .unwrap();
    assert_eq!(dry.retired, [v(3), v(4)]);
    assert_eq!(dry.artifacts_deleted.len(), 2);
    assert_eq!(artifact_objects(b).await.len(), 5);
    assert!(
        statuses(&registry)
            .await
            .iter()
            .all(|(_, s)| *s == "active")
    );
    let reasons: Vec<(u32, Vec<String>)> = dry
        .retained
        .iter()
        .map(|r| (r.version.get(), r.reasons.clone()))
        .collect();
    assert_eq!(
        reasons,
        [
            (1, vec!["alias staging points to it".to_owned()]),
            (2, vec!["marked to keep".to_owned()]),
            (5, vec!["among the 1 newest versions".to_owned()]),
        ]
    );

    registry
        .retire(&fraud(), &keep_newest(1), &change("ops", "trim"), false)
        .await
        .unwrap();
    assert_eq!(
        statuses(&registry).await,
        [
            (1, "active"),
            (2, "active"),
            (3, "deleted"),
            (4, "deleted"),
            (5, "active")
        ]
    );
    assert!(registry.list_versions(&fraud()).await.unwrap()[1].kept);

    registry
        .keep_version(&fraud(), v(2), false, &change("oncall", "unpinned"))
        .await
        .unwrap();
    let report = registry
        .retire(&fraud(), &keep_newest(1), &change("ops", "trim"), false)
        .await
        .unwrap();
    assert_eq!(report.retired, [v(2)]);
    let err = registry
        .keep_version(&fraud(), v(3), true, &change("oncall", "too late"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::VersionDeleted { .. }), "{err}");

    // The history tells who kept, unkept and deleted what, and why.
    let history: Vec<String> = registry
        .history(&fraud())
        .await
        .unwrap()
        .iter()
        .filter_map(|e| {
            let what = match &e.kind {
                EventKind::Kept { version } => format!("kept {version}"),
                EventKind::Unkept { version } => format!("unkept {version}"),
                EventKind::Deleted { version } => format!("deleted {version}"),
                _ => return None,
            };
            Some(format!(
                "{what} by {} ({})",
                e.provenance.actor,
                e.provenance.reason.clone().unwrap_or_default()
            ))
        })
        .collect();
    assert_eq!(
        history,
        [
            "kept 2 by oncall (pinned by MODEL_VERSION=2)",
            "deleted 3 by ops (trim)",
            "deleted 4 by ops (trim)",
            "unkept 2 by oncall (unpinned)",
            "deleted 2 by ops (trim)",
        ]
    );
}

pub async fn deleted_versions_keep_their_manifest_and_cannot_be_loaded_aliased_or_archived(
    b: &Backend,
) {
    let registry = b.registry();
    let first = publish(&registry, 1.0).await;
    publish_many(&registry, 2).await;
    registry
        .retire(&fraud(), &keep_newest(1), &change("ops", "trim"), false)
        .await
        .unwrap();
    let who = change("ops", "try");

    assert_eq!(registry.manifest(&fraud(), v(1)).await.unwrap(), first);
    assert!(registry.is_deleted(&fraud(), v(1)).await.unwrap());
    let refusals = [
        registry
            .load_model::<ToyModel>(&first, ModelKind::FraudRandomForest)
            .await
            .map(|_| ())
            .unwrap_err(),
        registry
            .move_alias(&fraud(), &production(), v(1), None, &who)
            .await
            .map(|_| ())
            .unwrap_err(),
        registry
            .archive_version(&fraud(), v(1), &who)
            .await
            .unwrap_err(),
    ];
    for err in refusals {
        assert!(matches!(err, Error::VersionDeleted { .. }), "{err}");
        assert!(err.to_string().contains("deleted by retention"), "{err}");
    }
}

// --- rollback --------------------------------------------------------------------------------

/// Publishes v1..=v`n`, moving production to each right after publishing it.
async fn promote_each(registry: &shared_lib::registry::Registry, n: u32) {
    for i in 1..=n {
        let manifest = publish(registry, f64::from(i)).await;
        registry
            .move_alias(
                &fraud(),
                &production(),
                manifest.version,
                (i > 1).then(|| v(i - 1)),
                &change("gate", "promote"),
            )
            .await
            .unwrap();
    }
}

pub async fn rollbacks_in_a_row_keep_going_back(b: &Backend) {
    // Arrange: production went v1 -> v2 -> v3 -> v4.
    let registry = b.registry();
    promote_each(&registry, 4).await;
    let who = change("oncall", "bad model");
    // Act + Assert: each rollback goes one further back, never back to the version it left.
    for (expected, left) in [(3, 4), (2, 3), (1, 2)] {
        let rolled = registry
            .rollback_alias(&fraud(), &production(), &who)
            .await
            .unwrap();
        assert_eq!(
            (rolled.record.version, rolled.record.rolled_back_from),
            (v(expected), Some(v(left)))
        );
        assert_eq!(production_of(&registry).await, v(expected));
        assert!(
            rolled.explanation.starts_with(&format!(
                "v{expected} is the most recent version production held before v{left}"
            )),
            "{}",
            rolled.explanation
        );
    }
    let err = registry
        .rollback_alias(&fraud(), &production(), &who)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NothingToRollBack { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("v2 (rolled back from), v3 (rolled back from), v4 (rolled back from)"),
        "{err}"
    );
    assert_eq!(production_of(&registry).await, v(1));
}

pub async fn rollback_passes_over_archived_and_deleted_versions(b: &Backend) {
    // Arrange: production v1 -> ... -> v5; v4 archived after it was left; v2 kept; retention
    // (newest 1) then deletes v1 and v3, which production held before the window.
    let registry = b.registry();
    promote_each(&registry, 3).await;
    let who = change("ops", "setup");
    let v4 = publish(&registry, 4.0).await;
    registry
        .move_alias(&fraud(), &production(), v4.version, Some(v(3)), &who)
        .await
        .unwrap();
    let v5 = publish(&registry, 5.0).await;
    registry
        .move_alias(&fraud(), &production(), v5.version, Some(v(4)), &who)
        .await
        .unwrap();
    registry
        .archive_version(&fraud(), v(4), &who)
        .await
        .unwrap();
    registry
        .keep_version(&fraud(), v(2), true, &who)
        .await
        .unwrap();
    let report = registry
        .retire(&fraud(), &keep_newest(1), &who, false)
        .await
        .unwrap();
    assert_eq!(report.retired, [v(1), v(3)]);
    // Act
    let rolled = registry
        .rollback_alias(&fraud(), &production(), &change("oncall", "v5 is bad"))
        .await
        .unwrap();
    // Assert
    assert_eq!(rolled.record.version, v(2));
    let skipped: Vec<(u32, SkipReason)> = rolled
        .skipped
        .iter()
        .map(|s| (s.version.get(), s.reason))
        .collect();
    assert_eq!(
        skipped,
        [(4, SkipReason::Archived), (3, SkipReason::Deleted)]
    );
    assert!(
        rolled
            .explanation
            .ends_with("passed over v4 (archived), v3 (deleted)"),
        "{}",
        rolled.explanation
    );
}
