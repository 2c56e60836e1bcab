//! The cache's bound, on real directories: what survives a prune and what a restart can recall.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::{ArtifactCache, PendingArtifact};
use crate::Error;
use crate::artifact::{ArtifactDigest, ModelKind};
use crate::model_id::{ModelName, ModelVersion};
use crate::registry::manifest::{ArtifactRef, Manifest};
use crate::serving::selection::Selector;

fn fraud() -> ModelName {
    ModelName::parse("fraud").unwrap()
}

fn selector(s: &str) -> Selector {
    s.parse().unwrap()
}

/// Artifact `n`: distinct bytes per `n`, so a distinct digest and file.
fn artifact(n: u32) -> Bytes {
    Bytes::from(format!("artifact {n}"))
}

fn digest(n: u32) -> String {
    ArtifactDigest::of(&artifact(n)).to_string()
}

/// Version `version` of `fraud`, whose artifact is artifact `n`.
fn manifest(version: u32, n: u32) -> Manifest {
    let bytes = artifact(n);
    let sha256 = ArtifactDigest::of(&bytes);
    Manifest::new(
        crate::testing::fraud_draft("test"),
        ModelVersion::new(version).unwrap(),
        ArtifactRef {
            key: format!("fraud/artifacts/{sha256}.msgpack"),
            size: bytes.len() as u64,
            sha256,
            kind: ModelKind::FraudRandomForest,
            format_version: 1,
        },
    )
}

/// The copy a load of artifact `n` leaves (in two writes, as a load's reads), if the cache
/// asks for one.
async fn copied(cache: &ArtifactCache, manifest: &Manifest, n: u32) -> Option<PendingArtifact> {
    let mut copy = cache.begin(manifest).await?;
    let bytes = artifact(n);
    copy.write(&bytes[..3]);
    copy.write(&bytes[3..]);
    Some(copy)
}

/// Remembers version `version` (artifact `n`) for `slot`, as a load of it does.
async fn remember(cache: &ArtifactCache, slot: &str, version: u32, n: u32) {
    let manifest = manifest(version, n);
    let copy = copied(cache, &manifest, n).await;
    cache
        .remember(&selector(slot), &manifest, copy)
        .await
        .unwrap();
}

fn files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir.join("fraud"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// The digests of the artifact files in the cache.
fn artifacts(dir: &Path) -> BTreeSet<String> {
    files(dir)
        .into_iter()
        .filter_map(|f| f.strip_suffix(".msgpack").map(str::to_owned))
        .collect()
}

fn digests(ns: &[u32]) -> BTreeSet<String> {
    ns.iter().map(|&n| digest(n)).collect()
}

async fn recalled_version(cache: &ArtifactCache, slot: &str) -> Option<u32> {
    let (manifest, mut file) = cache.recall(&fraud(), &selector(slot)).await.unwrap()?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
    assert_eq!(ArtifactDigest::of(&bytes), manifest.artifact.sha256);
    Some(manifest.version.get())
}

#[tokio::test]
async fn one_selector_keeps_its_current_artifact_and_k_older_ones() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let cache = ArtifactCache::new(dir.path(), 2);

    // Act: twenty versions, each with its own artifact, checking the bound after every one.
    for n in 1..=20 {
        remember(&cache, "production", n, n).await;
        let kept = artifacts(dir.path()).len();
        assert!(kept <= 3, "after version {n}: {kept} artifacts kept");
    }

    // Assert: the three newest, two JSON files, nothing else; the newest comes back.
    assert_eq!(artifacts(dir.path()), digests(&[18, 19, 20]));
    assert_eq!(files(dir.path()).len(), 3 + 2, "{:?}", files(dir.path()));
    let history: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("fraud/production.history.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(history["artifacts"].as_array().unwrap().len(), 3);
    assert_eq!(recalled_version(&cache, "production").await, Some(20));
}

#[tokio::test]
async fn keeping_none_leaves_only_the_current_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ArtifactCache::new(dir.path(), 0);

    for n in 1..=5 {
        remember(&cache, "production", n, n).await;
    }

    assert_eq!(artifacts(dir.path()), digests(&[5]));
    assert_eq!(recalled_version(&cache, "production").await, Some(5));
}

#[tokio::test]
async fn remembering_the_same_artifact_again_does_not_use_a_second_place() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ArtifactCache::new(dir.path(), 1);

    // A restart reloads the version it already cached; then 2 and back to 1 (a rollback).
    for (version, n) in [(1, 1), (1, 1), (2, 2), (1, 1), (3, 3)] {
        remember(&cache, "production", version, n).await;
    }

    assert_eq!(artifacts(dir.path()), digests(&[3, 1]));
}

#[tokio::test]
async fn an_artifact_shared_by_two_selectors_survives_while_either_keeps_it() {
    // Arrange: `production` and the pinned B slot `1` both serve artifact 1.
    let dir = tempfile::tempdir().unwrap();
    let cache = ArtifactCache::new(dir.path(), 1);
    remember(&cache, "production", 1, 1).await;
    remember(&cache, "1", 1, 1).await;
    // The shadow slot `staging` served artifact 1, then moved on to 2: 1 is its older one.
    remember(&cache, "staging", 1, 1).await;
    remember(&cache, "staging", 2, 2).await;

    // Act: production moves well past artifact 1.
    for n in 3..=6 {
        remember(&cache, "production", n, n).await;
    }

    // Assert: 1 is still the pinned slot's current artifact and staging's older one.
    assert_eq!(artifacts(dir.path()), digests(&[6, 5, 1, 2]));
    assert_eq!(recalled_version(&cache, "1").await, Some(1));

    // Act: the pinned slot's manifest goes (as if it was never configured) and staging moves on.
    std::fs::remove_file(dir.path().join("fraud/1.json")).unwrap();
    std::fs::remove_file(dir.path().join("fraud/1.history.json")).unwrap();
    remember(&cache, "staging", 7, 7).await;

    // Assert: nothing names artifact 1 any more.
    assert_eq!(artifacts(dir.path()), digests(&[6, 5, 7, 2]));
}

