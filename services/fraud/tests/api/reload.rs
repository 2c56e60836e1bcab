//! Hot reload: following an alias under load, refusing a corrupt version, surviving the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use shared_lib::store::{ObjectKey, PutMode};

use crate::helpers::{S3Fixture, flags_large, flags_small, metric_sum, spawn_app, with};

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

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fraud-cache-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
