//! Recommendations, subsets, similar items, clicks, A/B, and bad input.

use std::time::Duration;

use serde_json::json;
use shared_lib::models::als::AlsModel;
use shared_lib::models::als::synthetic::{Shape, random_model};
use shared_lib::testing::{eventually, metric_sum};

use crate::helpers::{
    Clicks, encoded, item_ids, spawn_app, spawn_app_with_artifacts, spawn_app_with_clicks,
    two_cluster_model,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommendations_follow_the_users_taste_and_exclude_what_they_have_seen() {
    let app = spawn_app(&[two_cluster_model()], &[]).await;
    let res = app.get("/v1/users/alice/recommendations?n=3").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-model-version"], "1");
    assert_eq!(res.headers()["x-variant"], "a");
    let answer: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        item_ids(&answer),
        ["a2", "a3", "a4"],
        "a1 was seen in training"
    );
    assert_eq!(
        (answer["strategy"].as_str(), answer["cold_start"].as_bool()),
        (Some("als"), Some(false))
    );
    let scores: Vec<f64> = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "scores descend: {scores:?}"
    );
    let bob = app.get_json("/v1/users/bob/recommendations?n=2").await;
    assert_eq!(item_ids(&bob), ["b2", "b3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclude_and_allow_lists_filter_the_catalogue() {
    let app = spawn_app(&[two_cluster_model()], &[]).await;
    let out_of_stock = app
        .get_json("/v1/users/alice/recommendations?n=2&exclude=a2,unknown-item")
        .await;
    assert_eq!(item_ids(&out_of_stock), ["a3", "a4"]);
    let allowed = app
        .get_json("/v1/users/alice/recommendations?n=5&allow=b1,b3,a1")
        .await;
    assert_eq!(
        item_ids(&allowed),
        ["b1", "b3"],
        "only allowed items, never the seen a1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_get_popular_items_or_nothing_when_asked_to_drop() {
    let app = spawn_app(&[two_cluster_model()], &[]).await;
    let popular = app.get_json("/v1/users/stranger/recommendations?n=3").await;
    assert_eq!(item_ids(&popular), ["b2", "b1", "a1"]);
    assert_eq!(
        (
            popular["strategy"].as_str(),
            popular["cold_start"].as_bool()
        ),
        (Some("popular"), Some(true))
    );
    let dropped = app
        .get_json("/v1/users/stranger/recommendations?n=3&cold_start=drop")
        .await;
    assert!(item_ids(&dropped).is_empty());
    assert_eq!(dropped["cold_start"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subset_call_answers_exactly_as_the_per_user_calls() {
    let app = spawn_app(&[two_cluster_model()], &[]).await;
    let users = ["alice", "bob", "stranger"];
    let res = app
        .post("/v1/recommendations", &json!({"users": users, "n": 2}))
        .await;
    assert_eq!(res.status(), 200);
    let subset: serde_json::Value = res.json().await.unwrap();
    for (i, user) in users.iter().enumerate() {
        let single = app
            .get_json(&format!("/v1/users/{user}/recommendations?n=2"))
            .await;
        assert_eq!(subset["results"][i], single, "{user}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_subset_scored_in_batches_answers_exactly_as_the_per_user_calls() {
    // Enough known users to take the batched scan, mixed with a stranger and a user who has
    // clicked (both scored one by one), over a catalogue of several item tiles.
    let model = random_model(&Shape {
        users: 40,
        items: 2_500,
        rank: 12,
        seed: 11,
        seen_min: 0,
        seen_max: 30,
    });
    let app = spawn_app(&[model], &[]).await;
    app.post(
        "/v1/users/u3/events",
        &json!({"events": [{"item_id": "i7"}]}),
    )
    .await;
    let mut users: Vec<String> = (0..40).rev().map(|u| format!("u{u}")).collect();
    users.insert(5, "stranger".into());
    let body = json!({"users": users, "n": 7, "exclude": ["i1", "i2000", "nope"]});
    let res = app.post("/v1/recommendations", &body).await;
    assert_eq!(res.status(), 200);
    let subset: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        subset["results"].as_array().map(Vec::len),
        Some(users.len())
    );
    for (i, user) in users.iter().enumerate() {
        let single = app
            .get_json(&format!(
                "/v1/users/{user}/recommendations?n=7&exclude=i1,i2000,nope"
            ))
            .await;
        assert_eq!(subset["results"][i], single, "{user}");
    }
    assert_eq!(subset["results"][5]["strategy"], "popular");
    let u3 = users.iter().position(|u| u == "u3").unwrap();
    assert_eq!(subset["results"][u3]["strategy"], "fold_in");
}

async fn clicks_fold_in_at_once_and_move_recommendations_toward_their_neighbours(clicks: Clicks) {
    // Arrange: alice's taste is cluster A.
    let app = spawn_app_with_clicks(&[two_cluster_model()], &[], clicks).await;
    assert_eq!(
        item_ids(&app.get_json("/v1/users/alice/recommendations?n=1").await),
        ["a2"]
    );
    // Act: she clicks around cluster B.
    let res = app
        .post(
            "/v1/users/alice/events",
            &json!({"events": [{"item_id": "b3", "weight": 20}, {"item_id": "b4", "weight": 20}]}),
        )
        .await;
    assert_eq!(res.status(), 202);
    // Assert: the very next call recommends B items she has not clicked.
    let after = app.get_json("/v1/users/alice/recommendations?n=2").await;
    assert_eq!(after["strategy"], "fold_in");
    assert!(
        item_ids(&after).iter().all(|i| i.starts_with('b')),
        "{after}"
    );
    assert!(
        !item_ids(&after)
            .iter()
            .any(|i| i == "b3" || i == "b4" || i == "a1"),
        "clicked and seen items are excluded"
    );
    // A stranger with clicks is no longer cold.
    app.post(
        "/v1/users/newbie/events",
        &json!({"events": [{"item_id": "a3"}]}),
    )
    .await;
    let newbie = app.get_json("/v1/users/newbie/recommendations?n=1").await;
    assert_eq!(
        (newbie["strategy"].as_str(), newbie["cold_start"].as_bool()),
        (Some("fold_in"), Some(false))
    );
    assert!(item_ids(&newbie)[0].starts_with('a'), "{newbie}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_items_are_the_nearest_in_factor_space() {
    let app = spawn_app(&[two_cluster_model()], &[]).await;
    let similar = app.get_json("/v1/items/a1/similar?n=3").await;
    // Cosine: a3 (0.9, 0) is closer in angle to a1 (1, 0.05) than a2 (0.95, 0.1) is.
    assert_eq!(item_ids(&similar), ["a3", "a2", "a4"]);
    let res = app.get("/v1/items/nope/similar").await;
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown item nope")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_variants_are_sticky_per_user() {
    let mut other = two_cluster_model();
    other.user_factors = vec![0.0, 1.0, 1.0, 0.0];
    let app = spawn_app(
        &[two_cluster_model(), other],
        &[("MODEL_VERSION_B", "2"), ("AB_PERCENT_B", "50")],
    )
    .await;
    app.wait_all_slots_loaded().await;
    let mut seen = std::collections::HashMap::new();
    for round in 0..3 {
        for u in 0..40 {
            let res = app
                .get(&format!("/v1/users/user-{u}/recommendations?n=1"))
                .await;
            let variant = res.headers()["x-variant"].to_str().unwrap().to_owned();
            let version = res.headers()["x-model-version"]
                .to_str()
                .unwrap()
                .to_owned();
            assert_eq!(version, if variant == "b" { "2" } else { "1" });
            if round == 0 {
                seen.insert(u, variant);
            } else {
                assert_eq!(seen[&u], variant, "user-{u} switched variant");
            }
        }
    }
    let b = seen.values().filter(|v| *v == "b").count();
    assert!((8..=32).contains(&b), "{b} of 40 users in B at 50 %");
}

/// Layout 2 of the artifact envelope (for models over 4 GiB), written by hand from its
/// documented form rather than by the encoder, which only writes it for such models: the map
/// `{magic, format_version: 2, kind, payload_len}`, then the model's MessagePack, raw.
fn layout_2_artifact(model: &AlsModel) -> Vec<u8> {
    fn push_str(bytes: &mut Vec<u8>, text: &str) {
        bytes.push(0xa0 | u8::try_from(text.len()).unwrap()); // fixstr, under 32 bytes
        bytes.extend_from_slice(text.as_bytes());
    }
    let payload = rmp_serde::to_vec_named(model).unwrap();
    let mut bytes = vec![0x84]; // a map of four entries
    for text in ["magic", "ml-suite-model", "format_version"] {
        push_str(&mut bytes, text);
    }
    bytes.push(0x02);
    for text in ["kind", "recommender-als", "payload_len"] {
        push_str(&mut bytes, text);
    }
    bytes.push(0xcf); // uint 64
    bytes.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    bytes.extend_from_slice(&payload);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_2_artifact_is_published_loaded_and_answers_as_layout_1_does() {
    let model = two_cluster_model();
    let layout_2 = layout_2_artifact(&model);
    assert_ne!(layout_2, encoded(&model), "the encoder wrote layout 1");
    // Version 1 in layout 1, version 2 the same model in layout 2, and version 2 served.
    let app =
        spawn_app_with_artifacts(vec![encoded(&model), layout_2], &[("MODEL_VERSION", "2")]).await;
    for (user, expected) in [("alice", ["a2", "a3", "a4"]), ("bob", ["b2", "b3", "b4"])] {
        let res = app
            .get(&format!("/v1/users/{user}/recommendations?n=3"))
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-model-version"], "2");
        let answer: serde_json::Value = res.json().await.unwrap();
        assert_eq!(item_ids(&answer), expected, "{user}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shadow_never_changes_recommendations_and_its_verdicts_are_counted() {
    // Version 2 sends alice to the other cluster, so its top item differs from version 1's.
    let mut other = two_cluster_model();
    other.user_factors = vec![0.0, 1.0, 1.0, 0.0];
    for (shadow, verdict) in [("1", "agree"), ("2", "disagree")] {
        // Arrange
        let app = spawn_app(
            &[two_cluster_model(), other.clone()],
            &[("MODEL_VERSION_SHADOW", shadow)],
        )
        .await;
        app.wait_all_slots_loaded().await;

        // Act
        let res = app.get("/v1/users/alice/recommendations?n=3").await;

        // Assert: the primary's answer, and one comparison with the expected verdict.
        assert_eq!(res.headers()["x-model-version"], "1", "shadow {shadow}");
        let answer: serde_json::Value = res.json().await.unwrap();
        assert_eq!(item_ids(&answer), ["a2", "a3", "a4"], "shadow {shadow}");
        let results = ["agree", "disagree", "dropped", "failed"];
        let count = |m: &str, r: &str| metric_sum(m, "shadow_comparisons_total", &[("result", r)]);
        eventually(
            "a shadow comparison counted",
            Duration::from_secs(10),
            || async {
                let m = app.metrics().await;
                results.iter().map(|r| count(&m, r)).sum::<f64>() >= 1.0
            },
        )
        .await;
        let m = app.metrics().await;
        for r in results {
            let expected = if r == verdict { 1.0 } else { 0.0 };
            assert_eq!(count(&m, r), expected, "shadow {shadow}, {r}: {m}");
        }
    }
}

async fn bad_input_gets_a_4xx_naming_the_problem(clicks: Clicks) {
    let app =
        spawn_app_with_clicks(&[two_cluster_model()], &[("MAX_BATCH_USERS", "3")], clicks).await;
    let long_id = "u".repeat(200);
    let gets = [
        (
            "/v1/users/alice/recommendations?n=0".to_owned(),
            400,
            "n must be from 1 to 100",
        ),
        (
            "/v1/users/alice/recommendations?n=101".to_owned(),
            400,
            "n must be from 1 to 100",
        ),
        (
            "/v1/users/alice/recommendations?n=abc".to_owned(),
            400,
            "query",
        ),
        (
            "/v1/users/alice/recommendations?colour=red".to_owned(),
            400,
            "colour",
        ),
        (
            "/v1/users/alice/recommendations?cold_start=maybe".to_owned(),
            400,
            "unknown variant `maybe`",
        ),
        (
            format!("/v1/users/{long_id}/recommendations"),
            400,
            "user_id must have",
        ),
        ("/v1/items/a1/similar?n=-1".to_owned(), 400, "query"),
        (
            format!("/v1/items/{long_id}/similar"),
            400,
            "item_id must have",
        ),
        (
            format!("/v1/items/a1/similar?exclude=a2,{long_id}"),
            400,
            "exclude must have",
        ),
        (
            "/v1/users/alice/recommendations?allow=a1,b%01".to_owned(),
            400,
            "allow must have",
        ),
        (
            format!(
                "/v1/users/alice/recommendations?exclude={}",
                ["a1"; 1001].join(",")
            ),
            400,
            "exclude has 1001 ids; the limit is 1000",
        ),
        (
            "/v1/items/a1/similar?user_id=".to_owned(),
            400,
            "user_id must have",
        ),
    ];
    for (path, status, needle) in gets {
        let res = app.get(&path).await;
        assert_eq!(res.status(), status, "{path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }
    let posts = [
        (
            "/v1/recommendations",
            json!({"users": []}),
            400,
            "users must not be empty",
        ),
        (
            "/v1/recommendations",
            json!({"users": ["a", "b", "c", "d"]}),
            413,
            "limit is 3",
        ),
        (
            "/v1/recommendations",
            json!({"users": ["alice"], "n": 0}),
            400,
            "n must be",
        ),
        (
            "/v1/recommendations",
            json!({"user": ["alice"]}),
            400,
            "user",
        ),
        (
            "/v1/recommendations",
            json!({"users": ["alice", ""]}),
            400,
            "user_id must have",
        ),
        (
            "/v1/recommendations",
            json!({"users": ["alice"], "exclude": ["a1", long_id]}),
            400,
            "exclude must have",
        ),
        (
            "/v1/recommendations",
            json!({"users": ["alice"], "allow": ["a\u{1}"]}),
            400,
            "allow must have",
        ),
        (
            "/v1/users/alice/events",
            json!({"events": [{"item_id": ""}]}),
            400,
            "item_id must have",
        ),
        (
            "/v1/users/alice/events",
            json!({"events": [{"item_id": "zz"}]}),
            422,
            "unknown item(s): zz",
        ),
        (
            "/v1/users/alice/events",
            json!({"events": [{"item_id": "a1", "weight": -1}]}),
            400,
            "positive",
        ),
        (
            "/v1/users/alice/events",
            json!({"events": []}),
            400,
            "1 to 100",
        ),
    ];
    for (path, body, status, needle) in posts {
        let res = app.post(path, &body).await;
        assert_eq!(res.status(), status, "{path} {body}");
        let err: serde_json::Value = res.json().await.unwrap();
        assert!(
            err["error"]["message"].as_str().unwrap().contains(needle),
            "{path}: {err}"
        );
    }
    let malformed = app
        .client
        .post(format!("{}/v1/recommendations", app.address))
        .header("content-type", "application/json")
        .body("{\"users\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route() {
    let app = spawn_app(&[two_cluster_model()], &[]).await;
    let doc = app.get_json("/openapi.json").await;
    for path in [
        "/v1/users/{user_id}/recommendations",
        "/v1/recommendations",
        "/v1/items/{item_id}/similar",
        "/v1/users/{user_id}/events",
        "/v1/models",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }
    assert_eq!(doc["paths"].as_object().unwrap().len(), 9);
    assert_eq!(app.get_json("/v1/models").await["slots"][0]["version"], 1);
}

async fn a_subset_scored_in_several_chunks_answers_in_order_as_the_per_user_calls(clicks: Clicks) {
    // Arrange: 300 users, 40 of them with clicks, so the subset spans several scoring chunks
    // (each bounded in users and in fold-ins).
    let model = random_model(&Shape {
        users: 300,
        items: 60,
        rank: 4,
        seed: 5,
        seen_min: 0,
        seen_max: 5,
    });
    let app = spawn_app_with_clicks(&[model], &[], clicks).await;
    let users: Vec<String> = (0..300).map(|u| format!("u{u}")).collect();
    for user in users.iter().step_by(7).take(40) {
        let res = app
            .post(
                &format!("/v1/users/{user}/events"),
                &json!({"events": [{"item_id": "i3"}]}),
            )
            .await;
        assert_eq!(res.status(), 202);
    }
    // Act
    let res = app
        .post("/v1/recommendations", &json!({"users": users, "n": 3}))
        .await;
    // Assert
    assert_eq!(res.status(), 200);
    let subset: serde_json::Value = res.json().await.unwrap();
    for (i, user) in users.iter().enumerate() {
        let single = app
            .get_json(&format!("/v1/users/{user}/recommendations?n=3"))
            .await;
        assert_eq!(subset["results"][i], single, "{user}");
    }
    assert_eq!(subset["results"][7]["strategy"], "fold_in");
}

crate::in_both_click_stores!(
    clicks_fold_in_at_once_and_move_recommendations_toward_their_neighbours,
    bad_input_gets_a_4xx_naming_the_problem,
    a_subset_scored_in_several_chunks_answers_in_order_as_the_per_user_calls,
);
