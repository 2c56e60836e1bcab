//! Synthetic ratings with known structure: a planted rank-R model `U·Vᵀ` plus Gaussian noise,
//! observed with Zipf-like item popularity.
//!
//! Explicit mode writes `rating = uᵤ·vᵢ + ε`, ε ~ N(0, σ²), so the best achievable held-out RMSE
//! is σ (the noise floor): a test can tell how close ALS gets. Factor entries are
//! N(0, 1/√R), so `u·v` has unit variance whatever the rank.
//! Implicit mode writes interaction counts: an item drawn by popularity is interacted with when
//! `u·v + ε > 1` (about one draw in five), `1 + ⌊2·(u·v + ε − 1)⌋` times (at most 20), so who
//! interacts with what follows the planted factors, and popularity alone is a beatable baseline.
//!
//! A single seeded generator makes the output a pure function of the arguments.

use std::collections::HashSet;
use std::io::{BufWriter, Write as _};
use std::path::Path;

use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use rand_distr::{Distribution as _, Normal};
use serde::Serialize;

use crate::Error;
use crate::data::ratings::RatingFormat;

/// Implicit mode: a drawn item is interacted with when `u·v + ε` exceeds this (one sd of `u·v`).
const IMPLICIT_THRESHOLD: f64 = 1.0;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub users: usize,
    pub items: usize,
    pub rank: usize,
    /// Fraction of the user × item cells observed (before implicit rejection).
    pub density: f64,
    pub noise: f64,
    /// Zipf exponent of item popularity (0 = uniform).
    pub popularity_skew: f64,
    pub seed: u64,
    pub implicit: bool,
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct Generated {
    pub rows: u64,
    pub users: usize,
    pub items: usize,
    pub rank: usize,
    pub density: f64,
    pub implicit: bool,
    /// The best achievable held-out RMSE (explicit): the noise standard deviation.
    pub noise_floor_rmse: Option<f64>,
}

