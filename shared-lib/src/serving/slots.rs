//! The models a server holds, kept in line with what its settings select.
//!
//! A [`ModelSlots`] has a slot per role (primary `a`, experiment `b`, `shadow`). A background
//! loop resolves each slot's selector (a pinned number, or an alias re-read every poll
//! interval), and when the wanted version differs from the loaded one it loads the new one
//! *fully* (read, decode, size and sha256 check, validate against the manifest, warm up) and
//! only then swaps it in atomically. The artifact is decoded as it arrives and verified at its
//! end ([`crate::artifact::decode_artifact_from`]), never held whole, so a load needs memory
//! for the model it builds, not for the model and its artifact. In-flight requests keep the
//! `Arc` of the version they started with, so a reload never fails a request; a load that
//! fails leaves the old version serving and is counted and logged. Until the primary loads,
//! `/readyz` says not ready and the loop retries with backoff; with a cache directory, a
//! restart during a store outage serves the last-good version.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::artifact_source::ArtifactSource;
use super::cache::{ArtifactCache, PendingArtifact};
use super::metrics::ServingMetrics;
use super::routing::{Variant, assign};
use super::selection::{Percent, Selector, ServingSettings};
use crate::Error;
use crate::artifact::ModelKind;
use crate::http::Readiness;
use crate::model_id::{ModelName, ModelVersion};
use crate::registry::Registry;
use crate::registry::manifest::Manifest;

/// A model type a server can load from an artifact.
pub trait ServableModel: Sized + Send + Sync + 'static {
    /// What the service's settings say about how to load every version (e.g. how to search it).
    type Config: Send + Sync + 'static;

    /// Whether this server can serve artifacts of `kind`.
    fn accepts(kind: ModelKind) -> bool;

    /// Decodes the artifact as it is read from `artifact`, verifying it against the manifest
    /// (`decode_artifact_from`: size and sha256 once it is read), validates the model against
    /// its manifest and warms it up (e.g. scores one row). Runs on a blocking thread.
    ///
    /// # Errors
    /// Any reason not to serve it.
    fn load(
        manifest: &Manifest,
        artifact: &mut dyn std::io::Read,
        config: &Self::Config,
    ) -> Result<Self, Error>;

    /// What `/v1/models` reports about the loaded version beyond its manifest (`details`).
    fn details(&self) -> Option<serde_json::Value> {
        None
    }
}

/// A loaded version.
pub struct Loaded<M> {
    pub manifest: Manifest,
    pub model: M,
    pub loaded_at: DateTime<Utc>,
    /// The version as text, formatted once: the label and header every request served by it
    /// carries ([`crate::http::ServedBy`]).
    pub version_label: Arc<str>,
}

/// A slot's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    A,
    B,
    Shadow,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::A => "a",
            Self::B => "b",
            Self::Shadow => "shadow",
        }
    }
}

struct Slot<M> {
    role: Role,
    selector: Selector,
    current: ArcSwapOption<Loaded<M>>,
    last_error: std::sync::Mutex<Option<String>>,
}

