#![allow(clippy::unwrap_used)]
//! The recommender trainer end to end: generated data in, a gated, published ALS model out.

use std::path::{Path, PathBuf};

use crate::support::served_in_ann_mode;
use shared_lib::artifact::ModelKind;
use shared_lib::model_id::{AliasName, ModelName, ModelVersion};
use shared_lib::models::als::{AlsModel, AnnIndex, Filter, ServingAls};
use shared_lib::models::drift::DRIFT_BINS;
use shared_lib::registry::Registry;
use shared_lib::registry::manifest::{GateOutcome, HeldOutRule, Manifest};
use shared_lib::store::{ObjectStore, StoreLocation};
use trainer::Error;
use trainer::data::ratings::{RatingFormat, parse_ratings};
use trainer::pipeline::Context;
use trainer::progress::Progress;
use trainer::recommender::als::{AlsParams, train as train_als};
use trainer::recommender::{self, AnnKind, FeedbackArg, GenerateArgs, RatingInputArgs, TrainArgs};
use trainer::split::{SplitArgs, SplitMethod};

async fn context(dir: &Path) -> Context {
    let store = ObjectStore::open(&StoreLocation::Local(dir.join("store")))
        .await
        .unwrap();
    Context {
        registry: Registry::new(store).into(),
        actor: "test@recommender".into(),
        progress: Progress::hidden(),
    }
}

/// The manifest and the model of the version `report` published.
async fn published(ctx: &Context, report: recommender::Report) -> (Manifest, AlsModel) {
    let publication = report.publication.unwrap();
    let store = ctx.registry.as_store().unwrap();
    let manifest = store
        .manifest(&publication.model, publication.version)
        .await
        .unwrap();
    let model = store
        .load_model(&manifest, ModelKind::RecommenderAls)
        .await
        .unwrap();
    (manifest, model)
}

fn generate(dir: &Path, name: &str, implicit: bool, seed: u64) -> PathBuf {
    let out = dir.join(name);
    let args = GenerateArgs {
        users: if implicit { 600 } else { 500 },
        items: 300,
        rank: 4,
        density: 0.25,
        noise: 0.5,
        popularity_skew: if implicit { 0.8 } else { 0.3 },
        seed,
        out: out.clone(),
        format: RatingFormat::Tsv,
        implicit,
    };
    let report = recommender::generate(&args).unwrap();
    assert!(report.generated.rows > 1000);
    out
}

fn train_args(ratings: &Path, feedback: FeedbackArg) -> TrainArgs {
    TrainArgs {
        ratings: ratings.to_str().unwrap().to_owned(),
        test_ratings: None,
        no_publish: false,
        model: "recommender".into(),
        feedback,
        rank: 4,
        iterations: 10,
        lambda: 0.1,
        alpha: 1.0,
        cg_steps: 3,
        seed: 42,
        k: 10,
        split: SplitArgs {
            test_fraction: 0.2,
            split: SplitMethod::Hash,
            split_key: None,
            split_seed: 0,
        },
        min_improvement: 0.0,
        max_rmse: None,
        min_ndcg: None,
        input: RatingInputArgs {
            skip_bad_rows: false,
            format: RatingFormat::Auto,
            columns: Default::default(),
        },
        ann: Default::default(),
    }
}

#[tokio::test]
async fn explicit_als_recovers_the_planted_structure_down_to_the_noise_floor() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "explicit.tsv", false, 1);
    let ctx = context(dir.path()).await;
    let mut args = train_args(&data, FeedbackArg::Explicit);
    args.no_publish = true;
    args.lambda = 0.02;

    // Act
    let report = recommender::train(&ctx, &args).await.unwrap();

    // Assert: the noise floor is 0.5; a model that learned nothing scores about 1.1.
    let rmse = report.metrics["rmse"];
    assert!(
        rmse < 0.55,
        "held-out RMSE {rmse} is not within 10 % of the noise floor 0.5"
    );
    assert!(report.publication.is_none());
    assert!(report.test_rows > 0 && report.train_rows > 3 * report.test_rows);
}

