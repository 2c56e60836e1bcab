//! Alternating least squares, explicit and implicit, parallel over rows with rayon.
//!
//! - **Explicit** (Spark MLlib's objective): each user solves
//!   `(Σᵢ yᵢyᵢᵀ + λ·nᵤ·I) xᵤ = Σᵢ rᵤᵢ yᵢ` over the items they rated (and items likewise), by
//!   Cholesky in f64. Scaling λ by the row's count (ALS-WR) makes one λ work across dense and
//!   sparse rows; the default λ = 0.1 is Spark's.
//! - **Implicit** (Hu, Koren, Volinsky 2008): preference 1 for every observed pair with confidence
//!   `c = 1 + alpha·count`, 0 with confidence 1 elsewhere; each row solves
//!   `(YᵀY + Σᵢ (cᵢ−1) yᵢyᵢᵀ + λI) x = Σᵢ cᵢ yᵢ`. `YᵀY` is computed once per half-sweep and a few
//!   conjugate-gradient steps per row, warm-started from the previous factors, replace the exact
//!   solve (Takács et al. 2011; the `implicit` package's default), so a row costs
//!   O(steps · (k² + nᵤ·k)) instead of O(nᵤ·k² + k³). λ is not scaled by the count here, as in
//!   the paper and `implicit`.
//!
//! Determinism: every row's factors are initialised from its own seeded generator and solved by
//! a sequential computation of its own, and `YᵀY` is summed over fixed chunks in a fixed order,
//! so the result depends on the seed only, not on the thread count.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal, Uniform};
use rayon::prelude::*;
use suite_models::als::{AlsModel, Feedback, cholesky_solve, dot, gram_lower, mirror_lower};

use crate::data::ratings::Ratings;

/// Training hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AlsParams {
    pub feedback: Feedback,
    pub rank: usize,
    pub iterations: usize,
    pub lambda: f64,
    pub alpha: f64,
    pub cg_steps: usize,
    pub seed: u64,
}

/// A sparse matrix in compressed rows: row `r`'s columns are `indices[indptr[r]..indptr[r+1]]`,
/// strictly increasing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Csr {
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl Csr {
    /// Builds rows from triples. Duplicate (row, column) pairs are combined: summed for implicit
    /// feedback (counts add up), the last one in input order kept for explicit (a re-rating).
    pub fn from_triples(
        n_rows: usize,
        rows: &[u32],
        cols: &[u32],
        vals: &[f32],
        feedback: Feedback,
    ) -> Self {
        let mut counts = vec![0usize; n_rows + 1];
        for &r in rows {
            counts[r as usize + 1] += 1;
        }
        for r in 0..n_rows {
            counts[r + 1] += counts[r];
        }
        let mut next = counts.clone();
        let mut order = vec![0usize; rows.len()];
        for (t, &r) in rows.iter().enumerate() {
            order[next[r as usize]] = t;
            next[r as usize] += 1;
        }
        let mut out = Csr {
            indptr: Vec::with_capacity(n_rows + 1),
            indices: Vec::with_capacity(rows.len()),
            values: Vec::with_capacity(rows.len()),
        };
        out.indptr.push(0);
        for r in 0..n_rows {
            let row = &mut order[counts[r]..counts[r + 1]];
            // Stable: equal columns stay in input order, so "last" is the latest row.
            row.sort_by_key(|&t| cols[t]);
            let start = out.indices.len();
            for &t in row.iter() {
                if out.indices.len() > start && out.indices.last() == Some(&cols[t]) {
                    if let Some(v) = out.values.last_mut() {
                        match feedback {
                            Feedback::Implicit => *v += vals[t],
                            Feedback::Explicit => *v = vals[t],
                        }
                    }
                } else {
                    out.indices.push(cols[t]);
                    out.values.push(vals[t]);
                }
            }
            out.indptr.push(out.indices.len());
        }
        out
    }

    pub fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let range = self.indptr[r]..self.indptr[r + 1];
        (&self.indices[range.clone()], &self.values[range])
    }

    /// The transpose, with `n_cols` rows.
    pub fn transpose(&self, n_cols: usize) -> Self {
        let mut counts = vec![0usize; n_cols + 1];
        for &c in &self.indices {
            counts[c as usize + 1] += 1;
        }
        for c in 0..n_cols {
            counts[c + 1] += counts[c];
        }
        let mut next = counts.clone();
        let mut indices = vec![0u32; self.nnz()];
        let mut values = vec![0f32; self.nnz()];
        for r in 0..self.n_rows() {
            let (cols, vals) = self.row(r);
            for (&c, &v) in cols.iter().zip(vals) {
                let at = next[c as usize];
                indices[at] = r as u32;
                values[at] = v;
                next[c as usize] += 1;
            }
        }
        Csr {
            indptr: counts,
            indices,
            values,
        }
    }
}

