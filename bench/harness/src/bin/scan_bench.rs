//! The recommender benchmark's in-process measurements (issue #7, `bench/recommender/`), on the
//! model version `bench_model` published, loaded exactly as the service loads it
//! (`Registry::load_model` then `AlsModel::prepare`):
//!
//! - **stream**: a plain streaming read of the item-factor bytes (sum every float, 16
//!   accumulators, single thread, best of `--passes`), the practical limit of a scan; and, for
//!   context, the same read over a buffer 8× larger than the last-level cache (DRAM bandwidth).
//! - **dot-only scan**: every item's score for one user into a buffer, no selection: what the
//!   dot product alone costs per request; and the same from the int8 codes with the portable
//!   kernel and with the CPU's SIMD (AVX2) kernel, best of `--passes` (which is faster, issue #16).
//! - **recommend**: `ServingAls::recommend(user, n, Filter::default())` for `--requests` users,
//!   single thread; bytes of item factors scanned per request and the achieved scan rate as a
//!   share of the streaming read.
//! - **all users**: top-`n` for every user with `ServingAls::recommend_many` (the batched scan
//!   `POST /v1/recommendations` uses), `--threads` std threads pulling chunks of users; the items
//!   go to `--top-out` (u32, users × n) for the comparison with `implicit`.
//! - **all users, one by one**: the same with `ServingAls::recommend` per user, for comparison;
//!   the two answers are checked to be identical.
//!
//! ```sh
//! target/release/scan_bench --store /tmp/store [--version 1] [--requests 2000] \
//!     [--passes 10] [--threads 2] [--n 10] [--top-out FILE] [--skip-all true]
//! ```
//!
//! Prints one JSON object on stdout.

use std::hint::black_box;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context as _;
use bench_harness::Flags;
use shared_lib::artifact::ModelKind;
use shared_lib::model_id::{ModelName, ModelVersion};
use shared_lib::models::als::{AlsModel, Filter, ServingAls, dot, time_int8_kernels};
use shared_lib::registry::Registry;
use shared_lib::store::{ObjectStore, StoreLocation};

struct Args {
    store: PathBuf,
    version: u32,
    requests: usize,
    passes: usize,
    threads: usize,
    n: usize,
    top_out: Option<PathBuf>,
    skip_all: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut flags = Flags::from_args()?;
    let parsed = Args {
        store: flags
            .take("store")
            .context("--store DIR is required")?
            .into(),
        version: flags.parse_or("version", 1usize)? as u32,
        requests: flags.parse_or("requests", 2000usize)?.max(1),
        passes: flags.parse_or("passes", 10usize)?.max(1),
        threads: flags.parse_or("threads", 2usize)?.max(1),
        n: flags.parse_or("n", 10usize)?.max(1),
        top_out: flags.take("top-out").map(PathBuf::from),
        skip_all: flags
            .take("skip-all")
            .is_some_and(|v| v == "true" || v == "1"),
    };
    flags.finish()?;
    Ok(parsed)
}

