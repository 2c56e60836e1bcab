//! What a cache keeps: per selector, a history of the artifacts it remembered, newest first, and
//! a prune that deletes every artifact no history (cut to the bound) or current manifest names.
//!
//! Histories are a record, not the authority: a missing one (a cache written before they existed)
//! or an unreadable one starts again from the selector's current manifest, and a selector's
//! current manifest protects its artifact whatever its history says. So a damaged history can
//! cost older artifacts, never the one a restart would serve, and never fails a load.

use std::collections::{BTreeSet, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::artifact::ArtifactDigest;
use crate::model_id::ModelVersion;
use crate::registry::manifest::Manifest;
use crate::serving::selection::Selector;

/// How temp files' extensions start (`<name>.tmp-<uuid>`), so a prune can recognise them.
pub(super) const TEMP_PREFIX: &str = "tmp-";
const HISTORY_SUFFIX: &str = ".history.json";
const MANIFEST_SUFFIX: &str = ".json";
const ARTIFACT_SUFFIX: &str = ".msgpack";
/// A temp file this old is a crashed write's leftover, not a write in progress.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// The artifacts one selector remembered, newest first; the first is its current one.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct History {
    artifacts: Vec<Remembered>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Remembered {
    sha256: ArtifactDigest,
    version: ModelVersion,
    /// When this cache recorded it (when the history was rebuilt, for a rebuilt entry).
    remembered_at: DateTime<Utc>,
}

impl Remembered {
    fn of(manifest: &Manifest) -> Self {
        Self {
            sha256: manifest.artifact.sha256.clone(),
            version: manifest.version,
            remembered_at: Utc::now(),
        }
    }
}

impl History {
    /// The history of `selector` in `dir`, or one rebuilt from its current manifest.
    pub(super) async fn read_or_rebuild(dir: &Path, selector: &Selector) -> Self {
        let name = selector.to_string();
        let path = history_path(dir, &name);
        match tokio::fs::read(&path).await {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(history) => return history,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "Model cache history is unreadable; rebuilding it from the current manifest.");
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "Model cache history is unreadable; rebuilding it from the current manifest.");
            }
        }
        let current = tokio::fs::read(manifest_path(dir, &name))
            .await
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Manifest>(&bytes).ok());
        Self {
            artifacts: current.iter().map(Remembered::of).collect(),
        }
    }

    /// Puts `manifest`'s artifact first and keeps at most `keep` older ones.
    pub(super) fn record(&mut self, manifest: &Manifest, keep: usize) {
        self.artifacts
            .retain(|r| r.sha256 != manifest.artifact.sha256);
        self.artifacts.insert(0, Remembered::of(manifest));
        self.artifacts.truncate(keep.saturating_add(1));
    }

    pub(super) async fn write(&self, dir: &Path, selector: &Selector) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        super::write_atomic(&history_path(dir, &selector.to_string()), &json).await
    }
}

/// What a prune deleted and kept.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pruned {
    pub artifacts: usize,
    pub temp_files: usize,
    pub kept: usize,
}

impl Pruned {
    pub(super) fn any(self) -> bool {
        self.artifacts + self.temp_files > 0
    }
}

