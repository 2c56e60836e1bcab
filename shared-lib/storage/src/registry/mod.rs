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
//! Retention ([`Registry::retire`], rules in [`retention`]) is the one thing that deletes:
//! artifact objects no version that is not deleted references. A retired version keeps its
//! manifest and gains a create-only `deleted.json`, so the history stays whole.
//!
//! Within one process a [`Registry`] also serialises allocation and alias moves behind a lock;
//! that is what makes the registry service a safe single writer on S3 stores that ignore
//! conditional writes (Garage). Across processes the local store's `link(2)` gives the same
//! guarantee, which is why the trainer may publish straight into a local directory.

pub mod layout;
pub use suite_models::manifest;
pub mod records;
pub mod retention;
pub mod rollback;
mod upload;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use suite_models::artifact::{self, ArtifactDigest, ArtifactHead, ModelKind};
use suite_models::model_id::{AliasName, ModelName, ModelVersion};

use crate::Error;
use crate::store::{ObjectStore, PutMode};
use manifest::{ArtifactRef, GateDecision, Manifest, NewVersion, check_actor, check_reason};
use records::{
    AliasHead, AliasRecord, ArchiveRecord, Claim, DeletedRecord, Event, EventKind, KeepRecord,
    Provenance, VersionState,
};
use retention::{RetentionPolicy, RetentionReport, VersionFacts};
use rollback::Skipped;

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
        self.provenance_or(None)
    }

    /// The provenance, with `default_reason` when the caller gave none.
    fn provenance_or(&self, default_reason: Option<String>) -> Result<Provenance, Error> {
        check_actor(self.actor).map_err(|reason| Error::InvalidManifest { reason })?;
        if let Some(reason) = self.reason {
            check_reason(reason).map_err(|reason| Error::InvalidManifest { reason })?;
        }
        Ok(Provenance {
            at: Utc::now(),
            actor: self.actor.to_owned(),
            reason: self.reason.map(str::to_owned).or(default_reason),
        })
    }
}

/// A rollback: the alias revision it wrote, and why it chose that version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollback {
    /// The new revision; `rolled_back_from` names the version left.
    #[serde(flatten)]
    pub record: AliasRecord,
    /// Which version was chosen and why, in words.
    pub explanation: String,
    /// Versions the alias held more recently that were passed over, newest first.
    pub skipped: Vec<Skipped>,
}

