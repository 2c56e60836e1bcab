//! The ALS recommender as served: user and item factors plus what serving needs around them.
//!
//! [`AlsModel`] is the artifact: plain data, flat row-major `f32` factors, each user's seen items
//! (CSR), item popularity for cold start, and the regularisation (and `alpha` for implicit
//! feedback) needed to fold a new user in exactly as training solved a user. The id -> index maps
//! are not stored: [`AlsModel::prepare`] validates the model and builds them, giving a
//! [`ServingAls`] that scores without further checks.
//!
//! Scoring scans the item factors with a vectorisable dot product, a row of scores at a time,
//! and keeps only the items that can still make the top `n` (the `select` module), so a
//! request costs O(items · rank) plus little, never a catalogue sort.
//! Many users at once go through [`ServingAls::recommend_many`] (the `batch` module), which
//! scores blocks of users against cached item tiles and gives the same answers.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use serde::{Deserialize, Serialize};

use crate::Error;

mod ann;
mod batch;
mod hnsw;
mod int8;
mod ivf;
mod rng;
mod search;
mod select;

use ann::Ann;
pub use ann::{AnnBuild, AnnIndex, AnnParams, with_ann_index};
pub use hnsw::{HnswIndex, HnswLayer, HnswParams, MAX_DEGREE, MAX_EF, build_hnsw};
use int8::Int8Items;
pub use int8::time_int8_kernels;
pub use ivf::{IvfIndex, IvfParams, MAX_LISTS, build_ivf};
use search::{ROW_ITEMS, count_bytes};
pub use search::{Search, take_bytes_read};
use select::Candidates;
pub mod synthetic;

/// Larger ranks are refused at load: no sensible ALS model has them, and fold-in is O(rank³).
pub const MAX_RANK: u32 = 1024;

/// Which objective the factors were trained for; decides how [`ServingAls::fold_in`] solves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feedback {
    /// Ratings: regularised least squares on observed entries, λ scaled by the user's count.
    Explicit,
    /// Interaction counts: Hu-Koren-Volinsky, preference 1 with confidence `1 + alpha · count`.
    Implicit,
}

impl Feedback {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Explicit => "explicit",
            Self::Implicit => "implicit",
        }
    }
}

/// A trained ALS model, as stored in the artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlsModel {
    pub feedback: Feedback,
    pub rank: u32,
    /// Regularisation as trained (explicit: multiplied by the user's rating count).
    pub lambda: f32,
    /// Confidence scale for implicit feedback; unused for explicit.
    pub alpha: f32,
    /// User ids as in the input, in index order; unique.
    pub user_ids: Vec<String>,
    /// Item ids as in the input, in index order; unique.
    pub item_ids: Vec<String>,
    /// `user_ids.len() × rank`, row-major.
    pub user_factors: Vec<f32>,
    /// `item_ids.len() × rank`, row-major.
    pub item_factors: Vec<f32>,
    /// CSR offsets into `seen_items`, `user_ids.len() + 1` long.
    pub seen_offsets: Vec<u32>,
    /// Each user's training items, strictly increasing item indices.
    pub seen_items: Vec<u32>,
    /// Training interactions per item, for cold start ("popular items").
    pub item_popularity: Vec<u32>,
    /// The approximate-search index over the item factors (the `ivf` module), when the trainer
    /// built one; absent in artifacts written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<IvfIndex>,
    /// The approximate-search graph over the item factors (the `hnsw` module), when the trainer
    /// built one; ann mode searches it rather than `index`. Absent in older artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<HnswIndex>,
}

/// Refuses a factor matrix an artifact cannot hold: it is one MessagePack array, whose length
/// is a `u32`, and rmp writes a longer one's length cut to 32 bits without an error. Checked
/// by [`AlsModel::validate`], which the trainer runs before it builds an index, so a catalogue
/// too large (67M items at rank 64) is refused before hours of work rather than at load.
fn factors_fit_an_artifact(what: &str, rows: usize, rank: usize) -> Result<(), String> {
    let values = rows.saturating_mul(rank);
    if values > MAX_ARRAY_VALUES {
        return Err(format!(
            "{rows} {what}s × rank {rank} is {values} factor values; an artifact holds at most \
             {MAX_ARRAY_VALUES} in one matrix (a MessagePack array 32): at most {} {what}s at \
             this rank",
            MAX_ARRAY_VALUES / rank.max(1)
        ));
    }
    Ok(())
}

