//! The recommender benchmark's model (issue #7, `bench/recommender/`): random, seeded ALS factors
//! for a large catalogue, published as a version of `recommender` into a local model store, and
//! the same factors and seen items written as raw little-endian files for the Python side.
//!
//! Training a rank-64 model on a 100k-item catalogue would take minutes and measure the trainer,
//! not serving; scoring cost does not depend on what the factors mean, only on their shape.
//!
//! ```sh
//! cargo build --release -p bench-harness
//! target/release/bench_model --store /tmp/store --out /tmp/factors \
//!     [--users 50000] [--items 100000] [--rank 64] [--seed 7] [--seen-min 5] [--seen-max 30] \
//!     [--norm-skew 0] [--topics 0] [--topic-noise 0.5] \
//!     [--ann-lists 0] [--ann-target-recall 0.95] [--ann-oversample 10]
//! ```
//!
//! `--topics N` plants the factors around N random centres (`synthetic::plant_topics`), as
//! trained factors cluster by taste; 0 keeps them uniform. `--ann-lists L` stores an IVF index
//! of L lists in the artifact, its probe tuned to the target recall (1 = √items lists), as
//! `trainer train recommender --ann-index` does; what the build measured goes to the report and
//! the manifest.
//!
//! Files in `--out`: `user_factors.f32` (users × rank), `item_factors.f32` (items × rank),
//! `seen_offsets.u32` (users + 1), `seen_items.u32` (CSR of each user's seen items, sorted) and
//! `meta.json`. User ids are `u0..`, item ids `i0..`, so index and id agree.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use bench_harness::Flags;
use shared_lib::artifact::{ModelKind, encode_artifact};
use shared_lib::model_id::ModelName;
use shared_lib::models::als::synthetic::{Shape, plant_topics, random_model, skew_norms};
use shared_lib::models::als::{AnnParams, Filter, HnswParams, IvfParams, Search, with_ann_index};
use shared_lib::registry::Registry;
use shared_lib::registry::manifest::NewVersion;
use shared_lib::store::{ObjectStore, StoreLocation};

struct Args {
    store: PathBuf,
    out: PathBuf,
    shape: Shape,
    /// Popularity skew of the item norms: item `i`'s factors are scaled by
    /// `(1 + items / (i + 1))^norm_skew`, so the popular head (low indices, as the seen items
    /// are drawn) has larger norms, as trained ALS factors do. 0 (the default) leaves them alone.
    norm_skew: f64,
    topics: usize,
    topic_noise: f64,
    /// 0: no index; 1: √items lists; more: that many.
    ann_lists: usize,
    /// 0: no graph; more: an HNSW graph of that bottom-layer degree (instead of IVF lists).
    ann_graph: usize,
    ann_ef_construction: usize,
    /// Search breadths to time in-process after the build (recall and µs per query, one thread).
    ann_sweep: Vec<usize>,
    ann_target_recall: f64,
    ann_oversample: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut flags = Flags::from_args()?;
    let parsed = Args {
        store: flags
            .take("store")
            .context("--store DIR is required")?
            .into(),
        out: flags.take("out").context("--out DIR is required")?.into(),
        shape: Shape {
            users: flags.parse_or("users", 50_000)?,
            items: flags.parse_or("items", 100_000)?,
            rank: flags.parse_or("rank", 64)?,
            seed: flags.parse_or("seed", 7)?,
            seen_min: flags.parse_or("seen-min", 5)?,
            seen_max: flags.parse_or("seen-max", 30)?,
        },
        norm_skew: flags.parse_or("norm-skew", 0.0)?,
        topics: flags.parse_or("topics", 0)?,
        topic_noise: flags.parse_or("topic-noise", 0.5)?,
        ann_lists: flags.parse_or("ann-lists", 0)?,
        ann_graph: flags.parse_or("ann-graph", 0)?,
        ann_ef_construction: flags
            .parse_or("ann-ef-construction", HnswParams::new().ef_construction)?,
        ann_sweep: flags
            .take("ann-sweep")
            .map(|s| {
                s.split(',')
                    .map(str::parse)
                    .collect::<Result<Vec<usize>, _>>()
            })
            .transpose()?
            .unwrap_or_default(),
        ann_target_recall: flags.parse_or("ann-target-recall", 0.95)?,
        ann_oversample: flags.parse_or("ann-oversample", 10)?,
    };
    flags.finish()?;
    if parsed.shape.seen_min > parsed.shape.seen_max || parsed.shape.seen_max > parsed.shape.items {
        bail!("need seen-min <= seen-max <= items");
    }
    Ok(parsed)
}

