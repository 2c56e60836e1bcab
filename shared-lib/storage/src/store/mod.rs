//! The object store: the registry's source of truth, behind one interface with two backends.
//!
//! - [`LocalStore`]: a directory, the embedded default, so the suite runs with no S3 at all;
//! - [`S3Store`]: any S3-compatible service through aws-sdk-s3 (AWS, MinIO, Ceph, Garage).
//!
//! The interface is deliberately small: whole-object get, put and delete, existence, and
//! listing, plus streamed reads and writes ([`ObjectStore::get_stream`],
//! [`ObjectStore::put_stream`]) for artifacts too large to hold in memory: a streamed write is
//! hashed on the way and becomes visible only when its size and sha256 are right.
//! Everything the registry needs for safety rests on one primitive, [`PutMode::CreateNew`]
//! ("write this key only if nobody has"), which each backend makes as strong as it can;
//! [`ObjectStore::probe_conditional_writes`] tells whether a store makes it atomic.
//! Backends are a closed set, so dispatch is an enum rather than a trait object.

mod local;
mod location;
mod s3;
mod streaming;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::Stream;
use suite_models::artifact::ArtifactDigest;

pub use local::LocalStore;
pub use location::{DEFAULT_MODEL_STORE, S3Credentials, S3Settings, StoreLocation};
pub use s3::{PROBE_PREFIX, S3Store, https_client};
pub use streaming::{BlockingRead, ObjectRead, ObjectStream, decode_streamed};
pub use suite_models::object_key::ObjectKey;

use crate::{BoxError, Error};

/// How a put treats an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there; readers see the old or the new object, never a mix.
    Overwrite,
    /// Fail with [`Error::ObjectExists`] if the key exists. Atomic on the local store and on S3
    /// stores that honour `If-None-Match: *`; elsewhere the single writer (the registry
    /// service) serialises the writes, see `DESIGN.md`.
    ///
    /// One exception on S3: when the `PutObject` itself is refused (412/409) after the `HEAD`
    /// found nothing, and the key then holds exactly the bytes of this write, it succeeds. That
    /// is how a write the SDK retried after a lost response looks (the first attempt stored
    /// it), and it must not become a false "already exists". It also accepts identical bytes
    /// that another writer created in the same instant, so a caller that creates a key to
    /// *claim* something must write bytes no other writer would: the registry's version
    /// claims carry the run id and the claim time, alias revisions and status records the
    /// actor and the time, and artifacts are content-addressed (identical bytes are the same
    /// artifact).
    CreateNew,
}

/// Whether a store refuses a create-only write (`If-None-Match: *`) to a key that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionalWrites {
    /// The second of two create-only writes of one key is refused: create-new is atomic, and
    /// several processes may publish into the store.
    Honoured,
    /// The header is ignored and the second write overwrites the first (Garage): only one
    /// writer may publish into the store.
    Ignored,
}

/// An object store, chosen at start-up by `MODEL_STORE`.
#[derive(Debug, Clone)]
pub enum ObjectStore {
    Local(LocalStore),
    S3(S3Store),
}

impl ObjectStore {
    /// Opens the store at `location`. Creates the directory of a local store if missing;
    /// does not contact S3 (the first request does, so start-up survives an S3 outage).
    ///
    /// # Errors
    /// [`Error::Store`] when the local directory cannot be created.
    pub async fn open(location: &StoreLocation) -> Result<Self, Error> {
        match location {
            StoreLocation::Local(path) => Ok(Self::Local(LocalStore::open(path).await?)),
            StoreLocation::S3(settings) => Ok(Self::S3(S3Store::new(settings))),
        }
    }

    /// Reads a whole object.
    ///
    /// # Errors
    /// [`Error::ObjectNotFound`] when absent, [`Error::Store`] when the store fails.
    #[tracing::instrument(skip_all, fields(key = %key))]
    pub async fn get(&self, key: &ObjectKey) -> Result<Bytes, Error> {
        match self {
            Self::Local(s) => s.get(key).await,
            Self::S3(s) => s.get(key).await,
        }
    }

    /// Writes a whole object; readers never see a partial one.
    ///
    /// # Errors
    /// [`Error::ObjectExists`] for [`PutMode::CreateNew`] on an existing key, [`Error::Store`].
    #[tracing::instrument(skip_all, fields(key = %key, size = bytes.len(), ?mode))]
    pub async fn put(&self, key: &ObjectKey, bytes: Bytes, mode: PutMode) -> Result<(), Error> {
        match self {
            Self::Local(s) => s.put(key, bytes, mode).await,
            Self::S3(s) => s.put(key, bytes, mode).await,
        }
    }

    /// Reads an object as a stream of chunks, with its size; memory stays at one chunk.
    ///
    /// # Errors
    /// [`Error::ObjectNotFound`] when absent, [`Error::Store`] when the store fails (later
    /// failures end the stream with an error).
    #[tracing::instrument(skip_all, fields(key = %key))]
    pub async fn get_stream(&self, key: &ObjectKey) -> Result<ObjectRead, Error> {
        match self {
            Self::Local(s) => s.get_stream(key).await,
            Self::S3(s) => s.get_stream(key).await,
        }
    }

