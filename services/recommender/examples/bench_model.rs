//! The recommender benchmark's model (issue #7, `bench/recommender/`): random, seeded ALS factors
//! for a large catalogue, published as a version of `recommender` into a local model store, and
//! the same factors and seen items written as raw little-endian files for the Python side.
//!
//! Training a rank-64 model on a 100k-item catalogue would take minutes and measure the trainer,
//! not serving; scoring cost does not depend on what the factors mean, only on their shape.
//!
//! ```sh
//! cargo build --release -p recommender --examples
//! target/release/examples/bench_model --store /tmp/store --out /tmp/factors \
//!     [--users 50000] [--items 100000] [--rank 64] [--seed 7] [--seen-min 5] [--seen-max 30]
//! ```
//!
//! Files in `--out`: `user_factors.f32` (users × rank), `item_factors.f32` (items × rank),
//! `seen_offsets.u32` (users + 1), `seen_items.u32` (CSR of each user's seen items, sorted) and
//! `meta.json`. User ids are `u0..`, item ids `i0..`, so index and id agree.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use shared_lib::artifact::{ModelKind, encode_artifact};
use shared_lib::model_id::ModelName;
use shared_lib::models::als::{AlsModel, Feedback};
use shared_lib::registry::Registry;
use shared_lib::registry::manifest::NewVersion;
use shared_lib::store::{ObjectStore, StoreLocation};

/// SplitMix64: small, seeded, good enough for benchmark data and no extra dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Args {
    store: PathBuf,
    out: PathBuf,
    users: usize,
    items: usize,
    rank: usize,
    seed: u64,
    seen_min: usize,
    seen_max: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(name) = flag.strip_prefix("--") else {
            bail!("unexpected argument {flag:?}");
        };
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        values.insert(name.to_owned(), value);
    }
    let mut take = |name: &str| values.remove(name);
    let num = |v: Option<String>, default: usize, name: &str| -> anyhow::Result<usize> {
        v.map_or(Ok(default), |s| {
            s.parse().with_context(|| format!("--{name} {s:?}"))
        })
    };
    let parsed = Args {
        store: take("store").context("--store DIR is required")?.into(),
        out: take("out").context("--out DIR is required")?.into(),
        users: num(take("users"), 50_000, "users")?,
        items: num(take("items"), 100_000, "items")?,
        rank: num(take("rank"), 64, "rank")?,
        seed: num(take("seed"), 7, "seed")? as u64,
        seen_min: num(take("seen-min"), 5, "seen-min")?,
        seen_max: num(take("seen-max"), 30, "seen-max")?,
    };
    if let Some(unknown) = values.keys().next() {
        bail!("unknown option --{unknown}");
    }
    if parsed.seen_min > parsed.seen_max || parsed.seen_max > parsed.items {
        bail!("need seen-min <= seen-max <= items");
    }
    Ok(parsed)
}

fn generate(a: &Args) -> AlsModel {
    let mut rng = Rng(a.seed);
    // Factors around zero with a spread typical of implicit ALS (scores of order 0.1-1).
    let scale = 1.0 / (a.rank as f64).sqrt();
    let mut factors = |rows: usize| -> Vec<f32> {
        (0..rows * a.rank)
            .map(|_| ((rng.unit() * 2.0 - 1.0) * scale) as f32)
            .collect()
    };
    let user_factors = factors(a.users);
    let item_factors = factors(a.items);
    // Seen items: a few per user, skewed towards a popular head (index = items · u³).
    let mut seen_offsets = Vec::with_capacity(a.users + 1);
    let mut seen_items = Vec::new();
    let mut item_popularity = vec![0u32; a.items];
    seen_offsets.push(0u32);
    let span = (a.seen_max - a.seen_min + 1) as u64;
    let mut row = Vec::new();
    for _ in 0..a.users {
        let count = a.seen_min + (rng.next_u64() % span) as usize;
        row.clear();
        while row.len() < count {
            let u = rng.unit();
            let item = ((a.items as f64 * u * u * u) as usize).min(a.items - 1) as u32;
            if !row.contains(&item) {
                row.push(item);
            }
        }
        row.sort_unstable();
        for &i in &row {
            item_popularity[i as usize] += 1;
        }
        seen_items.extend_from_slice(&row);
        seen_offsets.push(seen_items.len() as u32);
    }
    AlsModel {
        feedback: Feedback::Implicit,
        rank: a.rank as u32,
        lambda: 0.1,
        alpha: 1.0,
        user_ids: (0..a.users).map(|u| format!("u{u}")).collect(),
        item_ids: (0..a.items).map(|i| format!("i{i}")).collect(),
        user_factors,
        item_factors,
        seen_offsets,
        seen_items,
        item_popularity,
    }
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
    let model = generate(&args);
    let generated = started.elapsed().as_secs_f64();

    std::fs::create_dir_all(&args.out)?;
    write_f32(&args.out.join("user_factors.f32"), &model.user_factors)?;
    write_f32(&args.out.join("item_factors.f32"), &model.item_factors)?;
    write_u32(&args.out.join("seen_offsets.u32"), &model.seen_offsets)?;
    write_u32(&args.out.join("seen_items.u32"), &model.seen_items)?;
    let meta = serde_json::json!({
        "users": args.users, "items": args.items, "rank": args.rank, "seed": args.seed,
        "seen_min": args.seen_min, "seen_max": args.seen_max, "nnz": model.seen_items.len(),
        "dtype": "little-endian f32 / u32, row-major",
    });
    std::fs::write(
        args.out.join("meta.json"),
        serde_json::to_vec_pretty(&meta)?,
    )?;

    model.validate()?;
    let encoded = encode_artifact(ModelKind::RecommenderAls, &model)?;
    let artifact_bytes = encoded.size();
    let store = ObjectStore::open(&StoreLocation::Local(args.store.clone())).await?;
    let registry = Registry::new(store);
    let draft = NewVersion {
        model: ModelName::parse("recommender")?,
        run_id: uuid::Uuid::now_v7(),
        algorithm: "als-implicit".to_owned(),
        parameters: BTreeMap::from([
            ("rank".to_owned(), serde_json::json!(args.rank)),
            ("seed".to_owned(), serde_json::json!(args.seed)),
            ("generator".to_owned(), serde_json::json!("bench_model")),
        ]),
        feature_schema: Default::default(),
        training_data: Default::default(),
        metrics: BTreeMap::new(),
        trainer_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_by: "bench-recommender".to_owned(),
        gate: None,
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
        "users": args.users, "items": args.items, "rank": args.rank,
        "seen_items": model.seen_items.len(),
        "artifact_bytes": artifact_bytes,
        "generate_seconds": generated,
        "total_seconds": started.elapsed().as_secs_f64(),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{report}")?;
    Ok(())
}