/// Writes the data set to `out` in `format` (`Auto` means TSV).
///
/// # Errors
/// [`Error::Usage`] for impossible sizes, [`Error::Output`] when writing fails.
pub fn write_ratings(spec: &Spec, format: RatingFormat, out: &Path) -> Result<Generated, Error> {
    if spec.users == 0 || spec.items == 0 || spec.rank == 0 {
        return Err(Error::Usage(
            "--users, --items and --rank must be positive".into(),
        ));
    }
    if !(spec.density > 0.0 && spec.density <= 0.5) {
        return Err(Error::Usage("--density must be in (0, 0.5]".into()));
    }
    if !(spec.noise.is_finite() && spec.noise >= 0.0) {
        return Err(Error::Usage("--noise must be a non-negative number".into()));
    }
    let io = |source| Error::Output {
        path: out.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(out).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let scale = 1.0 / (spec.rank as f64).sqrt().sqrt();
    let factor = Normal::new(0.0, scale).map_err(|e| Error::Usage(e.to_string()))?;
    let noise = Normal::new(0.0, spec.noise).map_err(|e| Error::Usage(e.to_string()))?;
    let u: Vec<f64> = (0..spec.users * spec.rank)
        .map(|_| factor.sample(&mut rng))
        .collect();
    let v: Vec<f64> = (0..spec.items * spec.rank)
        .map(|_| factor.sample(&mut rng))
        .collect();
    // Popularity rank r has weight 1/(r+1)^s; ranks are dealt to item ids at random.
    let mut cdf: Vec<f64> = (0..spec.items)
        .map(|r| 1.0 / ((r + 1) as f64).powf(spec.popularity_skew))
        .collect();
    for r in 1..cdf.len() {
        cdf[r] += cdf[r - 1];
    }
    let total = cdf[cdf.len() - 1];
    let mut item_of_rank: Vec<usize> = (0..spec.items).collect();
    item_of_rank.shuffle(&mut rng);

    let (sep, header) = match format {
        // `Parquet` cannot be asked for (`#[value(skip)]`); text is written.
        RatingFormat::Tsv | RatingFormat::Auto | RatingFormat::Parquet => ("\t", None),
        RatingFormat::Dcolon => ("::", None),
        RatingFormat::Csv => (",", Some("userId,movieId,rating,timestamp")),
    };
    if let Some(h) = header {
        writeln!(w, "{h}").map_err(io)?;
    }
    let mean_per_user = spec.density * spec.items as f64;
    let mut rows = 0u64;
    let mut taken = HashSet::new();
    for user in 0..spec.users {
        // Between half and 1.5 times the mean, at least one, at most half the catalogue.
        let target = (mean_per_user * rng.gen_range(0.5..1.5)).round().max(1.0) as usize;
        let target = target.min(spec.items.div_ceil(2));
        taken.clear();
        let mut attempts = 0usize;
        while taken.len() < target && attempts < target * 50 {
            attempts += 1;
            let x = rng.r#gen::<f64>() * total;
            let item = item_of_rank[cdf.partition_point(|&c| c <= x).min(spec.items - 1)];
            if !taken.insert(item) {
                continue;
            }
            let uv: f64 = (0..spec.rank)
                .map(|d| u[user * spec.rank + d] * v[item * spec.rank + d])
                .sum();
            let value = uv + noise.sample(&mut rng);
            let ts = 1_000_000_000 + rows;
            if spec.implicit {
                if value <= IMPLICIT_THRESHOLD {
                    continue;
                }
                let count = (1.0 + (2.0 * (value - IMPLICIT_THRESHOLD)).floor()).min(20.0);
                writeln!(w, "{}{sep}{}{sep}{count}{sep}{ts}", user + 1, item + 1).map_err(io)?;
            } else {
                writeln!(w, "{}{sep}{}{sep}{value:.4}{sep}{ts}", user + 1, item + 1).map_err(io)?;
            }
            rows += 1;
        }
    }
    w.flush().map_err(io)?;
    Ok(Generated {
        rows,
        users: spec.users,
        items: spec.items,
        rank: spec.rank,
        density: rows as f64 / (spec.users as f64 * spec.items as f64),
        implicit: spec.implicit,
        noise_floor_rmse: (!spec.implicit).then_some(spec.noise),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ratings::parse_ratings;

    fn spec(implicit: bool) -> Spec {
        Spec {
            users: 60,
            items: 40,
            rank: 3,
            density: 0.2,
            noise: 0.1,
            popularity_skew: 1.0,
            seed: 7,
            implicit,
        }
    }

    #[test]
    fn output_is_deterministic_for_a_seed_and_readable_in_every_format() {
        let dir = tempfile::tempdir().unwrap();
        let mut texts = Vec::new();
        for (n, format) in [RatingFormat::Tsv, RatingFormat::Dcolon, RatingFormat::Csv]
            .into_iter()
            .enumerate()
        {
            let path = dir.path().join(format!("r{n}"));
            let g = write_ratings(&spec(false), format, &path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let read = parse_ratings("r", &bytes, RatingFormat::Auto, false).unwrap();
            assert_eq!(read.format, format);
            assert_eq!(read.ratings.len() as u64, g.rows);
            assert_eq!(g.noise_floor_rmse, Some(0.1));
            texts.push(read.ratings);
        }
        assert_eq!(texts[0], texts[1], "same seed, same data");
        let other = dir.path().join("other");
        write_ratings(
            &Spec {
                seed: 8,
                ..spec(false)
            },
            RatingFormat::Tsv,
            &other,
        )
        .unwrap();
        let bytes = std::fs::read(&other).unwrap();
        let read = parse_ratings("r", &bytes, RatingFormat::Auto, false).unwrap();
        assert_ne!(
            read.ratings.values, texts[0].values,
            "another seed, other data"
        );
    }

    #[test]
    fn popularity_is_skewed_and_implicit_values_are_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imp");
        write_ratings(&spec(true), RatingFormat::Tsv, &path).unwrap();
        let read = parse_ratings(
            "r",
            &std::fs::read(&path).unwrap(),
            RatingFormat::Tsv,
            false,
        )
        .unwrap()
        .ratings;
        assert!(read.values.iter().all(|&c| c >= 1.0 && c.fract() == 0.0));
        let mut per_item = vec![0usize; read.n_items()];
        read.items.iter().for_each(|&i| per_item[i as usize] += 1);
        per_item.sort_unstable();
        let top: usize = per_item.iter().rev().take(4).sum();
        let bottom: usize = per_item.iter().take(4).sum();
        assert!(top > 3 * bottom, "top {top} vs bottom {bottom}");
    }
}
