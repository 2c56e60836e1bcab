//! Random, seeded ALS models of a given shape, for benchmarks and tests of scoring: scoring cost
//! and correctness depend on the factors' shape, not on what they mean. (Models that *mean*
//! something, a planted low-rank structure to recover, are the trainer's generators.)
//!
//! No service calls these, so the linker leaves them out of the production binaries;
//! `scripts/check-no-test-code.sh` checks that on every release binary it is given.

use super::rng::Rng;
use super::{AlsModel, Feedback};

/// The shape of a [`random_model`].
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub users: usize,
    pub items: usize,
    pub rank: usize,
    pub seed: u64,
    /// Each user has seen between `seen_min` and `seen_max` items (at most `items`).
    pub seen_min: usize,
    pub seen_max: usize,
}

/// Factors uniform around zero with the spread of implicit ALS (scores of order 0.1-1); seen
/// items skewed towards a popular head; ids `u0..` and `i0..`, so index and id agree.
///
/// # Panics
/// If `users`, `items` or `rank` is zero, or `seen_min > seen_max`.
pub fn random_model(a: &Shape) -> AlsModel {
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
    let seen_max = a.seen_max.min(a.items);
    let seen_min = a.seen_min.min(seen_max);
    let span = (seen_max - seen_min + 1) as u64;
    let mut row = Vec::new();
    for _ in 0..a.users {
        let count = seen_min + (rng.next_u64() % span) as usize;
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
        index: None,
        graph: None,
    }
}

/// Replaces `model`'s user and item factors with factors planted around `topics` random
/// centres, as trained factors cluster by taste: every user and item picks a centre uniformly
/// and adds noise of `noise` times the centres' spread. Norm skew and seen items are left alone.
/// Search indexes need this structure: on uniform random factors no partition beats a scan.
///
/// # Panics
/// If `topics` is zero.
pub fn plant_topics(model: &mut AlsModel, topics: usize, noise: f64, seed: u64) {
    assert!(topics > 0, "at least one topic");
    let k = model.k();
    let mut rng = Rng(seed);
    let scale = 1.0 / (k as f64).sqrt();
    let centres: Vec<f64> = (0..topics * k)
        .map(|_| (rng.unit() * 2.0 - 1.0) * scale)
        .collect();
    for factors in [&mut model.user_factors, &mut model.item_factors] {
        for row in factors.chunks_exact_mut(k) {
            let t = (rng.next_u64() % topics as u64) as usize;
            for (v, c) in row.iter_mut().zip(&centres[t * k..(t + 1) * k]) {
                *v = (c + noise * (rng.unit() * 2.0 - 1.0) * scale) as f32;
            }
        }
    }
}

/// Scales item `i`'s factors by `(1 + items / (i + 1))^power`, so the popular head (low indices,
/// as the seen items are drawn) has the larger norms trained factors have: then the best inner
/// product is not the best cosine. 0 leaves the factors alone.
pub fn skew_norms(model: &mut AlsModel, power: f64) {
    let k = model.k();
    let items = model.n_items() as f64;
    for (i, y) in model.item_factors.chunks_exact_mut(k).enumerate() {
        let scale = (1.0 + items / (i as f64 + 1.0)).powf(power) as f32;
        y.iter_mut().for_each(|v| *v *= scale);
    }
}

/// The search indexes' test model: `users` × `items` at `rank`, seen items 0-20 a user, factors
/// around 50 topics (noise 0.5) and norms skewed by popularity (power 0.1).
#[cfg(test)]
pub(super) fn clustered_model(users: usize, items: usize, rank: usize) -> AlsModel {
    let mut m = random_model(&Shape {
        users,
        items,
        rank,
        seed: 5,
        seen_min: 0,
        seen_max: 20,
    });
    plant_topics(&mut m, 50, 0.5, 9);
    skew_norms(&mut m, 0.1);
    m
}
