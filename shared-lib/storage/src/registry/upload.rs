//! Publishing in two steps, with bounded memory, as the registry service does it: the artifact
//! is streamed into its content-addressed key first ([`Registry::upload_artifact`]), then a
//! version naming it by sha256 is registered ([`Registry::register`]); downloads stream too
//! ([`Registry::open_artifact`]).
//!
//! An uploaded artifact that no version names yet is an orphan to retention; retention leaves
//! orphans younger than [`super::retention::UPLOAD_GRACE_SECS`] alone, and a registration checks under
//! the write lock that its artifact is still there, so a manifest never names a missing object.

use std::pin::{Pin, pin};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use suite_models::artifact::{self, ARTIFACT_HEAD_BYTES, ArtifactDigest, ArtifactHasher};
use suite_models::model_id::ModelName;

use super::manifest::{ArtifactRef, Manifest, NewVersion};
use super::{Registry, layout};
use crate::store::{ObjectKey, ObjectRead, ObjectStream};
use crate::{BoxError, Error};

impl Registry {
    /// Streams an artifact of `model` into the store under its sha256 `expected`: the
    /// envelope is checked from the first bytes (magic, format version, kind, declared size),
    /// then the body is hashed while it is written, and the object becomes visible only if it
    /// is at most `max_bytes`, exactly the declared size and of digest `expected`. Uploading
    /// bytes that are already stored replaces them with themselves (and repairs a damaged
    /// object).
    ///
    /// # Errors
    /// [`Error::CorruptArtifact`], [`Error::UnsupportedFormat`], [`Error::UploadTooLarge`],
    /// [`Error::DigestMismatch`], [`Error::UploadInterrupted`], [`Error::Store`].
    #[tracing::instrument(skip_all, fields(%model, sha256 = %expected))]
    pub async fn upload_artifact<S>(
        &self,
        model: &ModelName,
        expected: &ArtifactDigest,
        body: S,
        max_bytes: u64,
    ) -> Result<ArtifactRef, Error>
    where
        S: Stream<Item = Result<Bytes, BoxError>>,
    {
        let mut body = pin!(body);
        let (head, ended) = read_head(&mut body).await?;
        let inspected = artifact::inspect_artifact_head(&head)?;
        if inspected.declared_size > max_bytes {
            return Err(Error::UploadTooLarge { limit: max_bytes });
        }
        let key = layout::artifact(model, expected);
        let checked = declared_size_checked(head, ended, body, inspected.declared_size);
        let size = self
            .store
            .put_stream(&key, checked, expected, max_bytes)
            .await?;
        tracing::info!(%model, %key, size, "Artifact uploaded.");
        Ok(ArtifactRef::new(&key, expected.clone(), inspected))
    }

    /// Registers a new version of `draft.model` whose artifact, of sha256 `artifact`, was
    /// uploaded before: reads the stored object through once (sha256, size, envelope), then,
    /// under the write lock, checks it is still there, takes the next version number and
    /// writes the manifest last.
    ///
    /// # Errors
    /// [`Error::InvalidManifest`], [`Error::ArtifactNotUploaded`] when the store does not hold
    /// that artifact (never uploaded, or removed by retention since), [`Error::DigestMismatch`]
    /// or artifact errors for a damaged object (upload it again), [`Error::AllocationContention`],
    /// [`Error::Store`].
    #[tracing::instrument(skip_all, fields(model = %draft.model, version = tracing::field::Empty))]
    pub async fn register(
        &self,
        draft: NewVersion,
        artifact: &ArtifactDigest,
    ) -> Result<Manifest, Error> {
        draft.validate()?;
        let artifact_ref = self.verify_stored_artifact(&draft.model, artifact).await?;
        let _guard = self.write_lock.lock().await;
        // Retention holds the same lock; checked here, the object stays until the manifest is
        // written.
        if !self
            .store
            .exists(&ObjectKey::parse(&artifact_ref.key)?)
            .await?
        {
            return Err(not_uploaded(&draft.model, artifact));
        }
        self.write_version(draft, artifact_ref).await
    }

