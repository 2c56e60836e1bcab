//! A CART random forest for two classes, written here rather than taken from smartcore.
//!
//! Why not smartcore 0.7 (the crate the brief first named): its `RandomForestClassifier` has no
//! `predict_proba` and keeps its trees private, so neither P(fraud) nor the served
//! [`FlatTree`] layout can be had from it; and it trains on one thread, argsorting every column
//! per tree and scanning all n rows for each of the m candidate features at every node
//! (O(nodes × m × n) per tree), which is several times slower than scikit-learn on the
//! benchmark in `bench/fraud`.
//!
//! What this one does, the way scikit-learn's `RandomForestClassifier` does it unless noted:
//! - bootstrap: each tree draws n rows with replacement; a drawn row's multiplicity is its weight;
//! - Gini impurity on weighted class counts; class weights (`balanced`: `n / (2 · n_class)`)
//!   multiply the bootstrap weights, so a leaf's value is the class-weighted fraction of fraud
//!   among its in-bag rows, and the forest's mean is P(fraud) in `predict_proba`'s sense;
//! - `max_features` candidate features per split, drawn without replacement; if none of them can
//!   split the node, further features are tried (as scikit-learn does);
//! - `min_samples_split` / `min_samples_leaf` count distinct in-bag rows; a split must lower the
//!   impurity (scikit-learn also takes zero-gain splits);
//! - **different:** features are pre-binned into at most 255 quantile bins (LightGBM style,
//!   [`super::binning`]), so a node's split search fills a histogram in O(rows) per candidate
//!   feature, with no sorting; thresholds are real values between bins, so the served tree needs
//!   no binning;
//! - trees are built in parallel with rayon, each from its own RNG seeded by (seed, tree index),
//!   so the forest is identical for a seed whatever the thread count.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use rayon::prelude::*;
use suite_models::forest::{FlatTree, LEAF};

use super::binning::{BinnedColumns, Binner};
use crate::Error;
use crate::data::table::Table;

/// The largest bin count; bins are stored as `u8`.
pub const MAX_BINS: usize = 255;

/// How the two classes are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassWeight {
    /// `n / (2 · n_class)`: each class carries half the total weight (scikit-learn's `balanced`).
    Balanced,
    /// Every row weighs 1.
    None,
}

impl ClassWeight {
    /// `[weight of class 0, weight of class 1]` for these labels.
    pub fn weights(self, labels: &[u8]) -> [f64; 2] {
        match self {
            Self::None => [1.0, 1.0],
            Self::Balanced => {
                let n = labels.len() as f64;
                let pos = labels.iter().filter(|&&y| y == 1).count() as f64;
                let neg = n - pos;
                let w = |count: f64| if count > 0.0 { n / (2.0 * count) } else { 1.0 };
                [w(neg), w(pos)]
            }
        }
    }
}

/// Hyperparameters, resolved (no "sqrt" left).
#[derive(Debug, Clone)]
pub struct ForestParams {
    pub n_trees: usize,
    /// `None`: grow until pure or too small.
    pub max_depth: Option<usize>,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    /// Candidate features per split, `1..=p`.
    pub max_features: usize,
    pub class_weight: ClassWeight,
    pub seed: u64,
    pub max_bins: usize,
    /// Rayon threads; 0 means one per core.
    pub threads: usize,
}

/// Fits a forest on `table`; `on_tree` is called as each tree finishes (progress).
///
/// # Errors
/// [`Error::Training`] for an empty table, a single class, or bad parameters.
pub fn fit_forest(
    table: &Table,
    params: &ForestParams,
    on_tree: &(dyn Fn() + Sync),
) -> Result<Vec<FlatTree>, Error> {
    table.require_both_classes("the training split")?;
    if params.n_trees == 0 || params.max_features == 0 || params.max_depth == Some(0) {
        return Err(Error::Training(
            "trees, max features and max depth must be at least 1".into(),
        ));
    }
    let binner = Binner::fit(&table.values, table.n_features(), params.max_bins);
    let data = TrainingData {
        binned: binner.transform(&table.values),
        binner,
        labels: &table.labels,
        class_weight: params.class_weight.weights(&table.labels),
        n_features: table.n_features(),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(params.threads)
        .build()
        .map_err(|e| Error::Training(format!("cannot start training threads: {e}")))?;
    Ok(pool.install(|| {
        (0..params.n_trees)
            .into_par_iter()
            .map(|t| {
                let tree = TreeBuilder::new(&data, params, t).build();
                on_tree();
                tree
            })
            .collect()
    }))
}

/// What every tree reads, shared between threads.
struct TrainingData<'a> {
    binner: Binner,
    binned: BinnedColumns,
    labels: &'a [u8],
    class_weight: [f64; 2],
    n_features: usize,
}

