use bytes::Bytes;
use shared_lib::Error;
use shared_lib::store::{ObjectKey, PutMode};

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