/// The most values one array of a served model holds (MessagePack `array 32`).
pub const MAX_ARRAY_VALUES: usize = u32::MAX as usize;

/// One recommended item.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scored {
    pub item: u32,
    pub score: f32,
}

/// Restricts a recommendation: never the `exclude`d items and, with `allow`, only those.
/// Indices out of range are ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    pub exclude: &'a [u32],
    pub allow: Option<&'a [u32]>,
}

impl AlsModel {
    pub fn n_users(&self) -> usize {
        self.user_ids.len()
    }

    pub fn n_items(&self) -> usize {
        self.item_ids.len()
    }

    fn k(&self) -> usize {
        self.rank as usize
    }

    /// # Panics
    /// If `user` is out of range.
    pub fn user_factors(&self, user: u32) -> &[f32] {
        let k = self.k();
        &self.user_factors[user as usize * k..(user as usize + 1) * k]
    }

    /// # Panics
    /// If `item` is out of range.
    pub fn item_factors(&self, item: u32) -> &[f32] {
        let k = self.k();
        &self.item_factors[item as usize * k..(item as usize + 1) * k]
    }

    /// The user's training items, sorted.
    ///
    /// # Panics
    /// If `user` is out of range.
    pub fn seen(&self, user: u32) -> &[u32] {
        let u = user as usize;
        &self.seen_items[self.seen_offsets[u] as usize..self.seen_offsets[u + 1] as usize]
    }

    /// The predicted rating (explicit) or preference (implicit) of `user` for `item`.
    ///
    /// # Panics
    /// If either index is out of range.
    pub fn predict(&self, user: u32, item: u32) -> f32 {
        dot(self.user_factors(user), self.item_factors(item))
    }

    /// Checks the whole structure once at load, so scoring can index without checks failing.
    ///
    /// # Errors
    /// [`Error::CorruptArtifact`] describing the first inconsistency.
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |reason: String| Error::CorruptArtifact { reason };
        if self.rank == 0 || self.rank > MAX_RANK {
            return Err(fail(format!(
                "rank {} is outside 1..={MAX_RANK}",
                self.rank
            )));
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(fail(format!(
                "lambda {} is not a finite non-negative number",
                self.lambda
            )));
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(fail(format!(
                "alpha {} is not a finite non-negative number",
                self.alpha
            )));
        }
        let (users, items, k) = (self.n_users(), self.n_items(), self.k());
        if u32::try_from(users).is_err() || u32::try_from(items).is_err() {
            return Err(fail("more than 2^32 users or items".into()));
        }
        factors_fit_an_artifact("user", users, k).map_err(fail)?;
        factors_fit_an_artifact("item", items, k).map_err(fail)?;
        if self.user_factors.len() != users * k {
            return Err(fail(format!(
                "user factors have length {}, expected {users} users × rank {k}",
                self.user_factors.len()
            )));
        }
        if self.item_factors.len() != items * k {
            return Err(fail(format!(
                "item factors have length {}, expected {items} items × rank {k}",
                self.item_factors.len()
            )));
        }
        for (what, factors) in [("user", &self.user_factors), ("item", &self.item_factors)] {
            if let Some(pos) = factors.iter().position(|v| !v.is_finite()) {
                return Err(fail(format!("{what} {} has a non-finite factor", pos / k)));
            }
        }
        if self.item_popularity.len() != items {
            return Err(fail(format!(
                "item popularity has length {}, expected {items}",
                self.item_popularity.len()
            )));
        }
        if self.seen_offsets.len() != users + 1 || self.seen_offsets.first() != Some(&0) {
            return Err(fail(
                "seen offsets must start at 0 and have one entry per user plus one".into(),
            ));
        }
        if self.seen_offsets.windows(2).any(|w| w[0] > w[1])
            || self.seen_offsets.last().map(|&l| l as usize) != Some(self.seen_items.len())
        {
            return Err(fail(
                "seen offsets are not increasing up to the seen item count".into(),
            ));
        }
        for u in 0..users {
            let seen = self.seen(u as u32);
            if seen.windows(2).any(|w| w[0] >= w[1]) {
                return Err(fail(format!(
                    "user {u}'s seen items are not strictly increasing"
                )));
            }
            if seen.last().is_some_and(|&i| i as usize >= items) {
                return Err(fail(format!(
                    "user {u} has seen an item index outside {items} items"
                )));
            }
        }
        for (what, ids) in [("user", &self.user_ids), ("item", &self.item_ids)] {
            let mut sorted: Vec<&str> = ids.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return Err(fail(format!("{what} id {:?} appears twice", w[0])));
            }
        }
        if let Some(index) = &self.index {
            index.validate(items, k)?;
        }
        if let Some(graph) = &self.graph {
            graph.validate(items)?;
        }
        Ok(())
    }

    /// Validates the model and builds the indexes serving needs.
    ///
    /// # Errors
    /// [`Error::CorruptArtifact`] from [`AlsModel::validate`].
    pub fn prepare(self) -> Result<ServingAls, Error> {
        self.validate()?;
        let index = |ids: &[String]| -> HashMap<String, u32> {
            ids.iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), i as u32))
                .collect()
        };
        let users = index(&self.user_ids);
        let items = index(&self.item_ids);
        let k = self.k();
        let item_norms: Vec<f32> = self
            .item_factors
            .chunks_exact(k)
            .map(|y| dot(y, y).sqrt())
            .collect();
        let max_item_norm = item_norms.iter().copied().fold(0.0, f32::max);
        let mut by_popularity: Vec<u32> = (0..self.n_items() as u32).collect();
        by_popularity.sort_by_key(|&i| (Reverse(self.item_popularity[i as usize]), i));
        let gram = gram(&self.item_factors, k);
        Ok(ServingAls {
            model: self,
            users,
            items,
            item_norms,
            max_item_norm,
            by_popularity,
            gram,
            search: Search::Exact,
            int8: None,
            ann: None,
        })
    }
}