    /// Reads the stored artifact of `model` with sha256 `expected` through, checking digest,
    /// envelope and size; memory stays at one chunk.
    async fn verify_stored_artifact(
        &self,
        model: &ModelName,
        expected: &ArtifactDigest,
    ) -> Result<ArtifactRef, Error> {
        let key = layout::artifact(model, expected);
        let mut read = match self.store.get_stream(&key).await {
            Err(Error::ObjectNotFound { .. }) => return Err(not_uploaded(model, expected)),
            other => other?,
        };
        let mut hasher = ArtifactHasher::new();
        let mut head = BytesMut::new();
        let mut size = 0u64;
        while let Some(chunk) = read.stream.next().await {
            let chunk = chunk.map_err(|e| Error::store("get", key.as_str(), e))?;
            let wanted = ARTIFACT_HEAD_BYTES
                .saturating_sub(head.len())
                .min(chunk.len());
            head.extend_from_slice(&chunk[..wanted]);
            hasher.update(&chunk);
            size += chunk.len() as u64;
        }
        let actual = hasher.finish();
        if &actual != expected {
            tracing::warn!(%key, "A stored artifact does not match its digest; it must be uploaded again.");
            return Err(Error::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        let inspected = artifact::inspect_artifact_head(&head)?;
        if inspected.declared_size != size {
            return Err(Error::SizeMismatch {
                expected: inspected.declared_size,
                actual: size,
            });
        }
        Ok(ArtifactRef::new(&key, expected.clone(), inspected))
    }

    /// The artifact of a version as a stream, with its size checked against the manifest
    /// before the first byte. The stream hashes what passes and, after the last chunk, ends
    /// in an error if the sha256 differs from the manifest's, so a damaged object never
    /// completes a download cleanly; receivers still verify the digest themselves (a server
    /// cannot take back bytes already sent).
    ///
    /// # Errors
    /// [`Error::VersionDeleted`], [`Error::SizeMismatch`], [`Error::ObjectNotFound`],
    /// [`Error::Store`].
    pub async fn open_artifact(&self, manifest: &Manifest) -> Result<ObjectRead, Error> {
        let read = self.open_artifact_unverified(manifest).await?;
        Ok(ObjectRead {
            size: read.size,
            stream: digest_checked(read.stream, manifest.artifact.sha256.clone()),
        })
    }

    /// As [`Registry::open_artifact`], without hashing the bytes: for a reader that verifies
    /// them itself as they arrive (`artifact::decode_artifact_from`, how servers load), so
    /// that a 3 GB artifact is not hashed twice.
    ///
    /// # Errors
    /// As [`Registry::open_artifact`].
    pub async fn open_artifact_unverified(&self, manifest: &Manifest) -> Result<ObjectRead, Error> {
        self.refuse_deleted(&manifest.model, manifest.version)
            .await?;
        let key = ObjectKey::parse(&manifest.artifact.key)?;
        let read = self.store.get_stream(&key).await?;
        if read.size != manifest.artifact.size {
            return Err(Error::SizeMismatch {
                expected: manifest.artifact.size,
                actual: read.size,
            });
        }
        Ok(read)
    }
}

fn not_uploaded(model: &ModelName, sha256: &ArtifactDigest) -> Error {
    Error::ArtifactNotUploaded {
        model: model.clone(),
        sha256: sha256.clone(),
    }
}

/// Reads at least [`ARTIFACT_HEAD_BYTES`] (or the whole body, when shorter); the flag says
/// whether the body ended.
async fn read_head<S>(body: &mut Pin<&mut S>) -> Result<(Bytes, bool), Error>
where
    S: Stream<Item = Result<Bytes, BoxError>>,
{
    let mut head = BytesMut::new();
    while head.len() < ARTIFACT_HEAD_BYTES {
        match body.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(e)) => {
                return Err(Error::UploadInterrupted {
                    reason: e.to_string(),
                });
            }
            None => return Ok((head.freeze(), true)),
        }
    }
    Ok((head.freeze(), false))
}

