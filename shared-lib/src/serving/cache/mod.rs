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
//! atomically (temp file + rename): an artifact is streamed from the store into its temp file
//! and renamed only if its size and sha256 are the manifest's. A recalled artifact is verified
//! as it loads, like any load. After each `remember`, artifacts that no selector's history or
//! current manifest names are deleted, so a cache holds at most `keep + 1` artifacts per
//! selector it has served; without that, an `emptyDir` fills with every version a long-lived
//! pod ever followed and the pod is evicted.

mod retention;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::selection::Selector;
use crate::Error;
use crate::artifact::ArtifactHasher;
use crate::model_id::ModelName;
use crate::registry::manifest::Manifest;
use crate::store::ObjectStream;
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
    /// artifacts no selector keeps any more. `artifact` opens the artifact's bytes; it is
    /// awaited only when the cache does not hold them yet, and they are streamed to disk,
    /// never held whole.
    ///
    /// The history is written before the artifact, so a concurrent prune that lists the new
    /// artifact also finds it referenced. Pruning also runs before the artifact is written, so a
    /// full `emptyDir` makes room first and the directory never holds more than the bound plus
    /// the artifact being written. A failed prune is logged, not returned: the entry itself was
    /// remembered.
    ///
    /// # Errors
    /// [`Error::Store`] when the directory cannot be written, an error of `artifact`,
    /// [`Error::SizeMismatch`] or [`Error::DigestMismatch`] when its bytes are not the
    /// manifest's.
    pub async fn remember(
        &self,
        selector: &Selector,
        manifest: &Manifest,
        artifact: impl Future<Output = Result<ObjectStream, Error>>,
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
            write_verified(&artifact_path, artifact.await?, manifest).await?;
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

/// Streams `artifact` into a temp file beside `path`, hashing it, and renames it into place
/// only if its size and sha256 are `manifest`'s; otherwise removes the temp file.
async fn write_verified(
    path: &Path,
    mut artifact: ObjectStream,
    manifest: &Manifest,
) -> Result<(), Error> {
    let tmp = temp_path(path);
    let fail = |e: std::io::Error| Error::store("cache", path.display().to_string(), e);
    let written = async {
        let mut file = tokio::fs::File::create(&tmp).await.map_err(fail)?;
        let (mut hasher, mut size) = (ArtifactHasher::new(), 0u64);
        while let Some(chunk) = artifact.next().await {
            let chunk =
                chunk.map_err(|e| Error::store("read", manifest.artifact.key.clone(), e))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            if size > manifest.artifact.size {
                break;
            }
            file.write_all(&chunk).await.map_err(fail)?;
        }
        file.flush().await.map_err(fail)?;
        if size != manifest.artifact.size {
            return Err(Error::SizeMismatch {
                expected: manifest.artifact.size,
                actual: size,
            });
        }
        let actual = hasher.finish();
        if actual != manifest.artifact.sha256 {
            return Err(Error::DigestMismatch {
                expected: manifest.artifact.sha256.clone(),
                actual,
            });
        }
        tokio::fs::rename(&tmp, path).await.map_err(fail)
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    written
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
