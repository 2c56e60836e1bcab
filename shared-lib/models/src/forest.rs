//! The fraud model as served: a tree ensemble in a flat layout, scored without allocation.
//!
//! Trainers (random forest, decision tree) convert whatever they fit into this one format, so
//! the fraud service has a single scoring path and no training crates. A random forest is an
//! ensemble of many trees; a decision tree is an ensemble of one. Each leaf holds the fraction of
//! fraud among the training rows that reached it (class weights applied), so the mean over trees
//! is P(fraud) in scikit-learn's `predict_proba` sense, not a 0/1 vote.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::manifest::FeatureSchema;

/// Marks a leaf in [`FlatTree::feature`].
pub const LEAF: u32 = u32::MAX;

/// One tree as parallel arrays (structure of arrays: compact and cache-friendly).
///
/// Node `i` is a split when `feature[i] != LEAF`: rows with `x[feature[i]] <= threshold[i]` go to
/// `left[i]`, the others to `right[i]`. At a leaf, `value[i]` is P(fraud). Node 0 is the root, and
/// children always have larger indices than their parent, so scoring cannot loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlatTree {
    pub feature: Vec<u32>,
    pub threshold: Vec<f64>,
    pub left: Vec<u32>,
    pub right: Vec<u32>,
    pub value: Vec<f32>,
}

impl FlatTree {
    /// A tree of one leaf, scoring `value` for every row.
    pub fn leaf(value: f32) -> Self {
        Self {
            feature: vec![LEAF],
            threshold: vec![0.0],
            left: vec![0],
            right: vec![0],
            value: vec![value],
        }
    }

    /// P(fraud) for one row. `x` must have the ensemble's feature count (checked by the caller).
    ///
    /// The hot loop of every `/classify`, written so that one bounds check per node serves
    /// all five arrays (each is re-sliced to `feature`'s length, which validation made theirs),
    /// and the leaf test is the row lookup itself: a leaf's feature, [`LEAF`], is past any row.
    #[inline]
    fn score(&self, x: &[f64]) -> f32 {
        let n = self.feature.len();
        let (threshold, left, right, value) = (
            &self.threshold[..n],
            &self.left[..n],
            &self.right[..n],
            &self.value[..n],
        );
        let mut node = 0usize;
        loop {
            let Some(&v) = x.get(self.feature[node] as usize) else {
                return value[node];
            };
            node = if v <= threshold[node] {
                left[node]
            } else {
                right[node]
            } as usize;
        }
    }

    fn len(&self) -> usize {
        self.feature.len()
    }