    /// Writes `body` to `key` as it arrives, hashing it, and makes the object visible only if
    /// the body ends, is at most `max_bytes` long and its sha256 is `expected`; otherwise
    /// nothing is visible and no partial upload is left behind (local: a synced temporary
    /// file renamed into place; S3: one `PutObject` below one part, else a multipart upload
    /// that is aborted on any failure). Memory stays at about one part (8 MiB) on S3 and one
    /// chunk locally. Returns the size.
    ///
    /// An existing object is replaced: this is for content-addressed keys, where whatever is
    /// there already has (or, if damaged, should have) exactly these bytes.
    ///
    /// # Errors
    /// [`Error::UploadTooLarge`], [`Error::DigestMismatch`], [`Error::UploadInterrupted`] for
    /// a body that fails (an error of ours inside the body stream is returned as it is),
    /// [`Error::Store`].
    ///
    /// # Cancel safety
    /// Dropping the future makes nothing visible: the local temporary file is removed, and an
    /// S3 multipart upload is aborted from a spawned task (if the process dies first, a bucket
    /// lifecycle rule for incomplete multipart uploads must remove it).
    #[tracing::instrument(skip_all, fields(key = %key, max_bytes))]
    pub async fn put_stream<S>(
        &self,
        key: &ObjectKey,
        body: S,
        expected: &ArtifactDigest,
        max_bytes: u64,
    ) -> Result<u64, Error>
    where
        S: Stream<Item = Result<Bytes, BoxError>>,
    {
        let body = std::pin::pin!(body);
        let check = streaming::UploadCheck::new(expected, max_bytes);
        match self {
            Self::Local(s) => s.put_stream(key, body, check).await,
            Self::S3(s) => s.put_stream(key, body, check).await,
        }
    }

    /// When the object was last written, if it exists.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails.
    pub async fn last_modified(&self, key: &ObjectKey) -> Result<Option<DateTime<Utc>>, Error> {
        match self {
            Self::Local(s) => s.last_modified(key).await,
            Self::S3(s) => s.last_modified(key).await,
        }
    }

    /// Removes an object. Removing a key that does not exist is not an error, so a delete that
    /// is repeated (after a crash, or by two cleaners) converges.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails.
    #[tracing::instrument(skip_all, fields(key = %key))]
    pub async fn delete(&self, key: &ObjectKey) -> Result<(), Error> {
        match self {
            Self::Local(s) => s.delete(key).await,
            Self::S3(s) => s.delete(key).await,
        }
    }

    /// # Errors
    /// [`Error::Store`] when the store fails.
    pub async fn exists(&self, key: &ObjectKey) -> Result<bool, Error> {
        match self {
            Self::Local(s) => s.exists(key).await,
            Self::S3(s) => s.exists(key).await,
        }
    }

    /// Every key below `prefix` (recursively), sorted.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails. An absent prefix is an empty list.
    #[tracing::instrument(skip_all, fields(prefix = %prefix))]
    pub async fn list(&self, prefix: &ObjectKey) -> Result<Vec<ObjectKey>, Error> {
        match self {
            Self::Local(s) => s.list(prefix).await,
            Self::S3(s) => s.list(prefix).await,
        }
    }

    /// The names of the direct children of `prefix` that have objects below them ("folders"),
    /// sorted.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails.
    pub async fn list_folders(&self, prefix: &ObjectKey) -> Result<Vec<String>, Error> {
        match self {
            Self::Local(s) => s.list_folders(prefix).await,
            Self::S3(s) => s.list_folders(prefix).await,
        }
    }

    /// Whether the store honours conditional writes, found by trying: two raw create-only
    /// `PutObject`s (`If-None-Match: *`, no `HEAD` first, which would hide the answer) of one
    /// fresh key below [`PROBE_PREFIX`]; the second must be refused. The probe object is
    /// deleted afterwards. The local store always honours them (`link(2)`), untried.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails (unreachable, no write permission).
    #[tracing::instrument(skip_all, fields(store = %self.describe()))]
    pub async fn probe_conditional_writes(&self) -> Result<ConditionalWrites, Error> {
        match self {
            Self::Local(_) => Ok(ConditionalWrites::Honoured),
            Self::S3(s) => s.probe_conditional_writes().await,
        }
    }

    /// A short description for logs, e.g. `file:///var/lib/models` or `s3://models/prod`.
    pub fn describe(&self) -> String {
        match self {
            Self::Local(s) => format!("file://{}", s.root().display()),
            Self::S3(s) => s.describe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_reject_traversal_and_odd_characters() {
        for good in [
            "a",
            "models/fraud/versions/0000000001/manifest.json",
            "x.y-z_1",
        ] {
            assert!(ObjectKey::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "../a", "a/../b", "a/./b", "a b", "a\\b", "é",
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
