use bytes::Bytes;
use futures_util::StreamExt;
use shared_lib::artifact::ArtifactDigest;
use shared_lib::store::{ObjectKey, PutMode};
use shared_lib::{BoxError, Error};

use crate::harness::Backend;

fn key(s: &str) -> ObjectKey {
    ObjectKey::parse(s).unwrap()
}

pub async fn put_then_get_returns_the_same_bytes(b: &Backend) {
    // Arrange
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    // Act
    b.store
        .put(
            &key("a/b/object.bin"),
            Bytes::from(bytes.clone()),
            PutMode::CreateNew,
        )
        .await
        .unwrap();
    // Assert
    assert_eq!(b.store.get(&key("a/b/object.bin")).await.unwrap(), bytes);
    assert!(b.store.exists(&key("a/b/object.bin")).await.unwrap());
}

pub async fn get_of_a_missing_key_is_not_found(b: &Backend) {
    let err = b.store.get(&key("no/such/object")).await.unwrap_err();
    assert!(matches!(err, Error::ObjectNotFound { .. }), "{err}");
    assert!(!b.store.exists(&key("no/such/object")).await.unwrap());
}

pub async fn create_new_refuses_an_existing_key_and_keeps_its_content(b: &Backend) {
    let k = key("claims/0000000001.json");
    b.store
        .put(&k, Bytes::from_static(b"first"), PutMode::CreateNew)
        .await
        .unwrap();
    let err = b
        .store
        .put(&k, Bytes::from_static(b"second"), PutMode::CreateNew)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ObjectExists { .. }), "{err}");
    assert_eq!(b.store.get(&k).await.unwrap(), Bytes::from_static(b"first"));
}

pub async fn overwrite_replaces_the_content(b: &Backend) {
    let k = key("head.json");
    b.store
        .put(&k, Bytes::from_static(b"1"), PutMode::Overwrite)
        .await
        .unwrap();
    b.store
        .put(&k, Bytes::from_static(b"2"), PutMode::Overwrite)
        .await
        .unwrap();
    assert_eq!(b.store.get(&k).await.unwrap(), Bytes::from_static(b"2"));
}

pub async fn list_returns_sorted_keys_below_the_prefix_only(b: &Backend) {
    for k in ["m/a/2", "m/a/10", "m/a/x/1", "m/ab/1", "other/1"] {
        b.store
            .put(&key(k), Bytes::from_static(b"."), PutMode::Overwrite)
            .await
            .unwrap();
    }
    let listed: Vec<String> = b
        .store
        .list(&key("m/a"))
        .await
        .unwrap()
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(listed, ["m/a/10", "m/a/2", "m/a/x/1"], "no m/ab, no other/");
    assert!(b.store.list(&key("nothing/here")).await.unwrap().is_empty());
}

