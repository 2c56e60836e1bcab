//! The in-memory index: manifests are immutable once written, so each is read from the store
//! once and kept. Start-up rebuilds it from the store (the source of truth); aliases and
//! archive, deleted and keep markers are small and change, so they are always read from the
//! store (a version retention deleted keeps its manifest here: the status comes from those
//! markers, via `Registry::list_versions`).
//!
//! A manifest that cannot be used (corrupt bytes, or valid JSON of another shape or another
//! version: "foreign") is remembered as unusable, logged once with its key and reason, and
//! left out of listings, so one bad object never keeps the registry from serving the rest.
//! The rebuild reports what it skipped ([`RebuildReport`]: the log, the
//! `registry_manifests_skipped` gauge and the `/readyz` detail). Only store failures make it
//! fail, and start-up retries those. Repairing a skipped manifest takes a restart.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures_util::StreamExt as _;
use prometheus::{GaugeVec, IntGauge, Opts, Registry as Prometheus};
use shared_lib::Error;
use shared_lib::http::register_metric;
use shared_lib::model_id::{ModelName, ModelVersion};
use shared_lib::registry::Registry;
use shared_lib::registry::manifest::Manifest;

/// Manifests read at once while rebuilding: enough to hide the store's round trips (10,000
/// versions on Garage in seconds rather than minutes), few enough that the store and the
/// pod's sockets are not flooded.
pub const REBUILD_CONCURRENCY: usize = 32;

/// Skipped manifests named in the `/readyz` detail; the log has them all.
const DETAIL_LIMIT: usize = 10;

type Key = (ModelName, ModelVersion);

enum Entry {
    Indexed(Arc<Manifest>),
    /// Corrupt or foreign: the error to answer with, without reading the store again.
    Unusable {
        key: String,
        reason: String,
    },
}

pub struct ManifestIndex {
    entries: RwLock<HashMap<Key, Entry>>,
    /// `registry_last_publish_timestamp_seconds{model}`: the newest indexed version's creation
    /// time, for the "trainer has not published" alert.
    last_publish: GaugeVec,
}

/// A model or version the rebuild could not index, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Skipped {
    pub model: ModelName,
    /// `None`: the model's version listing itself could not be used.
    pub version: Option<ModelVersion>,
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.version {
            Some(version) => write!(f, "{} v{version}", self.model),
            None => write!(f, "{} (all versions)", self.model),
        }
    }
}

/// What a rebuild indexed and what it skipped.
#[derive(Debug, Clone, Default)]
pub struct RebuildReport {
    pub indexed: usize,
    /// Sorted by model and version.
    pub skipped: Vec<Skipped>,
}

impl RebuildReport {
    /// The `/readyz` detail: `None` when nothing was skipped.
    pub fn detail(&self) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let mut named: Vec<String> = self
            .skipped
            .iter()
            .take(DETAIL_LIMIT)
            .map(ToString::to_string)
            .collect();
        if self.skipped.len() > DETAIL_LIMIT {
            named.push(format!("and {} more", self.skipped.len() - DETAIL_LIMIT));
        }
        Some(format!(
            "{} manifests skipped as corrupt or foreign (not listed; the log has each key and \
             reason): {}",
            self.skipped.len(),
            named.join(", ")
        ))
    }
}

/// `registry_manifests_skipped`: manifests the last index rebuild skipped as corrupt or
/// foreign (a model whose listing failed counts once). Alert when it is above 0.
///
/// # Errors
/// [`Error::Telemetry`] when the name is already registered (a bug).
pub fn register_skipped_gauge(registry: &Prometheus) -> Result<IntGauge, Error> {
    register_metric(
        registry,
        IntGauge::new(
            "registry_manifests_skipped",
            "Manifests the last index rebuild skipped as corrupt or foreign.",
        ),
    )
}

impl ManifestIndex {
    /// An empty index that exports `registry_last_publish_timestamp_seconds{model}`: the
    /// creation time of each model's newest version it has indexed (at start-up, every one;
    /// then each registration), so a restart does not reset it.
    ///
    /// # Errors
    /// [`Error::Telemetry`] when the name is already registered (a bug).
    pub fn with_metrics(registry: &Prometheus) -> Result<Self, Error> {
        let last_publish = register_metric(
            registry,
            GaugeVec::new(
                Opts::new(
                    "registry_last_publish_timestamp_seconds",
                    "Unix time of the newest published version of each model.",
                ),
                &["model"],
            ),
        )?;
        Ok(Self {
            entries: RwLock::default(),
            last_publish,
        })
    }

