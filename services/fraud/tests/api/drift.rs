//! Drift as a number (issue #17): the service exports the PSI of its last requests' scores
//! and features against the held-out distributions in the version's manifest.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::json;
use shared_lib::artifact::{ModelKind, encode_artifact};
use shared_lib::models::drift::{Binned, DRIFT_BINS, DriftProfile};
use shared_lib::testing::metric_sum;

use crate::helpers::{S3Fixture, TestApp, flags_large, spawn_app};

/// Rows like the training data: amount 0-200, spent 0-1000, merchant count 0-19.
fn rows(seed: u64, n: usize, amount_shift: f64) -> Vec<[f64; 3]> {
    let mut state = seed;
    let mut unit = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            [
                unit() * 200.0 + amount_shift,
                unit() * 1000.0,
                (unit() * 20.0).floor(),
            ]
        })
        .collect()
}

fn profile() -> DriftProfile {
    let reference = rows(1, 20_000, 0.0);
    let model = flags_large().compile(None).unwrap();
    let column = |j: usize| reference.iter().map(|r| r[j]).collect::<Vec<_>>();
    let scores: Vec<f64> = reference.iter().map(|r| model.predict_proba(r)).collect();
    DriftProfile {
        rows: 20_000,
        score: Binned::from_sample(&scores, DRIFT_BINS).unwrap(),
        features: shared_lib::testing::FRAUD_FEATURES
            .iter()
            .enumerate()
            .map(|(j, name)| {
                (
                    (*name).to_owned(),
                    Binned::from_sample(&column(j), DRIFT_BINS).unwrap(),
                )
            })
            .collect::<BTreeMap<_, _>>(),
    }
}

async fn classify(app: &TestApp, rows: &[[f64; 3]]) {
    for chunk in rows.chunks(500) {
        let res = app
            .client
            .post(format!("{}/v1/classify", app.address))
            .json(&json!({"instances": chunk}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
}

async fn metrics(app: &TestApp) -> String {
    let res = app.client.get(format!("{}/metrics", app.address)).send();
    res.await.unwrap().text().await.unwrap()
}

async fn psi(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = metrics(app).await;
    assert!(text.contains(name), "{name} is exported");
    metric_sum(&text, name, labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)] // The observed PSIs go to the test's output.
async fn psi_stays_low_for_training_like_traffic_and_passes_0_25_for_a_shifted_feature() {
    // Arrange: version 1 with the held-out distributions in its manifest.
    let fixture = S3Fixture::start().await;
    let mut draft = shared_lib::testing::fraud_draft("test");
    draft.drift = Some(profile());
    let artifact = encode_artifact(ModelKind::FraudRandomForest, &flags_large()).unwrap();
    fixture
        .registry
        .publish(draft, Bytes::from(artifact.bytes), Some(&artifact.digest))
        .await
        .unwrap();
    fixture.promote(1).await;
    let app = spawn_app(fixture.env()).await;
    shared_lib::testing::wait_until_ready(&app.address).await;

    // Act 1: 2,048 rows drawn like the training data.
    classify(&app, &rows(2, 2048, 0.0)).await;
    let score = psi(
        &app,
        "model_score_psi",
        &[("version", "1"), ("variant", "a")],
    )
    .await;
    let amount = psi(&app, "model_feature_psi", &[("feature", "txn_amount")]).await;
    println!("2,048 training-like rows: score PSI {score:.4}, txn_amount PSI {amount:.4}");
    assert!(
        score < 0.05 && amount < 0.05,
        "score {score}, txn_amount {amount}"
    );

    // Act 2: amounts up by 150; the other features as before.
    classify(&app, &rows(3, 10_000, 150.0)).await;
    let amount = psi(&app, "model_feature_psi", &[("feature", "txn_amount")]).await;
    let spent = psi(
        &app,
        "model_feature_psi",
        &[("feature", "amount_spent_past_mo")],
    )
    .await;
    let score = psi(&app, "model_score_psi", &[("version", "1")]).await;
    println!(
        "then 10,000 rows with amounts +150: txn_amount PSI {amount:.3}, amount_spent_past_mo {spent:.4}, score {score:.3}"
    );
    assert!(amount > 0.25, "txn_amount {amount}");
    assert!(spent < 0.05, "amount_spent_past_mo {spent}");
    assert!(
        score > 0.25,
        "more amounts over the cut, more high scores: {score}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_without_a_drift_profile_exports_no_psi() {
    let fixture = S3Fixture::start().await;
    fixture.publish(&flags_large()).await;
    fixture.promote(1).await;
    let app = spawn_app(fixture.env()).await;
    shared_lib::testing::wait_until_ready(&app.address).await;
    shared_lib::testing::wait_until_ready(&app.address).await;
    classify(&app, &rows(2, 2048, 0.0)).await;
    let text = metrics(&app).await;
    assert!(!text.contains("model_feature_psi{"), "{text}");
}
