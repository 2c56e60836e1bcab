//! Recent clicks in Redis, end to end (issue #14): the real `recommender` binary, two replicas
//! sharing the suite's Redis, and a Redis of the test's own killed and restarted under load.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.
#![allow(clippy::print_stdout)] // The observed numbers go to the test's output.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use e2e::process::Service;
use e2e::redis::{PrivateRedis, shared_url, unique_prefix};
use serde_json::json;
use shared_lib::models::als::synthetic::{Shape, random_model};
use shared_lib::registry::Registry;
use shared_lib::store::{ObjectStore, StoreLocation};
use shared_lib::testing::eventually;

/// Publishes a generated ALS model (users `u0..`, items `i0..`) as version 1 of `recommender`
/// in a local-directory store; returns the store's environment for the services.
async fn local_store_with_model(dir: &std::path::Path) -> Vec<(String, String)> {
    let model = random_model(&Shape {
        users: 200,
        items: 2000,
        rank: 8,
        seed: 14,
        seen_min: 1,
        seen_max: 5,
    });
    let store = ObjectStore::open(&StoreLocation::Local(dir.to_path_buf()))
        .await
        .unwrap();
    shared_lib::testing::publish_recommender(&Registry::new(store), &model, "e2e").await;
    vec![
        ("MODEL_STORE".into(), dir.display().to_string()),
        ("MODEL_VERSION".into(), "1".into()),
    ]
}

fn with(env: &[(String, String)], extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    env
}

