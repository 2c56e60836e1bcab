//! The in-memory index: manifests are immutable once written, so each is read from the store
//! once and kept. Start-up rebuilds it from the store (the source of truth); aliases and
//! archive, deleted and keep markers are small and change, so they are always read from the
//! store (a version retention deleted keeps its manifest here: the status comes from those
//! markers, via `Registry::list_versions`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use shared_lib::Error;
use shared_lib::model_id::{ModelName, ModelVersion};
use shared_lib::registry::Registry;
use shared_lib::registry::manifest::Manifest;

#[derive(Default)]
pub struct ManifestIndex {
    manifests: RwLock<HashMap<(ModelName, ModelVersion), Arc<Manifest>>>,
}

impl ManifestIndex {
    /// A version's manifest, from memory or, the first time, from the store.
    ///
    /// # Errors
    /// As [`Registry::manifest`].
    pub async fn manifest(
        &self,
        registry: &Registry,
        model: &ModelName,
        version: ModelVersion,
    ) -> Result<Arc<Manifest>, Error> {
        let key = (model.clone(), version);
        if let Some(found) = self.read().get(&key) {
            return Ok(found.clone());
        }
        let manifest = Arc::new(registry.manifest(model, version).await?);
        self.write().insert(key, manifest.clone());
        Ok(manifest)
    }

    /// Reads every manifest of every model; returns how many.
    ///
    /// # Errors
    /// Store failures.
    pub async fn rebuild(&self, registry: &Registry) -> Result<usize, Error> {
        let mut count = 0;
        for model in registry.list_models().await? {
            let versions = match registry.list_versions(&model).await {
                Ok(versions) => versions,
                Err(Error::UnknownModel { .. }) => continue,
                Err(e) => return Err(e),
            };
            for state in versions {
                self.manifest(registry, &model, state.version).await?;
                count += 1;
            }
        }
        Ok(count)
    }

    fn read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<(ModelName, ModelVersion), Arc<Manifest>>> {
        self.manifests
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<(ModelName, ModelVersion), Arc<Manifest>>> {
        self.manifests
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