/// What `/v1/models` reports per slot.
#[derive(Debug, Clone, Serialize)]
pub struct SlotStatus {
    pub role: Role,
    pub selector: String,
    pub version: Option<ModelVersion>,
    pub sha256: Option<String>,
    pub algorithm: Option<String>,
    pub loaded_at: Option<DateTime<Utc>>,
    /// Share of request keys this slot serves (A and B only).
    pub traffic_percent: Option<u8>,
    pub last_error: Option<String>,
    /// The model type's own report on the loaded version ([`ServableModel::details`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

pub struct ModelSlots<M> {
    model: ModelName,
    model_label: Arc<str>,
    registry: Registry,
    slots: Vec<Slot<M>>,
    percent_b: Option<Percent>,
    cache: Option<ArtifactCache>,
    metrics: ServingMetrics,
    readiness: Readiness,
    poll: Duration,
    /// [`ServableModel::load`] with the service's load configuration.
    load: Arc<Loader<M>>,
}

type Loader<M> = dyn Fn(&Manifest, &mut dyn std::io::Read) -> Result<M, Error> + Send + Sync;

const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl<M: ServableModel> ModelSlots<M> {
    pub fn new(
        settings: &ServingSettings,
        registry: Registry,
        metrics: ServingMetrics,
        readiness: Readiness,
        config: M::Config,
    ) -> Arc<Self> {
        let slot = |role, selector: &Selector| Slot {
            role,
            selector: selector.clone(),
            current: ArcSwapOption::empty(),
            last_error: std::sync::Mutex::new(None),
        };
        let mut slots = vec![slot(Role::A, &settings.primary)];
        if let Some(x) = &settings.experiment {
            slots.push(slot(Role::B, &x.b));
            let b = f64::from(x.percent_b.get()) / 100.0;
            for (variant, share) in [(Variant::A, 1.0 - b), (Variant::B, b)] {
                metrics
                    .ab_configured_share
                    .with_label_values(&[settings.model.as_str(), variant.as_str()])
                    .set(share);
            }
        }
        if let Some(shadow) = &settings.shadow {
            slots.push(slot(Role::Shadow, shadow));
        }
        Arc::new(Self {
            model: settings.model.clone(),
            model_label: Arc::from(settings.model.as_str()),
            registry,
            slots,
            percent_b: settings.experiment.as_ref().map(|x| x.percent_b),
            cache: settings
                .cache_dir
                .clone()
                .map(|dir| ArtifactCache::new(dir, settings.cache_keep)),
            metrics,
            readiness,
            poll: settings.poll_interval,
            load: Arc::new(
                move |manifest: &Manifest, artifact: &mut dyn std::io::Read| {
                    M::load(manifest, artifact, &config)
                },
            ),
        })
    }

    pub fn model(&self) -> &ModelName {
        &self.model
    }

    /// The model's name as a shared label, for [`crate::http::ServedBy`].
    pub fn model_label(&self) -> Arc<str> {
        Arc::clone(&self.model_label)
    }

    /// Starts the background loop that loads and follows the selected versions.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(250);
            loop {
                let settled = this.refresh_all().await;
                let wait = if settled {
                    backoff = Duration::from_millis(250);
                    this.poll
                } else {
                    backoff = (backoff * 2)
                        .min(MAX_BACKOFF)
                        .min(this.poll.max(Duration::from_millis(250)));
                    backoff
                };
                tokio::time::sleep(wait).await;
            }
        })
    }

    /// Brings every slot in line with its selector once. True when every slot is loaded and
    /// current (a failure anywhere means: try again sooner).
    pub async fn refresh_all(&self) -> bool {
        let mut settled = true;
        for slot in &self.slots {
            match self.refresh(slot).await {
                Ok(()) => *lock(&slot.last_error) = None,
                Err(e) => {
                    settled = false;
                    tracing::warn!(model = %self.model, slot = slot.role.as_str(), selector = %slot.selector, error = %crate::error_chain(&e), "Model refresh failed; still serving the loaded version, if any.");
                    *lock(&slot.last_error) = Some(e.public_reason());
                }
            }
        }
        self.readiness
            .set_ready(self.slots[0].current.load().is_some());
        settled
    }

    async fn refresh(&self, slot: &Slot<M>) -> Result<(), Error> {
        let wanted = match &slot.selector {
            Selector::Pinned(v) => Ok(*v),
            Selector::Alias(alias) => self.registry.resolve_alias(&self.model, alias).await,
        };
        let wanted = match wanted {
            Ok(v) => v,
            Err(e) => return self.fall_back_to_cache(slot, e).await,
        };
        if slot
            .current
            .load()
            .as_ref()
            .is_some_and(|l| l.manifest.version == wanted)
        {
            return Ok(());
        }
        let opened = async {
            let manifest = self.registry.manifest(&self.model, wanted).await?;
            let artifact = self.registry.open_artifact_unverified(&manifest).await?;
            Ok::<_, Error>((manifest, artifact.stream))
        }
        .await;
        let (manifest, stream) = match opened {
            Ok(opened) => opened,
            Err(e) => return self.fall_back_to_cache(slot, e).await,
        };
        // The load copies the artifact into the last-good cache as it reads it.
        let copy = match &self.cache {
            Some(cache) => cache.begin(&manifest).await,
            None => None,
        };
        let installed = self
            .install(
                slot,
                manifest,
                ArtifactSource::Store(stream),
                copy,
                "loaded",
            )
            .await;
        // A store that fails part-way through the artifact is a store failure like one that
        // cannot be reached: with nothing loaded yet, the last-good cache serves.
        match installed {
            Ok(()) => Ok(()),
            Err(e) => self.fall_back_to_cache(slot, e).await,
        }
    }

    /// A failed refresh, counted; on a store failure with nothing loaded, the last-good cached
    /// version serves if there is one.
    async fn fall_back_to_cache(&self, slot: &Slot<M>, cause: Error) -> Result<(), Error> {
        let store_down = matches!(cause, Error::Store { .. });
        let recalled = match &self.cache {
            Some(cache) if store_down && slot.current.load().is_none() => {
                cache.recall(&self.model, &slot.selector).await
            }
            _ => Ok(None),
        };
        let failure = match recalled {
            Ok(Some((manifest, file))) => {
                tracing::warn!(model = %self.model, version = %manifest.version, "Store unreachable; serving the last-good cached version.");
                match self
                    .install(slot, manifest, ArtifactSource::Cache(file), None, "cached")
                    .await
                {
                    // Serving, counted as "cached" by the install; the refresh still failed.
                    Ok(()) => return Err(cause),
                    Err(e) => e,
                }
            }
            Ok(None) => cause,
            Err(e) => e,
        };
        self.count(slot, "failed");
        Err(failure)
    }

    async fn install(
        &self,
        slot: &Slot<M>,
        manifest: Manifest,
        artifact: ArtifactSource,
        copy: Option<PendingArtifact>,
        result: &str,
    ) -> Result<(), Error> {
        let started = Instant::now();
        // A failure is counted by the caller, which may still serve the cached version.
        let (loaded, copied) = self.build(&manifest, artifact, copy).await?;
        let version = manifest.version;
        let sha = manifest.artifact.sha256.to_string();
        let previous = slot.current.swap(Some(Arc::new(Loaded {
            manifest: manifest.clone(),
            model: loaded,
            loaded_at: Utc::now(),
            version_label: Arc::from(version.to_string()),
        })));
        if let Some(previous) = previous {
            let _ = self.metrics.model_info.remove_label_values(&[
                self.model.as_str(),
                &previous.manifest.version.to_string(),
                previous.manifest.artifact.sha256.as_hex(),
                slot.role.as_str(),
            ]);
        }
        self.metrics
            .model_info
            .with_label_values(&[
                self.model.as_str(),
                &version.to_string(),
                &sha,
                slot.role.as_str(),
            ])
            .set(1);
        self.count(slot, result);
        tracing::info!(model = %self.model, %version, sha256 = %sha, slot = slot.role.as_str(), load_ms = started.elapsed().as_millis() as u64, "Model loaded.");
        if result == "loaded"
            && let Some(cache) = &self.cache
            && let Err(e) = cache.remember(&slot.selector, &manifest, copied).await
        {
            tracing::warn!(error = %e, "Could not write the last-good cache.");
        }
        Ok(())
    }

    /// The model, and the cache's copy of its artifact (`copy`, filled as the load read it).
    async fn build(
        &self,
        manifest: &Manifest,
        artifact: ArtifactSource,
        copy: Option<PendingArtifact>,
    ) -> Result<(M, Option<PendingArtifact>), Error> {
        if !M::accepts(manifest.artifact.kind) {
            return Err(Error::CorruptArtifact {
                reason: format!(
                    "this server does not serve {} models",
                    manifest.artifact.kind
                ),
            });
        }
        let manifest = manifest.clone();
        let load = self.load.clone();
        let span = tracing::Span::current();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let mut read = artifact.into_read(runtime, copy);
                let model = load(&manifest, &mut read)?;
                Ok((model, read.into_copy()))
            })
        })
        .await
        .map_err(|e| Error::CorruptArtifact {
            reason: format!("loading panicked: {e}"),
        })?
    }

    fn count(&self, slot: &Slot<M>, result: &str) {
        self.metrics
            .reloads
            .with_label_values(&[self.model.as_str(), slot.role.as_str(), result])
            .inc();
    }

    fn slot(&self, role: Role) -> Option<&Slot<M>> {
        self.slots.iter().find(|s| s.role == role)
    }

    /// The version to answer with, for a request keyed by `key` (a user or card id; callers
    /// without one pass the request id, which splits per request). `None` until the primary
    /// has loaded. B gets its share of keys only while it is loaded.
    pub fn route(&self, key: &str) -> Option<(Arc<Loaded<M>>, Variant)> {
        let mut chosen = None;
        if let (Some(percent), Some(b)) = (self.percent_b, self.slot(Role::B))
            && assign(key, percent) == Variant::B
            && let Some(loaded) = b.current.load_full()
        {
            chosen = Some((loaded, Variant::B));
        }
        let chosen = match chosen {
            Some(c) => c,
            None => (self.slots[0].current.load_full()?, Variant::A),
        };
        if self.percent_b.is_some() {
            self.metrics
                .ab_assignments
                .with_label_values(&[self.model.as_str(), chosen.1.as_str()])
                .inc();
        }
        Some(chosen)
    }

    /// The shadow version, if one is configured and loaded.
    pub fn shadow(&self) -> Option<Arc<Loaded<M>>> {
        self.slot(Role::Shadow)?.current.load_full()
    }

    pub fn metrics(&self) -> &ServingMetrics {
        &self.metrics
    }

    /// Every slot's state, for `/v1/models`.
    pub fn status(&self) -> Vec<SlotStatus> {
        self.slots
            .iter()
            .map(|slot| {
                let loaded = slot.current.load_full();
                let traffic_percent = match (slot.role, self.percent_b) {
                    (Role::A, Some(p)) => Some(100 - p.get()),
                    (Role::A, None) => Some(100),
                    (Role::B, Some(p)) => Some(p.get()),
                    (Role::B | Role::Shadow, _) => None,
                };
                SlotStatus {
                    role: slot.role,
                    selector: slot.selector.to_string(),
                    version: loaded.as_ref().map(|l| l.manifest.version),
                    sha256: loaded
                        .as_ref()
                        .map(|l| l.manifest.artifact.sha256.to_string()),
                    algorithm: loaded.as_ref().map(|l| l.manifest.algorithm.clone()),
                    loaded_at: loaded.as_ref().map(|l| l.loaded_at),
                    traffic_percent,
                    last_error: lock(&slot.last_error).clone(),
                    details: loaded.as_ref().and_then(|l| l.model.details()),
                }
            })
            .collect()
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