/// A validated model with its indexes; every scoring method indexes without failing.
#[derive(Debug, Clone)]
pub struct ServingAls {
    model: AlsModel,
    users: HashMap<String, u32>,
    items: HashMap<String, u32>,
    item_norms: Vec<f32>,
    /// The largest of `item_norms`, for the batched scan's error bound.
    max_item_norm: f32,
    /// Item indices by decreasing popularity (ties: lower index first).
    by_popularity: Vec<u32>,
    /// YᵀY of the item factors (rank × rank, f64), for implicit fold-in.
    gram: Vec<f64>,
    /// How a whole-catalogue scan is done (the `search` module).
    search: Search,
    /// The int8 codes of the item factors, in int8 mode.
    int8: Option<Int8Items>,
    /// The index searched in ann mode.
    ann: Option<Ann>,
}

impl ServingAls {
    pub fn model(&self) -> &AlsModel {
        &self.model
    }

    pub fn into_model(self) -> AlsModel {
        self.model
    }

    pub fn user_index(&self, id: &str) -> Option<u32> {
        self.users.get(id).copied()
    }

    pub fn item_index(&self, id: &str) -> Option<u32> {
        self.items.get(id).copied()
    }

    /// # Panics
    /// If `item` is out of range.
    pub fn item_id(&self, item: u32) -> &str {
        &self.model.item_ids[item as usize]
    }

    /// The best `n` items for a known user, never one the user has seen in training.
    ///
    /// # Panics
    /// If `user` is out of range.
    pub fn recommend(&self, user: u32, n: usize, filter: Filter<'_>) -> Vec<Scored> {
        self.recommend_vector(
            self.model.user_factors(user),
            n,
            self.model.seen(user),
            filter,
        )
    }

    /// The best `n` items for a user vector (from [`ServingAls::fold_in`]), excluding `seen`
    /// (sorted or not) and the filter's items. Scores descend; ties go to the lower index.
    ///
    /// # Panics
    /// If `user_vector` does not have the model's rank.
    pub fn recommend_vector(
        &self,
        user_vector: &[f32],
        n: usize,
        seen: &[u32],
        filter: Filter<'_>,
    ) -> Vec<Scored> {
        assert_eq!(
            user_vector.len(),
            self.model.k(),
            "user vector has the wrong rank"
        );
        let excluded = excluded_set(seen, filter.exclude);
        let model = &self.model;
        if n == 0 {
            return Vec::new();
        }
        let mut top = TopN::new(n);
        match filter.allow {
            Some(allow) => {
                let mut scored = 0;
                for i in sorted_unique(allow) {
                    if (i as usize) < model.n_items() && excluded.binary_search(&i).is_err() {
                        top.push(i, dot(user_vector, model.item_factors(i)));
                        scored += 1;
                    }
                }
                count_bytes(scored * model.k() * 4);
            }
            None => return self.scan(user_vector, n, &excluded),
        }
        top.into_sorted()
    }

