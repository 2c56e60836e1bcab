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
async fn the_shadow_never_changes_responses_and_its_disagreements_are_counted() {
    // Arrange: the shadow (v2) answers the opposite of the primary (v1) on every row.
    let (_fixture, app) = two_versions(&[
        ("MODEL_VERSION", "1"),
        ("MODEL_VERSION_SHADOW", "2"),
        ("SHADOW_CONCURRENCY", "64"),
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

    // Act
    for amount in [500, 5, 700, 1, 250] {
        let res = app.get(&format!("/classify?f1={amount}&f2=1&f3=1")).await;
        // Assert: always the primary's answer and version.
        assert_eq!(res.headers()["x-model-version"], "1");
        let expected = u8::from(amount > 100);
        assert_eq!(res.json::<Vec<u8>>().await.unwrap(), [expected]);
    }
    app.wait_for(|app| async move {
        let m = app.metrics().await;
        metric_sum(&m, "shadow_comparisons_total", &[("result", "disagree")])
            + metric_sum(&m, "shadow_comparisons_total", &[("result", "dropped")])
            >= 5.0
    })
    .await;
    let m = app.metrics().await;
    assert!(
        metric_sum(&m, "shadow_comparisons_total", &[("result", "disagree")]) >= 1.0,
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "shadow_comparisons_total", &[("result", "agree")]),
        0.0
    );
}
