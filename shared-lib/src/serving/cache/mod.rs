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
//! atomically (temp file + rename) and verified against the manifest's sha256 when read, like any
//! load. After each `remember`, artifacts that no selector's history or current manifest names are
//! deleted, so a cache holds at most `keep + 1` artifacts per selector it has served; without
//! that, an `emptyDir` fills with every version a long-lived pod ever followed and the pod is
//! evicted.

mod retention;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::selection::Selector;
use crate::Error;
use crate::artifact::ArtifactDigest;
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

    /// Remembers `manifest` and its artifact as last-good for `selector`, then deletes the
    /// artifacts no selector keeps any more.
    ///
    /// The history is written before the artifact, so a concurrent prune that lists the new
    /// artifact also finds it referenced. Pruning also runs before the artifact is written, so a
    /// full `emptyDir` makes room first and the directory never holds more than the bound plus
    /// the artifact being written. A failed prune is logged, not returned: the entry itself was
    /// remembered.
    ///
    /// # Errors
    /// [`Error::Store`] when the directory cannot be written.
    pub async fn remember(
        &self,
        selector: &Selector,
        manifest: &Manifest,
        artifact: &Bytes,
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
            write_atomic(&artifact_path, artifact).await.map_err(fail)?;
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

    /// The last-good manifest and artifact for `selector`, verified; `None` if there is none.
    ///
    /// # Errors
    /// [`Error::CorruptRecord`] or [`Error::DigestMismatch`] for damaged entries.
    pub async fn recall(
        &self,
        model: &ModelName,
        selector: &Selector,
    ) -> Result<Option<(Manifest, Bytes)>, Error> {
        let dir = self.model_dir(model);
        let manifest_path = manifest_path(&dir, &selector.to_string());
        let Ok(json) = tokio::fs::read(&manifest_path).await else {
            return Ok(None);
        };
        let manifest: Manifest = serde_json::from_slice(&json)
            .map_err(|e| Error::corrupt_record(manifest_path.display().to_string(), e))?;
        let artifact_path = artifact_path(&dir, &manifest.artifact.sha256);
        let Ok(bytes) = tokio::fs::read(&artifact_path).await else {
            return Ok(None);
        };
        let actual = ArtifactDigest::of(&bytes);
        if actual != manifest.artifact.sha256 {
            return Err(Error::DigestMismatch {
                expected: manifest.artifact.sha256.clone(),
                actual,
            });
        }
        Ok(Some((manifest, Bytes::from(bytes))))
    }
}

async fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!(
        "{}{}",
        retention::TEMP_PREFIX,
        uuid::Uuid::new_v4().simple()
    ));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, path).await
}

#[cfg(test)]
mod tests;