    fn note_published(&self, manifest: &Manifest) {
        let gauge = self
            .last_publish
            .with_label_values(&[manifest.model.as_str()]);
        let at = manifest.created_at.timestamp_millis() as f64 / 1000.0;
        if at > gauge.get() {
            gauge.set(at);
        }
    }

    /// Indexes a manifest the registry has just written.
    pub fn remember(&self, manifest: Arc<Manifest>) {
        self.note_published(&manifest);
        self.write().insert(
            (manifest.model.clone(), manifest.version),
            Entry::Indexed(manifest),
        );
    }

    /// A version's manifest, from memory or, the first time, from the store.
    ///
    /// # Errors
    /// As [`Registry::manifest`]; [`Error::CorruptRecord`] for a manifest found unusable
    /// before, without reading the store again.
    pub async fn manifest(
        &self,
        registry: &Registry,
        model: &ModelName,
        version: ModelVersion,
    ) -> Result<Arc<Manifest>, Error> {
        let key = (model.clone(), version);
        match self.read().get(&key) {
            Some(Entry::Indexed(found)) => return Ok(found.clone()),
            Some(Entry::Unusable { key, reason }) => {
                return Err(Error::CorruptRecord {
                    key: key.clone(),
                    reason: reason.clone(),
                });
            }
            None => {}
        }
        match registry.manifest(model, version).await {
            Ok(manifest) => {
                let manifest = Arc::new(manifest);
                self.note_published(&manifest);
                self.write().insert(key, Entry::Indexed(manifest.clone()));
                Ok(manifest)
            }
            Err(Error::CorruptRecord {
                key: object,
                reason,
            }) => {
                tracing::warn!(%model, %version, key = %object, %reason, "Skipping a corrupt or foreign manifest.");
                self.write().insert(
                    key,
                    Entry::Unusable {
                        key: object.clone(),
                        reason: reason.clone(),
                    },
                );
                Err(Error::CorruptRecord {
                    key: object,
                    reason,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Reads every manifest of every model, [`REBUILD_CONCURRENCY`] at a time; skips (and
    /// reports) what cannot be used.
    ///
    /// # Errors
    /// Store failures only ([`Error::Store`]): worth retrying.
    pub async fn rebuild(&self, registry: &Registry) -> Result<RebuildReport, Error> {
        let mut report = RebuildReport::default();
        let mut wanted = Vec::new();
        for model in registry.list_models().await? {
            match registry.list_versions(&model).await {
                Ok(versions) => {
                    wanted.extend(versions.into_iter().map(|s| (model.clone(), s.version)));
                }
                Err(Error::UnknownModel { .. }) => {}
                Err(e @ Error::Store { .. }) => return Err(e),
                Err(e) => {
                    let reason = shared_lib::error_chain(&e);
                    tracing::warn!(%model, %reason, "Skipping a model whose versions cannot be listed.");
                    report.skipped.push(Skipped {
                        model,
                        version: None,
                        reason,
                    });
                }
            }
        }
        let mut reads = futures_util::stream::iter(wanted)
            .map(|(model, version)| async move {
                let read = self.manifest(registry, &model, version).await;
                (model, version, read)
            })
            .buffer_unordered(REBUILD_CONCURRENCY);
        while let Some((model, version, read)) = reads.next().await {
            match read {
                Ok(_) => report.indexed += 1,
                Err(e @ Error::Store { .. }) => return Err(e),
                // Corrupt or foreign (logged when first found), or gone since the listing.
                Err(e) => report.skipped.push(Skipped {
                    model,
                    version: Some(version),
                    reason: shared_lib::error_chain(&e),
                }),
            }
        }
        report.skipped.sort();
        Ok(report)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Key, Entry>> {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Key, Entry>> {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skipped(n: u32) -> Skipped {
        Skipped {
            model: ModelName::parse("fraud").unwrap(),
            version: ModelVersion::new(n).ok(),
            reason: "not JSON".into(),
        }
    }

    #[test]
    fn detail_names_the_first_skipped_versions_and_counts_the_rest() {
        let none = RebuildReport::default();
        assert_eq!(none.detail(), None);
        let many = RebuildReport {
            indexed: 5,
            skipped: (1..=12).map(skipped).collect(),
        };
        let detail = many.detail().unwrap();
        assert!(detail.starts_with("12 manifests skipped"), "{detail}");
        assert!(
            detail.ends_with("fraud v9, fraud v10, and 2 more"),
            "{detail}"
        );
    }
}