    /// The whole catalogue for one user vector, a row of exact scores at a time; `excluded` is
    /// sorted. Candidates with margin 0 keep every score tied with the `n`-th best, so the
    /// choice equals a [`TopN`] over all items.
    fn scan_all(&self, user_vector: &[f32], n: usize, excluded: &[u32]) -> Vec<Scored> {
        let model = &self.model;
        let k = model.k();
        let mut found = Candidates::new(n, 0.0);
        let mut row = [0.0f32; ROW_ITEMS];
        for (r, tile) in model.item_factors.chunks(ROW_ITEMS * k).enumerate() {
            let start = (r * ROW_ITEMS) as u32;
            let row = &mut row[..tile.len() / k];
            for (score, y) in row.iter_mut().zip(tile.chunks_exact(k)) {
                *score = dot(user_vector, y);
            }
            found.scan(row, start, &[excluded]);
        }
        count_bytes(model.item_factors.len() * 4);
        found.choose(|i| dot(user_vector, model.item_factors(i)))
    }

    /// The `n` items closest to `item` by cosine similarity of their factors, without `item`.
    ///
    /// # Panics
    /// If `item` is out of range.
    pub fn similar_items(&self, item: u32, n: usize, filter: Filter<'_>) -> Vec<Scored> {
        let model = &self.model;
        let query = model.item_factors(item);
        let query_norm = self.item_norms[item as usize];
        let excluded = excluded_set(&[item], filter.exclude);
        let score = |j: u32, y: &[f32]| {
            let norms = query_norm * self.item_norms[j as usize];
            if norms > 0.0 {
                dot(query, y) / norms
            } else {
                0.0
            }
        };
        if n == 0 {
            return Vec::new();
        }
        let mut top = TopN::new(n);
        match filter.allow {
            Some(allow) => {
                let mut scored = 0;
                for j in sorted_unique(allow) {
                    if (j as usize) < model.n_items() && excluded.binary_search(&j).is_err() {
                        top.push(j, score(j, model.item_factors(j)));
                        scored += 1;
                    }
                }
                count_bytes(scored * model.k() * 4);
            }
            None => {
                count_bytes(model.item_factors.len() * 4);
                for (j, y) in model.item_factors.chunks_exact(model.k()).enumerate() {
                    let j = j as u32;
                    if excluded.binary_search(&j).is_err() {
                        top.push(j, score(j, y));
                    }
                }
            }
        }
        top.into_sorted()
    }

    /// The `n` most interacted-with items (cold start), scored by their training counts.
    pub fn popular(&self, n: usize, seen: &[u32], filter: Filter<'_>) -> Vec<Scored> {
        let excluded = excluded_set(seen, filter.exclude);
        let allowed = filter.allow.map(sorted_unique);
        self.by_popularity
            .iter()
            .copied()
            .filter(|i| excluded.binary_search(i).is_err())
            .filter(|i| allowed.as_ref().is_none_or(|a| a.binary_search(i).is_ok()))
            .take(n)
            .map(|item| Scored {
                item,
                score: self.model.item_popularity[item as usize] as f32,
            })
            .collect()
    }