/// Weighted class totals and distinct row count of a set of rows.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    w: [f64; 2],
    n: usize,
}

impl Totals {
    fn weight(&self) -> f64 {
        self.w[0] + self.w[1]
    }

    /// `Σ w_c² / W`: the Gini criterion's proxy; a split maximises the children's sum.
    fn proxy(&self) -> f64 {
        (self.w[0] * self.w[0] + self.w[1] * self.w[1]) / self.weight()
    }

    fn minus(&self, other: &Self) -> Self {
        Self {
            w: [self.w[0] - other.w[0], self.w[1] - other.w[1]],
            n: self.n - other.n,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    /// Rows with `bin <= bin` go left.
    bin: u8,
    proxy: f64,
}

struct TreeBuilder<'a> {
    data: &'a TrainingData<'a>,
    params: &'a ForestParams,
    rng: StdRng,
    /// In-bag rows; each node owns a contiguous range.
    rows: Vec<u32>,
    /// Per row: bootstrap count × class weight (0 when out of bag).
    weight: Vec<f64>,
    features: Vec<usize>,
    histogram: Vec<Totals>,
    tree: FlatTree,
}

/// A node waiting to be grown.
struct Pending {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
}

impl<'a> TreeBuilder<'a> {
    fn new(data: &'a TrainingData<'a>, params: &'a ForestParams, index: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(splitmix64(params.seed ^ splitmix64(index as u64)));
        let n = data.labels.len();
        let mut counts = vec![0u32; n];
        for _ in 0..n {
            counts[rng.gen_range(0..n)] += 1;
        }
        let weight: Vec<f64> = counts
            .iter()
            .zip(data.labels)
            .map(|(&c, &y)| f64::from(c) * data.class_weight[usize::from(y)])
            .collect();
        let rows = (0..n)
            .filter(|&i| counts[i] > 0)
            .map(|i| i as u32)
            .collect();
        Self {
            data,
            params,
            rng,
            rows,
            weight,
            features: (0..data.n_features).collect(),
            histogram: vec![Totals::default(); MAX_BINS + 1],
            tree: FlatTree {
                feature: Vec::new(),
                threshold: Vec::new(),
                left: Vec::new(),
                right: Vec::new(),
                value: Vec::new(),
            },
        }
    }

    fn build(mut self) -> FlatTree {
        let root = self.push_node();
        let mut stack = vec![Pending {
            node: root,
            start: 0,
            end: self.rows.len(),
            depth: 0,
        }];
        while let Some(p) = stack.pop() {
            let totals = self.totals(p.start, p.end);
            self.tree.value[p.node] = (totals.w[1] / totals.weight()) as f32;
            let Some(split) = self.best_split(&p, &totals) else {
                continue;
            };
            let mid = self.partition(&p, &split);
            let (left, right) = (self.push_node(), self.push_node());
            let node = p.node;
            self.tree.feature[node] = split.feature as u32;
            self.tree.threshold[node] = self
                .data
                .binner
                .threshold(split.feature, usize::from(split.bin));
            self.tree.left[node] = left as u32;
            self.tree.right[node] = right as u32;
            let depth = p.depth + 1;
            stack.push(Pending {
                node: right,
                start: mid,
                end: p.end,
                depth,
            });
            stack.push(Pending {
                node: left,
                start: p.start,
                end: mid,
                depth,
            });
        }
        self.tree
    }

    /// A new leaf; children are always pushed after their parent, as the served format needs.
    fn push_node(&mut self) -> usize {
        let t = &mut self.tree;
        t.feature.push(LEAF);
        t.threshold.push(0.0);
        t.left.push(0);
        t.right.push(0);
        t.value.push(0.0);
        t.feature.len() - 1
    }

