//! A/B assignment and shadow scoring.

use std::collections::HashMap;

use serde_json::json;

use crate::helpers::{S3Fixture, TestApp, flags_large, flags_small, metric_sum, spawn_app, with};

async fn two_versions(extra: &[(&str, &str)]) -> (S3Fixture, TestApp) {
    let fixture = S3Fixture::start().await;
    fixture.publish(&flags_large()).await;
    fixture.publish(&flags_small()).await;
    let app = spawn_app(with(fixture.env(), extra)).await;
    app.wait_ready().await;
    (fixture, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_split_is_sticky_per_key_and_close_to_the_configured_share() {
    // Arrange: 30 % of keys to version 2.
    let (_fixture, app) = two_versions(&[
        ("MODEL_VERSION", "1"),
        ("MODEL_VERSION_B", "2"),
        ("AB_PERCENT_B", "30"),
    ])
    .await;
    app.wait_for(|app| async move {
        app.get("/v1/models")
            .await
            .text()
            .await
            .unwrap()
            .contains("\"version\":2")
    })
    .await;

    // Act: 10,000 keys in batches of 1,000.
    let mut variant_of: HashMap<String, String> = HashMap::new();
    for batch in 0..10 {
        let instances: Vec<_> = (0..1000)
            .map(|i| json!({"f1": 500, "f2": 1, "f3": 1, "card_id": format!("card-{}", batch * 1000 + i)}))
            .collect();
        let body: serde_json::Value = app
            .post_batch(&json!({"instances": instances}))
            .await
            .json()
            .await
            .unwrap();
        for (i, p) in body["predictions"].as_array().unwrap().iter().enumerate() {
            let variant = p["variant"].as_str().unwrap().to_owned();
            let expected_version = if variant == "b" { 2 } else { 1 };
            assert_eq!(
                p["version"], expected_version,
                "variant and version disagree"
            );
            variant_of.insert(format!("card-{}", batch * 1000 + i), variant);
        }
    }

    // Assert: the share of B, and the same answer for a key on every later request.
    let b = variant_of.values().filter(|v| *v == "b").count();
    assert!(
        (2_700..=3_300).contains(&b),
        "{b} of 10000 keys went to B, expected about 3000"
    );
    for i in (0..10_000).step_by(500) {
        let key = format!("card-{i}");
        let res = app
            .get(&format!("/classify?f1=500&f2=1&f3=1&card_id={key}"))
            .await;
        assert_eq!(
            res.headers()["x-variant"].to_str().unwrap(),
            variant_of[&key],
            "{key} changed variant"
        );
    }
    let metrics = app.metrics().await;
    assert!(metric_sum(&metrics, "ab_assignments_total", &[("variant", "b")]) >= 2_700.0);
    // The configured split is exported beside it, for the "split off its share" alert.
    let share = |v| metric_sum(&metrics, "ab_configured_share", &[("variant", v)]);
    assert!((share("a") - 0.7).abs() < 1e-9 && (share("b") - 0.3).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_key_are_split_by_their_request_id() {
    // Arrange: half the keys to version 2.
    let (_fixture, app) = two_versions(&[
        ("MODEL_VERSION", "1"),
        ("MODEL_VERSION_B", "2"),
        ("AB_PERCENT_B", "50"),
    ])
    .await;
    wait_all_slots_loaded(&app).await;
    let variant = |res: &reqwest::Response| res.headers()["x-variant"].to_str().unwrap().to_owned();
    let with_id = |id: &str| {
        app.client
            .get(format!("{}/classify?f1=500&f2=1&f3=1", app.address))
            .header("x-request-id", id)
    };

    // Act: 200 requests with no key and a new request id each; then one caller's id, 5 times.
    let mut b = 0;
    for _ in 0..200 {
        if variant(&app.get("/classify?f1=500&f2=1&f3=1").await) == "b" {
            b += 1;
        }
    }
    let mut repeated = Vec::new();
    for _ in 0..5 {
        repeated.push(variant(&with_id("caller-id-7").send().await.unwrap()));
    }

    // Assert: both variants, near the configured half; one request id, one variant.
    assert!(
        (60..=140).contains(&b),
        "{b} of 200 keyless requests went to B"
    );
    assert!(
        repeated.iter().all(|v| *v == repeated[0]),
        "one request id, several variants: {repeated:?}"
    );
}

/// Waits until every slot (A, B, shadow) has a model loaded.
async fn wait_all_slots_loaded(app: &TestApp) {
    app.wait_for(|app| async move {
        let models: serde_json::Value = app.get("/v1/models").await.json().await.unwrap();
        models["slots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|slot| !slot["version"].is_null())
    })
    .await;
}

/// The shadow comparisons counted with `result`.
fn shadow_results(metrics: &str, result: &str) -> f64 {
    metric_sum(metrics, "shadow_comparisons_total", &[("result", result)])
}

/// Waits until `n` shadow comparisons are counted, whatever their result, and returns the
/// metrics then.
async fn wait_for_shadow_results(app: &TestApp, n: f64) -> String {
    app.wait_for(|app| async move {
        let m = app.metrics().await;
        ["agree", "disagree", "dropped", "failed"]
            .iter()
            .map(|r| shadow_results(&m, r))
            .sum::<f64>()
            >= n
    })
    .await;
    app.metrics().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shadow_never_changes_responses_and_its_disagreements_are_counted() {
    // Arrange: the shadow (v2) answers the opposite of the primary (v1) on every row; room for
    // every comparison, so none is dropped.
    let (_fixture, app) = two_versions(&[
        ("MODEL_VERSION", "1"),
        ("MODEL_VERSION_SHADOW", "2"),
        ("SHADOW_CONCURRENCY", "64"),
    ])
    .await;
    wait_all_slots_loaded(&app).await;

    // Act
    for amount in [500, 5, 700, 1, 250] {
        let res = app.get(&format!("/classify?f1={amount}&f2=1&f3=1")).await;
        // Assert: always the primary's answer and version.
        assert_eq!(res.headers()["x-model-version"], "1");
        let expected = u8::from(amount > 100);
        assert_eq!(res.json::<Vec<u8>>().await.unwrap(), [expected]);
    }
    let m = wait_for_shadow_results(&app, 5.0).await;
    assert_eq!(
        ["disagree", "agree", "dropped", "failed"].map(|r| shadow_results(&m, r)),
        [5.0, 0.0, 0.0, 0.0],
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_answering_as_the_primary_is_counted_as_agreeing() {
    // Arrange: the shadow is the primary's own version, so it answers the same on every row.
    let (_fixture, app) = two_versions(&[
        ("MODEL_VERSION", "1"),
        ("MODEL_VERSION_SHADOW", "1"),
        ("SHADOW_CONCURRENCY", "64"),
    ])
    .await;
    wait_all_slots_loaded(&app).await;

    // Act
    for amount in [500, 5, 700, 1, 250] {
        let res = app.get(&format!("/classify?f1={amount}&f2=1&f3=1")).await;
        assert_eq!(res.status(), 200);
    }

    // Assert
    let m = wait_for_shadow_results(&app, 5.0).await;
    assert_eq!(
        ["agree", "disagree", "dropped", "failed"].map(|r| shadow_results(&m, r)),
        [5.0, 0.0, 0.0, 0.0],
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_comparisons_beyond_the_concurrency_are_dropped_and_counted() {
    // Arrange: one comparison in flight at most, and a batch that submits 1,000 of them from
    // one request faster than a blocking thread can finish one.
    let (_fixture, app) = two_versions(&[
        ("MODEL_VERSION", "1"),
        ("MODEL_VERSION_SHADOW", "2"),
        ("SHADOW_CONCURRENCY", "1"),
    ])
    .await;
    wait_all_slots_loaded(&app).await;
    let instances: Vec<_> = (0..1000)
        .map(|i| json!({"f1": 500, "f2": 1, "f3": 1, "card_id": format!("card-{i}")}))
        .collect();

    // Act
    let res = app.post_batch(&json!({"instances": instances})).await;

    // Assert: the answer is whole, every submission is counted once, and some were dropped.
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["predictions"].as_array().unwrap().len(), 1000);
    let m = wait_for_shadow_results(&app, 1000.0).await;
    let [disagree, dropped, agree, failed] =
        ["disagree", "dropped", "agree", "failed"].map(|r| shadow_results(&m, r));
    assert_eq!(disagree + dropped, 1000.0, "{m}");
    assert!(dropped >= 1.0, "no comparison was dropped: {m}");
    assert_eq!((agree, failed), (0.0, 0.0), "{m}");
}
