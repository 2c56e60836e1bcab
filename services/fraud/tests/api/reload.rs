//! Hot reload: following an alias under load, refusing a corrupt version, surviving the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use shared_lib::store::{ObjectKey, PutMode};

use crate::helpers::{
    S3Fixture, flags_large, flags_small, metric_sum, spawn_app, threshold_model, with,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alias_moves_reload_under_load_with_no_failed_request() {
    // Arrange
    let fixture = S3Fixture::start().await;
    fixture.publish(&flags_large()).await;
    fixture.promote(1).await;
    let app = Arc::new(spawn_app(fixture.env()).await);
    app.wait_ready().await;
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (app, stop) = (app.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed, mut seen_v2) = (0u32, 0u32, false);
                while !stop.load(Ordering::Relaxed) {
                    let res = app.get("/classify?f1=500&f2=1&f3=1").await;
                    if res.status() == 200 {
                        ok += 1;
                        seen_v2 |= res.headers()["x-model-version"] == "2";
                    } else {
                        failed += 1;
                    }
                }
                (ok, failed, seen_v2)
            })
        })
        .collect();

    // Act: publish and promote two new versions while the load runs.
    for (version, model) in [(2, flags_small()), (3, flags_large())] {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        fixture.publish(&model).await;
        fixture.promote(version).await;
        app.wait_for(|app| async move {
            app.served_version("f1=1&f2=1&f3=1").await == version.to_string()
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);

    // Assert
    let (mut ok, mut failed) = (0, 0);
    for task in load {
        let (o, f, _) = task.await.unwrap();
        ok += o;
        failed += f;
    }
    assert_eq!(
        failed, 0,
        "{failed} requests failed during reloads ({ok} succeeded)"
    );
    assert!(ok > 100, "the load generator made only {ok} requests");
    let metrics = app.metrics().await;
    assert!(metric_sum(&metrics, "model_reloads_total", &[("result", "loaded")]) >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_new_version_is_refused_and_the_old_one_keeps_serving() {
    // Arrange: v1 serving; v2 published, then damaged in the store, then promoted.
    let fixture = S3Fixture::start().await;
    fixture.publish(&flags_large()).await;
    fixture.promote(1).await;
    let app = spawn_app(fixture.env()).await;
    app.wait_ready().await;
    let v2 = fixture.publish(&flags_small()).await;
    let key = ObjectKey::parse(&v2.artifact.key).unwrap();
    let mut bytes = fixture.registry.store().get(&key).await.unwrap().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    fixture
        .registry
        .store()
        .put(&key, Bytes::from(bytes), PutMode::Overwrite)
        .await
        .unwrap();

    // Act
    fixture.promote(2).await;
    app.wait_for(|app| async move {
        metric_sum(
            &app.metrics().await,
            "model_reloads_total",
            &[("result", "failed")],
        ) >= 2.0
    })
    .await;

    // Assert: still v1, and the reason is visible.
    assert_eq!(app.served_version("f1=500&f2=1&f3=1").await, "1");
    let models: serde_json::Value = app.get("/v1/models").await.json().await.unwrap();
    let last_error = models["slots"][0]["last_error"].as_str().unwrap();
    assert!(last_error.contains("digest mismatch"), "{last_error}");
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_error_gives_the_reason_without_store_keys() {
    // Arrange: v1 serving; v2 published, its artifact object then removed from the store.
    let fixture = S3Fixture::start().await;
    fixture.publish(&flags_large()).await;
    fixture.promote(1).await;
    let app = spawn_app(fixture.env()).await;
    app.wait_ready().await;
    let v2 = fixture.publish(&flags_small()).await;
    let key = ObjectKey::parse(&v2.artifact.key).unwrap();
    fixture.registry.store().delete(&key).await.unwrap();

    // Act
    fixture.promote(2).await;
    app.wait_for(|app| async move {
        metric_sum(
            &app.metrics().await,
            "model_reloads_total",
            &[("result", "failed")],
        ) >= 1.0
    })
    .await;

    // Assert: the reason a person needs, and no object key (the log has it).
    let models: serde_json::Value = app.get("/v1/models").await.json().await.unwrap();
    let last_error = models["slots"][0]["last_error"].as_str().unwrap();
    assert!(
        last_error.contains("missing from the model store"),
        "{last_error}"
    );
    assert!(!last_error.contains(key.as_str()), "{last_error}");
    assert!(!last_error.contains("models/"), "{last_error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_version_ignores_alias_moves() {
    let fixture = S3Fixture::start().await;
    fixture.publish(&flags_large()).await;
    fixture.publish(&flags_small()).await;
    fixture.promote(2).await;
    let app = spawn_app(with(fixture.env(), &[("FF_CLF_VERSION", "1")])).await;
    app.wait_ready().await;
    fixture.promote(1).await;
    fixture.promote(2).await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(app.served_version("f1=500&f2=1&f3=1").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_at_start_means_not_ready_until_a_cached_version_serves() {
    // Arrange: a first run caches v1.
    let cache = tempfile_dir();
    let fixture = S3Fixture::start().await;
    fixture.publish(&flags_large()).await;
    fixture.promote(1).await;
    let env = with(
        fixture.env(),
        &[("MODEL_CACHE_DIR", cache.to_str().unwrap())],
    );
    let first = spawn_app(env.clone()).await;
    first.wait_ready().await;
    drop(first);

    // Act: the store goes away; one restart without the cache, one with it.
    fixture.s3.stop();
    let uncached = spawn_app(fixture.env()).await;
    let cached = spawn_app(env).await;

    // Assert
    cached.wait_ready().await;
    assert_eq!(cached.served_version("f1=500&f2=1&f3=1").await, "1");
    assert_eq!(uncached.get("/readyz").await.status(), 503);
    assert_eq!(
        uncached.get("/classify?f1=500&f2=1&f3=1").await.status(),
        503
    );
    let metrics = cached.metrics().await;
    assert!(
        metric_sum(&metrics, "model_reloads_total", &[("result", "cached")]) >= 1.0,
        "{metrics}"
    );
    std::fs::remove_dir_all(cache).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_cache_directory_stays_within_its_bound() {
    // Arrange: A follows production, B is pinned to 1; each slot keeps its current artifact and
    // one older one.
    let cache = tempfile_dir();
    let fixture = S3Fixture::start().await;
    let mut digests = vec![fixture.publish(&threshold_model(101.0, 0.1, 0.9)).await];
    fixture.promote(1).await;
    let env = with(
        fixture.env(),
        &[
            ("MODEL_CACHE_DIR", cache.to_str().unwrap()),
            ("MODEL_CACHE_KEEP", "1"),
            ("MODEL_VERSION_B", "1"),
        ],
    );
    let app = spawn_app(env).await;
    app.wait_ready().await;

    // Act: six more versions, each its own artifact, each promoted and served.
    for version in 2..=7 {
        let cut = 100.0 + f64::from(version);
        digests.push(fixture.publish(&threshold_model(cut, 0.1, 0.9)).await);
        fixture.promote(version).await;
        let model_dir = cache.join("fraud");
        app.wait_for(|_| {
            let model_dir = model_dir.clone();
            async move { cached_version(&model_dir, "production") == Some(version) }
        })
        .await;
        let artifacts = cached_artifacts(&model_dir);
        assert!(
            artifacts.len() <= 3,
            "after version {version}: {artifacts:?}"
        );
    }

    // Assert: A's 7 and 6, B's 1; their manifests and histories; nothing else.
    let model_dir = cache.join("fraud");
    let expected: std::collections::BTreeSet<String> = [6, 5, 0]
        .iter()
        .map(|&i| digests[i].artifact.sha256.to_string())
        .collect();
    assert_eq!(cached_artifacts(&model_dir), expected);
    let files = std::fs::read_dir(&model_dir).unwrap().count();
    assert_eq!(
        files,
        3 + 4,
        "{:?}",
        std::fs::read_dir(&model_dir).unwrap().collect::<Vec<_>>()
    );
    std::fs::remove_dir_all(cache).ok();
}

/// The version a server cached last for `selector`, once its manifest is written.
fn cached_version(model_dir: &std::path::Path, selector: &str) -> Option<u32> {
    let json = std::fs::read(model_dir.join(format!("{selector}.json"))).ok()?;
    let manifest: serde_json::Value = serde_json::from_slice(&json).ok()?;
    manifest["version"].as_u64().map(|v| v as u32)
}

/// The digests of the artifact files in a cached model's directory.
fn cached_artifacts(model_dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(model_dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".msgpack").map(str::to_owned)
        })
        .collect()
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fraud-cache-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