    fn totals(&self, start: usize, end: usize) -> Totals {
        let mut t = Totals::default();
        for &r in &self.rows[start..end] {
            let r = r as usize;
            t.w[usize::from(self.data.labels[r])] += self.weight[r];
        }
        t.n = end - start;
        t
    }

    fn best_split(&mut self, p: &Pending, totals: &Totals) -> Option<Split> {
        let params = self.params;
        let pure = totals.w[0] <= 0.0 || totals.w[1] <= 0.0;
        if pure
            || params.max_depth.is_some_and(|d| p.depth >= d)
            || totals.n < params.min_samples_split
            || totals.n < 2 * params.min_samples_leaf
        {
            return None;
        }
        let parent = totals.proxy();
        let mut best: Option<Split> = None;
        let p_features = self.features.len();
        for k in 0..p_features {
            if k >= params.max_features && best.is_some() {
                break;
            }
            let j = self.rng.gen_range(k..p_features);
            self.features.swap(k, j);
            let feature = self.features[k];
            if let Some(split) = self.best_split_on(feature, p, totals)
                && split.proxy > parent * (1.0 + 1e-12)
                && best.is_none_or(|b| split.proxy > b.proxy)
            {
                best = Some(split);
            }
        }
        best
    }

    /// The best split of the node's rows on one feature, from its histogram.
    fn best_split_on(&mut self, feature: usize, p: &Pending, totals: &Totals) -> Option<Split> {
        let n_bins = self.data.binner.n_bins(feature);
        if n_bins < 2 {
            return None;
        }
        let histogram = &mut self.histogram[..n_bins];
        histogram.fill(Totals::default());
        let column = self.data.binned.column(feature);
        for &r in &self.rows[p.start..p.end] {
            let r = r as usize;
            let h = &mut histogram[usize::from(column[r])];
            h.w[usize::from(self.data.labels[r])] += self.weight[r];
            h.n += 1;
        }
        let min_leaf = self.params.min_samples_leaf;
        let mut left = Totals::default();
        let mut previous: Option<usize> = None;
        let mut best: Option<Split> = None;
        for (bin, h) in histogram.iter().enumerate() {
            if h.n == 0 {
                continue;
            }
            if let Some(last_left) = previous {
                let right = totals.minus(&left);
                if right.n < min_leaf {
                    break;
                }
                if left.n >= min_leaf && left.weight() > 0.0 && right.weight() > 0.0 {
                    let proxy = left.proxy() + right.proxy();
                    if best.is_none_or(|b| proxy > b.proxy) {
                        // Any threshold in the gap between the two occupied bins splits these
                        // rows the same way; take the middle of the gap, as a midpoint split
                        // between the node's values would.
                        let bin = (last_left + bin - 1) / 2;
                        best = Some(Split {
                            feature,
                            bin: bin as u8,
                            proxy,
                        });
                    }
                }
            }
            left.w[0] += h.w[0];
            left.w[1] += h.w[1];
            left.n += h.n;
            previous = Some(bin);
        }
        best
    }

    /// Reorders the node's rows so the left child's come first; returns where the right's start.
    fn partition(&mut self, p: &Pending, split: &Split) -> usize {
        let column = self.data.binned.column(split.feature);
        let rows = &mut self.rows[p.start..p.end];
        let mut mid = 0;
        for i in 0..rows.len() {
            if column[rows[i] as usize] <= split.bin {
                rows.swap(i, mid);
                mid += 1;
            }
        }
        p.start + mid
    }
}

/// Mixes a seed (splitmix64), so nearby seeds and tree indices give unrelated streams.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use suite_models::forest::FraudModel;

    use super::*;

    fn params(n_trees: usize, threads: usize) -> ForestParams {
        ForestParams {
            n_trees,
            max_depth: Some(8),
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: 1,
            class_weight: ClassWeight::Balanced,
            seed: 7,
            max_bins: MAX_BINS,
            threads,
        }
    }

