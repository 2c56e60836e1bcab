//! Drift as a number: the Population Stability Index of live traffic against the held-out data
//! a model was evaluated on.
//!
//! The trainer records, in the manifest, a [`DriftProfile`]: for the model's score and for each
//! input feature, [`DRIFT_BINS`] quantile bins of the held-out rows ([`Binned`]: the inner bin
//! edges and each bin's share of the rows). A server keeps the bins of its last
//! [`DRIFT_WINDOW`] requests in a fixed ring ([`DriftWindow`]: one byte per value, counts per
//! bin updated as rows come and go, O(features) per request, no allocation after start) and
//! exports `PSI = Σ (live − reference) · ln(live / reference)` over the bins, each share floored
//! at [`SHARE_FLOOR`] so that an empty bin gives a large but finite term. Conventional reading:
//! under 0.1 stable, 0.1-0.25 moderate shift, over 0.25 a shift worth acting on.
//!
//! Pure maths, no I/O: the trainer and the services share it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// Quantile bins per distribution (deciles). Repeated values (a categorical feature) can merge
/// bins, so a distribution may have fewer.
pub const DRIFT_BINS: usize = 10;
/// Live rows a server compares: its last this many requests.
pub const DRIFT_WINDOW: usize = 10_000;
/// Shares below this count as this in the PSI sum (empty bins).
pub const SHARE_FLOOR: f64 = 1e-4;
/// Most bins a manifest may carry per distribution: [`DriftWindow`] stores a bin as one byte.
pub const MAX_BINS: usize = 64;
/// A [`DriftTracker`] computes the PSIs every this many rows...
pub const PSI_EVERY: u64 = 256;
/// ...once its window holds at least this many (fewer rows give noisy shares).
pub const PSI_MIN_ROWS: usize = 1000;

/// One distribution: `edges` cut the line into `edges.len() + 1` bins (a value `x` falls in the
/// bin of the number of edges below it, so a value equal to an edge belongs to the lower bin),
/// and `shares[i]` is the reference share of bin `i`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binned {
    pub edges: Vec<f64>,
    pub shares: Vec<f64>,
}

impl Binned {
    /// Quantile bins of `values` (non-finite values are left out); `None` without any finite
    /// value.
    pub fn from_sample(values: &[f64], bins: usize) -> Option<Self> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let bins = bins.clamp(1, MAX_BINS);
        let mut edges: Vec<f64> = (1..bins)
            .map(|k| sorted[(k * sorted.len() / bins).min(sorted.len() - 1)])
            .collect();
        edges.dedup();
        // An edge equal to the largest value would leave the bin above it empty by construction.
        if edges.last() == sorted.last() {
            edges.pop();
        }
        let mut binned = Self {
            shares: vec![0.0; edges.len() + 1],
            edges,
        };
        for &v in &sorted {
            let bin = binned.bin(v);
            binned.shares[bin] += 1.0;
        }
        let n = sorted.len() as f64;
        binned.shares.iter_mut().for_each(|s| *s /= n);
        Some(binned)
    }

    /// The bin of `x`: how many edges are below it (NaN counts as the lowest bin).
    pub fn bin(&self, x: f64) -> usize {
        self.edges.partition_point(|&e| e < x)
    }

    /// The PSI of live bin `counts` (one per bin) against the reference shares; 0 without rows.
    pub fn psi(&self, counts: &[u32]) -> f64 {
        let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return 0.0;
        }
        self.shares
            .iter()
            .zip(counts)
            .map(|(&expected, &count)| {
                let actual = (f64::from(count) / total as f64).max(SHARE_FLOOR);
                let expected = expected.max(SHARE_FLOOR);
                (actual - expected) * (actual / expected).ln()
            })
            .sum()
    }

    /// # Errors
    /// A message naming what is wrong: bin counts, unsorted or non-finite edges, bad shares.
    pub fn validate(&self) -> Result<(), String> {
        if self.shares.len() != self.edges.len() + 1 || self.shares.len() > MAX_BINS {
            return Err(format!(
                "{} edges need {} shares (at most {MAX_BINS}), not {}",
                self.edges.len(),
                self.edges.len() + 1,
                self.shares.len()
            ));
        }
        if self.edges.iter().any(|e| !e.is_finite()) || !self.edges.is_sorted_by(|a, b| a < b) {
            return Err("edges must be finite and strictly increasing".into());
        }
        let sum: f64 = self.shares.iter().sum();
        if self.shares.iter().any(|s| !(0.0..=1.0).contains(s)) || (sum - 1.0).abs() > 1e-6 {
            return Err("shares must be in [0, 1] and add up to 1".into());
        }
        Ok(())
    }
}

