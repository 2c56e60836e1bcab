//! The click store's contract beyond the limits (issue #14): Redis unreachable is not an outage
//! of recommendations, and a batch reads every user's clicks in one round trip.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Clicks, TestApp, spawn_app_with_clicks, two_cluster_model};

/// The value of `family{operation="…"}` in `/metrics`, 0 when absent.
async fn counter(app: &TestApp, family: &str, operation: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(family) && l.contains(&format!("operation=\"{operation}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_unreachable_recommendations_come_from_the_model_and_clicks_get_503() {
    // Arrange: CLICKS_URL names a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{closed}");
    let app = spawn_app_with_clicks(
        &[two_cluster_model()],
        &[("CLICKS_URL", &url), ("CLICKS_TIMEOUT_MS", "200")],
        Clicks::Memory,
    )
    .await;

    // Act / Assert: alice is served from her trained factors, marked as without clicks.
    let started = Instant::now();
    let alice = app.get_json("/v1/users/alice/recommendations?n=2").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered without waiting on Redis"
    );
    assert_eq!(alice["strategy"], "als", "{alice}");
    assert_eq!(alice["clicks_available"], false, "{alice}");
    let batch = app
        .post("/v1/recommendations", &json!({"users": ["alice", "bob"]}))
        .await;
    assert_eq!(batch.status(), 200);
    let batch: serde_json::Value = batch.json().await.unwrap();
    assert_eq!(batch["results"][1]["clicks_available"], false, "{batch}");

    // A click cannot be kept: 503 with Retry-After, so the client retries.
    let res = app
        .post(
            "/v1/users/alice/events",
            &json!({"events": [{"item_id": "b3"}]}),
        )
        .await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("click store"),
        "{body}"
    );
    // Bad input is still refused for what it is, before the store is asked.
    let bad = app
        .post(
            "/v1/users/alice/events",
            &json!({"events": [{"item_id": "zz"}]}),
        )
        .await;
    assert_eq!(bad.status(), 422);

    let unavailable = "recommender_clicks_unavailable_total";
    assert!(counter(&app, unavailable, "read").await >= 2.0);
    assert!((counter(&app, unavailable, "write").await - 1.0).abs() < f64::EPSILON);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_clicks_in_memory_every_answer_has_its_clicks() {
    let app = spawn_app_with_clicks(&[two_cluster_model()], &[], Clicks::Memory).await;
    let alice = app.get_json("/v1/users/alice/recommendations?n=2").await;
    assert_eq!(alice["clicks_available"], true, "{alice}");
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        !text.contains("recommender_clicks_round_trips_total"),
        "no Redis, no round trips"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis (E2E_REDIS_URL): run scripts/test.sh"]
async fn a_request_reads_its_users_clicks_in_one_redis_round_trip_however_many_users() {
    // Arrange: clicks for some users of a batch.
    let app = spawn_app_with_clicks(&[two_cluster_model()], &[], Clicks::Redis).await;
    let users: Vec<String> = (0..50).map(|u| format!("shopper-{u}")).collect();
    for user in users.iter().step_by(5) {
        let res = app
            .post(
                &format!("/v1/users/{user}/events"),
                &json!({"events": [{"item_id": "b3"}, {"item_id": "b4"}]}),
            )
            .await;
        assert_eq!(res.status(), 202);
    }
    let trips = "recommender_clicks_round_trips_total";
    assert!((counter(&app, trips, "write").await - 10.0).abs() < f64::EPSILON);
    let before = counter(&app, trips, "read").await;

    // Act: one batch of 50 users, then one single user.
    let res = app
        .post("/v1/recommendations", &json!({"users": users, "n": 3}))
        .await;
    assert_eq!(res.status(), 200);
    let batch: serde_json::Value = res.json().await.unwrap();
    let after_batch = counter(&app, trips, "read").await;
    app.get_json("/v1/users/shopper-0/recommendations?n=3")
        .await;
    let after_single = counter(&app, trips, "read").await;

    // Assert: one round trip each, and the clicks were read for every user who had them.
    assert!(
        (after_batch - before - 1.0).abs() < f64::EPSILON,
        "{before} -> {after_batch}"
    );
    assert!((after_single - after_batch - 1.0).abs() < f64::EPSILON);
    let strategies: Vec<&str> = batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["strategy"].as_str().unwrap())
        .collect();
    for (i, strategy) in strategies.iter().enumerate() {
        let expected = if i % 5 == 0 { "fold_in" } else { "popular" };
        assert_eq!(*strategy, expected, "user {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis (E2E_REDIS_URL): run scripts/test.sh"]
async fn redis_keeps_a_capped_expiring_list_per_user_under_the_documented_key() {
    // Arrange
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let app = spawn_app_with_clicks(
        &[two_cluster_model()],
        &[
            ("CLICKS_KEY_PREFIX", &prefix),
            ("EVENTS_PER_USER", "3"),
            ("EVENT_TTL_SECONDS", "600"),
        ],
        Clicks::Redis,
    )
    .await;
    // Act: five clicks, in two requests.
    let events = |items: &[&str]| json!({"events": items.iter().map(|i| json!({"item_id": i, "weight": 2})).collect::<Vec<_>>()});
    for items in [&["a1", "a2"][..], &["a3", "b1", "b2"]] {
        let res = app.post("/v1/users/newbie/events", &events(items)).await;
        assert_eq!(res.status(), 202);
    }
    // Assert: Redis itself holds the three newest, newest first, with the time to live set.
    let url = std::env::var("E2E_REDIS_URL").unwrap();
    let mut redis = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{prefix}newbie");
    let list: Vec<String> = redis::cmd("LRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    let items: Vec<&str> = list
        .iter()
        .map(|e| e.splitn(3, ' ').nth(2).unwrap())
        .collect();
    assert_eq!(items, ["b2", "b1", "a3"], "{list:?}");
    assert!(
        list.iter().all(|e| e.split(' ').nth(1) == Some("2")),
        "{list:?}"
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!((590..=600).contains(&ttl), "TTL {ttl}");
}