    /// XOR of two features on a grid (no single feature helps: needs depth, not a linear cut),
    /// plus a noise feature.
    fn xor_table() -> Table {
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for i in 0..40 {
            for j in 0..40 {
                let (a, b) = (f64::from(i) / 40.0, f64::from(j) / 40.0);
                values.extend_from_slice(&[a, b, f64::from((i * 7 + j * 13) % 17)]);
                labels.push(u8::from((a < 0.5) != (b < 0.5)));
            }
        }
        Table {
            feature_names: vec!["a".into(), "b".into(), "noise".into()],
            values,
            labels,
            keys: Vec::new(),
            skipped: 0,
        }
    }

    fn model(trees: Vec<FlatTree>) -> FraudModel {
        FraudModel {
            feature_names: vec!["a".into(), "b".into(), "noise".into()],
            trees,
            threshold: 0.5,
        }
    }

    #[test]
    fn the_forest_learns_a_non_linear_rule_and_is_valid() {
        let table = xor_table();
        let m = model(fit_forest(&table, &params(20, 2), &|| {}).unwrap());
        let m = m.compile(None).unwrap();
        let correct = (0..table.n_rows())
            .filter(|&i| m.class_of(m.predict_proba(table.row(i))) == table.labels[i])
            .count();
        assert!(correct as f64 / table.n_rows() as f64 > 0.97, "{correct}");
        let p = m.predict_proba(&[0.2, 0.8, 0.0]);
        assert!(p > 0.9, "{p}");
    }

    #[test]
    fn the_seed_decides_the_forest_not_the_thread_count() {
        let table = xor_table();
        let one = fit_forest(&table, &params(6, 1), &|| {}).unwrap();
        let two = fit_forest(&table, &params(6, 2), &|| {}).unwrap();
        assert_eq!(one, two);
        let mut other = params(6, 2);
        other.seed = 8;
        assert_ne!(one, fit_forest(&table, &other, &|| {}).unwrap());
    }

    #[test]
    fn leaves_hold_the_class_weighted_fraud_fraction() {
        // Depth 1 on one feature that cannot separate: the root stays a leaf whose value is the
        // weighted fraction. Unweighted with 1 fraud in 4 it is about 1/4 of the in-bag weight;
        // balanced, each class carries half the weight.
        let table = Table {
            feature_names: vec!["x".into()],
            values: vec![1.0; 400],
            labels: (0..400).map(|i| u8::from(i % 4 == 0)).collect(),
            keys: Vec::new(),
            skipped: 0,
        };
        let mut p = params(1, 1);
        p.max_depth = Some(1);
        let balanced = fit_forest(&table, &p, &|| {}).unwrap();
        assert_eq!(balanced[0].feature, [LEAF]);
        assert!(
            (balanced[0].value[0] - 0.5).abs() < 0.1,
            "{:?}",
            balanced[0].value
        );
        p.class_weight = ClassWeight::None;
        let plain = fit_forest(&table, &p, &|| {}).unwrap();
        assert!(
            (plain[0].value[0] - 0.25).abs() < 0.08,
            "{:?}",
            plain[0].value
        );
        assert_eq!(
            ClassWeight::Balanced.weights(&[0, 0, 0, 1]),
            [4.0 / 6.0, 2.0]
        );
    }

    #[test]
    fn depth_and_leaf_size_limits_hold() {
        let table = xor_table();
        let mut p = params(3, 2);
        p.max_depth = Some(1);
        for tree in fit_forest(&table, &p, &|| {}).unwrap() {
            assert!(tree.feature.len() <= 3, "{}", tree.feature.len());
        }
        p.max_depth = None;
        p.min_samples_leaf = 200;
        let trees = fit_forest(&table, &p, &|| {}).unwrap();
        // 1600 rows, about 1000 distinct in-bag: at most 5 leaves of >= 200 rows each.
        for tree in trees {
            let leaves = tree.feature.iter().filter(|&&f| f == LEAF).count();
            assert!(leaves <= 5, "{leaves}");
        }
    }

    #[test]
    fn one_class_is_refused() {
        let mut table = xor_table();
        table.labels.iter_mut().for_each(|y| *y = 0);
        let err = fit_forest(&table, &params(2, 1), &|| {}).unwrap_err();
        assert!(err.to_string().contains("both classes"), "{err}");
    }
}
