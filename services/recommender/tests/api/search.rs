//! `RECOMMEND_SEARCH`: the int8 scan and the ann index behind every endpoint, their recall in
//! `/v1/models` and the metrics, and the bytes the scans read.

use serde_json::json;
use shared_lib::models::als::synthetic::{Shape, plant_topics, random_model};
use shared_lib::models::als::{AlsModel, AnnParams, HnswParams, IvfParams, with_ann_index};

use crate::helpers::{TestApp, item_ids, spawn_app};

const ITEMS: usize = 4_000;
const RANK: usize = 16;

fn model() -> AlsModel {
    random_model(&Shape {
        users: 60,
        items: ITEMS,
        rank: RANK,
        seed: 23,
        seen_min: 1,
        seen_max: 30,
    })
}

/// Lists of [`indexed_model`]'s index.
const LISTS: usize = 40;

/// [`model`] with factors clustered around topics (as trained factors are) and an IVF index
/// tuned to recall@10 of 0.95 on its 60 users.
fn indexed_model() -> AlsModel {
    let mut m = model();
    plant_topics(&mut m, 20, 0.5, 4);
    let params = IvfParams {
        lists: LISTS,
        ..IvfParams::for_items(ITEMS)
    };
    with_ann_index(m, &AnnParams::Ivf(params), 0.95, 10, 60)
        .unwrap()
        .0
}

/// [`model`] with factors clustered around topics and an HNSW graph, its breadth tuned to
/// recall@10 of 0.95 on its 60 users.
fn graphed_model() -> AlsModel {
    let mut m = model();
    plant_topics(&mut m, 20, 0.5, 4);
    let params = HnswParams {
        degree: 16,
        upper_degree: 8,
        ..HnswParams::new()
    };
    with_ann_index(m, &AnnParams::Hnsw(params), 0.95, 10, 60)
        .unwrap()
        .0
}

