//! The registry core: publishing versions, moving aliases, reading both back.
//!
//! The object store is the source of truth (see [`layout`] for the keys). Safety rests on
//! create-new writes:
//! - a version number is taken by creating its `claim.json`; of racing publishers exactly one
//!   creates it, the others move on to the next number, so numbers never collide;
//! - the manifest is written last, so a version is visible only once its artifact is complete;
//! - an alias moves by creating its next revision record, after checking the current one
//!   names the version the caller expects: compare-and-swap with create-new as the swap.
//!
//! Within one process a [`Registry`] also serialises allocation and alias moves behind a lock;
//! that is what makes the registry service a safe single writer on S3 stores that ignore
//! conditional writes (Garage). Across processes the local store's `link(2)` gives the same
//! guarantee, which is why the trainer may publish straight into a local directory.

pub mod layout;
pub mod manifest;
pub mod records;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;

use crate::Error;
use crate::artifact::{self, ARTIFACT_FORMAT_VERSION, ArtifactDigest, ModelKind};
use crate::model_id::{AliasName, ModelName, ModelVersion};
use crate::store::{ObjectStore, PutMode};
use manifest::{ArtifactRef, GateDecision, Manifest, NewVersion, check_actor, check_reason};
use records::{
    AliasHead, AliasRecord, ArchiveRecord, Claim, Event, EventKind, Provenance, VersionState,
};

/// How many taken numbers a publisher skips before giving up; only reached under a storm of
/// concurrent publishers far beyond any CronJob schedule.
const MAX_ALLOCATION_ATTEMPTS: u32 = 1_000;

/// The registry over one object store. Cheap to clone; clones share the write lock.
#[derive(Debug, Clone)]
pub struct Registry {
    store: ObjectStore,
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

/// Who asks for a change and why; recorded with it.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub actor: &'a str,
    pub reason: Option<&'a str>,
}

impl Change<'_> {
    fn provenance(&self) -> Result<Provenance, Error> {
        check_actor(self.actor).map_err(|reason| Error::InvalidManifest { reason })?;
        if let Some(reason) = self.reason {
            check_reason(reason).map_err(|reason| Error::InvalidManifest { reason })?;
        }
        Ok(Provenance {
            at: Utc::now(),
            actor: self.actor.to_owned(),
            reason: self.reason.map(str::to_owned),
        })
    }
}