pub async fn list_folders_returns_direct_children(b: &Backend) {
    for k in [
        "models/fraud/v/1",
        "models/recommender/v/1",
        "models/fraud/v/2",
        "models/top.json",
    ] {
        b.store
            .put(&key(k), Bytes::from_static(b"."), PutMode::Overwrite)
            .await
            .unwrap();
    }
    assert_eq!(
        b.store.list_folders(&key("models")).await.unwrap(),
        ["fraud", "recommender"]
    );
    assert!(
        b.store
            .list_folders(&key("absent"))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn delete_removes_only_that_object(b: &Backend) {
    // Arrange
    for k in ["m/artifacts/a.msgpack", "m/artifacts/b.msgpack"] {
        b.store
            .put(&key(k), Bytes::from_static(b"."), PutMode::CreateNew)
            .await
            .unwrap();
    }
    // Act
    b.store.delete(&key("m/artifacts/a.msgpack")).await.unwrap();
    // Assert
    assert!(!b.store.exists(&key("m/artifacts/a.msgpack")).await.unwrap());
    let err = b
        .store
        .get(&key("m/artifacts/a.msgpack"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ObjectNotFound { .. }), "{err}");
    let listed: Vec<String> = b
        .store
        .list(&key("m"))
        .await
        .unwrap()
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(listed, ["m/artifacts/b.msgpack"]);
}

pub async fn delete_of_a_missing_key_is_ok_and_the_key_can_be_created_again(b: &Backend) {
    let k = key("m/artifacts/c.msgpack");
    b.store.delete(&k).await.unwrap();
    b.store
        .put(&k, Bytes::from_static(b"first"), PutMode::CreateNew)
        .await
        .unwrap();
    b.store.delete(&k).await.unwrap();
    b.store.delete(&k).await.unwrap();
    b.store
        .put(&k, Bytes::from_static(b"again"), PutMode::CreateNew)
        .await
        .unwrap();
    assert_eq!(b.store.get(&k).await.unwrap(), Bytes::from_static(b"again"));
}

/// 20 MiB and a bit: three parts of 8 MiB on S3, so the multipart path is the one tested.
const LARGE: usize = 20 * 1024 * 1024 + 12_345;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// `bytes` as a body of 64 KiB chunks, as an HTTP upload arrives.
fn body_of(bytes: &[u8]) -> impl futures_util::Stream<Item = Result<Bytes, BoxError>> + use<> {
    let chunks: Vec<Result<Bytes, BoxError>> = bytes
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(chunks)
}

async fn read_all(b: &Backend, k: &ObjectKey) -> (u64, Vec<u8>) {
    let read = b.store.get_stream(k).await.unwrap();
    let chunks: Vec<Bytes> = read.stream.map(|c| c.unwrap()).collect::<Vec<_>>().await;
    (read.size, chunks.concat())
}

pub async fn streamed_put_and_get_round_trip_a_multi_part_object(b: &Backend) {
    // Arrange
    let bytes = pattern(LARGE);
    let digest = ArtifactDigest::of(&bytes);
    let k = key("artifacts/large.bin");
    // Act
    let size = b
        .store
        .put_stream(&k, body_of(&bytes), &digest, LARGE as u64)
        .await
        .unwrap();
    // Assert
    assert_eq!(size, LARGE as u64);
    let (read_size, read) = read_all(b, &k).await;
    assert_eq!(read_size, LARGE as u64);
    assert!(read == bytes, "the object read back differs");
    assert_eq!(b.upload_leftovers(), 0);
}

pub async fn streamed_put_of_a_small_object_round_trips(b: &Backend) {
    let bytes = pattern(1000);
    let k = key("artifacts/small.bin");
    let size = b
        .store
        .put_stream(&k, body_of(&bytes), &ArtifactDigest::of(&bytes), 1000)
        .await
        .unwrap();
    assert_eq!(size, 1000);
    assert_eq!(b.store.get(&k).await.unwrap(), bytes);
}

/// Wrong digest, too large, a body that breaks: each leaves no object, no temporary file and
/// no open multipart upload, whether the body is below one part or above.
pub async fn failed_streamed_puts_leave_no_object_and_no_upload(b: &Backend) {
    let wrong = ArtifactDigest::of(b"something else");
    for len in [1000, LARGE] {
        let bytes = pattern(len);
        let digest = ArtifactDigest::of(&bytes);
        let k = key(&format!("artifacts/{len}.bin"));
        let broken = body_of(&bytes)
            .take(len / (64 * 1024))
            .chain(futures_util::stream::once(async {
                Err::<Bytes, BoxError>("connection reset by the client".into())
            }));
        let cases: Vec<(Result<u64, Error>, &str)> = vec![
            (
                b.store
                    .put_stream(&k, body_of(&bytes), &wrong, len as u64)
                    .await,
                "digest mismatch",
            ),
            (
                b.store
                    .put_stream(&k, body_of(&bytes), &digest, len as u64 - 1)
                    .await,
                "larger than the limit",
            ),
            (
                b.store.put_stream(&k, broken, &digest, len as u64).await,
                "interrupted",
            ),
        ];
        for (result, needle) in cases {
            let err = result.unwrap_err().to_string();
            assert!(err.contains(needle), "{len} bytes: {err}");
            assert!(!b.store.exists(&k).await.unwrap(), "{len} bytes: {needle}");
            assert_eq!(b.upload_leftovers(), 0, "{len} bytes: {needle}");
        }
    }
}

pub async fn streamed_put_replaces_a_damaged_object_and_get_stream_of_a_missing_key_is_not_found(
    b: &Backend,
) {
    let bytes = pattern(5000);
    let k = key("artifacts/fixed.bin");
    b.store
        .put(&k, Bytes::from_static(b"damaged"), PutMode::CreateNew)
        .await
        .unwrap();
    b.store
        .put_stream(&k, body_of(&bytes), &ArtifactDigest::of(&bytes), 5000)
        .await
        .unwrap();
    assert_eq!(b.store.get(&k).await.unwrap(), bytes);
    let err = b.store.get_stream(&key("no/such")).await.unwrap_err();
    assert!(matches!(err, Error::ObjectNotFound { .. }), "{err}");
}

/// A streamed write whose future is dropped half-way (a server shutting down mid-upload):
/// no object, and its temporary file or multipart upload is cleaned up.
pub async fn a_streamed_put_dropped_half_way_leaves_nothing_behind(b: &Backend) {
    // Arrange: 9.6 MB, more than one part, then a body that never ends.
    let bytes = pattern(150 * 64 * 1024);
    let k = key("artifacts/dropped.bin");
    let digest = ArtifactDigest::of(&bytes);
    let stalled = body_of(&bytes).chain(futures_util::stream::pending());
    // Act
    let put = b.store.put_stream(&k, stalled, &digest, LARGE as u64);
    let cut = tokio::time::timeout(std::time::Duration::from_millis(1500), put).await;
    // Assert
    assert!(cut.is_err(), "the write cannot have finished: {cut:?}");
    let mut left = b.upload_leftovers();
    for _ in 0..50 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        left = b.upload_leftovers();
    }
    assert_eq!(
        left, 0,
        "a temporary file or multipart upload was left behind"
    );
    assert!(!b.store.exists(&k).await.unwrap());
}
