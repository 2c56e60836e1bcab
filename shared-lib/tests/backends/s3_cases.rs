//! S3 only: what the in-process server can be made to do wrong on purpose (a lost response, a
//! lost race, a store that ignores conditional writes), and the conditional-write probe.

use bytes::Bytes;
use shared_lib::Error;
use shared_lib::store::{ConditionalWrites, ObjectKey, ObjectStore, PROBE_PREFIX, PutMode};
use shared_lib::testing::{PutFault, TestS3};

const BUCKET: &str = "model-bucket";
/// `TestS3::store` puts every key below this prefix.
const PREFIX: &str = "suite";
const CLAIM: &str = "models/fraud/versions/0000000001/claim.json";

async fn server() -> (TestS3, ObjectStore) {
    let s3 = TestS3::start().await;
    let store = s3.store(BUCKET).await.unwrap();
    (s3, store)
}

fn key(s: &str) -> ObjectKey {
    ObjectKey::parse(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_new_whose_response_was_lost_and_retried_succeeds() {
    // Arrange: the server stores the first PUT and answers 503; the SDK retries, and the
    // retry finds the object there (412).
    let (s3, store) = server().await;
    s3.fault_next_put(BUCKET, &format!("{PREFIX}/{CLAIM}"), PutFault::LoseResponse);
    let claim = Bytes::from_static(br#"{"run_id":"mine"}"#);

    // Act
    let put = store
        .put(&key(CLAIM), claim.clone(), PutMode::CreateNew)
        .await;

    // Assert: a success, not a false "already exists".
    assert_eq!(s3.faults_fired(), 1, "the fault did not fire");
    assert!(put.is_ok(), "{put:?}");
    assert_eq!(store.get(&key(CLAIM)).await.unwrap(), claim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_new_that_loses_the_race_to_other_bytes_is_object_exists() {
    // Arrange: another writer creates the key between our HEAD and our PUT.
    let (s3, store) = server().await;
    let theirs = Bytes::from_static(br#"{"run_id":"theirs"}"#);
    s3.fault_next_put(
        BUCKET,
        &format!("{PREFIX}/{CLAIM}"),
        PutFault::RacedBy(theirs.clone()),
    );

    // Act
    let put = store
        .put(
            &key(CLAIM),
            Bytes::from_static(br#"{"run_id":"mine"}"#),
            PutMode::CreateNew,
        )
        .await;

    // Assert: refused, and the winner's bytes are kept.
    assert_eq!(s3.faults_fired(), 1);
    assert!(matches!(put, Err(Error::ObjectExists { .. })), "{put:?}");
    assert_eq!(store.get(&key(CLAIM)).await.unwrap(), theirs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_new_that_meets_identical_bytes_on_put_succeeds() {
    // Arrange: the documented edge of the rule (see `PutMode::CreateNew`): identical bytes
    // are indistinguishable from our own earlier attempt.
    let (s3, store) = server().await;
    let bytes = Bytes::from_static(b"content-addressed artifact");
    s3.fault_next_put(
        BUCKET,
        &format!("{PREFIX}/{CLAIM}"),
        PutFault::RacedBy(bytes.clone()),
    );

    // Act
    let put = store
        .put(&key(CLAIM), bytes.clone(), PutMode::CreateNew)
        .await;

    // Assert
    assert!(put.is_ok(), "{put:?}");
    assert_eq!(store.get(&key(CLAIM)).await.unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_finds_conditional_writes_honoured_by_s3s_fs_and_leaves_no_object() {
    // Arrange
    let (_s3, store) = server().await;

    // Act
    let answer = store.probe_conditional_writes().await.unwrap();

    // Assert
    assert_eq!(answer, ConditionalWrites::Honoured);
    assert_eq!(store.list(&key(PROBE_PREFIX)).await.unwrap(), Vec::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_finds_conditional_writes_ignored_by_a_store_that_overwrites() {
    // Arrange: a store that acts like Garage. The HEAD-first create-new still refuses an
    // existing key, which is why the probe must not go through it.
    let (s3, store) = server().await;
    s3.ignore_conditional_writes();
    store
        .put(&key("a"), Bytes::from_static(b"1"), PutMode::CreateNew)
        .await
        .unwrap();
    let again = store
        .put(&key("a"), Bytes::from_static(b"2"), PutMode::CreateNew)
        .await;
    assert!(
        matches!(again, Err(Error::ObjectExists { .. })),
        "{again:?}"
    );

    // Act
    let answer = store.probe_conditional_writes().await.unwrap();

    // Assert
    assert_eq!(answer, ConditionalWrites::Ignored);
    assert_eq!(store.list(&key(PROBE_PREFIX)).await.unwrap(), Vec::new());
}

#[tokio::test]
async fn probe_of_a_local_store_is_honoured_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(&shared_lib::store::StoreLocation::Local(
        dir.path().join("models"),
    ))
    .await
    .unwrap();
    assert_eq!(
        store.probe_conditional_writes().await.unwrap(),
        ConditionalWrites::Honoured
    );
    assert_eq!(store.list(&key(PROBE_PREFIX)).await.unwrap(), Vec::new());
}
