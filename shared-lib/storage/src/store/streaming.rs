//! Streamed reads and writes: what both backends share.
//!
//! A streamed write hashes and counts the bytes as they pass ([`UploadCheck`]) and publishes the
//! object only once the size and the sha256 are right, so memory stays bounded by one buffer
//! (one multipart part on S3) whatever the object's size.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use serde::de::DeserializeOwned;
use suite_models::artifact::{ArtifactDigest, ArtifactHasher, ModelKind, decode_artifact_from};
use suite_models::manifest::ArtifactRef;

use crate::{BoxError, Error};

/// An object's bytes, arriving in chunks. Read errors end it (e.g. the store connection broke).
pub type ObjectStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// An object being read: its size (from the store's metadata) and its bytes.
pub struct ObjectRead {
    pub size: u64,
    pub stream: ObjectStream,
}

impl std::fmt::Debug for ObjectRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectRead")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// An object stream read from a blocking thread, one chunk in memory at a time, for decoders
/// that take a [`std::io::Read`] (`artifact::decode_artifact_from`, how servers and the trainer
/// load models without holding an artifact whole). Each chunk is awaited on `runtime`: use it
/// on a blocking thread (`spawn_blocking`), never on a runtime's worker.
pub struct BlockingRead {
    stream: ObjectStream,
    runtime: tokio::runtime::Handle,
    chunk: Bytes,
}

impl BlockingRead {
    pub fn new(stream: ObjectStream, runtime: tokio::runtime::Handle) -> Self {
        Self {
            stream,
            runtime,
            chunk: Bytes::new(),
        }
    }
}

impl std::io::Read for BlockingRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use bytes::Buf as _;
        use futures_util::StreamExt as _;
        while self.chunk.is_empty() {
            match self.runtime.block_on(self.stream.next()) {
                Some(chunk) => self.chunk = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

/// The model in an artifact, decoded as `stream` delivers it: on a blocking thread, through
/// [`BlockingRead`] and `decode_artifact_from` (size and sha256 checked against `artifact` at its
/// end), so the artifact is never held whole. How the trainer loads a champion and
/// `Registry::load_model` a version; the services' loads add their validation and cache copy to
/// the same reader.
///
/// # Errors
/// As `decode_artifact_from`; [`Error::CorruptArtifact`] if the decoding thread panicked.
pub async fn decode_streamed<T: DeserializeOwned + Send + 'static>(
    stream: ObjectStream,
    artifact: &ArtifactRef,
    kind: ModelKind,
) -> Result<T, Error> {
    let (runtime, artifact) = (tokio::runtime::Handle::current(), artifact.clone());
    tokio::task::spawn_blocking(move || {
        decode_artifact_from(BlockingRead::new(stream, runtime), &artifact, kind)
    })
    .await
    .map_err(|e| Error::CorruptArtifact {
        reason: format!("loading panicked: {e}"),
    })?
}

/// The checks of a streamed write: at most `max_bytes`, sha256 equal to `expected`.
pub(super) struct UploadCheck<'a> {
    hasher: ArtifactHasher,
    size: u64,
    max_bytes: u64,
    expected: &'a ArtifactDigest,
}

impl<'a> UploadCheck<'a> {
    pub(super) fn new(expected: &'a ArtifactDigest, max_bytes: u64) -> Self {
        Self {
            hasher: ArtifactHasher::new(),
            size: 0,
            max_bytes,
            expected,
        }
    }

    /// Takes one chunk of the body, or turns the body's error into ours.
    ///
    /// A body error that is one of ours (a check made by whoever built the stream, e.g. the
    /// registry's envelope check) passes through as it is; anything else is an interrupted
    /// upload.
    pub(super) fn take(&mut self, chunk: Result<Bytes, BoxError>) -> Result<Bytes, Error> {
        let chunk = chunk.map_err(body_error)?;
        self.size += chunk.len() as u64;
        if self.size > self.max_bytes {
            return Err(Error::UploadTooLarge {
                limit: self.max_bytes,
            });
        }
        self.hasher.update(&chunk);
        Ok(chunk)
    }

    /// The size, once the whole body has passed and its digest is the expected one.
    pub(super) fn finish(self) -> Result<u64, Error> {
        let actual = self.hasher.finish();
        if &actual != self.expected {
            return Err(Error::DigestMismatch {
                expected: self.expected.clone(),
                actual,
            });
        }
        Ok(self.size)
    }
}

fn body_error(err: BoxError) -> Error {
    match err.downcast::<Error>() {
        Ok(ours) => *ours,
        Err(other) => Error::UploadInterrupted {
            reason: other.to_string(),
        },
    }
}
