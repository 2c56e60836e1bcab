//! The last-good cache: artifacts that loaded, kept on local disk, so a restart during a store
//! outage still serves (`MODEL_CACHE_DIR`).
//!
//! Layout: `<dir>/<model>/<selector>.json` (the manifest last served for that selector) and
//! `<dir>/<model>/<sha256>.msgpack`. Entries are written atomically (temp file + rename) and
//! verified against the manifest's sha256 when read, like any load.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::selection::Selector;
use crate::Error;
use crate::artifact::ArtifactDigest;
use crate::model_id::ModelName;
use crate::registry::manifest::Manifest;

#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn model_dir(&self, model: &ModelName) -> PathBuf {
        self.dir.join(model.as_str())
    }

    /// Remembers `manifest` and its artifact as last-good for `selector`.
    ///
    /// # Errors
    /// [`Error::Store`] when the directory cannot be written.
    pub async fn remember(
        &self,
        selector: &Selector,
        manifest: &Manifest,
        artifact: &Bytes,
    ) -> Result<(), Error> {
        let dir = self.model_dir(&manifest.model);
        let fail = |e: std::io::Error| Error::store("cache", dir.display().to_string(), e);
        tokio::fs::create_dir_all(&dir).await.map_err(fail)?;
        let artifact_path = dir.join(format!("{}.msgpack", manifest.artifact.sha256));
        if !tokio::fs::try_exists(&artifact_path).await.unwrap_or(false) {
            write_atomic(&artifact_path, artifact).await.map_err(fail)?;
        }
        let json =
            serde_json::to_vec_pretty(manifest).map_err(|e| fail(std::io::Error::other(e)))?;
        write_atomic(&dir.join(format!("{selector}.json")), &json)
            .await
            .map_err(fail)
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
        let manifest_path = dir.join(format!("{selector}.json"));
        let Ok(json) = tokio::fs::read(&manifest_path).await else {
            return Ok(None);
        };
        let manifest: Manifest = serde_json::from_slice(&json)
            .map_err(|e| Error::corrupt_record(manifest_path.display().to_string(), e))?;
        let artifact_path = dir.join(format!("{}.msgpack", manifest.artifact.sha256));
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
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, path).await
}