impl Registry {
    pub fn new(store: ObjectStore) -> Self {
        Self {
            store,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    pub fn store(&self) -> &ObjectStore {
        &self.store
    }

    // --- publishing ----------------------------------------------------------------------

    /// Publishes a new version: checks the artifact, stores it, takes the next version number
    /// and writes the manifest last.
    ///
    /// `expected_digest`, when given, must match the bytes (an upload check).
    ///
    /// # Errors
    /// [`Error::InvalidManifest`], [`Error::DigestMismatch`], artifact errors for bytes that are
    /// not a valid artifact, [`Error::AllocationContention`], [`Error::Store`].
    #[tracing::instrument(skip_all, fields(model = %draft.model, version = tracing::field::Empty))]
    pub async fn publish(
        &self,
        draft: NewVersion,
        artifact_bytes: Bytes,
        expected_digest: Option<&ArtifactDigest>,
    ) -> Result<Manifest, Error> {
        draft.validate()?;
        let digest = ArtifactDigest::of(&artifact_bytes);
        if let Some(expected) = expected_digest
            && expected != &digest
        {
            return Err(Error::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
            });
        }
        let kind = artifact::inspect_artifact(&artifact_bytes)?;
        let artifact_ref = self
            .store_artifact(&draft.model, kind, digest, artifact_bytes)
            .await?;
        let version = self.allocate_version(&draft).await?;
        tracing::Span::current().record("version", version.get());

        let manifest = Manifest::new(draft, version, artifact_ref);
        let key = layout::version_file(&manifest.model, version, layout::MANIFEST);
        self.store
            .put(&key, json_bytes(&manifest)?, PutMode::CreateNew)
            .await?;
        tracing::info!(model = %manifest.model, %version, sha256 = %manifest.artifact.sha256, "Model version published.");
        Ok(manifest)
    }

    async fn store_artifact(
        &self,
        model: &ModelName,
        kind: ModelKind,
        digest: ArtifactDigest,
        bytes: Bytes,
    ) -> Result<ArtifactRef, Error> {
        let key = layout::artifact(model, &digest);
        let size = bytes.len() as u64;
        match self
            .store
            .put(&key, bytes.clone(), PutMode::CreateNew)
            .await
        {
            Ok(()) => {}
            // Content-addressed: the same bytes are already there, unless that object is
            // damaged, in which case it is replaced with the good bytes.
            Err(Error::ObjectExists { .. }) => {
                let existing = self.store.get(&key).await?;
                if ArtifactDigest::of(&existing) != digest {
                    tracing::warn!(%key, "Replacing a damaged artifact object.");
                    self.store.put(&key, bytes, PutMode::Overwrite).await?;
                }
            }
            Err(e) => return Err(e),
        }
        Ok(ArtifactRef {
            key: key.to_string(),
            size,
            sha256: digest,
            kind,
            format_version: ARTIFACT_FORMAT_VERSION,
        })
    }

    async fn allocate_version(&self, draft: &NewVersion) -> Result<ModelVersion, Error> {
        let _guard = self.write_lock.lock().await;
        let mut candidate = match self.latest_claimed(&draft.model).await? {
            Some(v) => v.next(),
            None => Some(ModelVersion::FIRST),
        };
        let claim = json_bytes(&Claim {
            run_id: draft.run_id,
            claimed_at: Utc::now(),
            claimed_by: draft.created_by.clone(),
        })?;
        for _ in 0..MAX_ALLOCATION_ATTEMPTS {
            let Some(version) = candidate else { break };
            let key = layout::version_file(&draft.model, version, layout::CLAIM);
            match self
                .store
                .put(&key, claim.clone(), PutMode::CreateNew)
                .await
            {
                Ok(()) => return Ok(version),
                Err(Error::ObjectExists { .. }) => candidate = version.next(),
                Err(e) => return Err(e),
            }
        }
        Err(Error::AllocationContention {
            model: draft.model.clone(),
            attempts: MAX_ALLOCATION_ATTEMPTS,
        })
    }

    async fn latest_claimed(&self, model: &ModelName) -> Result<Option<ModelVersion>, Error> {
        let keys = self.store.list(&layout::versions_root(model)).await?;
        Ok(keys
            .iter()
            .filter_map(layout::parse_version_file)
            .map(|(version, _)| version)
            .max())
    }

    // --- reading versions --------------------------------------------------------------

    /// Names of all models with at least one object in the store.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn list_models(&self) -> Result<Vec<ModelName>, Error> {
        let names = self.store.list_folders(&layout::models_root()).await?;
        Ok(names
            .iter()
            .filter_map(|n| ModelName::parse(n).ok())
            .collect())
    }

    /// The published versions of `model`, oldest first (claims without a manifest are
    /// publishes in progress or abandoned, and are not versions).
    ///
    /// # Errors
    /// [`Error::UnknownModel`] when it has no published version, [`Error::Store`].
    pub async fn list_versions(&self, model: &ModelName) -> Result<Vec<VersionState>, Error> {
        let keys = self.store.list(&layout::versions_root(model)).await?;
        let mut states: BTreeMap<ModelVersion, (bool, bool)> = BTreeMap::new();
        for (version, file) in keys.iter().filter_map(layout::parse_version_file) {
            let entry = states.entry(version).or_default();
            match file {
                layout::MANIFEST => entry.0 = true,
                layout::ARCHIVED => entry.1 = true,
                _ => {}
            }
        }
        let versions: Vec<VersionState> = states
            .into_iter()
            .filter(|(_, (published, _))| *published)
            .map(|(version, (_, archived))| VersionState { version, archived })
            .collect();
        if versions.is_empty() {
            return Err(Error::UnknownModel {
                model: model.clone(),
            });
        }
        Ok(versions)
    }