/// Trains on `data`, calling `on_iteration` after each full sweep (users, then items).
pub fn train(data: &Ratings, params: &AlsParams, mut on_iteration: impl FnMut(usize)) -> AlsModel {
    let k = params.rank.max(1);
    let by_user = Csr::from_triples(
        data.n_users(),
        &data.users,
        &data.items,
        &data.values,
        params.feedback,
    );
    let by_item = by_user.transpose(data.n_items());
    let mut users = init_factors(data.n_users(), k, params, 0);
    let mut items = init_factors(data.n_items(), k, params, 1);
    for it in 0..params.iterations {
        sweep(&by_user, &items, &mut users, k, params);
        sweep(&by_item, &users, &mut items, k, params);
        on_iteration(it + 1);
    }
    let item_popularity = (0..by_item.n_rows())
        .map(|i| (by_item.indptr[i + 1] - by_item.indptr[i]) as u32)
        .collect();
    AlsModel {
        feedback: params.feedback,
        rank: k as u32,
        lambda: params.lambda as f32,
        alpha: params.alpha as f32,
        user_ids: data.user_ids.clone(),
        item_ids: data.item_ids.clone(),
        user_factors: users,
        item_factors: items,
        seen_offsets: by_user.indptr.iter().map(|&o| o as u32).collect(),
        seen_items: by_user.indices,
        item_popularity,
        index: None,
        graph: None,
    }
}

/// Explicit: Spark's normalised Gaussian rows. Implicit: `implicit`'s uniform [0, 0.01).
fn init_factors(n: usize, k: usize, params: &AlsParams, side: u64) -> Vec<f32> {
    let mut factors = vec![0f32; n * k];
    factors.par_chunks_mut(k).enumerate().for_each(|(row, x)| {
        let mut rng = StdRng::seed_from_u64(row_seed(params.seed, side, row as u64));
        match params.feedback {
            Feedback::Explicit => {
                x.iter_mut()
                    .for_each(|v| *v = StandardNormal.sample(&mut rng));
                let norm = dot(x, x).sqrt();
                if norm > 0.0 {
                    x.iter_mut().for_each(|v| *v /= norm);
                }
            }
            Feedback::Implicit => {
                let u = Uniform::new(0.0f32, 0.01);
                x.iter_mut().for_each(|v| *v = u.sample(&mut rng));
            }
        }
    });
    factors
}