#[tokio::test]
async fn implicit_als_beats_the_popularity_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "implicit.tsv", true, 2);
    let ctx = context(dir.path()).await;
    let mut args = train_args(&data, FeedbackArg::Implicit);
    args.no_publish = true;
    args.rank = 8;

    let report = recommender::train(&ctx, &args).await.unwrap();

    let baseline = report.popularity_baseline.unwrap();
    let (p, b) = (report.metrics["precision_at_k"], baseline.precision_at_k);
    assert!(p > 1.2 * b, "precision@10 {p} vs popularity {b}");
    assert!(report.metrics["ndcg_at_k"] > baseline.ndcg_at_k);
    assert_eq!(report.gate_metric, "ndcg_at_k");
}

#[tokio::test]
async fn the_gate_scores_the_champion_on_the_same_held_out_rows() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "explicit.tsv", false, 3);
    let ctx = context(dir.path()).await;
    let args = train_args(&data, FeedbackArg::Explicit);

    // Act: a first model, the same again, then a much worse one.
    let first = recommender::train(&ctx, &args).await.unwrap();
    let same = recommender::train(&ctx, &args).await.unwrap();
    let mut worse_args = train_args(&data, FeedbackArg::Explicit);
    worse_args.rank = 1;
    worse_args.iterations = 1;
    let worse = recommender::train(&ctx, &worse_args).await.unwrap();

    // Assert
    let p1 = first.publication.unwrap();
    assert!(p1.promoted, "the first model has no champion to beat");
    let p2 = same.publication.unwrap();
    assert_eq!(
        p2.sha256, p1.sha256,
        "same data and seed give the same artifact"
    );
    assert_eq!(p2.gate.champion_version, Some(p1.version));
    assert_eq!(
        p2.gate.champion_score,
        Some(first.metrics["rmse"]),
        "the champion is scored on the challenger's held-out rows"
    );
    assert!(!p2.promoted, "a tie is not a win");
    let p3 = worse.publication.unwrap();
    assert!(!p3.promoted && p3.gate.challenger_score > first.metrics["rmse"]);
    let production = ctx
        .registry
        .as_store()
        .unwrap()
        .resolve_alias(&p1.model, &shared_lib::model_id::AliasName::production())
        .await
        .unwrap();
    assert_eq!(production, p1.version);
    let manifest = ctx
        .registry
        .as_store()
        .unwrap()
        .manifest(&p3.model, p3.version)
        .await
        .unwrap();
    assert_eq!(manifest.algorithm, "als-explicit");
    assert!(manifest.metrics.contains_key("train_seconds"));
    assert_eq!(manifest.created_by, "test@recommender");
}

#[test]
fn training_is_deterministic_for_a_seed_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "implicit.tsv", true, 4);
    let ratings = parse_ratings(
        "d",
        &std::fs::read(&data).unwrap(),
        RatingFormat::Auto,
        false,
    )
    .unwrap()
    .ratings;
    for feedback in [FeedbackArg::Explicit, FeedbackArg::Implicit] {
        let params = AlsParams {
            feedback: feedback.into(),
            rank: 6,
            iterations: 3,
            lambda: 0.1,
            alpha: 2.0,
            cg_steps: 3,
            seed: 9,
        };
        let in_pool = |threads: usize, params: AlsParams| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| train_als(&ratings, &params, |_| {}))
        };
        let one = in_pool(1, params);
        let three = in_pool(3, params);
        assert_eq!(one, three, "{feedback:?}: 1 vs 3 threads");
        let other_seed = in_pool(2, AlsParams { seed: 10, ..params });
        assert_ne!(one.user_factors, other_seed.user_factors);
    }
}

fn mean_cosine(model: &ServingAls, to: u32, items: &[u32]) -> f32 {
    let m = model.model();
    let cos = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (na * nb).max(1e-12)
    };
    let sum: f32 = items
        .iter()
        .map(|&i| cos(m.item_factors(to), m.item_factors(i)))
        .sum();
    sum / items.len() as f32
}

