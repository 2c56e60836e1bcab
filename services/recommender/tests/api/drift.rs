//! Drift as a number (issue #17): the recommender exports the PSI of its top item's score
//! against the manifest's profile, and the share of cold-start answers.

use serde_json::json;
use shared_lib::models::als::synthetic::{Shape, random_model};
use shared_lib::models::als::{AlsModel, Filter};
use shared_lib::models::drift::{Binned, DRIFT_BINS, DriftProfile, PSI_MIN_ROWS};
use shared_lib::testing::metric_sum;

use crate::helpers::{TestApp, spawn_app_with_drift};

const USERS: usize = 2000;

fn model() -> AlsModel {
    random_model(&Shape {
        users: USERS,
        items: 100,
        rank: 8,
        seed: 3,
        seen_min: 0,
        seen_max: 3,
    })
}

/// What the trainer records: each user's top item's score, in deciles.
fn profile(model: &AlsModel) -> DriftProfile {
    let serving = model.clone().prepare().unwrap();
    let scores: Vec<f64> = (0..USERS as u32)
        .map(|u| f64::from(serving.recommend(u, 1, Filter::default())[0].score))
        .collect();
    DriftProfile {
        rows: USERS as u64,
        score: Binned::from_sample(&scores, DRIFT_BINS).unwrap(),
        features: Default::default(),
    }
}

/// One batch request for `users`.
async fn recommend(app: &TestApp, users: &[String]) {
    let res = app
        .post("/v1/recommendations", &json!({"users": users, "n": 3}))
        .await;
    assert_eq!(res.status(), 200);
}

fn cold_start_share(metrics: &str) -> f64 {
    let labels = [("model", "recommender"), ("version", "1")];
    assert!(
        metrics.contains("recommender_cold_start_share{"),
        "recommender_cold_start_share is exported"
    );
    metric_sum(metrics, "recommender_cold_start_share", &labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)] // The observed figures go to the test's output.
async fn metrics_have_the_top_score_psi_and_the_cold_start_share_which_cold_requests_raise() {
    // Arrange: version 1 with its users' top-score profile in the manifest.
    let model = model();
    let app = spawn_app_with_drift(&model, profile(&model)).await;
    let known: Vec<String> = (0..1024).map(|u| format!("u{u}")).collect();

    // Act 1: 1,024 known users (PSI every 256 scored answers, from 1,000 in the window).
    for users in known.chunks(256) {
        recommend(&app, users).await;
    }
    let metrics = app.metrics().await;

    // Assert 1
    let labels = [("model", "recommender"), ("version", "1"), ("variant", "a")];
    assert!(
        metrics.lines().any(|l| l.starts_with("model_score_psi{")
            && labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))),
        "model_score_psi for version 1 after {} answers:\n{metrics}",
        known.len()
    );
    let psi = metric_sum(&metrics, "model_score_psi", &labels);
    let before = cold_start_share(&metrics);
    println!(
        "{} known users: top-score PSI {psi:.4}, cold-start share {before}",
        known.len()
    );
    assert!(known.len() >= PSI_MIN_ROWS && psi < 0.05, "PSI {psi}");
    assert_eq!(before, 0.0);

    // Act 2: 100 users the model does not know, one request each (cold start: popular items).
    for i in 0..100 {
        let answer = app
            .get_json(&format!("/v1/users/newcomer-{i}/recommendations"))
            .await;
        assert_eq!(answer["cold_start"], true);
    }

    // Assert 2: 100 of 1,124 answers.
    let after = cold_start_share(&app.metrics().await);
    println!("after 100 cold-start answers: cold-start share {after:.4}");
    assert!((after - 100.0 / 1124.0).abs() < 1e-9, "share {after}");
}