/// The value of the metric line that starts with `prefix` in the `/metrics` text.
async fn metric(app: &TestApp, prefix: &str) -> Option<f64> {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mode_reports_its_recall_in_models_and_as_a_gauge() {
    // Arrange
    let exact = spawn_app(&[model()], &[]).await;
    let int8 = spawn_app(&[model()], &[("RECOMMEND_SEARCH", "int8")]).await;
    // Act
    let exact_slot = exact.get_json("/v1/models").await["slots"][0].clone();
    let int8_slot = int8.get_json("/v1/models").await["slots"][0].clone();
    // Assert
    assert_eq!(exact_slot["details"]["mode"], "exact");
    assert_eq!(exact_slot["details"]["recall_at_10"], 1.0);
    assert_eq!(exact_slot["details"]["item_factor_bytes"], ITEMS * RANK * 4);
    let details = &int8_slot["details"];
    assert_eq!(details["mode"], "int8");
    assert_eq!(details["oversample"], 10);
    assert_eq!(details["recall_users"], 60);
    assert_eq!(
        details["item_factor_bytes"],
        ITEMS * RANK * 4 + ITEMS * (RANK + 4)
    );
    let recall = details["recall_at_10"].as_f64().unwrap();
    assert!((0.95..=1.0).contains(&recall), "{recall}");
    let gauge = metric(&int8, "recommender_search_recall_at_10{")
        .await
        .unwrap();
    assert_eq!(gauge, recall);
    let text = int8.get("/metrics").await.text().await.unwrap();
    assert!(text.contains(r#"mode="int8""#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn int8_mode_keeps_filters_cold_start_clicks_and_the_subset_call() {
    keeps_filters_cold_start_clicks_and_the_subset_call(model(), "int8", 54).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ann_mode_keeps_filters_cold_start_clicks_and_the_subset_call() {
    keeps_filters_cold_start_clicks_and_the_subset_call(indexed_model(), "ann", 45).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ann_mode_on_a_graph_keeps_filters_cold_start_clicks_and_the_subset_call() {
    keeps_filters_cold_start_clicks_and_the_subset_call(graphed_model(), "ann", 45).await;
}

/// Every endpoint in `mode` against the exact scan of `m`: at least `min_same` of 60 users get
/// the exact list.
async fn keeps_filters_cold_start_clicks_and_the_subset_call(
    m: AlsModel,
    mode: &str,
    min_same: usize,
) {
    // Arrange
    let exact = spawn_app(std::slice::from_ref(&m), &[]).await;
    let app = spawn_app(std::slice::from_ref(&m), &[("RECOMMEND_SEARCH", mode)]).await;
    let seen_of = |u: usize| -> Vec<String> {
        m.seen_items[m.seen_offsets[u] as usize..m.seen_offsets[u + 1] as usize]
            .iter()
            .map(|i| format!("i{i}"))
            .collect()
    };
    // Act and assert: most users get the exact list; none gets a seen item.
    let mut same = 0;
    for u in 0..60 {
        let path = format!("/v1/users/u{u}/recommendations?n=10");
        let got = item_ids(&app.get_json(&path).await);
        if got == item_ids(&exact.get_json(&path).await) {
            same += 1;
        }
        assert!(got.iter().all(|i| !seen_of(u).contains(i)), "u{u}: {got:?}");
    }
    assert!(same >= min_same, "{same} of 60 users got the exact list");
    // Exclusions and allow-lists.
    let best = item_ids(&app.get_json("/v1/users/u1/recommendations?n=3").await);
    let next = app
        .get_json(&format!(
            "/v1/users/u1/recommendations?n=10&exclude={}",
            best.join(",")
        ))
        .await;
    assert!(item_ids(&next).iter().all(|i| !best.contains(i)));
    let allowed = app
        .get_json("/v1/users/u1/recommendations?n=10&allow=i5,i6,i7")
        .await;
    assert!(
        item_ids(&allowed)
            .iter()
            .all(|i| ["i5", "i6", "i7"].contains(&i.as_str()))
    );
    // Cold start.
    let stranger = app.get_json("/v1/users/stranger/recommendations").await;
    assert_eq!(stranger["strategy"], "popular");
    // Clicks fold in and are never recommended back.
    let res = app
        .post(
            "/v1/users/u2/events",
            &json!({"events": [{"item_id": best[0]}]}),
        )
        .await;
    assert!(res.status().is_success());
    let u2 = app.get_json("/v1/users/u2/recommendations?n=10").await;
    assert_eq!(u2["strategy"], "fold_in");
    assert!(!item_ids(&u2).contains(&best[0]));
    // The subset call answers as the per-user calls, in order.
    let users: Vec<String> = (0..30)
        .map(|u| format!("u{u}"))
        .chain(["stranger".into()])
        .collect();
    let subset = app
        .post(
            "/v1/recommendations",
            &json!({"users": users, "n": 5, "exclude": ["i9"]}),
        )
        .await;
    assert_eq!(subset.status(), 200);
    let subset: serde_json::Value = subset.json().await.unwrap();
    for (i, user) in users.iter().enumerate() {
        let single = app
            .get_json(&format!("/v1/users/{user}/recommendations?n=5&exclude=i9"))
            .await;
        assert_eq!(subset["results"][i], single, "{user}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bytes_counter_shows_int8_reading_about_a_third_of_exact() {
    // Arrange
    let exact = spawn_app(&[model()], &[]).await;
    let int8 = spawn_app(&[model()], &[("RECOMMEND_SEARCH", "int8")]).await;
    let counter = "recommender_factor_bytes_read_total";
    // Act
    for app in [&exact, &int8] {
        app.get_json("/v1/users/u4/recommendations?n=10").await;
    }
    // Assert
    let f32_bytes = metric(&exact, counter).await.unwrap();
    assert_eq!(f32_bytes, (ITEMS * RANK * 4) as f64);
    let int8_bytes = metric(&int8, counter).await.unwrap();
    let codes = (ITEMS * (RANK + 4)) as f64;
    assert!(
        int8_bytes >= codes && int8_bytes < codes + (200 * RANK * 4) as f64,
        "{int8_bytes}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ann_mode_reports_the_probe_and_recall_and_reads_a_fraction_of_the_codes() {
    // Arrange
    let m = indexed_model();
    let recorded = m.index.as_ref().unwrap().probe as usize;
    let app = spawn_app(std::slice::from_ref(&m), &[("RECOMMEND_SEARCH", "ann")]).await;
    let wide = spawn_app(
        &[m],
        &[("RECOMMEND_SEARCH", "ann"), ("RECOMMEND_PROBE", "1000")],
    )
    .await;
    // Act
    let details = app.get_json("/v1/models").await["slots"][0]["details"].clone();
    let wide_details = wide.get_json("/v1/models").await["slots"][0]["details"].clone();
    app.get_json("/v1/users/u4/recommendations?n=10").await;
    // Assert: the trainer's probe by default, all lists at most.
    assert_eq!(details["mode"], "ann");
    assert_eq!(details["probe"], recorded);
    assert!(recorded < LISTS / 2, "probe {recorded} of {LISTS}");
    assert_eq!(wide_details["probe"], LISTS);
    let recall = details["recall_at_10"].as_f64().unwrap();
    assert!((0.95..=1.0).contains(&recall), "{recall}");
    let wide_recall = wide_details["recall_at_10"].as_f64().unwrap();
    assert!(wide_recall >= recall, "{wide_recall} < {recall}");
    let gauge = metric(&app, "recommender_search_recall_at_10{")
        .await
        .unwrap();
    assert_eq!(gauge, recall);
    assert!(app.metrics().await.contains(r#"mode="ann""#));
    // Bytes: the probed lists' codes and the centroids, well under the int8 scan's.
    let read = metric(&app, "recommender_factor_bytes_read_total")
        .await
        .unwrap();
    let all_codes = (ITEMS * (RANK + 4)) as f64;
    assert!(read < all_codes * 0.6, "{read} of {all_codes}");
    assert!(read > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ann_mode_on_a_graph_reports_the_index_and_its_breadth_and_reads_a_fraction() {
    // Arrange
    let m = graphed_model();
    let recorded = m.graph.as_ref().unwrap().ef as usize;
    let app = spawn_app(std::slice::from_ref(&m), &[("RECOMMEND_SEARCH", "ann")]).await;
    let wide = spawn_app(
        &[m],
        &[("RECOMMEND_SEARCH", "ann"), ("RECOMMEND_PROBE", "4000")],
    )
    .await;
    // Act
    let details = app.get_json("/v1/models").await["slots"][0]["details"].clone();
    let wide_details = wide.get_json("/v1/models").await["slots"][0]["details"].clone();
    app.get_json("/v1/users/u4/recommendations?n=10").await;
    // Assert: the graph is named, the trainer's breadth is the default.
    assert_eq!(details["mode"], "ann");
    assert_eq!(details["index"], "hnsw");
    assert_eq!(details["probe"], recorded);
    assert_eq!(wide_details["probe"], 4000);
    let recall = details["recall_at_10"].as_f64().unwrap();
    assert!((0.95..=1.0).contains(&recall), "{recall}");
    // A breadth of every item finds every item a link reaches (a few are reached by none).
    let wide_recall = wide_details["recall_at_10"].as_f64().unwrap();
    assert!(wide_recall >= recall.max(0.99), "{wide_recall} < {recall}");
    // Bytes: the rows the walk scored, well under the f32 scan's.
    let read = metric(&app, "recommender_factor_bytes_read_total")
        .await
        .unwrap();
    let all = (ITEMS * RANK * 4) as f64;
    assert!(read < all * 0.5, "{read} of {all}");
    assert!(read >= (recorded * RANK * 4) as f64, "{read}");
}