/// What the store holds for one version number, from one listing.
#[derive(Debug, Clone, Copy, Default)]
struct VersionFiles {
    manifest: bool,
    archived: bool,
    deleted: bool,
    /// The latest keep-marker revision; 0 when there is none.
    keep_revision: u64,
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
        let head = artifact::inspect_artifact(&artifact_bytes)?;
        let artifact_ref = self
            .store_artifact(&draft.model, head, digest, artifact_bytes.clone())
            .await?;
        let _guard = self.write_lock.lock().await;
        // Retention, which holds the same lock, may have removed the object since it was
        // stored (these bytes were shared with a version it deleted): under the lock, put it
        // back before a manifest names it.
        self.ensure_artifact(&artifact_ref, artifact_bytes).await?;
        self.write_version(draft, artifact_ref).await
    }

    /// Takes the next version number and writes the manifest naming `artifact_ref`. Called
    /// with the write lock held, once the artifact object is known to be in the store.
    async fn write_version(
        &self,
        draft: NewVersion,
        artifact_ref: ArtifactRef,
    ) -> Result<Manifest, Error> {
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
        head: ArtifactHead,
        digest: ArtifactDigest,
        bytes: Bytes,
    ) -> Result<ArtifactRef, Error> {
        let key = layout::artifact(model, &digest);
        match self
            .store
            .put(&key, bytes.clone(), PutMode::CreateNew)
            .await
        {
            Ok(()) => {}
            // Content-addressed: the same bytes are already there, unless that object is
            // damaged, in which case it is replaced with the good bytes.
            Err(Error::ObjectExists { .. }) => match self.store.get(&key).await {
                Ok(existing) => {
                    if ArtifactDigest::of(&existing) != digest {
                        tracing::warn!(%key, "Replacing a damaged artifact object.");
                        self.store.put(&key, bytes, PutMode::Overwrite).await?;
                    }
                }
                // Removed by retention meanwhile; `ensure_artifact` puts it back.
                Err(Error::ObjectNotFound { .. }) => {}
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
        Ok(ArtifactRef::new(&key, digest, head))
    }

    /// Puts the artifact object back if it is missing. Called with the write lock held.
    async fn ensure_artifact(&self, artifact: &ArtifactRef, bytes: Bytes) -> Result<(), Error> {
        let key = crate::store::ObjectKey::parse(&artifact.key)?;
        if self.store.exists(&key).await? {
            return Ok(());
        }
        tracing::info!(%key, "Restoring an artifact object removed by retention.");
        match self.store.put(&key, bytes, PutMode::CreateNew).await {
            Ok(()) | Err(Error::ObjectExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Takes the next free version number. Called with the write lock held.
    async fn allocate_version(&self, draft: &NewVersion) -> Result<ModelVersion, Error> {
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
        let mut versions = Vec::new();
        for (version, files) in self.scan_versions(model).await? {
            if !files.manifest {
                continue;
            }
            versions.push(VersionState {
                version,
                archived: files.archived,
                deleted: files.deleted,
                kept: self.is_kept(model, version, &files).await?,
            });
        }
        if versions.is_empty() {
            return Err(Error::UnknownModel {
                model: model.clone(),
            });
        }
        Ok(versions)
    }

    /// What the store holds for each version number of `model`, from one listing.
    async fn scan_versions(
        &self,
        model: &ModelName,
    ) -> Result<BTreeMap<ModelVersion, VersionFiles>, Error> {
        let keys = self.store.list(&layout::versions_root(model)).await?;
        let mut files: BTreeMap<ModelVersion, VersionFiles> = BTreeMap::new();
        for (version, file) in keys.iter().filter_map(layout::parse_version_file) {
            let entry = files.entry(version).or_default();
            match file {
                layout::MANIFEST => entry.manifest = true,
                layout::ARCHIVED => entry.archived = true,
                layout::DELETED => entry.deleted = true,
                other => {
                    if let Some(revision) = layout::parse_keep_revision(other) {
                        entry.keep_revision = entry.keep_revision.max(revision);
                    }
                }
            }
        }
        Ok(files)
    }

    /// True when the latest keep record of `version` (from `files`) marks it kept.
    async fn is_kept(
        &self,
        model: &ModelName,
        version: ModelVersion,
        files: &VersionFiles,
    ) -> Result<bool, Error> {
        if files.keep_revision == 0 {
            return Ok(false);
        }
        Ok(self
            .keep_record(model, version, files.keep_revision)
            .await?
            .keep)
    }

    async fn keep_record(
        &self,
        model: &ModelName,
        version: ModelVersion,
        revision: u64,
    ) -> Result<KeepRecord, Error> {
        let key = layout::keep_file(model, version, revision);
        layout::decode(&key, &self.store.get(&key).await?)
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

    /// True when retention deleted `version`.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn is_deleted(
        &self,
        model: &ModelName,
        version: ModelVersion,
    ) -> Result<bool, Error> {
        self.store
            .exists(&layout::version_file(model, version, layout::DELETED))
            .await
    }

    /// [`Error::VersionDeleted`] when retention deleted `version`.
    async fn refuse_deleted(&self, model: &ModelName, version: ModelVersion) -> Result<(), Error> {
        if self.is_deleted(model, version).await? {
            return Err(Error::VersionDeleted {
                model: model.clone(),
                version,
            });
        }
        Ok(())
    }

    /// The artifact bytes of a version, checked against the manifest's size and sha256.
    ///
    /// # Errors
    /// [`Error::VersionDeleted`] for a version retention deleted (even when another version
    /// still shares its artifact), [`Error::SizeMismatch`], [`Error::DigestMismatch`],
    /// [`Error::ObjectNotFound`], [`Error::Store`].
    pub async fn fetch_artifact(&self, manifest: &Manifest) -> Result<Bytes, Error> {
        self.refuse_deleted(&manifest.model, manifest.version)
            .await?;
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

    /// The model of a version, decoded as its artifact streams in and verified against the
    /// manifest at its end ([`crate::store::decode_streamed`]), as the services load it.
    ///
    /// # Errors
    /// As [`Registry::open_artifact_unverified`] and `artifact::decode_artifact_from`.
    #[tracing::instrument(skip_all, fields(model = %manifest.model, version = %manifest.version))]
    pub async fn load_model<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        manifest: &Manifest,
        kind: ModelKind,
    ) -> Result<T, Error> {
        let artifact = self.open_artifact_unverified(manifest).await?;
        crate::store::decode_streamed(artifact.stream, &manifest.artifact, kind).await
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

    /// The revisions of `alias` in force at some time at or after `since` (all of them for
    /// `None`), oldest first: read backwards from the current one, so the cost is the window's,
    /// not the whole history's.
    async fn alias_revisions_since(
        &self,
        model: &ModelName,
        alias: &AliasName,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<AliasRecord>, Error> {
        let Some(current) = self.current_alias(model, alias).await? else {
            return Ok(Vec::new());
        };
        let mut revision = current.revision;
        let mut out = vec![current];
        // The revision before one that started at or before `since` cannot be in force then.
        while revision > 1
            && since.is_none_or(|since| out.last().is_some_and(|r| r.provenance.at > since))
        {
            revision -= 1;
            out.push(self.alias_revision(model, alias, revision).await?);
        }
        out.reverse();
        Ok(out)
    }

    /// Moves `alias` to `to` if it currently points to `expected` (`None`: if it does not exist
    /// yet). Compare-and-swap: of concurrent movers with the same expectation, one wins.
    ///
    /// # Errors
    /// [`Error::AliasConflict`] naming the actual version, [`Error::UnknownVersion`],
    /// [`Error::VersionArchived`], [`Error::VersionDeleted`], [`Error::InvalidManifest`] for a
    /// bad actor or reason, [`Error::Store`].
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
        self.move_alias_locked(model, alias, to, expected, provenance, None)
            .await
    }

    /// [`Registry::move_alias`] with the write lock held; `rolled_back_from` marks a rollback.
    async fn move_alias_locked(
        &self,
        model: &ModelName,
        alias: &AliasName,
        to: ModelVersion,
        expected: Option<ModelVersion>,
        provenance: Provenance,
        rolled_back_from: Option<ModelVersion>,
    ) -> Result<AliasRecord, Error> {
        self.manifest(model, to).await?;
        self.refuse_deleted(model, to).await?;
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
            rolled_back_from,
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

    /// Rolls `alias` back: to the most recent version it held before the current one that
    /// was never rolled back from and is neither archived nor deleted (see [`rollback`]), so
    /// repeated rollbacks keep going back instead of flipping between two versions. The new
    /// revision records the version left in `rolled_back_from`.
    ///
    /// # Errors
    /// [`Error::UnknownAlias`], [`Error::NothingToRollBack`] naming what was passed over, and
    /// as [`Registry::move_alias`].
    #[tracing::instrument(skip_all, fields(%model, %alias))]
    pub async fn rollback_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        change: &Change<'_>,
    ) -> Result<Rollback, Error> {
        change.provenance()?;
        let _guard = self.write_lock.lock().await;
        let revisions = self.alias_history(model, alias).await?;
        let states: BTreeMap<ModelVersion, VersionState> = self
            .list_versions(model)
            .await?
            .into_iter()
            .map(|s| (s.version, s))
            .collect();
        let choice = rollback::choose(&revisions, &states).ok_or_else(|| Error::UnknownAlias {
            model: model.clone(),
            alias: alias.clone(),
        })?;
        let passed_over = rollback::describe_skipped(&choice.skipped);
        let Some(target) = choice.target else {
            return Err(Error::NothingToRollBack {
                model: model.clone(),
                alias: alias.clone(),
                skipped: passed_over,
            });
        };
        let mut explanation = format!(
            "v{target} is the most recent version {alias} held before v{} that was not rolled \
             back from, archived or deleted",
            choice.current
        );
        if !choice.skipped.is_empty() {
            explanation.push_str(&format!("; passed over {passed_over}"));
        }
        let provenance = change.provenance_or(Some(format!(
            "rollback from v{} to v{target}",
            choice.current
        )))?;
        let record = self
            .move_alias_locked(
                model,
                alias,
                target,
                Some(choice.current),
                provenance,
                Some(choice.current),
            )
            .await?;
        tracing::info!(%model, %alias, from = %choice.current, to = %target, %explanation, "Alias rolled back.");
        Ok(Rollback {
            record,
            explanation,
            skipped: choice.skipped,
        })
    }

    /// Archives a version; refused while an alias points to it. Archiving twice is a no-op.
    ///
    /// # Errors
    /// [`Error::VersionInUse`], [`Error::UnknownVersion`], [`Error::VersionDeleted`],
    /// [`Error::Store`].
    pub async fn archive_version(
        &self,
        model: &ModelName,
        version: ModelVersion,
        change: &Change<'_>,
    ) -> Result<(), Error> {
        let provenance = change.provenance()?;
        let _guard = self.write_lock.lock().await;
        self.manifest(model, version).await?;
        self.refuse_deleted(model, version).await?;
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

    // --- retention -----------------------------------------------------------------------

    /// Marks `version` to keep (`keep: true`): retention never deletes it, the way an
    /// operator protects a version pinned with `MODEL_VERSION`; `keep: false` lifts the mark.
    /// Each change is a new create-only keep record, so the history shows who and why.
    /// Returns false, writing nothing, when the version is already in the asked state.
    ///
    /// # Errors
    /// [`Error::UnknownVersion`], [`Error::VersionDeleted`], [`Error::InvalidManifest`] for a
    /// bad actor or reason, [`Error::Store`].
    pub async fn keep_version(
        &self,
        model: &ModelName,
        version: ModelVersion,
        keep: bool,
        change: &Change<'_>,
    ) -> Result<bool, Error> {
        let provenance = change.provenance()?;
        let _guard = self.write_lock.lock().await;
        self.manifest(model, version).await?;
        let files = self
            .scan_versions(model)
            .await?
            .remove(&version)
            .unwrap_or_default();
        if files.deleted {
            return Err(Error::VersionDeleted {
                model: model.clone(),
                version,
            });
        }
        if self.is_kept(model, version, &files).await? == keep {
            return Ok(false);
        }
        let key = layout::keep_file(model, version, files.keep_revision + 1);
        self.store
            .put(
                &key,
                json_bytes(&KeepRecord { keep, provenance })?,
                PutMode::CreateNew,
            )
            .await?;
        tracing::info!(%model, %version, keep, actor = %change.actor, "Keep marker changed.");
        Ok(true)
    }

    /// Applies `policy` to `model` (rules in [`retention`]): marks every version it does not
    /// retain deleted (a create-only `deleted.json` with `change` as provenance; the manifest
    /// stays), then removes each artifact object that no version still not deleted
    /// references. A `dry_run` reports the same without changing anything.
    ///
    /// Runs under the write lock, as do publishes, which put back an artifact object removed
    /// while they were storing it: deleting is safe against concurrent publishes through this
    /// `Registry` (the registry service, the single writer).
    ///
    /// # Errors
    /// [`Error::UnknownModel`], [`Error::InvalidManifest`] for a bad actor or reason,
    /// [`Error::CorruptRecord`], [`Error::Store`] (a run cut short by a store failure is
    /// finished by the next one: every step can be repeated).
    #[tracing::instrument(skip_all, fields(%model, %policy, dry_run))]
    pub async fn retire(
        &self,
        model: &ModelName,
        policy: &RetentionPolicy,
        change: &Change<'_>,
        dry_run: bool,
    ) -> Result<RetentionReport, Error> {
        let provenance = change.provenance_or(Some(format!("retention: {policy}")))?;
        let _guard = self.write_lock.lock().await;
        let states = self.list_versions(model).await?;
        let mut live = Vec::new();
        for state in states.iter().filter(|s| !s.deleted) {
            live.push((state, self.manifest(model, state.version).await?));
        }
        let facts: Vec<VersionFacts> = live
            .iter()
            .map(|(state, manifest)| VersionFacts {
                version: state.version,
                created_at: manifest.created_at,
                kept: state.kept,
            })
            .collect();
        let now = Utc::now();
        let since = retention::window_start(policy, now, &facts);
        let mut aliases = Vec::new();
        for alias in self.alias_names(model).await? {
            aliases.push(self.alias_revisions_since(model, &alias, since).await?);
        }
        let plan = retention::plan(policy, now, &facts, &aliases);

        if !dry_run {
            let record = json_bytes(&DeletedRecord { provenance })?;
            for &version in &plan.retire {
                let key = layout::version_file(model, version, layout::DELETED);
                match self
                    .store
                    .put(&key, record.clone(), PutMode::CreateNew)
                    .await
                {
                    Ok(()) | Err(Error::ObjectExists { .. }) => {}
                    Err(e) => return Err(e),
                }
                tracing::info!(%model, %version, actor = %change.actor, "Version deleted by retention.");
            }
        }
        let retired: BTreeSet<ModelVersion> = plan.retire.iter().copied().collect();
        let referenced: BTreeSet<&str> = live
            .iter()
            .filter(|(state, _)| !retired.contains(&state.version))
            .map(|(_, manifest)| manifest.artifact.key.as_str())
            .collect();
        let retired_now: BTreeSet<&str> = live
            .iter()
            .filter(|(state, _)| retired.contains(&state.version))
            .map(|(_, manifest)| manifest.artifact.key.as_str())
            .collect();
        // Every artifact object no retained version names: those of versions deleted now or by
        // an earlier run cut short, and those of publishes that died before their manifest.
        // (A publish under way puts its object back under the lock; see `publish`.) An orphan
        // younger than the upload grace may be an upload whose registration is on its way
        // (`Registry::register`), and is left for a later run.
        let mut artifacts_deleted = Vec::new();
        for key in self.store.list(&layout::artifacts_root(model)).await? {
            if referenced.contains(key.as_str()) {
                continue;
            }
            if !retired_now.contains(key.as_str())
                && let Some(at) = self.store.last_modified(&key).await?
                && (now - at).num_seconds() < retention::UPLOAD_GRACE_SECS
            {
                tracing::debug!(%model, %key, "Keeping a recent upload no version names yet.");
                continue;
            }
            if !dry_run {
                self.store.delete(&key).await?;
                tracing::info!(%model, %key, "Artifact object deleted by retention.");
            }
            artifacts_deleted.push(key.to_string());
        }
        Ok(RetentionReport {
            model: model.clone(),
            policy: *policy,
            dry_run,
            window_start: plan.window_start,
            retired: plan.retire,
            retained: plan.retained,
            artifacts_deleted,
        })
    }

    // --- history -------------------------------------------------------------------------

    /// The event history of `model`, oldest first: registrations, alias moves (rollbacks
    /// flagged), archivals, deletions by retention and keep markers, each with who, when and
    /// why, read from the create-only records. Deleted versions stay in it.
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
    /// e.g. a registry service's in-memory index: manifests are immutable (a deleted version
    /// keeps its manifest), so only the other records, which are added over time, are read
    /// from the store.
    ///
    /// # Errors
    /// [`Error::CorruptRecord`], [`Error::Store`].
    pub async fn history_of<'a>(
        &self,
        model: &ModelName,
        versions: impl IntoIterator<Item = (&'a VersionState, &'a Manifest)>,
    ) -> Result<Vec<Event>, Error> {
        let mut events = Vec::new();
        let files = self.scan_versions(model).await?;
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
            let keep_revisions = files.get(&state.version).map_or(0, |f| f.keep_revision);
            for revision in 1..=keep_revisions {
                let record = self.keep_record(model, state.version, revision).await?;
                let version = state.version;
                events.push(Event {
                    model: model.clone(),
                    kind: if record.keep {
                        EventKind::Kept { version }
                    } else {
                        EventKind::Unkept { version }
                    },
                    provenance: record.provenance,
                });
            }
            if state.deleted {
                let key = layout::version_file(model, state.version, layout::DELETED);
                let record: DeletedRecord = layout::decode(&key, &self.store.get(&key).await?)?;
                events.push(Event {
                    model: model.clone(),
                    kind: EventKind::Deleted {
                        version: state.version,
                    },
                    provenance: record.provenance,
                });
            }
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
                        rollback: record.rolled_back_from.is_some(),
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
    let summary = format!(
        "{} {:.6} vs {champion}: {verdict}",
        gate.metric, gate.challenger_score
    );
    match &gate.reason {
        Some(reason) if !gate.promoted => format!("{summary} ({reason})"),
        _ => summary,
    }
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
            floor: None,
            compared_rows: None,
            outcome: None,
            reason: None,
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
        let mut failed_closed = gate(Some((3, None)), false);
        failed_closed.reason =
            Some("champion v3 could not be compared: registry answered 503".into());
        assert_eq!(
            gate_summary(&failed_closed),
            "roc_auc 0.996058 vs champion v3 (not comparable): not promoted \
             (champion v3 could not be compared: registry answered 503)"
        );
        for (decision, expected) in cases {
            let text = gate_summary(&decision);
            assert_eq!(text, expected);
            assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
        }
    }
}
