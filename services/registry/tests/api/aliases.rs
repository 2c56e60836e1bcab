//! Alias moves (compare-and-swap), rollback, archive rules, history and time travel.

use serde_json::json;

use crate::helpers::{error_message, registration, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_moves_with_the_same_expectation_have_one_winner_and_the_rest_get_409() {
    // Arrange
    let app = std::sync::Arc::new(spawn_app(&[]).await);
    for i in 0..6 {
        app.register("fraud", &registration(f64::from(i))).await;
    }
    assert_eq!(
        app.move_alias("fraud", "production", &json!({"version": 1}))
            .await
            .status(),
        200
    );
    // Act
    let tasks: Vec<_> = (2..=6)
        .map(|v| {
            let app = app.clone();
            tokio::spawn(async move {
                app.move_alias(
                    "fraud",
                    "production",
                    &json!({"version": v, "expected_version": 1}),
                )
                .await
                .status()
                .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    // Assert
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409, 409, 409, 409]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_expectation_is_409_naming_the_actual_version_and_rollback_is_one_call() {
    let app = spawn_app(&[]).await;
    for i in 0..2 {
        app.register("fraud", &registration(f64::from(i))).await;
    }
    app.move_alias(
        "fraud",
        "production",
        &json!({"version": 1, "reason": "first"}),
    )
    .await;
    let res = app
        .move_alias(
            "fraud",
            "production",
            &json!({"version": 2, "expected_version": 1, "reason": "better", "actor": "carol"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let stale = app
        .move_alias(
            "fraud",
            "production",
            &json!({"version": 1, "expected_version": 1}),
        )
        .await;
    assert!(
        error_message(stale, 409)
            .await
            .contains("points to version 2, not the expected version 1")
    );

    let rolled = app
        .post(
            "/v1/models/fraud/aliases/production/rollback",
            &json!({"reason": "v2 misbehaves"}),
        )
        .await;
    assert_eq!(rolled.status(), 200);
    let record: serde_json::Value = rolled.json().await.unwrap();
    assert_eq!(
        (record["version"].as_u64(), record["previous"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        app.get_json("/v1/models/fraud/aliases/production").await["version"],
        1
    );

    let events = app.get_json("/v1/models/fraud/events").await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "registered",
            "registered",
            "alias_moved",
            "alias_moved",
            "alias_moved"
        ]
    );
    let carol = &events["events"][3];
    assert_eq!(
        (carol["actor"].as_str(), carol["reason"].as_str()),
        (Some("admin"), Some("better")),
        "the actor is the credential's identity, not the body's"
    );
    // Two moves and the rollback counted, for the dashboards; the refused move not.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        shared_lib::testing::metric_sum(
            &metrics,
            "registry_alias_moves_total",
            &[("model", "fraud"), ("alias", "production")]
        ),
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_version_production_had_at_a_past_time_is_answered() {
    let app = spawn_app(&[]).await;
    for i in 0..2 {
        app.register("fraud", &registration(f64::from(i))).await;
    }
    app.move_alias("fraud", "production", &json!({"version": 1}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.move_alias(
        "fraud",
        "production",
        &json!({"version": 2, "expected_version": 1}),
    )
    .await;

    let at = |t: chrono::DateTime<chrono::Utc>| {
        format!(
            "/v1/models/fraud/aliases/production?at={}",
            t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .replace('+', "%2B")
        )
    };
    assert_eq!(app.get_json(&at(between)).await["version"], 1);
    assert_eq!(app.get_json(&at(chrono::Utc::now())).await["version"], 2);
    assert_eq!(
        app.get_json(&at(between - chrono::Duration::hours(1)))
            .await["version"],
        serde_json::Value::Null
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archiving_is_refused_while_aliased_and_archived_versions_cannot_be_promoted() {
    let app = spawn_app(&[]).await;
    for i in 0..2 {
        app.register("fraud", &registration(f64::from(i))).await;
    }
    app.move_alias("fraud", "production", &json!({"version": 2}))
        .await;
    let refused = app
        .post("/v1/models/fraud/versions/2/archive", &json!({}))
        .await;
    assert!(
        error_message(refused, 409)
            .await
            .contains("in use by alias production")
    );
    assert_eq!(
        app.post(
            "/v1/models/fraud/versions/1/archive",
            &json!({"reason": "superseded"})
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        app.get_json("/v1/models/fraud/versions/1").await["status"],
        "archived"
    );
    let promote = app
        .move_alias(
            "fraud",
            "production",
            &json!({"version": 1, "expected_version": 2}),
        )
        .await;
    assert!(error_message(promote, 409).await.contains("archived"));
}