    /// Solves a user's factors from `interactions` (item index, rating or count) against the fixed
    /// item factors, exactly as a training sweep solves a user: explicit regularised least
    /// squares with λ·n, or the Hu-Koren-Volinsky solve with confidence `1 + alpha · weight`.
    /// Out-of-range items and non-finite weights are ignored, and so are weights ≤ 0 for implicit
    /// feedback (no interaction). No usable interaction gives the zero vector. Each entry is one
    /// observation: for implicit feedback pass one entry per item with the summed count, as
    /// training does. Recommend with [`ServingAls::recommend_vector`], passing the items as seen.
    pub fn fold_in(&self, interactions: &[(u32, f32)]) -> Vec<f32> {
        let model = &self.model;
        let k = model.k();
        let usable: Vec<(u32, f32)> = interactions
            .iter()
            .copied()
            .filter(|&(i, w)| (i as usize) < model.n_items() && w.is_finite())
            .filter(|&(_, w)| model.feedback == Feedback::Explicit || w > 0.0)
            .collect();
        if usable.is_empty() {
            return vec![0.0; k];
        }
        let lambda = f64::from(model.lambda);
        let mut a = vec![0.0f64; k * k];
        let mut b = vec![0.0f64; k];
        match model.feedback {
            Feedback::Explicit => {
                for &(i, r) in &usable {
                    add_outer(&mut a, model.item_factors(i), 1.0, k);
                    axpy_f64(&mut b, model.item_factors(i), f64::from(r));
                }
                let reg = (lambda * usable.len() as f64).max(1e-9);
                (0..k).for_each(|d| a[d * k + d] += reg);
            }
            Feedback::Implicit => {
                a.copy_from_slice(&self.gram);
                for &(i, w) in &usable {
                    let c = 1.0 + f64::from(model.alpha) * f64::from(w);
                    add_outer(&mut a, model.item_factors(i), c - 1.0, k);
                    axpy_f64(&mut b, model.item_factors(i), c);
                }
                (0..k).for_each(|d| a[d * k + d] += lambda.max(1e-9));
            }
        }
        mirror_lower(&mut a, k);
        if cholesky_solve(&mut a, &mut b, k) {
            b.iter().map(|&v| v as f32).collect()
        } else {
            vec![0.0; k]
        }
    }
}

/// A list given by a caller, sorted and deduplicated (an item is recommended at most once).
fn sorted_unique(items: &[u32]) -> Vec<u32> {
    let mut items = items.to_vec();
    items.sort_unstable();
    items.dedup();
    items
}

/// `seen ∪ exclude`, sorted and deduplicated, for binary search or a merge walk.
fn excluded_set(seen: &[u32], exclude: &[u32]) -> Vec<u32> {
    let mut set = Vec::with_capacity(seen.len() + exclude.len());
    set.extend_from_slice(seen);
    set.extend_from_slice(exclude);
    set.sort_unstable();
    set.dedup();
    set
}

/// The lower triangle of `a += w · y yᵀ` (row-major `k × k`), in f64.
pub fn add_outer(a: &mut [f64], y: &[f32], w: f64, k: usize) {
    for r in 0..k {
        let wr = w * f64::from(y[r]);
        let row = &mut a[r * k..r * k + r + 1];
        for (dst, &yc) in row.iter_mut().zip(&y[..=r]) {
            *dst += wr * f64::from(yc);
        }
    }
}

fn axpy_f64(b: &mut [f64], y: &[f32], w: f64) {
    for (dst, &v) in b.iter_mut().zip(y) {
        *dst += w * f64::from(v);
    }
}

/// Copies the lower triangle onto the upper one.
pub fn mirror_lower(a: &mut [f64], k: usize) {
    for r in 0..k {
        for c in r + 1..k {
            a[r * k + c] = a[c * k + r];
        }
    }
}

/// YᵀY of row-major `factors` with `k` columns, accumulated in f64.
fn gram(factors: &[f32], k: usize) -> Vec<f64> {
    let mut g = gram_lower(factors, k);
    mirror_lower(&mut g, k);
    g
}

/// The lower triangle of YᵀY for the rows in `factors`, in f64; the one Gram computation the
/// trainer shares (it sums these over row chunks in parallel, then [`mirror_lower`]).
pub fn gram_lower(factors: &[f32], k: usize) -> Vec<f64> {
    let mut g = vec![0.0f64; k * k];
    for y in factors.chunks_exact(k) {
        add_outer(&mut g, y, 1.0, k);
    }
    g
}

/// The dot product of two equal-length f32 slices, written to vectorise: eight independent
/// accumulators over contiguous chunks (no loop-carried dependency on one register).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ar.iter().zip(br) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