fn write_f32(path: &Path, values: &[f32]) -> anyhow::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn write_u32(path: &Path, values: &[u32]) -> anyhow::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let started = Instant::now();
    let mut model = random_model(&args.shape);
    if args.topics > 0 {
        plant_topics(&mut model, args.topics, args.topic_noise, args.shape.seed);
    }
    skew_norms(&mut model, args.norm_skew);
    let generated = started.elapsed().as_secs_f64();

    std::fs::create_dir_all(&args.out)?;
    write_f32(&args.out.join("user_factors.f32"), &model.user_factors)?;
    write_f32(&args.out.join("item_factors.f32"), &model.item_factors)?;
    write_u32(&args.out.join("seen_offsets.u32"), &model.seen_offsets)?;
    write_u32(&args.out.join("seen_items.u32"), &model.seen_items)?;
    let meta = serde_json::json!({
        "users": args.shape.users, "items": args.shape.items, "rank": args.shape.rank, "seed": args.shape.seed,
        "seen_min": args.shape.seen_min, "seen_max": args.shape.seen_max, "nnz": model.seen_items.len(),
        "norm_skew": args.norm_skew, "topics": args.topics, "topic_noise": args.topic_noise,
        "dtype": "little-endian f32 / u32, row-major",
    });
    std::fs::write(
        args.out.join("meta.json"),
        serde_json::to_vec_pretty(&meta)?,
    )?;

    model.validate()?;
    let mut parameters = BTreeMap::from([
        ("rank".to_owned(), serde_json::json!(args.shape.rank)),
        ("seed".to_owned(), serde_json::json!(args.shape.seed)),
        ("generator".to_owned(), serde_json::json!("bench_model")),
        ("topics".to_owned(), serde_json::json!(args.topics)),
    ]);
    let mut metrics = BTreeMap::new();
    let mut ann = serde_json::Value::Null;
    let mut sweep = Vec::new();
    if args.ann_lists > 0 || args.ann_graph > 0 {
        let params = if args.ann_graph > 0 {
            AnnParams::Hnsw(HnswParams {
                ef_construction: args.ann_ef_construction,
                ..HnswParams::with_degree(args.ann_graph)
            })
        } else {
            let mut params = IvfParams::for_items(args.shape.items);
            if args.ann_lists > 1 {
                params.lists = args.ann_lists;
                params.train_items = args.ann_lists.saturating_mul(64);
            }
            AnnParams::Ivf(params)
        };
        let (indexed, build) = with_ann_index(
            model,
            &params,
            args.ann_target_recall,
            args.ann_oversample,
            200,
        )?;
        model = indexed;
        if !args.ann_sweep.is_empty() {
            let serving = model.clone().prepare()?;
            for &probe in &args.ann_sweep {
                let searching = serving.clone().with_search(Search::Ann {
                    probe,
                    oversample: args.ann_oversample,
                })?;
                let users = searching.recall_sample(1000);
                let recall = searching.recall_at(&users, 10);
                let timed = Instant::now();
                for &u in &users {
                    std::hint::black_box(searching.recommend(u, 10, Filter::default()));
                }
                let micros = timed.elapsed().as_secs_f64() * 1e6 / users.len() as f64;
                eprintln!("sweep probe {probe}: recall@10 {recall:.4}, {micros:.1} µs per query");
                sweep.push(serde_json::json!({"probe": probe, "recall_at_10": recall, "micros_per_query": micros}));
            }
        }
        parameters.extend(build.manifest_parameters());
        metrics.extend(build.manifest_metrics());
        ann = serde_json::to_value(&build)?;
    }
    let encoded = encode_artifact(ModelKind::RecommenderAls, &model)?;
    let artifact_bytes = encoded.size();
    let store = ObjectStore::open(&StoreLocation::Local(args.store.clone())).await?;
    let registry = Registry::new(store);
    let draft = NewVersion {
        model: ModelName::parse("recommender")?,
        run_id: uuid::Uuid::now_v7(),
        algorithm: "als-implicit".to_owned(),
        parameters,
        feature_schema: Default::default(),
        training_data: Default::default(),
        metrics,
        trainer_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_by: "bench-recommender".to_owned(),
        gate: None,
        held_out: None,
        drift: None,
    };
    let manifest = registry
        .publish(
            draft,
            bytes::Bytes::from(encoded.bytes),
            Some(&encoded.digest),
        )
        .await?;

    let report = serde_json::json!({
        "version": manifest.version.get(),
        "users": args.shape.users, "items": args.shape.items, "rank": args.shape.rank,
        "seen_items": model.seen_items.len(),
        "artifact_bytes": artifact_bytes,
        "ann": ann,
        "ann_sweep": sweep,
        "generate_seconds": generated,
        "total_seconds": started.elapsed().as_secs_f64(),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{report}")?;
    Ok(())
}
