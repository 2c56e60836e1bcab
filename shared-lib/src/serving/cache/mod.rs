//! The last-good cache: artifacts that loaded, kept on local disk, so a restart during a store
//! outage still serves (`MODEL_CACHE_DIR`), in bounded space (`MODEL_CACHE_KEEP`).
//!
//! Layout, per model directory `<dir>/<model>/`:
//! - `<selector>.json`: the manifest last served for that selector, what [`ArtifactCache::recall`]
//!   loads;
//! - `<selector>.history.json`: the artifacts that selector remembered, newest first: its current
//!   one and at most `keep` older ones (`retention`);
//! - `<sha256>.msgpack`: the artifacts, one file however many selectors share it.
//!
//! Selectors never contain a dot, so the two JSON names cannot collide. Entries are written
//! atomically (temp file + rename). An artifact is copied into its temp file as the load reads
//! it from the store ([`PendingArtifact`]), and renamed into place only once the load has
//! verified it and the version is installed: the cache never reads the store again, so the
//! version a pod served when the store died is the one a restart recalls. A recalled artifact is
//! verified as it loads, like any load. After each `remember`, artifacts that no selector's history or
//! current manifest names are deleted, so a cache holds at most `keep + 1` artifacts per
//! selector it has served; without that, an `emptyDir` fills with every version a long-lived
//! pod ever followed and the pod is evicted.

mod retention;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::selection::Selector;
use crate::Error;
use crate::model_id::ModelName;
use crate::registry::manifest::Manifest;
use retention::{History, artifact_path, manifest_path};

#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    keep: usize,
    /// One `remember` at a time per cache, so two slots never interleave their history updates
    /// and prunes. Separate processes sharing a directory are covered by the write order instead
    /// (see [`retention::prune`]).
    writing: Arc<tokio::sync::Mutex<()>>,
}

impl ArtifactCache {
    /// A cache in `dir` keeping, per selector, the current artifact and `keep` older ones.
    pub fn new(dir: impl Into<PathBuf>, keep: usize) -> Self {
        Self {
            dir: dir.into(),
            keep,
            writing: Arc::default(),
        }
    }

    fn model_dir(&self, model: &ModelName) -> PathBuf {
        self.dir.join(model.as_str())
    }

