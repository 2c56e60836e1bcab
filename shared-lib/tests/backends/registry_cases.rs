use std::collections::BTreeSet;

use bytes::Bytes;
use shared_lib::Error;
use shared_lib::artifact::{ArtifactDigest, ModelKind};
use shared_lib::model_id::{AliasName, ModelName, ModelVersion};
use shared_lib::registry::records::{EventKind, alias_version_at};
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
        (rolled.version, rolled.previous, rolled.revision),
        (v(1), Some(v(2)), 3)
    );
    assert_eq!(rolled.provenance.reason.as_deref(), Some("v2 misbehaves"));
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