#[test]
fn fold_in_moves_recommendations_toward_the_clicked_items_neighbours() {
    // Arrange: an implicit model, and a user's history.
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "implicit.tsv", true, 5);
    let ratings = parse_ratings(
        "d",
        &std::fs::read(&data).unwrap(),
        RatingFormat::Auto,
        false,
    )
    .unwrap()
    .ratings;
    let params = AlsParams {
        feedback: FeedbackArg::Implicit.into(),
        rank: 8,
        iterations: 8,
        lambda: 0.1,
        alpha: 2.0,
        cg_steps: 3,
        seed: 1,
    };
    let model = train_als(&ratings, &params, |_| {}).prepare().unwrap();
    let user = 0;
    let history: Vec<(u32, f32)> = model.model().seen(user).iter().map(|&i| (i, 1.0)).collect();
    let before = model.recommend_vector(
        &model.fold_in(&history),
        10,
        model.model().seen(user),
        Filter::default(),
    );
    // The clicked item: the one least like what the user is recommended now.
    let before_items: Vec<u32> = before.iter().map(|s| s.item).collect();
    let clicked = (0..model.model().n_items() as u32)
        .filter(|i| model.model().item_popularity[*i as usize] >= 5)
        .min_by(|a, b| {
            mean_cosine(&model, *a, &before_items).total_cmp(&mean_cosine(
                &model,
                *b,
                &before_items,
            ))
        })
        .unwrap();

    // Act: the user clicks it a few times.
    let mut clicks = history.clone();
    clicks.push((clicked, 10.0));
    let mut seen: Vec<u32> = model.model().seen(user).to_vec();
    seen.push(clicked);
    let after = model.recommend_vector(&model.fold_in(&clicks), 10, &seen, Filter::default());

    // Assert
    let after_items: Vec<u32> = after.iter().map(|s| s.item).collect();
    let (cos_before, cos_after) = (
        mean_cosine(&model, clicked, &before_items),
        mean_cosine(&model, clicked, &after_items),
    );
    assert!(
        cos_after > cos_before + 0.1,
        "similarity to the clicked item: before {cos_before}, after {cos_after}"
    );
    assert!(!after_items.contains(&clicked), "a clicked item is seen");
    let neighbours: Vec<u32> = model
        .similar_items(clicked, 20, Filter::default())
        .iter()
        .map(|s| s.item)
        .collect();
    let shared = after_items
        .iter()
        .filter(|i| neighbours.contains(i))
        .count();
    let shared_before = before_items
        .iter()
        .filter(|i| neighbours.contains(i))
        .count();
    assert!(
        shared > shared_before,
        "{shared} vs {shared_before} of the clicked item's neighbours"
    );
}

#[tokio::test]
async fn bad_rows_fail_the_run_with_file_and_line_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ratings.dat");
    let mut text = String::new();
    for u in 0..30 {
        for i in 0..10 {
            text.push_str(&format!("u{u}::i{i}::{}::0\n", (u + i) % 5 + 1));
        }
    }
    text.push_str("u1::i1::five::0\n");
    std::fs::write(&path, text).unwrap();
    let ctx = context(dir.path()).await;
    let mut args = train_args(&path, FeedbackArg::Explicit);
    args.no_publish = true;

    let err = recommender::train(&ctx, &args).await.unwrap_err();
    assert!(
        matches!(&err, Error::BadRow { line: 301, file, .. } if file.ends_with("ratings.dat")),
        "{err}"
    );
    assert_eq!(err.exit_code(), 3);

    args.input.skip_bad_rows = true;
    let report = recommender::train(&ctx, &args).await.unwrap();
    assert_eq!(report.bad_rows_skipped, 1);
    assert_eq!(report.rows_read, 300);
    assert_eq!(report.format, RatingFormat::Dcolon);
}

#[tokio::test]
async fn a_separate_test_file_is_evaluated_without_publishing() {
    let dir = tempfile::tempdir().unwrap();
    let train_file = generate(dir.path(), "train.tsv", false, 6);
    let test_file = dir.path().join("test.tsv");
    // The first 200 lines of the same planted model: all seen users and items.
    let text = std::fs::read_to_string(&train_file).unwrap();
    let head: String = text.lines().take(200).map(|l| format!("{l}\n")).collect();
    std::fs::write(&test_file, head).unwrap();
    let ctx = context(dir.path()).await;
    let mut args = train_args(&train_file, FeedbackArg::Explicit);
    args.test_ratings = Some(test_file.to_str().unwrap().to_owned());
    args.no_publish = true;

    let report = recommender::train(&ctx, &args).await.unwrap();

    assert_eq!(report.test_rows, 200);
    assert_eq!(report.train_rows, report.rows_read);
    let rmse = report.metrics["rmse"];
    assert!(
        rmse < 0.6,
        "rows it trained on fit about as well as the noise allows: {rmse}"
    );
    let models = ctx
        .registry
        .as_store()
        .unwrap()
        .list_models()
        .await
        .unwrap();
    assert!(models.is_empty(), "nothing was published");
}