    /// The manifest of one version.
    ///
    /// # Errors
    /// [`Error::UnknownModel`], [`Error::UnknownVersion`], [`Error::CorruptRecord`], [`Error::Store`].
    pub async fn manifest(
        &self,
        model: &ModelName,
        version: ModelVersion,
    ) -> Result<Manifest, Error> {
        let key = layout::version_file(model, version, layout::MANIFEST);
        let bytes = match self.store.get(&key).await {
            Ok(bytes) => bytes,
            Err(Error::ObjectNotFound { .. }) => {
                return Err(self.missing_version(model, version).await);
            }
            Err(e) => return Err(e),
        };
        let manifest: Manifest = layout::decode(&key, &bytes)?;
        if &manifest.model != model || manifest.version != version {
            return Err(Error::corrupt_record(
                key.as_str(),
                format!("it describes {} v{}", manifest.model, manifest.version),
            ));
        }
        Ok(manifest)
    }

    async fn missing_version(&self, model: &ModelName, version: ModelVersion) -> Error {
        match self.list_versions(model).await {
            Ok(_) => Error::UnknownVersion {
                model: model.clone(),
                version,
            },
            Err(e) => e,
        }
    }

    /// True when `version` is archived.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn is_archived(
        &self,
        model: &ModelName,
        version: ModelVersion,
    ) -> Result<bool, Error> {
        self.store
            .exists(&layout::version_file(model, version, layout::ARCHIVED))
            .await
    }

    /// The artifact bytes of a version, checked against the manifest's size and sha256.
    ///
    /// # Errors
    /// [`Error::SizeMismatch`], [`Error::DigestMismatch`], [`Error::ObjectNotFound`], [`Error::Store`].
    pub async fn fetch_artifact(&self, manifest: &Manifest) -> Result<Bytes, Error> {
        let key = crate::store::ObjectKey::parse(&manifest.artifact.key)?;
        let bytes = self.store.get(&key).await?;
        if bytes.len() as u64 != manifest.artifact.size {
            return Err(Error::SizeMismatch {
                expected: manifest.artifact.size,
                actual: bytes.len() as u64,
            });
        }
        let actual = ArtifactDigest::of(&bytes);
        if actual != manifest.artifact.sha256 {
            return Err(Error::DigestMismatch {
                expected: manifest.artifact.sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Fetches, verifies and decodes the model of a version.
    ///
    /// # Errors
    /// As [`Registry::fetch_artifact`] and [`artifact::decode_artifact`].
    #[tracing::instrument(skip_all, fields(model = %manifest.model, version = %manifest.version))]
    pub async fn load_model<T: serde::de::DeserializeOwned>(
        &self,
        manifest: &Manifest,
        kind: ModelKind,
    ) -> Result<T, Error> {
        let bytes = self.fetch_artifact(manifest).await?;
        artifact::decode_artifact(&bytes, &manifest.artifact.sha256, kind)
    }

    // --- aliases -------------------------------------------------------------------------

    /// The current revision of `alias`.
    ///
    /// # Errors
    /// [`Error::UnknownAlias`], [`Error::CorruptRecord`], [`Error::Store`].
    pub async fn alias(&self, model: &ModelName, alias: &AliasName) -> Result<AliasRecord, Error> {
        self.current_alias(model, alias)
            .await?
            .ok_or_else(|| Error::UnknownAlias {
                model: model.clone(),
                alias: alias.clone(),
            })
    }

    /// The version `alias` points to now. Shorthand for servers following an alias.
    ///
    /// # Errors
    /// As [`Registry::alias`].
    pub async fn resolve_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
    ) -> Result<ModelVersion, Error> {
        Ok(self.alias(model, alias).await?.version)
    }

    async fn current_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
    ) -> Result<Option<AliasRecord>, Error> {
        let head_key = layout::alias_head(model, alias);
        let mut revision = match self.store.get(&head_key).await {
            Ok(bytes) => layout::decode::<AliasHead>(&head_key, &bytes)?.revision,
            Err(Error::ObjectNotFound { .. }) => 0,
            Err(e) => return Err(e),
        };
        // The hint may lag (a writer stopped between the revision and the hint): probe forward.
        let mut current = None;
        if revision > 0 {
            current = Some(self.alias_revision(model, alias, revision).await?);
        }
        loop {
            let key = layout::alias_revision(model, alias, revision + 1);
            match self.store.get(&key).await {
                Ok(bytes) => {
                    current = Some(layout::decode::<AliasRecord>(&key, &bytes)?);
                    revision += 1;
                }
                Err(Error::ObjectNotFound { .. }) => return Ok(current),
                Err(e) => return Err(e),
            }
        }
    }

    async fn alias_revision(
        &self,
        model: &ModelName,
        alias: &AliasName,
        revision: u64,
    ) -> Result<AliasRecord, Error> {
        let key = layout::alias_revision(model, alias, revision);
        let bytes = self.store.get(&key).await.map_err(|e| {
            if let Error::ObjectNotFound { key } = e {
                Error::corrupt_record(key, "the alias head names a missing revision")
            } else {
                e
            }
        })?;
        layout::decode(&key, &bytes)
    }

    async fn alias_names(&self, model: &ModelName) -> Result<Vec<AliasName>, Error> {
        let folders = self
            .store
            .list_folders(&layout::aliases_root(model))
            .await?;
        Ok(folders
            .iter()
            .filter_map(|n| AliasName::parse(n).ok())
            .collect())
    }

    /// The current revision of every alias of `model`.
    ///
    /// # Errors
    /// [`Error::Store`], [`Error::CorruptRecord`].
    pub async fn list_aliases(&self, model: &ModelName) -> Result<Vec<AliasRecord>, Error> {
        let mut out = Vec::new();
        for alias in self.alias_names(model).await? {
            if let Some(record) = self.current_alias(model, &alias).await? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Every revision of `alias`, oldest first: answers "which version was it at time T"
    /// (see [`records::alias_version_at`]).
    ///
    /// # Errors
    /// [`Error::Store`], [`Error::CorruptRecord`].
    pub async fn alias_history(
        &self,
        model: &ModelName,
        alias: &AliasName,
    ) -> Result<Vec<AliasRecord>, Error> {
        let keys = self.store.list(&layout::alias_root(model, alias)).await?;
        let mut out = Vec::new();
        for key in keys
            .iter()
            .filter(|k| layout::parse_alias_revision(k).is_some())
        {
            out.push(layout::decode(key, &self.store.get(key).await?)?);
        }
        Ok(out)
    }

    /// Moves `alias` to `to` if it currently points to `expected` (`None`: if it does not exist
    /// yet). Compare-and-swap: of concurrent movers with the same expectation, one wins.
    ///
    /// # Errors
    /// [`Error::AliasConflict`] naming the actual version, [`Error::UnknownVersion`],
    /// [`Error::VersionArchived`], [`Error::InvalidManifest`] for a bad actor or reason,
    /// [`Error::Store`].
    #[tracing::instrument(skip_all, fields(%model, %alias, %to, ?expected))]
    pub async fn move_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        to: ModelVersion,
        expected: Option<ModelVersion>,
        change: &Change<'_>,
    ) -> Result<AliasRecord, Error> {
        let provenance = change.provenance()?;
        let _guard = self.write_lock.lock().await;
        self.manifest(model, to).await?;
        if self.is_archived(model, to).await? {
            return Err(Error::VersionArchived {
                model: model.clone(),
                version: to,
            });
        }
        let current = self.current_alias(model, alias).await?;
        let actual = current.as_ref().map(|r| r.version);
        let conflict = |actual| Error::AliasConflict {
            model: model.clone(),
            alias: alias.clone(),
            expected,
            actual,
        };
        if actual != expected {
            return Err(conflict(actual));
        }
        let record = AliasRecord {
            model: model.clone(),
            alias: alias.clone(),
            revision: current.as_ref().map_or(1, |r| r.revision + 1),
            version: to,
            previous: actual,
            provenance,
        };
        let key = layout::alias_revision(model, alias, record.revision);
        match self
            .store
            .put(&key, json_bytes(&record)?, PutMode::CreateNew)
            .await
        {
            Ok(()) => {}
            Err(Error::ObjectExists { .. }) => {
                // Another process moved it between our read and our write.
                let now = self.current_alias(model, alias).await?;
                return Err(conflict(now.map(|r| r.version)));
            }
            Err(e) => return Err(e),
        }
        let head = json_bytes(&AliasHead {
            revision: record.revision,
        })?;
        if let Err(e) = self
            .store
            .put(&layout::alias_head(model, alias), head, PutMode::Overwrite)
            .await
        {
            // The revision is the truth; readers probe past a stale hint.
            tracing::warn!(error = %e, "Alias moved but its head hint was not updated.");
        }
        tracing::info!(%model, %alias, from = ?actual, %to, actor = %record.provenance.actor, "Alias moved.");
        Ok(record)
    }

    /// Moves `alias` back to the version it pointed to before its current revision.
    ///
    /// # Errors
    /// [`Error::UnknownAlias`], [`Error::NothingToRollBack`], and as [`Registry::move_alias`].
    pub async fn rollback_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        change: &Change<'_>,
    ) -> Result<AliasRecord, Error> {
        let current = self.alias(model, alias).await?;
        let target = current.previous.ok_or_else(|| Error::NothingToRollBack {
            model: model.clone(),
            alias: alias.clone(),
        })?;
        self.move_alias(model, alias, target, Some(current.version), change)
            .await
    }

    /// Archives a version; refused while an alias points to it. Archiving twice is a no-op.
    ///
    /// # Errors
    /// [`Error::VersionInUse`], [`Error::UnknownVersion`], [`Error::Store`].
    pub async fn archive_version(
        &self,
        model: &ModelName,
        version: ModelVersion,
        change: &Change<'_>,
    ) -> Result<(), Error> {
        let provenance = change.provenance()?;
        let _guard = self.write_lock.lock().await;
        self.manifest(model, version).await?;
        if let Some(alias) = self
            .list_aliases(model)
            .await?
            .into_iter()
            .find(|a| a.version == version)
        {
            return Err(Error::VersionInUse {
                model: model.clone(),
                version,
                alias: alias.alias,
            });
        }
        let key = layout::version_file(model, version, layout::ARCHIVED);
        match self
            .store
            .put(
                &key,
                json_bytes(&ArchiveRecord { provenance })?,
                PutMode::CreateNew,
            )
            .await
        {
            Ok(()) | Err(Error::ObjectExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    // --- history -------------------------------------------------------------------------

    /// The event history of `model`, oldest first: registrations, alias moves and archivals,
    /// each with who, when and why, read from the create-only records.
    ///
    /// # Errors
    /// [`Error::UnknownModel`], [`Error::CorruptRecord`], [`Error::Store`].
    pub async fn history(&self, model: &ModelName) -> Result<Vec<Event>, Error> {
        let mut versions = Vec::new();
        for state in self.list_versions(model).await? {
            let manifest = self.manifest(model, state.version).await?;
            versions.push((state, manifest));
        }
        self.history_of(model, versions.iter().map(|(s, m)| (s, m)))
            .await
    }

    /// [`Registry::history`] for the versions (with their manifests) a caller already holds,
    /// e.g. a registry service's in-memory index: manifests are immutable, so only archive
    /// markers and alias records, which change, are read from the store.
    ///
    /// # Errors
    /// [`Error::CorruptRecord`], [`Error::Store`].
    pub async fn history_of<'a>(
        &self,
        model: &ModelName,
        versions: impl IntoIterator<Item = (&'a VersionState, &'a Manifest)>,
    ) -> Result<Vec<Event>, Error> {
        let mut events = Vec::new();
        for (state, manifest) in versions {
            events.push(Event {
                model: model.clone(),
                kind: EventKind::Registered {
                    version: manifest.version,
                    run_id: manifest.run_id,
                },
                provenance: Provenance {
                    at: manifest.created_at,
                    actor: manifest.created_by.clone(),
                    reason: manifest.gate.as_ref().map(gate_summary),
                },
            });
            if state.archived {
                let key = layout::version_file(model, state.version, layout::ARCHIVED);
                let record: ArchiveRecord = layout::decode(&key, &self.store.get(&key).await?)?;
                events.push(Event {
                    model: model.clone(),
                    kind: EventKind::Archived {
                        version: state.version,
                    },
                    provenance: record.provenance,
                });
            }
        }
        for alias in self.alias_names(model).await? {
            for record in self.alias_history(model, &alias).await? {
                events.push(Event {
                    model: model.clone(),
                    kind: EventKind::AliasMoved {
                        alias: record.alias,
                        from: record.previous,
                        to: record.version,
                        revision: record.revision,
                    },
                    provenance: record.provenance,
                });
            }
        }
        events.sort_by_key(|e| e.provenance.at);
        Ok(events)
    }
}

/// The quality gate's verdict in words, for the registration event, with scores rounded as the
/// trainer's alias-move reasons round them: `roc_auc 0.951200 vs champion v3 0.940000: promoted`,
/// `roc_auc 0.951200 vs no champion: promoted`.
pub fn gate_summary(gate: &GateDecision) -> String {
    let champion = match (gate.champion_version, gate.champion_score) {
        (Some(v), Some(score)) => format!("champion v{v} {score:.6}"),
        (Some(v), None) => format!("champion v{v} (not comparable)"),
        (None, Some(score)) => format!("champion {score:.6}"),
        (None, None) => "no champion".to_owned(),
    };
    let verdict = if gate.promoted {
        "promoted"
    } else {
        "not promoted"
    };
    format!(
        "{} {:.6} vs {champion}: {verdict}",
        gate.metric, gate.challenger_score
    )
}

fn json_bytes<T: serde::Serialize>(value: &T) -> Result<Bytes, Error> {
    serde_json::to_vec_pretty(value)
        .map(Bytes::from)
        .map_err(|e| Error::InvalidManifest {
            reason: format!("cannot serialise: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(champion: Option<(u32, Option<f64>)>, promoted: bool) -> GateDecision {
        GateDecision {
            metric: "roc_auc".into(),
            higher_is_better: true,
            champion_version: champion.map(|(v, _)| ModelVersion::new(v).unwrap()),
            champion_score: champion.and_then(|(_, s)| s),
            challenger_score: 0.996_057_928_540_995_6,
            min_improvement: 0.001,
            promoted,
        }
    }

    #[test]
    fn gate_summaries_read_as_text_not_debug_output() {
        let cases = [
            (
                gate(Some((3, Some(0.94))), true),
                "roc_auc 0.996058 vs champion v3 0.940000: promoted",
            ),
            (
                gate(None, true),
                "roc_auc 0.996058 vs no champion: promoted",
            ),
            (
                gate(Some((3, None)), false),
                "roc_auc 0.996058 vs champion v3 (not comparable): not promoted",
            ),
        ];
        for (decision, expected) in cases {
            let text = gate_summary(&decision);
            assert_eq!(text, expected);
            assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
        }
    }
}