/// What the trainer recorded about the held-out rows, for drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftProfile {
    /// Held-out rows the distributions were taken from.
    pub rows: u64,
    /// The model's score (P(fraud)).
    pub score: Binned,
    /// Each input feature, by name.
    pub features: BTreeMap<String, Binned>,
}

impl DriftProfile {
    /// # Errors
    /// A message naming the bad distribution.
    pub fn validate(&self) -> Result<(), String> {
        self.score.validate().map_err(|e| format!("score: {e}"))?;
        for (name, binned) in &self.features {
            binned
                .validate()
                .map_err(|e| format!("feature {name:?}: {e}"))?;
        }
        Ok(())
    }
}

/// The bins of the last `capacity` rows of `dims` values each, and the count per bin, in
/// memory fixed at creation: `capacity × dims` bytes plus `dims × bins` counters.
#[derive(Debug, Clone)]
pub struct DriftWindow {
    dims: usize,
    capacity: usize,
    /// Row-major ring of bin indices.
    ring: Vec<u8>,
    /// The next row to write.
    next: usize,
    /// Rows held (at most `capacity`).
    len: usize,
    /// `counts[d]`: rows per bin of dimension `d`.
    counts: Vec<Vec<u32>>,
}

impl DriftWindow {
    /// A window for distributions with the given bin counts (each at most [`MAX_BINS`]).
    pub fn new(bins_per_dim: &[usize], capacity: usize) -> Self {
        let dims = bins_per_dim.len();
        let capacity = capacity.max(1);
        Self {
            dims,
            capacity,
            ring: vec![0; capacity * dims],
            next: 0,
            len: 0,
            counts: bins_per_dim.iter().map(|&b| vec![0; b.max(1)]).collect(),
        }
    }

    /// Adds one row of bin indices (one per dimension), dropping the oldest when full. O(dims).
    pub fn push(&mut self, bins: &[u8]) {
        if bins.len() == self.dims {
            self.push_with(|d| bins[d]);
        }
    }

    /// [`DriftWindow::push`] with each dimension's bin from `bin_of(dimension)`, without a
    /// row to build first.
    pub fn push_with(&mut self, bin_of: impl Fn(usize) -> u8) {
        let row = &mut self.ring[self.next * self.dims..(self.next + 1) * self.dims];
        if self.len == self.capacity {
            for (d, &old) in row.iter().enumerate() {
                if let Some(c) = self.counts[d].get_mut(usize::from(old)) {
                    *c -= 1;
                }
            }
        } else {
            self.len += 1;
        }
        for (d, slot) in row.iter_mut().enumerate() {
            let counts = &mut self.counts[d];
            let bin = usize::from(bin_of(d)).min(counts.len() - 1);
            counts[bin] += 1;
            *slot = bin as u8;
        }
        self.next = (self.next + 1) % self.capacity;
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows per bin of dimension `dim`.
    pub fn counts(&self, dim: usize) -> &[u32] {
        &self.counts[dim]
    }

    /// Bytes held, fixed at creation.
    pub fn memory_bytes(&self) -> usize {
        self.ring.capacity() + self.counts.iter().map(|c| c.capacity() * 4).sum::<usize>()
    }
}

/// The PSIs of a server's live traffic against a version's [`DriftProfile`].
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReading {
    pub score: f64,
    /// Per input feature the profile has, by name.
    pub features: Vec<(String, f64)>,
}

/// A loaded version's drift state: its reference bins and the window of its last
/// [`DRIFT_WINDOW`] requests. [`DriftTracker::observe`] costs a binary search over at most
/// 63 edges per value and an uncontended lock for O(features) counter updates; every
/// [`PSI_EVERY`] rows it also sums the PSIs (a logarithm per bin).
#[derive(Debug)]
pub struct DriftTracker {
    score: Binned,
    /// (input position, name, bins) of each input the profile has a distribution for.
    features: Vec<(usize, String, Binned)>,
    window: Mutex<DriftWindow>,
    observed: AtomicU64,
}

impl DriftTracker {
    /// A tracker over `profile` for a model whose inputs are `inputs`, in order; inputs the
    /// profile has no distribution for are left out.
    pub fn new(profile: &DriftProfile, inputs: &[String]) -> Self {
        Self::with_window(profile, inputs, DRIFT_WINDOW)
    }

