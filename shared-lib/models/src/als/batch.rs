//! Top-`n` for many users at once (`recommendForUserSubset`, all users offline).
//!
//! One user's scan reads the whole item-factor matrix for `rank` multiply-adds per item loaded,
//! so it is memory-bound. A block of users scores a tile of items that stays in cache with a
//! matrix product (`ndarray`'s `general_mat_mul`: `matrixmultiply`'s register-blocked kernels,
//! AVX2/FMA picked at run time), which is compute-bound and several times faster per user.
//!
//! The product sums in another order than [`dot`], so its scores can differ from the per-user
//! ones in the last bits. The answer must not: every user gets exactly what
//! [`ServingAls::recommend`] gives. So the block pass only *selects candidates*: every item whose
//! approximate score is within `margin` of the `n`-th best approximate score. `margin` is twice a
//! bound on |approximate − [`dot`]| for that user (the standard floating-point dot-product bound,
//! `γ_k · Σ|x_i·y_i| ≤ γ_k · ‖x‖·max‖y‖` for each of the two sums), which guarantees the true
//! top `n` are among the candidates: `n` items have approximate scores ≥ the `n`-th best `A`, so
//! the `n`-th best exact score is ≥ `A − δ`, and any item that beats it has an approximate score
//! ≥ `A − 2δ`. The candidates, usually `n` plus a few, are then rescored with [`dot`] and chosen
//! exactly as the per-user scan chooses, ties included.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use super::select::Candidates;
use super::{Filter, Scored, Search, ServingAls, count_bytes, dot, sorted_unique};

/// Users scored together: their factors (users × rank) and a score tile stay in cache.
const BLOCK_USERS: usize = 256;
/// Items per tile: 1024 × rank 64 × 4 B = 256 KiB of item factors, a 1 MiB score tile.
const TILE_ITEMS: usize = 1024;
/// Below this many users the per-user scan is as fast and needs no score tile.
const MIN_BATCH_USERS: usize = 8;

impl ServingAls {
    /// [`ServingAls::recommend`] for each of `users`, in order, with the same `filter`; the same
    /// answers, computed block-wise (see the module doc).
    ///
    /// # Panics
    /// If a user index is out of range.
    pub fn recommend_many(&self, users: &[u32], n: usize, filter: Filter<'_>) -> Vec<Vec<Scored>> {
        // An allow-list is short: scoring it per user reads little. Tiny batches gain nothing.
        // The int8 scan reads a quarter of the bytes per user and is chosen per user too.
        if n == 0
            || filter.allow.is_some()
            || users.len() < MIN_BATCH_USERS
            || self.search != Search::Exact
        {
            return users
                .iter()
                .map(|&u| self.recommend(u, n, filter))
                .collect();
        }
        let exclude = sorted_unique(filter.exclude);
        let mut scores = vec![0.0f32; BLOCK_USERS.min(users.len()) * TILE_ITEMS];
        let mut answers = Vec::with_capacity(users.len());
        for block in users.chunks(BLOCK_USERS) {
            answers.extend(self.recommend_block(block, n, &exclude, &mut scores));
        }
        answers
    }

    fn recommend_block(
        &self,
        block: &[u32],
        n: usize,
        exclude: &[u32],
        scores: &mut [f32],
    ) -> Vec<Vec<Scored>> {
        let model = &self.model;
        let (k, n_items) = (model.k(), model.n_items());
        let mut x = Array2::<f32>::zeros((block.len(), k));
        for (mut row, &u) in x.rows_mut().into_iter().zip(block) {
            row.iter_mut()
                .zip(model.user_factors(u))
                .for_each(|(dst, &v)| *dst = v);
        }
        let mut candidates: Vec<Option<Candidates>> = block
            .iter()
            .map(|&u| {
                let norm = dot(model.user_factors(u), model.user_factors(u)).sqrt();
                margin(k, norm, self.max_item_norm).map(|m| Candidates::new(n, m))
            })
            .collect();
        // Users whose margin overflows (absurd factors) are scored one by one below.
        if candidates.iter().any(Option::is_some) {
            let mut start = 0;
            while start < n_items {
                let end = (start + TILE_ITEMS).min(n_items);
                let width = end - start;
                let items =
                    ArrayView2::from_shape((width, k), &model.item_factors[start * k..end * k])
                        .expect("a tile of whole rows");
                let mut tile = ArrayViewMut2::from_shape(
                    (block.len(), width),
                    &mut scores[..block.len() * width],
                )
                .expect("the score buffer holds a block × tile");
                general_mat_mul(1.0, &x, &items.t(), 0.0, &mut tile);
                for ((row, &u), found) in scores
                    .chunks_exact_mut(width)
                    .zip(block)
                    .zip(&mut candidates)
                {
                    let Some(found) = found else { continue };
                    found.scan(row, start as u32, &[model.seen(u), exclude]);
                }
                start = end;
            }
            count_bytes(model.item_factors.len() * 4);
        }
        block
            .iter()
            .zip(candidates)
            .map(|(&u, found)| match found {
                Some(found) => {
                    let x = model.user_factors(u);
                    found.choose(|i| {
                        count_bytes(k * 4);
                        dot(x, model.item_factors(i))
                    })
                }
                None => self.recommend(
                    u,
                    n,
                    Filter {
                        exclude,
                        allow: None,
                    },
                ),
            })
            .collect()
    }
}

