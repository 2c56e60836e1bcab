//! Quantile binning of features (as LightGBM and scikit-learn's histogram trees do): each
//! feature's values are mapped once to at most 255 ordered bins, so a node finds its best split
//! by filling a 255-slot histogram instead of sorting its rows.
//!
//! A feature with at most `max_bins` distinct values gets one bin per value, so nothing is lost;
//! a feature with more is cut at (approximate) quantiles of the training rows. Split thresholds
//! are midpoints between the largest value of one bin and the smallest of the next, so the
//! served tree's `x <= threshold` sends exactly the training rows of bins `0..=b` left.

/// The bin edges of every feature.
#[derive(Debug, Clone)]
pub struct Binner {
    /// `thresholds[f][b]`: rows of feature `f` in bin `<= b` have `x <= thresholds[f][b]`.
    /// A feature has `thresholds[f].len() + 1` bins.
    thresholds: Vec<Vec<f64>>,
}

/// Features as bin numbers, column after column.
#[derive(Debug, Clone)]
pub struct BinnedColumns {
    pub n_rows: usize,
    /// `bins[f * n_rows + i]`: the bin of row `i`'s feature `f`.
    pub bins: Vec<u8>,
}

impl BinnedColumns {
    pub fn column(&self, feature: usize) -> &[u8] {
        &self.bins[feature * self.n_rows..(feature + 1) * self.n_rows]
    }
}

impl Binner {
    /// Learns bin edges from row-major `values` with `n_features` columns (all finite).
    ///
    /// # Panics
    /// If `max_bins` is not in `2..=256`.
    pub fn fit(values: &[f64], n_features: usize, max_bins: usize) -> Self {
        assert!((2..=256).contains(&max_bins), "max_bins {max_bins}");
        let thresholds = (0..n_features)
            .map(|f| {
                let mut column: Vec<f64> =
                    values.iter().skip(f).step_by(n_features).copied().collect();
                column.sort_unstable_by(f64::total_cmp);
                feature_thresholds(&column, max_bins)
            })
            .collect();
        Self { thresholds }
    }

    pub fn n_bins(&self, feature: usize) -> usize {
        self.thresholds[feature].len() + 1
    }

    /// The split threshold between bins `..=bin` and `bin + 1..`.
    pub fn threshold(&self, feature: usize, bin: usize) -> f64 {
        self.thresholds[feature][bin]
    }

    /// The bin of `value` for `feature`.
    pub fn bin_of(&self, feature: usize, value: f64) -> u8 {
        // Bins are numbered by how many thresholds lie strictly below the value; at most 255.
        self.thresholds[feature].partition_point(|&t| t < value) as u8
    }

    /// Bins row-major `values` column by column.
    pub fn transform(&self, values: &[f64]) -> BinnedColumns {
        let p = self.thresholds.len();
        let n_rows = values.len().checked_div(p).unwrap_or(0);
        let mut bins = Vec::with_capacity(n_rows * p);
        for f in 0..p {
            bins.extend(values.iter().skip(f).step_by(p).map(|&v| self.bin_of(f, v)));
        }
        BinnedColumns { n_rows, bins }
    }
}

/// Thresholds for one sorted column: at most `max_bins - 1` cut points between distinct values.
fn feature_thresholds(sorted: &[f64], max_bins: usize) -> Vec<f64> {
    let mut distinct: Vec<(f64, usize)> = Vec::new();
    for &v in sorted {
        match distinct.last_mut() {
            Some((last, count)) if *last == v => *count += 1,
            _ => distinct.push((v, 1)),
        }
    }
    if distinct.len() <= max_bins {
        return distinct
            .windows(2)
            .map(|w| midpoint(w[0].0, w[1].0))
            .collect();
    }
    // Cut after the distinct value where the running count first reaches each quantile.
    let n = sorted.len() as f64;
    let mut thresholds = Vec::with_capacity(max_bins - 1);
    let mut seen = 0usize;
    let mut next_cut = 1usize;
    for w in distinct.windows(2) {
        seen += w[0].1;
        if seen as f64 >= next_cut as f64 * n / max_bins as f64 {
            thresholds.push(midpoint(w[0].0, w[1].0));
            while next_cut < max_bins && seen as f64 >= next_cut as f64 * n / max_bins as f64 {
                next_cut += 1;
            }
            if thresholds.len() == max_bins - 1 {
                break;
            }
        }
    }
    thresholds
}

/// A threshold strictly between `a < b` that keeps `a` left and `b` right, even for adjacent
/// floats.
fn midpoint(a: f64, b: f64) -> f64 {
    let m = a + (b - a) / 2.0;
    if m < b && m >= a { m } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_one_bin_each() {
        let values = [3.0, 1.0, 2.0, 1.0, 3.0];
        let b = Binner::fit(&values, 1, 255);
        assert_eq!(b.n_bins(0), 3);
        assert_eq!((b.threshold(0, 0), b.threshold(0, 1)), (1.5, 2.5));
        assert_eq!(b.transform(&values).bins, [2, 0, 1, 0, 2]);
        // Unseen values fall into the nearest bin by threshold.
        assert_eq!(
            (b.bin_of(0, -9.0), b.bin_of(0, 1.5), b.bin_of(0, 99.0)),
            (0, 0, 2)
        );
    }

    #[test]
    fn many_distinct_values_are_cut_at_quantiles() {
        let values: Vec<f64> = (0..1000).map(f64::from).collect();
        let b = Binner::fit(&values, 1, 4);
        assert_eq!(b.n_bins(0), 4);
        let binned = b.transform(&values);
        let mut counts = [0usize; 4];
        for &bin in &binned.bins {
            counts[bin as usize] += 1;
        }
        assert_eq!(counts, [250, 250, 250, 250]);
        // The served rule `x <= threshold` agrees with the bins of the training rows.
        for (i, &v) in values.iter().enumerate() {
            for t in 0..3 {
                assert_eq!(v <= b.threshold(0, t), binned.bins[i] as usize <= t);
            }
        }
    }

    #[test]
    fn columns_are_binned_independently() {
        let values = [1.0, 10.0, 2.0, 20.0, 3.0, 30.0];
        let binned = Binner::fit(&values, 2, 255).transform(&values);
        assert_eq!(binned.column(0), [0, 1, 2]);
        assert_eq!(binned.column(1), [0, 1, 2]);
    }

    #[test]
    fn adjacent_floats_still_split() {
        let a = 1.0f64;
        let b = f64::from_bits(a.to_bits() + 1);
        let m = midpoint(a, b);
        assert!(a <= m && b > m);
    }
}