/// Writes what a cache from before histories looked like: manifests and artifacts only.
fn write_legacy_entry(dir: &Path, slot: &str, version: u32, n: u32) {
    let model_dir = dir.join("fraud");
    std::fs::create_dir_all(&model_dir).unwrap();
    std::fs::write(
        model_dir.join(format!("{}.msgpack", digest(n))),
        artifact(n),
    )
    .unwrap();
    let json = serde_json::to_vec(&manifest(version, n)).unwrap();
    std::fs::write(model_dir.join(format!("{slot}.json")), json).unwrap();
}

#[tokio::test]
async fn a_cache_written_before_histories_existed_is_brought_within_the_bound() {
    // Arrange: ten versions followed by production, staging last on 3, and an operator's note.
    let dir = tempfile::tempdir().unwrap();
    for n in 1..=10 {
        write_legacy_entry(dir.path(), "production", n, n);
    }
    write_legacy_entry(dir.path(), "staging", 3, 3);
    std::fs::write(dir.path().join("fraud/notes.txt"), "hands off").unwrap();
    let cache = ArtifactCache::new(dir.path(), 1);

    // Act
    remember(&cache, "production", 11, 11).await;

    // Assert: production's new and previous current, staging's current; the note is not ours.
    assert_eq!(artifacts(dir.path()), digests(&[11, 10, 3]));
    assert!(files(dir.path()).contains("notes.txt"));
    assert_eq!(recalled_version(&cache, "staging").await, Some(3));
    assert_eq!(recalled_version(&cache, "production").await, Some(11));
}

#[tokio::test]
async fn a_corrupt_history_is_rebuilt_and_never_fails_a_load() {
    // Arrange: production served 1 then 2; staging serves 5; then both histories are damaged.
    let dir = tempfile::tempdir().unwrap();
    let cache = ArtifactCache::new(dir.path(), 2);
    remember(&cache, "production", 1, 1).await;
    remember(&cache, "production", 2, 2).await;
    remember(&cache, "staging", 5, 5).await;
    let history = dir.path().join("fraud/production.history.json");
    std::fs::write(&history, "{not json").unwrap();
    std::fs::write(
        dir.path().join("fraud/staging.history.json"),
        r#"{"artifacts":[{"sha256":"not-a-digest","version":5}]}"#,
    )
    .unwrap();

    // Act: recall does not need the history; remember rebuilds it.
    assert_eq!(recalled_version(&cache, "production").await, Some(2));
    remember(&cache, "production", 3, 3).await;

    // Assert: the current manifests kept their artifacts (1 was only in the lost history).
    assert_eq!(artifacts(dir.path()), digests(&[3, 2, 5]));
    let rebuilt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&history).unwrap()).unwrap();
    assert_eq!(rebuilt["artifacts"].as_array().unwrap().len(), 2);
    assert_eq!(recalled_version(&cache, "production").await, Some(3));
    assert_eq!(recalled_version(&cache, "staging").await, Some(5));
}

#[tokio::test]
async fn temp_files_left_by_a_crash_are_deleted_and_fresh_ones_kept() {
    // Arrange: one temp file from two hours ago, one being written now.
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("fraud");
    std::fs::create_dir_all(&model_dir).unwrap();
    let stale = model_dir.join(format!("{}.tmp-0001", digest(1)));
    let fresh = model_dir.join(format!("{}.tmp-0002", digest(2)));
    std::fs::write(&stale, "partial").unwrap();
    std::fs::write(&fresh, "partial").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(2 * 3600))
        .unwrap();
    let cache = ArtifactCache::new(dir.path(), 2);

    // Act
    remember(&cache, "production", 3, 3).await;

    // Assert
    assert!(!stale.exists());
    assert!(fresh.exists());
}

#[tokio::test]
async fn a_copy_cut_short_or_of_a_failed_load_is_not_kept_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ArtifactCache::new(dir.path(), 1);
    let v1 = manifest(1, 1);

    // A copy of 4 of the artifact's 10 bytes; then a load that fails, dropping its copy.
    let mut short = cache.begin(&v1).await.unwrap();
    short.write(&artifact(1)[..4]);
    let cut = cache
        .remember(&selector("production"), &v1, Some(short))
        .await
        .unwrap_err();
    drop(cache.begin(&v1).await.unwrap());

    assert!(
        matches!(
            cut,
            Error::SizeMismatch {
                expected: 10,
                actual: 4
            }
        ),
        "{cut}"
    );
    let left: Vec<String> = files(dir.path())
        .into_iter()
        .filter(|f| !f.ends_with(".json"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(recalled_version(&cache, "production").await, None);
}

#[tokio::test]
async fn an_artifact_already_cached_is_not_copied_again() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ArtifactCache::new(dir.path(), 1);
    remember(&cache, "production", 1, 1).await;

    // The pinned slot `1` loads the same artifact: the cache asks for no copy.
    let copy = cache.begin(&manifest(1, 1)).await;
    assert!(copy.is_none());
    cache
        .remember(&selector("1"), &manifest(1, 1), copy)
        .await
        .unwrap();

    assert_eq!(recalled_version(&cache, "1").await, Some(1));
    assert_eq!(artifacts(dir.path()), digests(&[1]));
}