/// Sums every float: 16 independent accumulators, so the loop is limited by loads, not adds.
fn stream_sum(values: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Best-of-`passes` single-thread read rate of `values`, GB/s (10⁹ bytes).
fn stream_gbps(values: &[f32], passes: usize) -> f64 {
    let bytes = std::mem::size_of_val(values) as f64;
    let mut best = f64::INFINITY;
    for _ in 0..passes {
        let t = Instant::now();
        black_box(stream_sum(black_box(values)));
        best = best.min(t.elapsed().as_secs_f64());
    }
    bytes / best / 1e9
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Users spread over the whole id range (a stride co-prime with the count), as traffic would be.
fn sample_users(n_users: usize, count: usize) -> Vec<u32> {
    let stride = 7919usize;
    (0..count)
        .map(|j| ((j * stride + 13) % n_users) as u32)
        .collect()
}

/// Top-`n` of every user on `threads` threads; chunks of users are handed out from a shared
/// queue. Returns the items, users × n (padded with `u32::MAX` when fewer exist).
fn all_users<F>(n_users: usize, n: usize, threads: usize, chunk: usize, work: F) -> Vec<u32>
where
    F: Fn(std::ops::Range<usize>, &mut [u32]) + Sync,
{
    let mut out = vec![u32::MAX; n_users * n];
    let queue = Mutex::new(out.chunks_mut(chunk * n).enumerate());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some((c, dst)) = next else { break };
                    let start = c * chunk;
                    work(start..(start + chunk).min(n_users), dst);
                }
            });
        }
    });
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut out = std::io::stdout().lock();
    let t = Instant::now();
    let store = ObjectStore::open(&StoreLocation::Local(args.store.clone())).await?;
    let registry = Registry::new(store);
    let name = ModelName::parse("recommender")?;
    let manifest = registry
        .manifest(&name, ModelVersion::new(args.version)?)
        .await?;
    let model: AlsModel = registry
        .load_model(&manifest, ModelKind::RecommenderAls)
        .await?;
    let serving: ServingAls = model.prepare()?;
    let load_seconds = t.elapsed().as_secs_f64();
    let m = serving.model();
    let (n_users, n_items, k) = (m.n_users(), m.n_items(), m.rank as usize);
    let bytes_per_request = std::mem::size_of_val(m.item_factors.as_slice());

    // (a) streaming read of the same bytes, and of a buffer well beyond the last-level cache.
    let stream = stream_gbps(&m.item_factors, args.passes);
    let big: Vec<f32> = (0..64 * 1024 * 1024).map(|i| (i % 7) as f32).collect(); // 256 MiB
    let stream_dram = stream_gbps(&big, 3.min(args.passes));
    drop(big);

    let users = sample_users(n_users, args.requests);
    // Warm-up: one request, as the service's load does.
    black_box(serving.recommend(users[0], args.n, Filter::default()));

    // (b1) dot products only: all scores of one user into a buffer.
    let mut scores = vec![0.0f32; n_items];
    let dot_users = &users[..users.len().min(500)];
    let t = Instant::now();
    for &u in dot_users {
        let x = m.user_factors(u);
        for (s, y) in scores.iter_mut().zip(m.item_factors.chunks_exact(k)) {
            *s = dot(x, y);
        }
        black_box(&scores);
    }
    let dot_only_ms = t.elapsed().as_secs_f64() * 1e3 / dot_users.len() as f64;

    // (b1') the same for the int8 codes: the portable kernel and the CPU's SIMD kernel.
    let (int8_portable_ms, int8_simd_ms) =
        time_int8_kernels(&m.item_factors, k, m.user_factors(users[0]), args.passes);

    // (b2) the service's scoring call, single thread.
    let mut lat = Vec::with_capacity(users.len());
    let t = Instant::now();
    for &u in &users {
        let s = Instant::now();
        black_box(serving.recommend(u, args.n, Filter::default()));
        lat.push(s.elapsed().as_secs_f64() * 1e3);
    }
    let total = t.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let mean_ms = total * 1e3 / users.len() as f64;
    let scan_gbps = bytes_per_request as f64 / (mean_ms / 1e3) / 1e9;

    let mut report = serde_json::json!({
        "users": n_users, "items": n_items, "rank": k, "n": args.n,
        "load_seconds": load_seconds,
        "bytes_per_request": bytes_per_request,
        "stream_gbps": stream,
        "stream_dram_gbps": stream_dram,
        "dot_only_ms": dot_only_ms,
        "dot_only_gbps": bytes_per_request as f64 / (dot_only_ms / 1e3) / 1e9,
        "int8_portable_ms": int8_portable_ms,
        "int8_simd_ms": int8_simd_ms,
        "int8_simd_speedup": int8_simd_ms.map(|s| int8_portable_ms / s),
        "recommend_requests": users.len(),
        "recommend_mean_ms": mean_ms,
        "recommend_p50_ms": percentile(&lat, 50.0),
        "recommend_p99_ms": percentile(&lat, 99.0),
        "recommend_max_ms": percentile(&lat, 100.0),
        "recommend_per_second_1_thread": 1e3 / mean_ms,
        "scan_gbps": scan_gbps,
        "scan_pct_of_stream": 100.0 * scan_gbps / stream,
    });

    if !args.skip_all {
        // (c) all users, batched, on `threads` threads.
        let n = args.n;
        let t = Instant::now();
        let batched = all_users(n_users, n, args.threads, 1024, |range, dst| {
            let users: Vec<u32> = range.map(|u| u as u32).collect();
            for (j, top) in serving
                .recommend_many(&users, n, Filter::default())
                .iter()
                .enumerate()
            {
                for (slot, s) in dst[j * n..(j + 1) * n].iter_mut().zip(top) {
                    *slot = s.item;
                }
            }
        });
        let all_seconds = t.elapsed().as_secs_f64();
        if let Some(path) = &args.top_out {
            let bytes: Vec<u8> = batched.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
        }
        // (d) all users one by one, same threads, checked against (c).
        let t = Instant::now();
        let one_by_one = all_users(n_users, n, args.threads, 64, |range, dst| {
            for (j, u) in range.enumerate() {
                let top = serving.recommend(u as u32, n, Filter::default());
                for (slot, s) in dst[j * n..(j + 1) * n].iter_mut().zip(&top) {
                    *slot = s.item;
                }
            }
        });
        let one_by_one_seconds = t.elapsed().as_secs_f64();
        let mismatched_users = batched
            .chunks_exact(n)
            .zip(one_by_one.chunks_exact(n))
            .filter(|(a, b)| a != b)
            .count();
        if let Some(obj) = report.as_object_mut() {
            obj.insert("all_users_threads".into(), args.threads.into());
            obj.insert("all_users_seconds".into(), all_seconds.into());
            obj.insert(
                "all_users_per_second".into(),
                (n_users as f64 / all_seconds).into(),
            );
            obj.insert(
                "one_by_one_all_users_seconds".into(),
                one_by_one_seconds.into(),
            );
            obj.insert("batch_mismatched_users".into(), mismatched_users.into());
        }
    }
    writeln!(out, "{report}")?;
    Ok(())
}