    /// [`DriftTracker::new`] over a window of `capacity` rows.
    pub fn with_window(profile: &DriftProfile, inputs: &[String], capacity: usize) -> Self {
        let features: Vec<(usize, String, Binned)> = inputs
            .iter()
            .enumerate()
            .filter_map(|(i, name)| Some((i, name.clone(), profile.features.get(name)?.clone())))
            .collect();
        let bins: Vec<usize> = std::iter::once(profile.score.shares.len())
            .chain(features.iter().map(|(_, _, b)| b.shares.len()))
            .collect();
        Self {
            score: profile.score.clone(),
            features,
            window: Mutex::new(DriftWindow::new(&bins, capacity)),
            observed: AtomicU64::new(0),
        }
    }

    /// Records one request (`inputs` in the model's order); every [`PSI_EVERY`] rows, once the
    /// window holds [`PSI_MIN_ROWS`], returns the current PSIs.
    pub fn observe(&self, score: f64, inputs: &[f64]) -> Option<DriftReading> {
        let bin = |b: &Binned, x: f64| u8::try_from(b.bin(x)).unwrap_or(u8::MAX);
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        window.push_with(|d| match d {
            0 => bin(&self.score, score),
            d => {
                let (i, _, b) = &self.features[d - 1];
                bin(b, inputs.get(*i).copied().unwrap_or(f64::NAN))
            }
        });
        let n = self.observed.fetch_add(1, Ordering::Relaxed) + 1;
        (n.is_multiple_of(PSI_EVERY) && window.len() >= PSI_MIN_ROWS.min(window.capacity))
            .then(|| self.reading(&window))
    }

    fn reading(&self, window: &DriftWindow) -> DriftReading {
        DriftReading {
            score: self.score.psi(window.counts(0)),
            features: self
                .features
                .iter()
                .enumerate()
                .map(|(d, (_, name, b))| (name.clone(), b.psi(window.counts(d + 1))))
                .collect(),
        }
    }

    /// Rows in the window.
    pub fn rows(&self) -> usize {
        self.window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
#[allow(clippy::print_stdout)] // The observed PSIs go to the test's output.
mod tests {
    use super::*;

    /// A seeded stream of values like the fraud generator's amount: log-normal-ish.
    fn sample(seed: u64, n: usize, shift: f64) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                (u * 4.0).exp() * 10.0 + shift
            })
            .collect()
    }

    fn window_psi(reference: &Binned, live: &[f64]) -> f64 {
        let mut window = DriftWindow::new(&[reference.shares.len()], DRIFT_WINDOW);
        for &v in live {
            window.push(&[reference.bin(v) as u8]);
        }
        reference.psi(window.counts(0))
    }

    #[test]
    fn quantile_bins_hold_equal_shares_and_merge_on_repeated_values() {
        let values: Vec<f64> = (0..1000).map(f64::from).collect();
        let binned = Binned::from_sample(&values, DRIFT_BINS).unwrap();
        assert_eq!(binned.edges.len(), 9);
        assert!(
            binned.shares.iter().all(|s| (s - 0.1).abs() < 0.002),
            "{binned:?}"
        );
        binned.validate().unwrap();
        // A 0/1 feature: two bins.
        let flags: Vec<f64> = (0..1000).map(|i| f64::from(i % 4 == 0)).collect();
        let binned = Binned::from_sample(&flags, DRIFT_BINS).unwrap();
        assert_eq!(binned.edges, [0.0]);
        assert_eq!(binned.shares, [0.75, 0.25]);
        assert!(Binned::from_sample(&[f64::NAN], DRIFT_BINS).is_none());
    }

    #[test]
    fn psi_is_the_textbook_sum_with_empty_bins_floored() {
        let binned = Binned {
            edges: vec![1.0],
            shares: vec![0.5, 0.5],
        };
        let expected = (0.8 - 0.5) * (0.8f64 / 0.5).ln() + (0.2 - 0.5) * (0.2f64 / 0.5).ln();
        assert!((binned.psi(&[8, 2]) - expected).abs() < 1e-12);
        assert!(binned.psi(&[5, 5]).abs() < 1e-12);
        let empty = (SHARE_FLOOR - 0.5) * (SHARE_FLOOR / 0.5).ln() + 0.5 * 2f64.ln();
        assert!((binned.psi(&[10, 0]) - empty).abs() < 1e-12);
    }

    #[test]
    fn traffic_like_the_training_data_stays_under_0_05_over_a_full_window() {
        let reference = Binned::from_sample(&sample(1, 20_000, 0.0), DRIFT_BINS).unwrap();
        let psis: Vec<f64> = (2..6)
            .map(|seed| window_psi(&reference, &sample(seed, DRIFT_WINDOW, 0.0)))
            .collect();
        println!("PSI of 4 full windows drawn like the reference: {psis:.4?}");
        assert!(psis.iter().all(|&psi| psi < 0.05), "{psis:?}");
    }