async fn click(service: &Service, user: &str, items: &[&str]) -> u16 {
    let events: Vec<_> = items.iter().map(|i| json!({"item_id": i})).collect();
    service
        .client
        .post(format!("{}/v1/users/{user}/events", service.url))
        .json(&json!({"events": events}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn item_ids(answer: &serde_json::Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis and the built binaries: run scripts/test.sh"]
async fn a_click_on_one_replica_moves_the_next_recommendation_from_the_other() {
    // Arrange: two recommender processes behind no sticky routing, one Redis.
    let dir = tempfile::tempdir().unwrap();
    let store = local_store_with_model(dir.path()).await;
    let env = with(
        &store,
        &[
            ("CLICKS_URL", shared_url()),
            ("CLICKS_KEY_PREFIX", unique_prefix("two-replicas")),
        ],
    );
    let a = Service::start_ready("recommender", &env).await;
    let b = Service::start_ready("recommender", &env).await;
    let before = b.get_json("/v1/users/shopper/recommendations?n=20").await;
    assert_eq!(before["strategy"], "popular", "{before}");

    // Act: she clicks on replica A.
    let clicked = ["i7", "i70", "i700"];
    assert_eq!(click(&a, "shopper", &clicked).await, 202);

    // Assert: replica B's very next answer is folded in from those clicks.
    let after = b.get_json("/v1/users/shopper/recommendations?n=20").await;
    assert_eq!(after["strategy"], "fold_in", "{after}");
    assert_eq!(after["clicks_available"], true, "{after}");
    let items = item_ids(&after);
    assert!(
        clicked.iter().all(|c| !items.contains(&(*c).to_owned())),
        "clicked items are left out: {items:?}"
    );
    assert_ne!(items, item_ids(&before), "the clicks changed the list");
    // And the other way round, for a known user.
    assert_eq!(click(&b, "u3", &["i5"]).await, 202);
    let u3 = a.get_json("/v1/users/u3/recommendations?n=20").await;
    assert_eq!(u3["strategy"], "fold_in", "{u3}");

    // A replica started later (a rollout, a restart) sees them too.
    drop(a);
    let c = Service::start_ready("recommender", &env).await;
    let later = c.get_json("/v1/users/shopper/recommendations?n=20").await;
    assert_eq!(later["strategy"], "fold_in", "{later}");
    assert_eq!(item_ids(&later), items, "the same clicks, the same answer");
}

/// What the load saw.
#[derive(Default, Debug)]
struct Load {
    ok: u64,
    failed: Vec<String>,
    without_clicks: u64,
    slowest: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server and the built binaries: run scripts/test.sh"]
async fn redis_killed_and_restarted_under_load_fails_no_recommendation_and_clicks_come_back() {
    // Arrange: a Redis of this test's own, one recommender, a user with clicks.
    let mut redis = tokio::task::block_in_place(PrivateRedis::start);
    let dir = tempfile::tempdir().unwrap();
    let store = local_store_with_model(dir.path()).await;
    let env = with(&store, &[("CLICKS_URL", redis.url())]);
    let service = Arc::new(Service::start_ready("recommender", &env).await);
    assert_eq!(click(&service, "shopper", &["i7", "i70"]).await, 202);

    // Load: 4 clients asking for recommendations without pause, for her and for known users.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (service, stop) = (service.clone(), stop.clone());
            tokio::spawn(async move {
                let mut load = Load::default();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let user = if i.is_multiple_of(2) {
                        "shopper".to_owned()
                    } else {
                        format!("u{}", (i + c) % 200)
                    };
                    i += 1;
                    let started = Instant::now();
                    let res = service
                        .client
                        .get(format!("{}/v1/users/{user}/recommendations", service.url))
                        .send()
                        .await;
                    load.slowest = load.slowest.max(started.elapsed());
                    match res {
                        Ok(res) if res.status() == 200 => {
                            let answer: serde_json::Value = res.json().await.unwrap();
                            load.ok += 1;
                            if answer["clicks_available"] == false {
                                load.without_clicks += 1;
                            }
                        }
                        Ok(res) => load.failed.push(format!("{}", res.status())),
                        Err(e) => load.failed.push(e.to_string()),
                    }
                }
                load
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Act 1: Redis dies.
    tokio::task::block_in_place(|| redis.kill());
    let killed = Instant::now();
    eventually(
        "recommendations say the clicks are unavailable",
        Duration::from_secs(10),
        || async {
            let answer = service.get_json("/v1/users/shopper/recommendations").await;
            answer["clicks_available"] == false && answer["strategy"] == "popular"
        },
    )
    .await;
    let refused = service
        .client
        .post(format!("{}/v1/users/shopper/events", service.url))
        .json(&json!({"events": [{"item_id": "i9"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        503,
        "a click is refused while Redis is down"
    );
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // Two seconds of outage under load.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Act 2: Redis comes back (empty: it kept nothing).
    tokio::task::block_in_place(|| redis.restart());
    let outage = killed.elapsed();
    let back = Instant::now();
    eventually(
        "a click is accepted again without restarting the service",
        Duration::from_secs(15),
        || async { click(&service, "shopper", &["i9"]).await == 202 },
    )
    .await;
    let recovered_in = back.elapsed();
    let answer = service.get_json("/v1/users/shopper/recommendations").await;
    assert_eq!(answer["strategy"], "fold_in", "{answer}");
    assert_eq!(answer["clicks_available"], true, "{answer}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    // Assert: not one recommendation request failed; some were served without clicks.
    let mut total = Load::default();
    for client in clients {
        let load = client.await.unwrap();
        total.ok += load.ok;
        total.without_clicks += load.without_clicks;
        total.failed.extend(load.failed);
        total.slowest = total.slowest.max(load.slowest);
    }
    assert!(
        total.failed.is_empty(),
        "failed requests: {:?}",
        total.failed
    );
    assert!(total.without_clicks > 0, "{total:?}");
    assert!(total.ok > total.without_clicks, "{total:?}");
    let metrics = service.get("/metrics").await.text().await.unwrap();
    for operation in ["read", "write"] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("recommender_clicks_unavailable_total")
                    && l.contains(&format!("operation=\"{operation}\""))
            })
            .unwrap_or_else(|| panic!("no {operation} count in /metrics"));
        let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(count >= 1.0, "{line}");
    }
    println!(
        "Redis outage of {outage:.1?} under load: {} recommendation requests, 0 failed, {} \
         answered without clicks; slowest {:.1?}; clicks accepted again {recovered_in:.1?} after \
         Redis restarted",
        total.ok, total.without_clicks, total.slowest
    );
}