/// SplitMix64 of the inputs: independent, well-mixed seeds per row.
fn row_seed(seed: u64, side: u64, row: u64) -> u64 {
    let mut z =
        seed ^ side.wrapping_mul(0xA076_1D64_78BD_642F) ^ row.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Solves every row of `target` against the fixed `other` factors.
fn sweep(matrix: &Csr, other: &[f32], target: &mut [f32], k: usize, params: &AlsParams) {
    match params.feedback {
        Feedback::Explicit => target.par_chunks_mut(k).enumerate().for_each_init(
            || ExplicitScratch::new(k),
            |scratch, (row, x)| {
                let (cols, vals) = matrix.row(row);
                solve_explicit_row(cols, vals, other, x, scratch, params.lambda);
            },
        ),
        Feedback::Implicit => {
            let mut gram = gram_f64(other, k);
            for d in 0..k {
                gram[d * k + d] += params.lambda;
            }
            let gram: Vec<f32> = gram.iter().map(|&v| v as f32).collect();
            target.par_chunks_mut(k).enumerate().for_each_init(
                || CgScratch::new(k),
                |scratch, (row, x)| {
                    let (cols, vals) = matrix.row(row);
                    solve_implicit_row(cols, vals, other, &gram, x, scratch, params);
                },
            );
        }
    }
}

/// Gathers the row's `other` factors transposed (k × n, f64, each dimension contiguous), so every
/// entry of `YᵤᵀYᵤ` and `Yᵤᵀr` is one contiguous dot product kept in registers.
fn solve_explicit_row(
    cols: &[u32],
    vals: &[f32],
    other: &[f32],
    x: &mut [f32],
    s: &mut ExplicitScratch,
    lambda: f64,
) {
    let k = x.len();
    let n = cols.len();
    if n == 0 {
        x.fill(0.0);
        return;
    }
    s.gathered.clear();
    s.gathered.resize(k * n, 0.0);
    for (j, &c) in cols.iter().enumerate() {
        let y = &other[c as usize * k..(c as usize + 1) * k];
        for (d, &v) in y.iter().enumerate() {
            s.gathered[d * n + j] = f64::from(v);
        }
    }
    s.ratings.clear();
    s.ratings.extend(vals.iter().map(|&v| f64::from(v)));
    let reg = (lambda * n as f64).max(1e-9);
    for r in 0..k {
        let yr = &s.gathered[r * n..(r + 1) * n];
        s.b[r] = dot_f64(yr, &s.ratings);
        for c in 0..=r {
            let v = dot_f64(yr, &s.gathered[c * n..(c + 1) * n]);
            s.a[r * k + c] = v;
            s.a[c * k + r] = v;
        }
        s.a[r * k + r] += reg;
    }
    if cholesky_solve(&mut s.a, &mut s.b, k) {
        x.iter_mut().zip(&s.b).for_each(|(dst, &v)| *dst = v as f32);
    }
}

struct ExplicitScratch {
    a: Vec<f64>,
    b: Vec<f64>,
    gathered: Vec<f64>,
    ratings: Vec<f64>,
}

impl ExplicitScratch {
    fn new(k: usize) -> Self {
        Self {
            a: vec![0.0; k * k],
            b: vec![0.0; k],
            gathered: Vec::new(),
            ratings: Vec::new(),
        }
    }
}

/// f64 dot product with four independent accumulators (vectorises).
#[inline]
fn dot_f64(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let (ac, bc) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// `factorsᵀ factors` (k × k), summed in f64 over fixed row chunks in a fixed order (so the
/// result does not depend on the thread count), each chunk by shared-lib's [`gram_lower`].
pub(crate) fn gram_f64(factors: &[f32], k: usize) -> Vec<f64> {
    const ROWS_PER_CHUNK: usize = 2048;
    let partials: Vec<Vec<f64>> = factors
        .par_chunks(k * ROWS_PER_CHUNK)
        .map(|chunk| gram_lower(chunk, k))
        .collect();
    let mut g = vec![0f64; k * k];
    for p in &partials {
        g.iter_mut().zip(p).for_each(|(d, s)| *d += s);
    }
    mirror_lower(&mut g, k);
    g
}

struct CgScratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
}

impl CgScratch {
    fn new(k: usize) -> Self {
        Self {
            r: vec![0.0; k],
            p: vec![0.0; k],
            ap: vec![0.0; k],
        }
    }
}

#[inline]
fn axpy(dst: &mut [f32], a: f32, x: &[f32]) {
    for (d, &v) in dst.iter_mut().zip(x) {
        *d += a * v;
    }
}

/// `out = G v` for the k × k row-major `gram`.
#[inline]
fn matvec(out: &mut [f32], gram: &[f32], v: &[f32]) {
    let k = v.len();
    for (o, row) in out.iter_mut().zip(gram.chunks_exact(k)) {
        *o = dot(row, v);
    }
}

/// A few conjugate-gradient steps on `(G + Σ (c−1) y yᵀ) x = Σ c y`, from the current `x`
/// (`G` = YᵀY + λI). The same iteration as `implicit`'s `_least_squares_cg`.
fn solve_implicit_row(
    cols: &[u32],
    counts: &[f32],
    other: &[f32],
    gram: &[f32],
    x: &mut [f32],
    s: &mut CgScratch,
    params: &AlsParams,
) {
    let k = x.len();
    let alpha = params.alpha as f32;
    let y_of = |c: u32| &other[c as usize * k..(c as usize + 1) * k];
    // r = b − A x
    matvec(&mut s.r, gram, x);
    s.r.iter_mut().for_each(|v| *v = -*v);
    for (&c, &n) in cols.iter().zip(counts) {
        let conf = 1.0 + alpha * n;
        let y = y_of(c);
        axpy(&mut s.r, conf - (conf - 1.0) * dot(y, x), y);
    }
    s.p.copy_from_slice(&s.r);
    let mut rs_old = dot(&s.r, &s.r);
    for _ in 0..params.cg_steps {
        if rs_old < 1e-20 {
            break;
        }
        matvec(&mut s.ap, gram, &s.p);
        for (&c, &n) in cols.iter().zip(counts) {
            let y = y_of(c);
            axpy(&mut s.ap, alpha * n * dot(y, &s.p), y);
        }
        let p_ap = dot(&s.p, &s.ap);
        if p_ap <= 0.0 || !p_ap.is_finite() {
            break;
        }
        let step = rs_old / p_ap;
        axpy(x, step, &s.p);
        axpy(&mut s.r, -step, &s.ap);
        let rs_new = dot(&s.r, &s.r);
        let beta = rs_new / rs_old;
        for (p, &r) in s.p.iter_mut().zip(&s.r) {
            *p = r + beta * *p;
        }
        rs_old = rs_new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ratings::Builder;

    #[test]
    fn csr_combines_duplicates_by_feedback_and_transposes() {
        let rows = [1, 0, 1, 1];
        let cols = [2, 1, 0, 2];
        let vals = [1.0, 2.0, 3.0, 4.0];
        let exp = Csr::from_triples(2, &rows, &cols, &vals, Feedback::Explicit);
        assert_eq!(exp.indptr, [0, 1, 3]);
        assert_eq!(exp.indices, [1, 0, 2]);
        assert_eq!(exp.values, [2.0, 3.0, 4.0], "the later rating wins");
        let imp = Csr::from_triples(2, &rows, &cols, &vals, Feedback::Implicit);
        assert_eq!(imp.values, [2.0, 3.0, 5.0], "counts add up");
        let t = imp.transpose(3);
        assert_eq!(t.indptr, [0, 1, 2, 3]);
        assert_eq!(t.indices, [1, 0, 1]);
        assert_eq!(t.values, [3.0, 2.0, 5.0]);
        assert_eq!(t.transpose(2), imp);
    }

    #[test]
    fn gram_matches_a_naive_product() {
        let k = 3;
        let f: Vec<f32> = (0..5000 * k)
            .map(|i| ((i % 17) as f32 - 8.0) * 0.1)
            .collect();
        let g = gram_f64(&f, k);
        for r in 0..k {
            for c in 0..k {
                let naive: f64 = f
                    .chunks_exact(k)
                    .map(|y| f64::from(y[r]) * f64::from(y[c]))
                    .sum();
                assert!((g[r * k + c] - naive).abs() < 1e-6 * naive.abs().max(1.0));
            }
        }
    }

    /// A rank-1 matrix, fully observed: explicit ALS with tiny λ reproduces it.
    #[test]
    fn explicit_als_fits_a_fully_observed_low_rank_matrix() {
        let u = [1.0f32, 2.0, -1.0, 0.5, 1.5];
        let v = [0.5f32, -1.0, 2.0, 1.0];
        let mut b = Builder::default();
        for (i, ui) in u.iter().enumerate() {
            for (j, vj) in v.iter().enumerate() {
                b.push(&format!("u{i}"), &format!("i{j}"), ui * vj);
            }
        }
        let data = b.finish();
        let params = AlsParams {
            feedback: Feedback::Explicit,
            rank: 2,
            iterations: 15,
            lambda: 1e-4,
            alpha: 1.0,
            cg_steps: 3,
            seed: 1,
        };
        let mut seen = 0;
        let model = train(&data, &params, |it| seen = it);
        assert_eq!(seen, 15);
        for row in 0..data.len() {
            let p = model.predict(data.users[row], data.items[row]);
            assert!(
                (p - data.values[row]).abs() < 0.01,
                "row {row}: {p} vs {}",
                data.values[row]
            );
        }
        model.validate().unwrap();
    }

    /// CG on the implicit normal equations converges to the exact (Cholesky) solution.
    #[test]
    fn implicit_cg_converges_to_the_exact_solve() {
        let k = 4;
        let other: Vec<f32> = (0..6 * k)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1)
            .collect();
        let cols = [0u32, 2, 5];
        let counts = [1.0f32, 3.0, 2.0];
        let params = AlsParams {
            feedback: Feedback::Implicit,
            rank: k,
            iterations: 1,
            lambda: 0.1,
            alpha: 2.0,
            cg_steps: 50,
            seed: 0,
        };
        let mut g = gram_f64(&other, k);
        (0..k).for_each(|d| g[d * k + d] += 0.1);
        let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
        let mut x = vec![0.0f32; k];
        solve_implicit_row(
            &cols,
            &counts,
            &other,
            &g32,
            &mut x,
            &mut CgScratch::new(k),
            &params,
        );
        // Exact: A = G + Σ (c−1) y yᵀ, b = Σ c y.
        let mut a = g.clone();
        let mut b = vec![0f64; k];
        for (&c, &n) in cols.iter().zip(&counts) {
            let conf = 1.0 + 2.0 * f64::from(n);
            let y = &other[c as usize * k..(c as usize + 1) * k];
            for r in 0..k {
                b[r] += conf * f64::from(y[r]);
                for col in 0..k {
                    a[r * k + col] += (conf - 1.0) * f64::from(y[r]) * f64::from(y[col]);
                }
            }
        }
        assert!(cholesky_solve(&mut a, &mut b, k));
        for (got, want) in x.iter().zip(&b) {
            assert!((f64::from(*got) - want).abs() < 1e-3, "{x:?} vs {b:?}");
        }
    }
}