/// Twice the bound on |approximate − [`dot`]| for a user of norm `user_norm` (see the module doc),
/// with a factor of two to spare for the rounding of the norms themselves, and an absolute term
/// for underflow. `None` when scores could overflow, where no bound holds.
fn margin(k: usize, user_norm: f32, max_item_norm: f32) -> Option<f32> {
    let scale = user_norm * max_item_norm;
    // Also catches NaN: it is not below the limit.
    if scale.partial_cmp(&(f32::MAX / 16.0)) != Some(std::cmp::Ordering::Less) {
        return None;
    }
    let gamma = (k as f32 + 2.0) * f32::EPSILON; // ≥ 2·γ_k, u = ε/2
    let delta = 2.0 * gamma * scale + (k as f32) * f32::MIN_POSITIVE;
    Some(2.0 * delta)
}

#[cfg(test)]
mod tests {
    use super::super::synthetic::{Shape, random_model};
    use super::*;

    /// A seeded model with `items` spanning several tiles, rank not a multiple of 8, seen items,
    /// and groups of identical items (exact ties) to exercise the tie rule.
    fn model(users: usize, items: usize, rank: usize, seed: u64) -> ServingAls {
        let mut model = random_model(&Shape {
            users,
            items,
            rank,
            seed,
            seen_min: 0,
            seen_max: 40,
        });
        // Every 97th item copies item 5: identical scores for every user.
        for i in (97..items).step_by(97) {
            let (src, dst) = model.item_factors.split_at_mut(i * rank);
            dst[..rank].copy_from_slice(&src[5 * rank..6 * rank]);
        }
        model.prepare().unwrap()
    }

    #[test]
    fn batched_answers_equal_the_per_user_scan_exactly() {
        let m = model(300, 2_600, 13, 1);
        let mut users: Vec<u32> = (0..300).rev().collect();
        users.extend([7, 7, 0]); // duplicates and a second partial block
        let exclude = [5u32, 97, 1_000, 2_599, 40_000];
        for (n, filter) in [
            (1, Filter::default()),
            (10, Filter::default()),
            (
                10,
                Filter {
                    exclude: &exclude,
                    allow: None,
                },
            ),
            (150, Filter::default()),
            (5_000, Filter::default()), // more than the catalogue: every unseen item
        ] {
            let batched = m.recommend_many(&users, n, filter);
            assert_eq!(batched.len(), users.len());
            for (&u, got) in users.iter().zip(&batched) {
                let want = m.recommend(u, n, filter);
                assert_eq!(got, &want, "user {u}, n {n}");
            }
        }
    }

    #[test]
    fn ties_within_the_margin_are_resolved_like_the_scan() {
        // Rank 64 and identical items: the approximate scores tie, the chosen ones must be the
        // lowest indices, as in the per-user scan.
        let m = model(40, 3_000, 64, 2);
        let users: Vec<u32> = (0..40).collect();
        for (u, got) in users
            .iter()
            .zip(m.recommend_many(&users, 40, Filter::default()))
        {
            assert_eq!(got, m.recommend(*u, 40, Filter::default()), "user {u}");
        }
    }

    #[test]
    fn allow_lists_and_small_batches_take_the_per_user_path_with_equal_answers() {
        let m = model(20, 1_500, 8, 3);
        let allow = [3u32, 9, 200, 1_499, 7_000];
        let users: Vec<u32> = (0..20).collect();
        let filter = Filter {
            exclude: &[9],
            allow: Some(&allow),
        };
        for (u, got) in users.iter().zip(m.recommend_many(&users, 3, filter)) {
            assert_eq!(got, m.recommend(*u, 3, filter));
        }
        assert_eq!(
            m.recommend_many(&users[..2], 0, Filter::default()),
            vec![vec![]; 2]
        );
    }

    #[test]
    fn the_margin_covers_the_difference_between_the_product_and_dot() {
        // Random factors: the two summation orders differ in the last bits for many pairs.
        let (users, items, k) = (64, 1_024, 64);
        let m = model(users, items, k, 4);
        let x = ArrayView2::from_shape((users, k), &m.model.user_factors).unwrap();
        let y = ArrayView2::from_shape((items, k), &m.model.item_factors).unwrap();
        let mut product = Array2::<f32>::zeros((users, items));
        general_mat_mul(1.0, &x, &y.t(), 0.0, &mut product);
        let (mut differing, mut worst_share) = (0, 0.0f32);
        for u in 0..users {
            let xu = m.model.user_factors(u as u32);
            let bound = margin(k, dot(xu, xu).sqrt(), m.max_item_norm).unwrap() / 2.0;
            for i in 0..items {
                let exact = dot(xu, m.model.item_factors(i as u32));
                let diff = (product[[u, i]] - exact).abs();
                differing += usize::from(diff > 0.0);
                worst_share = worst_share.max(diff / bound);
            }
        }
        assert!(
            differing > 0,
            "the orders never differ: the test checks nothing"
        );
        assert!(
            worst_share <= 1.0,
            "a difference exceeds the bound: {worst_share}"
        );
    }
}