/// Solves `A x = b` in place for a symmetric positive definite row-major `k × k` matrix by
/// Cholesky decomposition (`A` is overwritten with its factor, `b` with `x`). Small dense
/// systems (k ≤ a few hundred) are all ALS needs, so no LAPACK.
///
/// Returns false (leaving `b` unspecified) when `A` is not positive definite.
pub fn cholesky_solve(a: &mut [f64], b: &mut [f64], k: usize) -> bool {
    debug_assert!(a.len() >= k * k && b.len() >= k);
    for j in 0..k {
        let mut d = a[j * k + j];
        for p in 0..j {
            d -= a[j * k + p] * a[j * k + p];
        }
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * k + j] = d;
        for i in j + 1..k {
            let mut s = a[i * k + j];
            for p in 0..j {
                s -= a[i * k + p] * a[j * k + p];
            }
            a[i * k + j] = s / d;
        }
    }
    for i in 0..k {
        let mut s = b[i];
        for p in 0..i {
            s -= a[i * k + p] * b[p];
        }
        b[i] = s / a[i * k + i];
    }
    for i in (0..k).rev() {
        let mut s = b[i];
        for p in i + 1..k {
            s -= a[p * k + i] * b[p];
        }
        b[i] = s / a[i * k + i];
    }
    true
}

/// Heap entry: ordered by score, then by *lower* index as the better one (deterministic ties).
#[derive(Debug, Clone, Copy)]
struct Entry {
    score: f32,
    item: u32,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.item.cmp(&self.item))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

/// The best `n` seen so far, in a min-heap of size `n` (the worst kept is at the top).
struct TopN {
    n: usize,
    heap: BinaryHeap<Reverse<Entry>>,
}

impl TopN {
    fn new(n: usize) -> Self {
        Self {
            n,
            heap: BinaryHeap::with_capacity(n.saturating_add(1).min(1 << 16)),
        }
    }

    #[inline]
    fn push(&mut self, item: u32, score: f32) {
        let entry = Entry { score, item };
        if self.heap.len() < self.n {
            self.heap.push(Reverse(entry));
        } else if let Some(mut worst) = self.heap.peek_mut()
            && entry > worst.0
        {
            *worst = Reverse(entry);
        }
    }

    /// Best first.
    fn into_sorted(self) -> Vec<Scored> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(e)| Scored {
                item: e.item,
                score: e.score,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 users × 5 items, rank 2. Item 4 has zero factors.
    fn small_model(feedback: Feedback) -> AlsModel {
        AlsModel {
            feedback,
            rank: 2,
            lambda: 0.1,
            alpha: 2.0,
            user_ids: vec!["u1".into(), "u2".into(), "u3".into()],
            item_ids: ["a", "b", "c", "d", "e"].map(String::from).to_vec(),
            user_factors: vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5],
            item_factors: vec![0.9, 0.1, 0.8, 0.2, 0.1, 0.9, 0.2, 0.8, 0.0, 0.0],
            seen_offsets: vec![0, 1, 3, 3],
            seen_items: vec![0, 2, 3],
            item_popularity: vec![5, 1, 9, 9, 0],
            index: None,
            graph: None,
        }
    }

    fn items(scored: &[Scored]) -> Vec<u32> {
        scored.iter().map(|s| s.item).collect()
    }

    #[test]
    fn a_factor_matrix_longer_than_an_artifact_array_is_refused_by_name() {
        // 67,108,863 items × rank 64 is the last that fits 2^32 - 1 values; one more does not.
        let most = MAX_ARRAY_VALUES / 64;
        assert_eq!(most, 67_108_863);
        assert!(factors_fit_an_artifact("item", most, 64).is_ok());
        let refused = factors_fit_an_artifact("item", most + 1, 64).unwrap_err();
        assert!(
            refused.contains("67108864 items × rank 64")
                && refused.contains("at most 67108863 items"),
            "{refused}"
        );
        // An overflowing product is refused too, not wrapped.
        assert!(factors_fit_an_artifact("user", usize::MAX / 2, 3).is_err());
    }

    #[test]
    fn recommendations_skip_seen_and_excluded_items_and_respect_the_allow_list() {
        let m = small_model(Feedback::Explicit).prepare().unwrap();
        let u1 = m.user_index("u1").unwrap();
        assert_eq!(items(&m.recommend(u1, 2, Filter::default())), [1, 3]);
        let exclude = [1];
        let f = Filter {
            exclude: &exclude,
            allow: None,
        };
        assert_eq!(items(&m.recommend(u1, 2, f)), [3, 2]);
        let allow = [2, 0, 4, 99, 2];
        let f = Filter {
            exclude: &[],
            allow: Some(&allow),
        };
        assert_eq!(
            items(&m.recommend(u1, 5, f)),
            [2, 4],
            "seen item 0, index 99 and the repeated 2 dropped"
        );
        let u2 = m.user_index("u2").unwrap();
        let recs = m.recommend(u2, 10, Filter::default());
        assert_eq!(items(&recs), [1, 0, 4]);
        assert!((recs[0].score - 0.2).abs() < 1e-6);
    }