/// `head` followed by the rest of `body`, ending in an error if the total differs from the
/// size the envelope declares (a truncated or padded artifact).
fn declared_size_checked<'a, S>(
    head: Bytes,
    ended: bool,
    body: Pin<&'a mut S>,
    declared: u64,
) -> impl Stream<Item = Result<Bytes, BoxError>> + 'a
where
    S: Stream<Item = Result<Bytes, BoxError>> + 'a,
{
    struct State<'a, S> {
        body: Pin<&'a mut S>,
        head: Option<Bytes>,
        body_ended: bool,
        seen: u64,
        done: bool,
    }
    let state = State {
        body,
        head: Some(head),
        body_ended: ended,
        seen: 0,
        done: false,
    };
    futures_util::stream::unfold(state, move |mut s| async move {
        if s.done {
            return None;
        }
        let item = match s.head.take() {
            Some(head) => Some(Ok(head)),
            None if s.body_ended => None,
            None => s.body.next().await,
        };
        let mismatch = |seen: u64| -> BoxError {
            Box::new(Error::CorruptArtifact {
                reason: format!(
                    "the envelope declares {declared} bytes, the upload has {seen}{}",
                    if seen > declared { " or more" } else { "" }
                ),
            })
        };
        match item {
            Some(Ok(chunk)) => {
                s.seen += chunk.len() as u64;
                if s.seen > declared {
                    s.done = true;
                    let err = mismatch(s.seen);
                    return Some((Err(err), s));
                }
                Some((Ok(chunk), s))
            }
            Some(Err(e)) => {
                s.done = true;
                Some((Err(e), s))
            }
            None => {
                s.done = true;
                s.body_ended = true;
                (s.seen != declared).then(|| (Err(mismatch(s.seen)), s))
            }
        }
    })
}

/// `stream`, hashed as it passes; after the last chunk, an error if the sha256 is not
/// `expected`.
fn digest_checked(stream: ObjectStream, expected: ArtifactDigest) -> ObjectStream {
    let state = (stream, Some(ArtifactHasher::new()));
    Box::pin(futures_util::stream::unfold(
        state,
        move |(mut stream, hasher)| {
            let expected = expected.clone();
            async move {
                let mut hasher = hasher?;
                match stream.next().await {
                    Some(Ok(chunk)) => {
                        hasher.update(&chunk);
                        Some((Ok(chunk), (stream, Some(hasher))))
                    }
                    Some(Err(e)) => Some((Err(e), (stream, None))),
                    None => {
                        let actual = hasher.finish();
                        (actual != expected).then(|| {
                            tracing::error!(%expected, %actual, "A stored artifact does not match its manifest; the download was cut.");
                            let err = std::io::Error::other(Error::DigestMismatch { expected, actual });
                            (Err(err), (stream, None))
                        })
                    }
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: &[&[u8]]) -> impl Stream<Item = Result<Bytes, BoxError>> + use<> {
        let owned: Vec<Result<Bytes, BoxError>> = chunks
            .iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures_util::stream::iter(owned)
    }

    async fn collect(
        stream: impl Stream<Item = Result<Bytes, BoxError>>,
    ) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut stream = pin!(stream);
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn the_declared_size_must_match_exactly() {
        for (chunks, declared, ok) in [
            (&[&b"abc"[..], b"def"][..], 6, true),
            (&[&b"abc"[..], b"def"][..], 7, false),
            (&[&b"abc"[..], b"def"][..], 5, false),
        ] {
            let mut rest = pin!(body(&chunks[1..]));
            let checked = declared_size_checked(
                Bytes::copy_from_slice(chunks[0]),
                false,
                rest.as_mut(),
                declared,
            );
            let result = collect(checked).await;
            assert_eq!(result.is_ok(), ok, "declared {declared}: {result:?}");
            if let Err(message) = result {
                assert!(message.contains("the envelope declares"), "{message}");
            }
        }
    }

    #[tokio::test]
    async fn a_download_whose_digest_differs_ends_in_an_error() {
        let bytes = b"some artifact bytes";
        let stream = |expected| {
            let inner: ObjectStream =
                Box::pin(futures_util::stream::iter([Ok(Bytes::from_static(bytes))]));
            digest_checked(inner, expected).map(|c| c.map_err(BoxError::from))
        };
        assert_eq!(
            collect(stream(ArtifactDigest::of(bytes))).await.unwrap(),
            bytes
        );
        let err = collect(stream(ArtifactDigest::of(b"other")))
            .await
            .unwrap_err();
        assert!(err.contains("digest mismatch"), "{err}");
    }
}