    /// A temp file for `manifest`'s artifact, for the load to copy it into as it reads it;
    /// `None` when the cache holds that artifact already, or the file cannot be created (the
    /// load goes on; the version is then not cached, and that is logged).
    pub async fn begin(&self, manifest: &Manifest) -> Option<PendingArtifact> {
        let dir = self.model_dir(&manifest.model);
        let path = artifact_path(&dir, &manifest.artifact.sha256);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return None;
        }
        let tmp = temp_path(&path);
        let created = async {
            tokio::fs::create_dir_all(&dir).await?;
            tokio::fs::File::create(&tmp).await
        }
        .await;
        match created {
            Ok(file) => Some(PendingArtifact {
                tmp,
                file: Some(file.into_std().await),
                written: 0,
            }),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "Cannot copy the artifact into the last-good cache.");
                None
            }
        }
    }

    /// Remembers `manifest` and its artifact as last-good for `selector`, then deletes the
    /// artifacts no selector keeps any more. `copied` is the artifact as the load copied it
    /// ([`ArtifactCache::begin`]): renamed into place unless the cache holds the artifact
    /// already. Without either, only the history is updated, and the error says so.
    ///
    /// The history is written before the copy is renamed into place, so a concurrent prune that
    /// lists the new artifact also finds it referenced. The copy is written while the version
    /// loads, before this prunes, so the directory holds at most the bound plus the artifact
    /// being copied (the sizing the README gives for an `emptyDir`). A failed prune is logged,
    /// not returned: the entry itself was remembered.
    ///
    /// # Errors
    /// [`Error::Store`] when the directory cannot be written or there is no artifact to keep,
    /// [`Error::SizeMismatch`] when the copy is not the manifest's size.
    pub async fn remember(
        &self,
        selector: &Selector,
        manifest: &Manifest,
        copied: Option<PendingArtifact>,
    ) -> Result<(), Error> {
        let _writing = self.writing.lock().await;
        let dir = self.model_dir(&manifest.model);
        let fail = |e: std::io::Error| Error::store("cache", dir.display().to_string(), e);
        tokio::fs::create_dir_all(&dir).await.map_err(fail)?;

        let mut history = History::read_or_rebuild(&dir, selector).await;
        history.record(manifest, self.keep);
        history.write(&dir, selector).await.map_err(fail)?;
        self.prune(&dir).await;

        let artifact_path = artifact_path(&dir, &manifest.artifact.sha256);
        if !tokio::fs::try_exists(&artifact_path).await.unwrap_or(false) {
            let Some(copied) = copied else {
                return Err(fail(std::io::Error::other(
                    "the load's copy of the artifact is missing",
                )));
            };
            copied
                .commit(&artifact_path, manifest.artifact.size)
                .await?;
        }
        let json =
            serde_json::to_vec_pretty(manifest).map_err(|e| fail(std::io::Error::other(e)))?;
        write_atomic(&manifest_path(&dir, &selector.to_string()), &json)
            .await
            .map_err(fail)?;
        // The manifest just replaced no longer protects its artifact, and with `keep = 0`
        // nothing else does.
        self.prune(&dir).await;
        Ok(())
    }

    async fn prune(&self, dir: &Path) {
        match retention::prune(dir, self.keep).await {
            Ok(pruned) if pruned.any() => {
                tracing::info!(dir = %dir.display(), artifacts = pruned.artifacts, temp_files = pruned.temp_files, kept = pruned.kept, "Pruned the model cache.");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "Could not prune the model cache; it may exceed its bound until the next load.");
            }
        }
    }

    /// The last-good manifest for `selector` and its artifact, opened; `None` if there is none.
    /// The artifact is not verified here: the load verifies it as it reads it (a damaged one
    /// fails with [`Error::DigestMismatch`] or [`Error::SizeMismatch`]).
    ///
    /// # Errors
    /// [`Error::CorruptRecord`] for a damaged manifest.
    pub async fn recall(
        &self,
        model: &ModelName,
        selector: &Selector,
    ) -> Result<Option<(Manifest, std::fs::File)>, Error> {
        let dir = self.model_dir(model);
        let manifest_path = manifest_path(&dir, &selector.to_string());
        let Ok(json) = tokio::fs::read(&manifest_path).await else {
            return Ok(None);
        };
        let manifest: Manifest = serde_json::from_slice(&json)
            .map_err(|e| Error::corrupt_record(manifest_path.display().to_string(), e))?;
        let artifact_path = artifact_path(&dir, &manifest.artifact.sha256);
        let Ok(file) = tokio::fs::File::open(&artifact_path).await else {
            return Ok(None);
        };
        Ok(Some((manifest, file.into_std().await)))
    }
}

/// An artifact being copied into the cache as a load reads it: a temp file, removed on drop
/// unless [`ArtifactCache::remember`] renamed it into place. A write that fails stops the copy
/// (the load goes on).
#[derive(Debug)]
pub struct PendingArtifact {
    tmp: PathBuf,
    /// `None` once a write failed.
    file: Option<std::fs::File>,
    written: u64,
}

impl PendingArtifact {
    /// Appends `bytes`, the artifact's next ones. Blocking: called by the load's reader.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        let Some(file) = &mut self.file else {
            return;
        };
        match file.write_all(bytes) {
            Ok(()) => self.written += bytes.len() as u64,
            Err(e) => {
                tracing::warn!(path = %self.tmp.display(), error = %e, "Could not copy the artifact into the last-good cache.");
                self.file = None;
            }
        }
    }

    /// Renames the copy to `path` if it is whole (`size` bytes, all written).
    async fn commit(mut self, path: &Path, size: u64) -> Result<(), Error> {
        let fail = |e: std::io::Error| Error::store("cache", path.display().to_string(), e);
        if self.file.take().is_none() {
            return Err(fail(std::io::Error::other(
                "copying the artifact failed while it loaded",
            )));
        }
        if self.written != size {
            return Err(Error::SizeMismatch {
                expected: size,
                actual: self.written,
            });
        }
        tokio::fs::rename(&self.tmp, path).await.map_err(fail)?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for PendingArtifact {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn temp_path(path: &Path) -> PathBuf {
    path.with_extension(format!(
        "{}{}",
        retention::TEMP_PREFIX,
        uuid::Uuid::new_v4().simple()
    ))
}

async fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, path).await
}

#[cfg(test)]
mod tests;