    #[test]
    fn top_n_equals_a_full_sort_reference_including_ties() {
        // 40 items with many tied scores (values from a small set).
        let n_items = 40u32;
        let mut m = small_model(Feedback::Implicit);
        m.item_ids = (0..n_items).map(|i| format!("i{i}")).collect();
        m.item_factors = (0..n_items)
            .flat_map(|i| [((i * 7) % 5) as f32 * 0.25, ((i * 3) % 4) as f32 * 0.5])
            .collect();
        m.item_popularity = vec![1; n_items as usize];
        m.seen_items = vec![0, 3, 9];
        let m = m.prepare().unwrap();
        let x = [0.7f32, 0.3];
        let seen = [9u32, 3];
        for n in [0, 1, 5, 17, 40, 100] {
            let got = m.recommend_vector(&x, n, &seen, Filter::default());
            let mut reference: Vec<(u32, f32)> = (0..n_items)
                .filter(|i| !seen.contains(i))
                .map(|i| (i, dot(&x, m.model().item_factors(i))))
                .collect();
            reference.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            reference.truncate(n);
            let got: Vec<(u32, f32)> = got.iter().map(|s| (s.item, s.score)).collect();
            assert_eq!(got, reference, "n = {n}");
        }
    }

    #[test]
    fn recommend_equals_a_full_sort_over_many_rows_with_ties() {
        let mut m = synthetic::random_model(&synthetic::Shape {
            users: 30,
            items: 1_300,
            rank: 9,
            seed: 5,
            seen_min: 0,
            seen_max: 50,
        });
        // Items 600.. repeat items 0..: every score appears at least twice.
        let k = 9;
        let (head, tail) = m.item_factors.split_at_mut(600 * k);
        tail[..600 * k].copy_from_slice(head);
        let m = m.prepare().unwrap();
        let exclude = [1u32, 601, 1_299];
        for u in 0..30u32 {
            for n in [1, 10, 70, 1_300] {
                let filter = Filter {
                    exclude: &exclude,
                    allow: None,
                };
                let got: Vec<(u32, f32)> = m
                    .recommend(u, n, filter)
                    .iter()
                    .map(|s| (s.item, s.score))
                    .collect();
                let mut reference: Vec<(u32, f32)> = (0..1_300u32)
                    .filter(|i| !m.model().seen(u).contains(i) && !exclude.contains(i))
                    .map(|i| (i, m.model().predict(u, i)))
                    .collect();
                reference.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                reference.truncate(n);
                assert_eq!(got, reference, "user {u}, n = {n}");
            }
        }
    }