    fn validate(&self, n_features: usize) -> Result<(), String> {
        let n = self.len();
        if n == 0 {
            return Err("a tree has no nodes".into());
        }
        if [
            self.threshold.len(),
            self.left.len(),
            self.right.len(),
            self.value.len(),
        ] != [n; 4]
        {
            return Err("a tree's node arrays differ in length".into());
        }
        for i in 0..n {
            if self.feature[i] == LEAF {
                let v = self.value[i];
                if !(0.0..=1.0).contains(&v) {
                    return Err(format!("leaf {i} has value {v} outside [0, 1]"));
                }
                continue;
            }
            if self.feature[i] as usize >= n_features {
                return Err(format!(
                    "node {i} splits on feature {} of {n_features}",
                    self.feature[i]
                ));
            }
            if self.threshold[i].is_nan() {
                return Err(format!("node {i} has a NaN threshold"));
            }
            for child in [self.left[i], self.right[i]] {
                let child = child as usize;
                if child <= i || child >= n {
                    return Err(format!(
                        "node {i} has child {child}, not after it within {n} nodes"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A tree ensemble scoring P(fraud), with the class threshold chosen at training time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FraudModel {
    /// Feature names in the order the trees index them; equals the manifest's schema.
    pub feature_names: Vec<String>,
    pub trees: Vec<FlatTree>,
    /// Scores at or above this are class 1 (fraud).
    pub threshold: f64,
}

impl FraudModel {
    /// Checks the whole structure once at load, so scoring can index without checks failing.
    ///
    /// # Errors
    /// [`Error::CorruptArtifact`] describing the first inconsistency.
    pub fn validate(&self, schema: Option<&FeatureSchema>) -> Result<(), Error> {
        let fail = |reason: String| Error::CorruptArtifact { reason };
        if self.feature_names.is_empty() {
            return Err(fail("the model has no features".into()));
        }
        if self.trees.is_empty() {
            return Err(fail("the model has no trees".into()));
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(fail(format!(
                "threshold {} is outside [0, 1]",
                self.threshold
            )));
        }
        for (t, tree) in self.trees.iter().enumerate() {
            tree.validate(self.feature_names.len())
                .map_err(|e| fail(format!("tree {t}: {e}")))?;
        }
        if let Some(schema) = schema {
            let names: Vec<&str> = schema.features.iter().map(|f| f.name.as_str()).collect();
            if names
                != self
                    .feature_names
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
            {
                return Err(fail(format!(
                    "the model's features {:?} differ from the manifest's {names:?}",
                    self.feature_names
                )));
            }
        }
        Ok(())
    }

    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// P(fraud) for one row: the mean of the trees' leaf values.
    ///
    /// # Panics
    /// If `x` has fewer features than the model; callers parse rows into the schema first.
    pub fn predict_proba(&self, x: &[f64]) -> f64 {
        assert!(
            x.len() >= self.n_features(),
            "row has {} features, model needs {}",
            x.len(),
            self.n_features()
        );
        let sum: f64 = self.trees.iter().map(|t| f64::from(t.score(x))).sum();
        sum / self.trees.len() as f64
    }

    /// The class for a score: 1 (fraud) at or above the threshold.
    pub fn class_of(&self, probability: f64) -> u8 {
        u8::from(probability >= self.threshold)
    }

    /// Total nodes over all trees, for logs and metrics.
    pub fn node_count(&self) -> usize {
        self.trees.iter().map(FlatTree::len).sum()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `x0 <= 0.5 ? 0.1 : (x1 <= 2 ? 0.6 : 0.9)`
    pub(crate) fn small_tree() -> FlatTree {
        FlatTree {
            feature: vec![0, LEAF, 1, LEAF, LEAF],
            threshold: vec![0.5, 0.0, 2.0, 0.0, 0.0],
            left: vec![1, 0, 3, 0, 0],
            right: vec![2, 0, 4, 0, 0],
            value: vec![0.0, 0.1, 0.0, 0.6, 0.9],
        }
    }

    pub(crate) fn small_model() -> FraudModel {
        FraudModel {
            feature_names: vec!["a".into(), "b".into()],
            trees: vec![small_tree(), FlatTree::leaf(0.3)],
            threshold: 0.5,
        }
    }

    #[test]
    fn scores_are_the_mean_of_leaf_values() {
        let m = small_model();
        m.validate(None).unwrap();
        let cases = [([0.2, 9.0], 0.2), ([0.7, 1.0], 0.45), ([0.7, 3.0], 0.6)];
        for (x, expected) in cases {
            let p = m.predict_proba(&x);
            assert!((p - expected).abs() < 1e-6, "{x:?}: {p}");
        }
        assert_eq!(m.class_of(0.45), 0);
        assert_eq!(m.class_of(0.6), 1);
    }

    /// The rule as the docs state it, one node at a time: `x <= threshold` goes left.
    fn score_by_the_rule(tree: &FlatTree, x: &[f64]) -> f32 {
        let mut node = 0;
        while tree.feature[node] != LEAF {
            let go_left = x[tree.feature[node] as usize] <= tree.threshold[node];
            node = if go_left {
                tree.left[node]
            } else {
                tree.right[node]
            } as usize;
        }
        tree.value[node]
    }

    /// A valid random tree over `features` features, grown breadth first from a seed, with
    /// thresholds from `cuts` so that rows can sit exactly on them.
    fn random_tree(seed: u64, features: u32, cuts: &[f64]) -> FlatTree {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut tree = FlatTree::leaf(0.0);
        let mut node = 0;
        while node < tree.feature.len() {
            if tree.feature.len() < 200 && next() % 4 != 0 {
                let n = tree.feature.len() as u32;
                tree.feature[node] = (next() % u64::from(features)) as u32;
                tree.threshold[node] = cuts[(next() % cuts.len() as u64) as usize];
                (tree.left[node], tree.right[node]) = (n, n + 1);
                for _ in 0..2 {
                    tree.feature.push(LEAF);
                    tree.threshold.push(0.0);
                    tree.left.push(0);
                    tree.right.push(0);
                    tree.value.push((next() % 1001) as f32 / 1000.0);
                }
            }
            node += 1;
        }
        tree
    }

    proptest::proptest! {
        #[test]
        fn every_row_lands_on_the_leaf_the_rule_names(
            seeds in proptest::collection::vec(proptest::prelude::any::<u64>(), 1..8),
            picks in proptest::collection::vec(0usize..6, 3),
        ) {
            // Rows on the thresholds, either side of them, and NaN (which goes right).
            let cuts = [-1.5, 0.0, 0.25, 7.0];
            let values = [-1.5, 0.0, 0.25, 7.0, 3.0, f64::NAN];
            let row: Vec<f64> = picks.iter().map(|&i| values[i]).collect();
            let model = FraudModel {
                feature_names: vec!["a".into(), "b".into(), "c".into()],
                trees: seeds.iter().map(|&s| random_tree(s, 3, &cuts)).collect(),
                threshold: 0.5,
            };
            model.validate(None).unwrap();
            let by_rule: f64 = model.trees.iter().map(|t| f64::from(score_by_the_rule(t, &row))).sum();
            let expected = by_rule / model.trees.len() as f64;
            let p = model.predict_proba(&row);
            proptest::prop_assert_eq!(p.to_bits(), expected.to_bits(), "{:?}", row);
        }
    }

    #[test]
    fn structural_damage_is_refused_at_validation() {
        type Damage = Box<dyn Fn(&mut FraudModel)>;
        let cases: Vec<(&str, Damage)> = vec![
            ("child", Box::new(|m| m.trees[0].left[0] = 0)),
            ("child", Box::new(|m| m.trees[0].right[2] = 99)),
            ("feature 7", Box::new(|m| m.trees[0].feature[0] = 7)),
            ("outside [0, 1]", Box::new(|m| m.trees[0].value[1] = 1.5)),
            ("NaN", Box::new(|m| m.trees[0].threshold[2] = f64::NAN)),
            (
                "differ in length",
                Box::new(|m| {
                    m.trees[0].value.pop();
                }),
            ),
            ("no trees", Box::new(|m| m.trees.clear())),
            ("threshold", Box::new(|m| m.threshold = -0.1)),
        ];
        for (needle, damage) in cases {
            let mut m = small_model();
            damage(&mut m);
            let err = m.validate(None).unwrap_err().to_string();
            assert!(err.contains(needle), "expected {needle:?} in {err}");
        }
    }

    #[test]
    fn feature_names_must_match_the_manifest_schema() {
        use crate::manifest::{FeatureSpec, FeatureType};
        let spec = |name: &str| FeatureSpec {
            name: name.into(),
            dtype: FeatureType::Float,
            min: None,
            max: None,
        };
        let good = FeatureSchema {
            features: vec![spec("a"), spec("b")],
        };
        let swapped = FeatureSchema {
            features: vec![spec("b"), spec("a")],
        };
        small_model().validate(Some(&good)).unwrap();
        assert!(small_model().validate(Some(&swapped)).is_err());
    }
}