#[tokio::test]
async fn bad_arguments_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let data = dir.path().join("none.tsv");
    type Damage = Box<dyn Fn(&mut TrainArgs)>;
    let cases: Vec<(&str, Damage)> = vec![
        ("--rank", Box::new(|a| a.rank = 0)),
        ("--test-fraction", Box::new(|a| a.split.test_fraction = 1.0)),
        (
            "--split-key",
            Box::new(|a| a.split.split_key = Some("id".into())),
        ),
        ("--max-rmse", Box::new(|a| a.max_rmse = Some(f64::NAN))),
        ("--lambda", Box::new(|a| a.lambda = -1.0)),
        ("--k", Box::new(|a| a.k = 0)),
    ];
    for (needle, damage) in cases {
        let mut args = train_args(&data, FeedbackArg::Explicit);
        damage(&mut args);
        let err = recommender::train(&ctx, &args).await.unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
}

#[tokio::test]
async fn implicit_training_drops_non_positive_values() {
    // Arrange: ratings centred on zero, about half of them negative.
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "explicit.tsv", false, 8);
    let ctx = context(dir.path()).await;
    let mut args = train_args(&data, FeedbackArg::Implicit);
    args.no_publish = true;

    // Act
    let report = recommender::train(&ctx, &args).await.unwrap();

    // Assert: the model validated (finite factors) and ranks better than popularity.
    let ndcg = report.metrics["ndcg_at_k"];
    assert!(
        ndcg.is_finite() && ndcg > report.popularity_baseline.unwrap().ndcg_at_k,
        "{ndcg}"
    );
}

async fn production(ctx: &Context) -> Option<ModelVersion> {
    ctx.registry
        .as_store()
        .unwrap()
        .resolve_alias(
            &ModelName::parse("recommender").unwrap(),
            &AliasName::production(),
        )
        .await
        .ok()
}

#[tokio::test]
async fn a_better_challenger_is_promoted_and_a_worse_one_is_not_for_both_feedback_types() {
    for (implicit, feedback) in [
        (false, FeedbackArg::Explicit),
        (true, FeedbackArg::Implicit),
    ] {
        // Arrange: a weak first model (rank 1), under floors it meets.
        let dir = tempfile::tempdir().unwrap();
        let data = generate(dir.path(), "data.tsv", implicit, 21);
        let ctx = context(dir.path()).await;
        let mut weak = train_args(&data, feedback);
        weak.rank = 1;
        weak.max_rmse = Some(100.0);
        weak.min_ndcg = Some(0.0);
        let first = recommender::train(&ctx, &weak).await.unwrap();
        assert!(first.publication.unwrap().promoted, "{feedback:?}");

        // Act: the planted rank wins; then the weak model again does not.
        let mut strong = train_args(&data, feedback);
        strong.rank = 4;
        let better = recommender::train(&ctx, &strong).await.unwrap();
        let again = recommender::train(&ctx, &weak).await.unwrap();

        // Assert
        let better = better.publication.unwrap();
        assert_eq!(
            better.gate.outcome,
            Some(GateOutcome::BeatsChampion),
            "{feedback:?}: {:?}",
            better.gate
        );
        assert!(better.promoted);
        let again = again.publication.unwrap();
        assert_eq!(
            again.gate.outcome,
            Some(GateOutcome::NotBetter),
            "{feedback:?}"
        );
        assert_eq!(again.gate.champion_version, Some(better.version));
        assert_eq!(production(&ctx).await, Some(better.version), "{feedback:?}");
    }
}