    #[test]
    fn a_shifted_feature_passes_0_25_within_one_window() {
        let reference = Binned::from_sample(&sample(1, 20_000, 0.0), DRIFT_BINS).unwrap();
        // Amounts up by 100 (about the median): the old traffic leaves the window row by row.
        let mut live = sample(2, DRIFT_WINDOW, 0.0);
        live.extend(sample(3, DRIFT_WINDOW, 100.0));
        let mut window = DriftWindow::new(&[reference.shares.len()], DRIFT_WINDOW);
        let mut crossed_after = None;
        for (i, &v) in live.iter().enumerate() {
            window.push(&[reference.bin(v) as u8]);
            if i >= DRIFT_WINDOW
                && crossed_after.is_none()
                && reference.psi(window.counts(0)) > 0.25
            {
                crossed_after = Some(i + 1 - DRIFT_WINDOW);
            }
        }
        let rows = crossed_after.expect("the shift crosses 0.25");
        println!(
            "shifted amounts: PSI over 0.25 after {rows} of {DRIFT_WINDOW} rows; {:.3} once the window is all shifted",
            reference.psi(window.counts(0))
        );
        assert!(rows <= DRIFT_WINDOW, "{rows} shifted rows");
        assert!(
            reference.psi(window.counts(0)) > 1.0,
            "a full window of shifted rows"
        );
    }

    #[test]
    fn the_window_never_grows_with_traffic() {
        let mut window = DriftWindow::new(&[10, 10, 2], 1000);
        let bytes = window.memory_bytes();
        for i in 0..100_000u32 {
            window.push(&[(i % 10) as u8, (i % 7) as u8, (i % 2) as u8]);
        }
        assert_eq!(window.len(), 1000);
        assert_eq!(window.memory_bytes(), bytes);
        for d in 0..3 {
            assert_eq!(window.counts(d).iter().sum::<u32>(), 1000, "dim {d}");
        }
        // The last 1000 rows of i % 2: 500 each.
        assert_eq!(window.counts(2), [500, 500]);
    }

    #[test]
    fn bad_profiles_are_named() {
        let ok = Binned {
            edges: vec![1.0],
            shares: vec![0.5, 0.5],
        };
        let bad_edges = Binned {
            edges: vec![2.0, 1.0],
            shares: vec![0.3, 0.3, 0.4],
        };
        let bad_shares = Binned {
            edges: vec![1.0],
            shares: vec![0.5, 0.6],
        };
        let profile = DriftProfile {
            rows: 10,
            score: ok.clone(),
            features: BTreeMap::from([("f1".into(), ok), ("f2".into(), bad_edges)]),
        };
        assert!(profile.validate().unwrap_err().contains("f2"));
        assert!(bad_shares.validate().unwrap_err().contains("add up to 1"));
    }

    #[test]
    fn a_tracker_reports_every_psi_every_256_rows_and_names_the_shifted_feature() {
        let amount = sample(1, 20_000, 0.0);
        let count = sample(9, 20_000, 0.0);
        let profile = DriftProfile {
            rows: 20_000,
            score: Binned::from_sample(&sample(5, 20_000, 0.0), DRIFT_BINS).unwrap(),
            features: BTreeMap::from([
                (
                    "amount".into(),
                    Binned::from_sample(&amount, DRIFT_BINS).unwrap(),
                ),
                (
                    "count".into(),
                    Binned::from_sample(&count, DRIFT_BINS).unwrap(),
                ),
            ]),
        };
        // Inputs in another order than the profile's, and one it does not know.
        let inputs = ["count".to_owned(), "other".to_owned(), "amount".to_owned()];
        let tracker = DriftTracker::with_window(&profile, &inputs, 2000);
        let (scores, counts) = (sample(6, 4000, 0.0), sample(10, 4000, 0.0));
        let shifted = sample(2, 4000, 100.0);
        let mut readings = Vec::new();
        for i in 0..4000 {
            if let Some(r) = tracker.observe(scores[i], &[counts[i], 0.0, shifted[i]]) {
                readings.push((i + 1, r));
            }
        }
        let at: Vec<usize> = readings.iter().map(|(i, _)| *i).collect();
        assert_eq!(
            at,
            (4..=15).map(|k| k * 256).collect::<Vec<_>>(),
            "from 1000 rows on"
        );
        let last = &readings.last().unwrap().1;
        let psi = |name: &str| last.features.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(psi("amount") > 0.25, "{last:?}");
        assert!(psi("count") < 0.05 && last.score < 0.05, "{last:?}");
        assert_eq!(
            last.features.len(),
            2,
            "no PSI for an input without a profile"
        );
        assert_eq!(tracker.rows(), 2000);
    }
}