    #[test]
    fn dot_matches_a_naive_sum_for_every_remainder() {
        for len in [0, 1, 7, 8, 9, 17, 64, 70] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            assert!((f64::from(dot(&a, &b)) - naive).abs() < 1e-4, "len {len}");
        }
    }

    #[test]
    fn cholesky_solves_spd_systems_and_refuses_indefinite_ones() {
        let mut a = vec![4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let x = [1.0, -2.0, 0.5];
        let mut b: Vec<f64> = (0..3)
            .map(|r| (0..3).map(|c| a[r * 3 + c] * x[c]).sum())
            .collect();
        assert!(cholesky_solve(&mut a, &mut b, 3));
        for (got, want) in b.iter().zip(x) {
            assert!((got - want).abs() < 1e-12, "{b:?}");
        }
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        assert!(!cholesky_solve(&mut a, &mut [1.0, 1.0], 2));
    }

    #[test]
    fn similar_items_rank_by_cosine_without_the_item_itself() {
        let m = small_model(Feedback::Explicit).prepare().unwrap();
        let sims = m.similar_items(0, 3, Filter::default());
        assert_eq!(items(&sims), [1, 3, 2]);
        assert!(sims[0].score <= 1.0 + 1e-6 && sims[0].score > 0.95);
        let zero = m.similar_items(4, 5, Filter::default());
        assert!(
            zero.iter().all(|s| s.score == 0.0),
            "a zero vector is similar to nothing"
        );
    }

    #[test]
    fn popular_items_break_ties_by_index_and_honour_filters() {
        let m = small_model(Feedback::Implicit).prepare().unwrap();
        assert_eq!(items(&m.popular(3, &[], Filter::default())), [2, 3, 0]);
        let allow = [4, 0, 3];
        let f = Filter {
            exclude: &[],
            allow: Some(&allow),
        };
        assert_eq!(items(&m.popular(5, &[3], f)), [0, 4]);
        assert_eq!(m.popular(1, &[], Filter::default())[0].score, 9.0);
    }

    #[test]
    fn explicit_fold_in_recovers_the_least_squares_solution() {
        let m = small_model(Feedback::Explicit).prepare().unwrap();
        // Ratings produced by x = (2, -1) on items 0, 1, 2.
        let x = [2.0f32, -1.0];
        let ratings: Vec<(u32, f32)> = (0..3)
            .map(|i| (i, dot(&x, m.model().item_factors(i))))
            .collect();
        let mut unreg = m.model().clone();
        unreg.lambda = 0.0;
        let folded = unreg.prepare().unwrap().fold_in(&ratings);
        assert!(
            (folded[0] - 2.0).abs() < 1e-3 && (folded[1] + 1.0).abs() < 1e-3,
            "{folded:?}"
        );
        // Regularisation shrinks it.
        let shrunk = m.fold_in(&ratings);
        assert!(dot(&shrunk, &shrunk) < dot(&folded, &folded));
        assert_eq!(
            m.fold_in(&[(99, 1.0)]),
            vec![0.0, 0.0],
            "unknown items are ignored"
        );
    }

    #[test]
    fn implicit_fold_in_moves_the_user_toward_clicked_items() {
        let m = small_model(Feedback::Implicit).prepare().unwrap();
        let x = m.fold_in(&[(2, 3.0), (0, -1.0)]);
        let recs = m.recommend_vector(&x, 2, &[2], Filter::default());
        assert_eq!(recs[0].item, 3, "item 3 is item 2's neighbour: {recs:?}");
        // More clicks on item 0 turn the user toward the first factor.
        let y = m.fold_in(&[(2, 1.0), (0, 5.0), (1, 5.0)]);
        assert!(y[0] > y[1], "{y:?}");
    }

    #[test]
    fn damaged_models_are_refused_at_validation() {
        type Damage = Box<dyn Fn(&mut AlsModel)>;
        let cases: Vec<(&str, Damage)> = vec![
            ("rank", Box::new(|m| m.rank = 0)),
            (
                "user factors",
                Box::new(|m| {
                    m.user_factors.pop();
                }),
            ),
            ("item factors", Box::new(|m| m.item_factors.push(1.0))),
            ("non-finite", Box::new(|m| m.item_factors[3] = f32::NAN)),
            (
                "popularity",
                Box::new(|m| {
                    m.item_popularity.pop();
                }),
            ),
            (
                "strictly increasing",
                Box::new(|m| m.seen_items = vec![0, 3, 2]),
            ),
            (
                "outside 5 items",
                Box::new(|m| m.seen_items = vec![0, 2, 5]),
            ),
            ("offsets", Box::new(|m| m.seen_offsets = vec![0, 1, 3])),
            ("offsets", Box::new(|m| m.seen_offsets = vec![0, 2, 1, 3])),
            ("appears twice", Box::new(|m| m.item_ids[4] = "a".into())),
            ("lambda", Box::new(|m| m.lambda = f32::INFINITY)),
        ];
        for (needle, damage) in cases {
            let mut m = small_model(Feedback::Explicit);
            damage(&mut m);
            let err = m.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "expected {needle:?} in {err}");
        }
    }

    #[test]
    fn the_model_round_trips_through_an_artifact() {
        use crate::artifact::{ModelKind, decode_artifact, encode_artifact};
        let m = small_model(Feedback::Implicit);
        let encoded = encode_artifact(ModelKind::RecommenderAls, &m).unwrap();
        let back: AlsModel =
            decode_artifact(&encoded.bytes, &encoded.digest, ModelKind::RecommenderAls).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.prepare().unwrap().item_index("c"), Some(2));
    }
}