#[tokio::test]
async fn a_champion_with_the_other_feedback_type_fails_the_gate_closed() {
    // Arrange: an implicit champion.
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "counts.tsv", true, 22);
    let ctx = context(dir.path()).await;
    let first = recommender::train(&ctx, &train_args(&data, FeedbackArg::Implicit))
        .await
        .unwrap();
    assert!(first.publication.unwrap().promoted);

    // Act: an explicit challenger cannot be scored against it (an RMSE of an implicit model).
    let err = recommender::train(&ctx, &train_args(&data, FeedbackArg::Explicit))
        .await
        .unwrap_err();

    // Assert
    assert_eq!(err.exit_code(), 5, "{err}");
    assert!(err.to_string().contains("implicit feedback"), "{err}");
    assert_eq!(production(&ctx).await, Some(ModelVersion::FIRST));
    let v2 = ctx
        .registry
        .as_store()
        .unwrap()
        .manifest(
            &ModelName::parse("recommender").unwrap(),
            ModelVersion::new(2).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        v2.gate.unwrap().outcome,
        Some(GateOutcome::ChampionUnavailable)
    );
}

#[tokio::test]
async fn a_time_split_holds_out_the_newest_ratings_and_a_growing_file_keeps_rows_sides() {
    // Arrange: generated ratings carry increasing timestamps.
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "ratings.tsv", false, 23);
    let ctx = context(dir.path()).await;
    let mut args = train_args(&data, FeedbackArg::Explicit);
    args.split.split = SplitMethod::Time;

    // Act
    let first = recommender::train(&ctx, &args).await.unwrap();
    let mut reseeded = args.clone();
    reseeded.seed = 9;
    let second = recommender::train(&ctx, &reseeded).await.unwrap();

    // Assert: the newest fifth is held out, recorded with its cutoff.
    let text = std::fs::read_to_string(&data).unwrap();
    let times: Vec<i64> = text
        .lines()
        .map(|l| l.rsplit('\t').next().unwrap().parse().unwrap())
        .collect();
    let manifest = ctx
        .registry
        .as_store()
        .unwrap()
        .manifest(
            &ModelName::parse("recommender").unwrap(),
            ModelVersion::FIRST,
        )
        .await
        .unwrap();
    let Some(HeldOutRule::Time { cutoff, .. }) = manifest.held_out else {
        panic!("{:?}", manifest.held_out);
    };
    let newer = times.iter().filter(|&&t| t >= cutoff).count();
    assert_eq!(first.test_rows, newer);
    assert!((times.len() / 5..=times.len() / 5 + 1).contains(&newer));
    // Another learner seed: the same held-out rows, so the champion is compared on all of them.
    let gate = second.publication.unwrap().gate;
    assert_eq!(gate.compared_rows, Some(first.test_rows as u64));
    assert_eq!(gate.champion_score, Some(first.metrics["rmse"]));
}

#[tokio::test]
#[allow(clippy::print_stdout)] // The profile's figures go to the test's output.
async fn the_manifest_carries_the_top_item_score_profile_of_the_held_out_users() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "implicit.tsv", true, 5);
    let ctx = context(dir.path()).await;
    let args = train_args(&data, FeedbackArg::Implicit);

    // Act
    let report = recommender::train(&ctx, &args).await.unwrap();

    // Assert: deciles of the top item's score, no feature distributions.
    let (manifest, served) = published(&ctx, report).await;
    let drift = manifest.drift.as_ref().expect("a drift profile");
    drift.validate().unwrap();
    assert_eq!(drift.score.shares.len(), DRIFT_BINS, "{:?}", drift.score);
    assert!(
        drift.score.shares.iter().all(|s| (s - 0.1).abs() < 0.02),
        "{:?}",
        drift.score
    );
    assert!(drift.features.is_empty());
    let cold = manifest.metrics["held_out_cold_start_share"];
    assert!((0.0..=1.0).contains(&cold), "{cold}");
    assert!(drift.rows > 100, "{} held-out users", drift.rows);
    // The profile is of the score the served model gives its #1 item: every user's top score,
    // as the service computes it, is distributed like it (the held-out users are most users).
    let served = served.prepare().unwrap();
    let mut counts = vec![0u32; drift.score.shares.len()];
    for u in 0..served.model().n_users() as u32 {
        let top = served.recommend(u, 1, Filter::default());
        counts[drift.score.bin(f64::from(top[0].score))] += 1;
    }
    let psi = drift.score.psi(&counts);
    println!(
        "{} held-out users profiled (cold-start share {cold}); PSI of all {} users' top scores against it: {psi:.4}",
        drift.rows,
        served.model().n_users()
    );
    assert!(psi < 0.05, "PSI {psi}");
}

