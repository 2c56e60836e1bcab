//! Publishing in two steps with bounded memory: a streamed upload, then a registration that
//! names the artifact by sha256; streamed downloads.

use bytes::Bytes;
use futures_util::StreamExt;
use shared_lib::artifact::{ArtifactDigest, EncodedArtifact, ModelKind, encode_artifact};
use shared_lib::registry::retention::RetentionPolicy;
use shared_lib::store::ObjectKey;
use shared_lib::{BoxError, Error};

use crate::harness::{Backend, ToyModel, change, draft, fraud, publish_many, toy_artifact};

/// `bytes` as a body of 64 KiB chunks, as an HTTP upload arrives.
fn body_of(bytes: &[u8]) -> impl futures_util::Stream<Item = Result<Bytes, BoxError>> + use<> {
    let chunks: Vec<Result<Bytes, BoxError>> = bytes
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(chunks)
}

async fn artifact_keys(b: &Backend) -> Vec<String> {
    b.store
        .list(&ObjectKey::parse("models/fraud/artifacts").unwrap())
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect()
}

async fn upload(b: &Backend, artifact: &EncodedArtifact) -> Result<u64, Error> {
    b.registry()
        .upload_artifact(
            &fraud(),
            &artifact.digest,
            body_of(&artifact.bytes),
            64 * 1024 * 1024,
        )
        .await
        .map(|r| r.size)
}

/// About 11 MB: more than one 8 MiB part, so S3 takes the multipart path.
fn large_artifact() -> (EncodedArtifact, ToyModel) {
    let model = ToyModel {
        weights: (0..1_200_000).map(f64::from).collect(),
    };
    (
        encode_artifact(ModelKind::FraudRandomForest, &model).unwrap(),
        model,
    )
}

pub async fn an_uploaded_artifact_registers_and_streams_back_verified(b: &Backend) {
    // Arrange
    let registry = b.registry();
    let (artifact, model) = large_artifact();
    // Act
    let size = upload(b, &artifact).await.unwrap();
    let manifest = registry
        .register(draft("tester"), &artifact.digest)
        .await
        .unwrap();
    // Assert
    assert_eq!(size, artifact.size());
    assert_eq!(manifest.version.get(), 1);
    assert_eq!(manifest.artifact.size, artifact.size());
    assert_eq!(manifest.artifact.sha256, artifact.digest);
    assert_eq!(manifest.artifact.kind, ModelKind::FraudRandomForest);
    let read = registry.open_artifact(&manifest).await.unwrap();
    assert_eq!(read.size, artifact.size());
    let chunks: Vec<Bytes> = read.stream.map(|c| c.unwrap()).collect().await;
    assert!(chunks.concat() == artifact.bytes, "downloaded bytes differ");
    let loaded: ToyModel = registry
        .load_model(&manifest, ModelKind::FraudRandomForest)
        .await
        .unwrap();
    assert_eq!(loaded, model);
    assert_eq!(b.upload_leftovers(), 0);
}

/// Wrong digest, foreign bytes, an envelope cut short or padded, an unknown format: refused,
/// and nothing is stored, nothing left behind.
pub async fn bad_uploads_store_nothing(b: &Backend) {
    let good = toy_artifact(1.0);
    let mut truncated = good.bytes.clone();
    truncated.truncate(truncated.len() - 3);
    let mut padded = good.bytes.clone();
    padded.extend_from_slice(b"xyz");
    let mut future = good.bytes.clone();
    let at = future
        .windows(14)
        .position(|w| w == b"format_version")
        .unwrap();
    future[at + 14] = 9;
    let with_own_digest = |bytes: Vec<u8>| EncodedArtifact {
        kind: ModelKind::FraudRandomForest,
        digest: ArtifactDigest::of(&bytes),
        bytes,
    };
    let mut wrong_digest = good.clone();
    wrong_digest.digest = ArtifactDigest::of(b"other");
    let cases = [
        (wrong_digest, "digest mismatch"),
        (
            with_own_digest(b"hello world".to_vec()),
            "not a model artifact",
        ),
        (with_own_digest(truncated), "the envelope declares"),
        (with_own_digest(padded), "the envelope declares"),
        (
            with_own_digest(future),
            "unsupported artifact format version 9",
        ),
    ];
    for (artifact, needle) in cases {
        let err = upload(b, &artifact).await.unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
        assert_eq!(artifact_keys(b).await, Vec::<String>::new(), "{needle}");
        assert_eq!(b.upload_leftovers(), 0, "{needle}");
    }
    let err = b
        .registry()
        .upload_artifact(&fraud(), &good.digest, body_of(&good.bytes), 10)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UploadTooLarge { limit: 10 }), "{err}");
}

pub async fn registering_an_artifact_that_is_not_in_the_store_is_refused(b: &Backend) {
    let registry = b.registry();
    let never_uploaded = toy_artifact(2.0);
    let err = registry
        .register(draft("tester"), &never_uploaded.digest)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ArtifactNotUploaded { .. }), "{err}");
    assert!(err.to_string().contains("upload it first"), "{err}");
    assert!(matches!(
        registry.list_versions(&fraud()).await,
        Err(Error::UnknownModel { .. })
    ));
    // A stored object that no longer matches its name is refused too (upload it again).
    let damaged = toy_artifact(3.0);
    upload(b, &damaged).await.unwrap();
    let key = ObjectKey::parse(&artifact_keys(b).await[0]).unwrap();
    b.store
        .put(
            &key,
            Bytes::from_static(b"bit rot"),
            shared_lib::store::PutMode::Overwrite,
        )
        .await
        .unwrap();
    let err = registry
        .register(draft("tester"), &damaged.digest)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
}

/// Retention removes artifacts no version names, but not one uploaded moments ago whose
/// registration is on its way.
pub async fn retention_spares_a_fresh_upload_that_no_version_names_yet(b: &Backend) {
    // Arrange
    let registry = b.registry();
    publish_many(&registry, 3).await;
    let pending = toy_artifact(99.0);
    upload(b, &pending).await.unwrap();
    // Act
    let policy = RetentionPolicy::new(std::num::NonZeroU32::new(1), None).unwrap();
    let report = registry
        .retire(&fraud(), &policy, &change("gc", "test"), false)
        .await
        .unwrap();
    // Assert
    assert_eq!(report.artifacts_deleted.len(), 2, "{report:?}");
    let pending_key = format!("models/fraud/artifacts/{}.msgpack", pending.digest);
    assert!(
        artifact_keys(b).await.contains(&pending_key),
        "{:?}",
        artifact_keys(b).await
    );
    let manifest = registry
        .register(draft("tester"), &pending.digest)
        .await
        .unwrap();
    assert_eq!(manifest.version.get(), 4);
}
