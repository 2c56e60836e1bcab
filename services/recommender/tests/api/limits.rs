//! Every limit, exactly (issue #5, part 4): the user batch, the request body, and the memory
//! kept for real-time clicks (per user, users in total, time to live).

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    Clicks, TestApp, item_ids, spawn_app, spawn_app_with_clicks, two_cluster_model,
};

async fn post_raw(app: &TestApp, path: &str, body: String) -> reqwest::Response {
    app.client
        .post(format!("{}{path}", app.address))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn error_message(res: reqwest::Response, status: u16) -> String {
    assert_eq!(res.status(), status);
    let body: serde_json::Value = res.json().await.unwrap();
    body["error"]["message"].as_str().unwrap().to_owned()
}

async fn click(app: &TestApp, user: &str, items: &[&str]) {
    let events: Vec<_> = items.iter().map(|i| json!({"item_id": i})).collect();
    let res = app
        .post(
            &format!("/v1/users/{user}/events"),
            &json!({"events": events}),
        )
        .await;
    assert_eq!(res.status(), 202);
}

async fn strategy(app: &TestApp, user: &str) -> String {
    app.get_json(&format!("/v1/users/{user}/recommendations?n=3"))
        .await["strategy"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_allowed_batch_and_body_pass_and_one_more_is_refused() {
    let app = spawn_app(
        &[two_cluster_model()],
        &[("MAX_BATCH_USERS", "3"), ("MAX_BODY_BYTES", "300")],
    )
    .await;
    let three = json!({"users": ["alice", "bob", "stranger"], "n": 2});
    let at = app.post("/v1/recommendations", &three).await;
    assert_eq!(at.status(), 200);
    let answer: serde_json::Value = at.json().await.unwrap();
    assert_eq!(answer["results"].as_array().unwrap().len(), 3);
    let four = json!({"users": ["alice", "bob", "stranger", "dora"], "n": 2});
    let message = error_message(app.post("/v1/recommendations", &four).await, 413).await;
    assert!(message.contains("limit is 3"), "{message}");

    let text = three.to_string();
    let pad = |len: usize| format!("{text}{}", " ".repeat(len - text.len()));
    let at_bytes = post_raw(&app, "/v1/recommendations", pad(300)).await;
    assert_eq!(at_bytes.status(), 200, "a body of exactly MAX_BODY_BYTES");
    let over = post_raw(&app, "/v1/recommendations", pad(301)).await;
    let message = error_message(over, 413).await;
    assert!(message.contains("limit: 300 bytes"), "{message}");
}

async fn clicks_beyond_the_per_user_cap_are_forgotten_oldest_first(clicks: Clicks) {
    let app =
        spawn_app_with_clicks(&[two_cluster_model()], &[("EVENTS_PER_USER", "2")], clicks).await;
    // Clicked items are left out of a user's recommendations, while they are remembered.
    click(&app, "control", &["a1"]).await;
    let control = item_ids(&app.get_json("/v1/users/control/recommendations?n=8").await);
    assert!(!control.contains(&"a1".to_owned()), "{control:?}");

    click(&app, "newbie", &["a1"]).await;
    click(&app, "newbie", &["b1", "b2"]).await;
    let items = item_ids(&app.get_json("/v1/users/newbie/recommendations?n=8").await);
    assert!(
        items.contains(&"a1".to_owned()),
        "a1, the oldest of 3 clicks with a cap of 2, is forgotten: {items:?}"
    );
    assert!(
        !items.iter().any(|i| i == "b1" || i == "b2"),
        "the 2 newest are kept: {items:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_beyond_the_total_cap_lose_their_clicks_least_recently_active_first() {
    let app = spawn_app(&[two_cluster_model()], &[("EVENT_USERS", "2")]).await;
    for user in ["u1", "u2"] {
        click(&app, user, &["a3"]).await;
        assert_eq!(strategy(&app, user).await, "fold_in");
    }
    click(&app, "u1", &["a4"]).await;
    click(&app, "u3", &["a3"]).await;
    assert_eq!(
        strategy(&app, "u2").await,
        "popular",
        "u2 was the least recently active of 3 users with a cap of 2"
    );
    assert_eq!(strategy(&app, "u1").await, "fold_in");
    assert_eq!(strategy(&app, "u3").await, "fold_in");
}

async fn clicks_expire_after_their_time_to_live(clicks: Clicks) {
    let app = spawn_app_with_clicks(
        &[two_cluster_model()],
        &[("EVENT_TTL_SECONDS", "1")],
        clicks,
    )
    .await;
    click(&app, "newbie", &["a3"]).await;
    assert_eq!(strategy(&app, "newbie").await, "fold_in");
    shared_lib::testing::eventually(
        "the click expires after EVENT_TTL_SECONDS=1",
        Duration::from_secs(5),
        || async { strategy(&app, "newbie").await == "popular" },
    )
    .await;
}

async fn click_weights_up_to_the_cap_are_accepted_and_larger_ones_refused_naming_the_cap(
    clicks: Clicks,
) {
    // Arrange
    let app = spawn_app_with_clicks(
        &[two_cluster_model()],
        &[("MAX_CLICK_WEIGHT", "10")],
        clicks,
    )
    .await;
    let post = |weight: f64| {
        let body = json!({"events": [{"item_id": "a3", "weight": weight}]});
        let app = &app;
        async move { app.post("/v1/users/newbie/events", &body).await }
    };
    // Act / Assert
    assert_eq!(post(10.0).await.status(), 202, "exactly the cap");
    let message = error_message(post(10.5).await, 400).await;
    assert!(
        message.contains("weight of a3") && message.contains("maximum is 10"),
        "{message}"
    );
    assert!(message.contains("MAX_CLICK_WEIGHT"), "{message}");
}

async fn send(app: &TestApp, method: &str, path: &str) -> reqwest::Response {
    if method == "POST" {
        app.post(path, &json!({"users": ["alice", "bob"], "n": 2}))
            .await
    } else {
        app.get(path).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoring_past_its_bound_gets_503_with_retry_after_and_200_once_a_permit_is_free() {
    // Arrange: one permit, no waiting; the test holds the permit.
    let app = spawn_app(
        &[two_cluster_model()],
        &[("MAX_CONCURRENT_SCORING", "1"), ("SCORING_WAIT_MS", "0")],
    )
    .await;
    let held = app.scoring.try_acquire().expect("the only permit is free");
    let requests = [
        ("GET", "/v1/users/alice/recommendations?n=2"),
        ("POST", "/v1/recommendations"),
        ("GET", "/v1/items/a1/similar?n=2"),
    ];
    for (method, path) in requests {
        // Act
        let res = send(&app, method, path).await;
        // Assert
        assert_eq!(res.status(), 503, "{method} {path} while saturated");
        assert_eq!(
            res.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1"),
            "{method} {path}"
        );
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable", "{method} {path}");
    }
    drop(held);
    for (method, path) in requests {
        assert_eq!(
            send(&app, method, path).await.status(),
            200,
            "{method} {path} after release"
        );
    }
}

crate::in_both_click_stores!(
    clicks_beyond_the_per_user_cap_are_forgotten_oldest_first,
    clicks_expire_after_their_time_to_live,
    click_weights_up_to_the_cap_are_accepted_and_larger_ones_refused_naming_the_cap,
);