#[tokio::test]
async fn with_ann_index_the_artifact_carries_an_ivf_index_tuned_to_the_target_recall() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "implicit.tsv", true, 6);
    let ctx = context(dir.path()).await;
    let mut args = train_args(&data, FeedbackArg::Implicit);
    args.ann.ann_index = true;
    args.ann.ann_kind = AnnKind::Ivf;
    args.ann.ann_target_recall = 0.97;

    // Act
    let report = recommender::train(&ctx, &args).await.unwrap();

    // Assert: the manifest records how the index was built and what it measured.
    let items = report.items;
    let (manifest, model) = published(&ctx, report).await;
    assert!(model.graph.is_none());
    let p = &manifest.parameters;
    assert_eq!(p["ann_index"], "ivf");
    let lists = p["ann_lists"].as_u64().unwrap();
    assert_eq!(lists, (items as f64).sqrt().round() as u64);
    let probe = p["ann_probe"].as_u64().unwrap();
    assert!((1..=lists).contains(&probe), "probe {probe} of {lists}");
    let recall = manifest.metrics["ann_recall_at_10"];
    assert!(recall >= 0.97, "recorded recall {recall}");
    assert_eq!(manifest.metrics["ann_recall_users"], 200.0);
    // The served model: the index and its probe are in the artifact, and searching with it
    // on the same users measures the recorded recall again.
    let index = model.index.as_ref().expect("an index in the artifact");
    assert_eq!(u64::from(index.probe), probe);
    assert_eq!(index.lists() as u64, lists);
    let served = served_in_ann_mode(model);
    let users = served.recall_sample(200);
    let again = served.recall_at(&users, 10);
    assert!((again - recall).abs() < 1e-9, "{again} against {recall}");
    // Without the flag there is no index.
    args.ann.ann_index = false;
    args.no_publish = true;
    let plain = recommender::train(&ctx, &args).await.unwrap();
    assert!(!plain.metrics.contains_key("ann_recall_at_10"));
    args.ann.ann_target_recall = 1.5;
    let err = recommender::train(&ctx, &args).await.unwrap_err();
    assert!(err.to_string().contains("--ann-target-recall"), "{err}");
}

#[tokio::test]
async fn with_ann_index_by_default_the_artifact_carries_a_graph_tuned_to_the_target_recall() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), "implicit.tsv", true, 6);
    let ctx = context(dir.path()).await;
    let mut args = train_args(&data, FeedbackArg::Implicit);
    args.ann.ann_index = true;
    args.ann.ann_degree = 16;
    args.ann.ann_target_recall = 0.97;

    // Act
    let report = recommender::train(&ctx, &args).await.unwrap();

    // Assert: the manifest records how the graph was built, its breadth and its recall.
    let (manifest, model) = published(&ctx, report).await;
    let p = &manifest.parameters;
    assert_eq!(p["ann_index"], "hnsw");
    assert_eq!(p["ann_degree"], 16);
    assert_eq!(p["ann_upper_degree"], 8);
    assert_eq!(p["ann_ef_construction"], 64);
    let ef = p["ann_probe"].as_u64().unwrap();
    let recall = manifest.metrics["ann_recall_at_10"];
    assert!(recall >= 0.97, "recorded recall {recall}");
    let graph = model.graph.as_ref().expect("a graph in the artifact");
    assert!(model.index.is_none());
    assert_eq!(u64::from(graph.ef), ef);
    assert_eq!(graph.degree, 16);
    let served = served_in_ann_mode(model);
    assert_eq!(served.ann_index(), Some(AnnIndex::Hnsw));
    let users = served.recall_sample(200);
    let again = served.recall_at(&users, 10);
    assert!((again - recall).abs() < 1e-9, "{again} against {recall}");
    // IVF's lists do not apply to a graph.
    args.ann.ann_lists = Some(10);
    args.no_publish = true;
    let err = recommender::train(&ctx, &args).await.unwrap_err();
    assert!(err.to_string().contains("--ann-kind ivf"), "{err}");
}