/// Deletes from the model directory `dir` the artifacts that no selector keeps (its current
/// manifest's, and the first `keep + 1` of its history) and temp files left by crashed writes.
/// Unknown files are left alone.
///
/// The directory is listed before any history is read. `remember` writes a history entry before
/// its artifact, so an artifact in the listing has its entry written already, and another process
/// writing into the same directory cannot lose a new artifact to this prune.
///
/// # Errors
/// The directory cannot be listed, or a file cannot be deleted.
pub(super) async fn prune(dir: &Path, keep: usize) -> io::Result<Pruned> {
    let mut artifacts = Vec::new();
    let mut temps = Vec::new();
    let mut selectors = BTreeSet::new();
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        match classify(name) {
            Some(Entry::Artifact(digest)) => artifacts.push((digest, entry.path())),
            Some(Entry::Temp) => temps.push(entry.path()),
            Some(Entry::Selector(selector)) => {
                selectors.insert(selector.to_owned());
            }
            None => {}
        }
    }

    let mut kept = HashSet::new();
    for selector in &selectors {
        kept.extend(
            read_history(dir, selector)
                .await
                .take(keep.saturating_add(1)),
        );
        kept.extend(read_current(dir, selector).await);
    }

    let mut pruned = Pruned::default();
    for (digest, path) in artifacts {
        if kept.contains(&digest) {
            pruned.kept += 1;
        } else if remove(&path).await? {
            pruned.artifacts += 1;
        }
    }
    for path in temps {
        if is_stale(&path).await && remove(&path).await? {
            pruned.temp_files += 1;
        }
    }
    Ok(pruned)
}

enum Entry<'a> {
    Artifact(ArtifactDigest),
    Temp,
    /// A selector's manifest or history.
    Selector(&'a str),
}

fn classify(name: &str) -> Option<Entry<'_>> {
    if let Some(stem) = name.strip_suffix(ARTIFACT_SUFFIX) {
        // Exactly `<hex>.msgpack`, as remember names them (parsing also accepts `sha256:<hex>`).
        return stem
            .parse::<ArtifactDigest>()
            .ok()
            .filter(|digest| digest.as_hex() == stem)
            .map(Entry::Artifact);
    }
    let extension = Path::new(name).extension()?.to_str()?;
    if extension.starts_with(TEMP_PREFIX) {
        return Some(Entry::Temp);
    }
    let stem = name
        .strip_suffix(HISTORY_SUFFIX)
        .or_else(|| name.strip_suffix(MANIFEST_SUFFIX))?;
    (!stem.is_empty() && !stem.contains('.')).then_some(Entry::Selector(stem))
}

/// The digests in a selector's history, newest first; none when it is missing or unreadable.
async fn read_history(dir: &Path, selector: &str) -> impl Iterator<Item = ArtifactDigest> {
    let history: History = tokio::fs::read(history_path(dir, selector))
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    history.artifacts.into_iter().map(|r| r.sha256)
}

/// The artifact of a selector's current manifest. Only the digest is read, so a manifest this
/// build cannot fully parse still protects its artifact.
async fn read_current(dir: &Path, selector: &str) -> Option<ArtifactDigest> {
    #[derive(Deserialize)]
    struct Current {
        artifact: CurrentArtifact,
    }
    #[derive(Deserialize)]
    struct CurrentArtifact {
        sha256: ArtifactDigest,
    }
    let bytes = tokio::fs::read(manifest_path(dir, selector)).await.ok()?;
    serde_json::from_slice::<Current>(&bytes)
        .ok()
        .map(|c| c.artifact.sha256)
}

async fn is_stale(path: &Path) -> bool {
    let modified = tokio::fs::metadata(path).await.and_then(|m| m.modified());
    modified.is_ok_and(|at| {
        SystemTime::now()
            .duration_since(at)
            .is_ok_and(|age| age > STALE_TEMP)
    })
}

/// Deletes `path`; false when it was already gone (another prune got there first).
async fn remove(path: &Path) -> io::Result<bool> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn history_path(dir: &Path, selector: &str) -> PathBuf {
    dir.join(format!("{selector}{HISTORY_SUFFIX}"))
}

/// `<dir>/<selector>.json`: the manifest a selector last served.
pub(super) fn manifest_path(dir: &Path, selector: &str) -> PathBuf {
    dir.join(format!("{selector}{MANIFEST_SUFFIX}"))
}

/// `<dir>/<sha256>.msgpack`: an artifact, shared by every selector that remembered it.
pub(super) fn artifact_path(dir: &Path, digest: &ArtifactDigest) -> PathBuf {
    dir.join(format!("{digest}{ARTIFACT_SUFFIX}"))
}
