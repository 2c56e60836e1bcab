//! The fraud model as served: a tree ensemble in a flat layout, scored without allocation for
//! rows of fewer than 16 features (a wider row is copied into a vector once per row).
//!
//! Trainers (random forest, decision tree) convert whatever they fit into this one format, so
//! the fraud service has a single scoring path and no training crates. A random forest is an
//! ensemble of many trees; a decision tree is an ensemble of one. Each leaf holds the fraction of
//! fraud among the training rows that reached it (class weights applied), so the mean over trees
//! is P(fraud) in scikit-learn's `predict_proba` sense, not a 0/1 vote.
//!
//! [`FraudModel`] is the format trainers write and artifacts carry. What scores is the
//! [`CompiledForest`] that [`FraudModel::compile`] checks and builds from it at load: walking one
//! tree is a chain of dependent loads (node, then the row's feature, then the next node), so the
//! CPU waits on each level; the compiled form walks [`LANES`] trees side by side, and their
//! chains overlap. The answer is bit-identical to walking the trees one by one.

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

    /// Checks the model ([`validate`](Self::validate)) and builds the form that scores it.
    ///
    /// # Errors
    /// [`Error::CorruptArtifact`] describing the first inconsistency, a node under two
    /// parents, or a forest of more nodes than a `u32` indexes.
    pub fn compile(&self, schema: Option<&FeatureSchema>) -> Result<CompiledForest, Error> {
        self.validate(schema)?;
        CompiledForest::new(self)
    }

    /// Total nodes over all trees, for logs and metrics.
    pub fn node_count(&self) -> usize {
        self.trees.iter().map(FlatTree::len).sum()
    }
}

/// How many trees [`CompiledForest::predict_proba`] walks side by side: enough loads in flight
/// to hide most of each one's latency, few enough that the cursors stay in registers. On the
/// benchmark's 100-tree forest (ten full groups) and 2,000 of its rows, a row took 2.0 µs with
/// 10 lanes, 1.9-2.2 with 20, 2.1-2.2 with 16, 2.6 with 8, and 9.9 tree by tree with a branch
/// on leaves (a probe, two rounds, on the 2-core machine, with the 24-byte nodes that came
/// before siblings were laid out side by side).
pub const LANES: usize = 10;

/// Rows of fewer features than this are scored from a copy in a fixed-length array.
const SHORT_ROW: usize = 16;

/// One node of the compiled layout, 16 bytes. A split sends rows with `row[feature] <=
/// threshold` to `left` and the others to `left + 1`: siblings are laid out side by side. A
/// leaf reads the row's sentinel slot, past its features and always -inf, so it sends every
/// row to `left`, itself; it keeps its value in `threshold`.
#[derive(Debug, Clone, Copy)]
struct Node {
    threshold: f64,
    feature: u32,
    left: u32,
}

/// Up to [`LANES`] trees walked together: their roots, and the steps that bring the deepest of
/// them to a leaf. Lanes past the last tree start at a leaf of value -0.0, which adds nothing.
#[derive(Debug, Clone)]
struct Group {
    roots: [u32; LANES],
    steps: u32,
}

/// A validated [`FraudModel`] in the layout it is scored in: every tree's nodes in one array,
/// walked [`LANES`] trees at a time for a fixed number of steps, without a branch on leaves.
#[derive(Debug, Clone)]
pub struct CompiledForest {
    nodes: Vec<Node>,
    groups: Vec<Group>,
    trees: usize,
    feature_names: Vec<String>,
    threshold: f64,
}

impl CompiledForest {
    /// `model` must have passed [`FraudModel::validate`]: children in range and after their
    /// parent, features in range. A node under two parents passes validation but is refused
    /// here: laid out as a tree, what hangs below it would be copied once per path.
    fn new(model: &FraudModel) -> Result<Self, Error> {
        let corrupt = |reason: String| Error::CorruptArtifact { reason };
        let sentinel = u32::try_from(model.n_features())
            .map_err(|_| corrupt("the model has more features than a u32 counts".into()))?;
        // Index 0: the leaf that lanes without a tree walk. -0.0 is the identity of addition.
        let mut nodes = vec![Node {
            threshold: -0.0,
            feature: sentinel,
            left: 0,
        }];
        let mut roots = Vec::with_capacity(model.trees.len());
        for (t, tree) in model.trees.iter().enumerate() {
            // Breadth first from the root, each split's children placed side by side.
            let root = nodes.len();
            let mut placed = vec![false; tree.len()];
            let mut queue = std::collections::VecDeque::from([(0usize, root, 0u32)]);
            // A place for each node, filled when the queue reaches it.
            nodes.push(nodes[0]);
            let mut depth = 0;
            while let Some((old, at, level)) = queue.pop_front() {
                if std::mem::replace(&mut placed[old], true) {
                    return Err(corrupt(format!("tree {t}: node {old} has two parents")));
                }
                depth = depth.max(level);
                nodes[at] = if tree.feature[old] == LEAF {
                    Node {
                        threshold: f64::from(tree.value[old]),
                        feature: sentinel,
                        left: at as u32,
                    }
                } else {
                    let left = nodes.len();
                    for child in [tree.left[old], tree.right[old]] {
                        queue.push_back((child as usize, nodes.len(), level + 1));
                        nodes.push(nodes[0]);
                    }
                    Node {
                        threshold: tree.threshold[old],
                        feature: tree.feature[old],
                        left: left as u32,
                    }
                };
            }
            if u32::try_from(nodes.len()).is_err() {
                return Err(corrupt(format!(
                    "the forest has {} nodes, more than a u32 indexes",
                    nodes.len()
                )));
            }
            roots.push((root as u32, depth));
        }
        let groups = roots
            .chunks(LANES)
            .map(|trees| {
                let mut group = Group {
                    roots: [0; LANES],
                    steps: 0,
                };
                for (lane, &(root, depth)) in trees.iter().enumerate() {
                    group.roots[lane] = root;
                    group.steps = group.steps.max(depth);
                }
                group
            })
            .collect();
        Ok(Self {
            nodes,
            groups,
            trees: model.trees.len(),
            feature_names: model.feature_names.clone(),
            threshold: model.threshold,
        })
    }

    /// P(fraud) for one row: the mean of the trees' leaf values, summed in tree order.
    ///
    /// The hot loop of every `/classify`. Each group's cursors take `steps` steps; a cursor at
    /// a leaf stays there, so no lane waits on a branch and every lane ends at its leaf.
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
        let x = &x[..self.n_features()];
        // The row and its sentinel slot (-inf) after it. A short row goes into an array of
        // fixed length, where a feature index masked to it needs no bounds check; a longer one
        // into a vector, allocated per row (the served fraud schema has 3 features).
        if x.len() < SHORT_ROW {
            let mut row = [f64::NEG_INFINITY; SHORT_ROW];
            row[..x.len()].copy_from_slice(x);
            self.walk(|feature| row[feature as usize % SHORT_ROW])
        } else {
            let row: Vec<f64> = x.iter().copied().chain([f64::NEG_INFINITY]).collect();
            self.walk(|feature| row[feature as usize])
        }
    }

    /// The mean leaf value over all trees, `value_of(feature)` reading the row.
    #[inline(always)]
    fn walk(&self, value_of: impl Fn(u32) -> f64) -> f64 {
        let nodes = self.nodes.as_slice();
        let mut sum = -0.0;
        for group in &self.groups {
            let mut at = group.roots;
            for _ in 0..group.steps {
                for cursor in &mut at {
                    let node = &nodes[*cursor as usize];
                    // NaN is not `<=` anything, so it goes right, as the rule says.
                    let goes_left = value_of(node.feature) <= node.threshold;
                    *cursor = node.left + u32::from(!goes_left);
                }
            }
            for cursor in at {
                sum += nodes[cursor as usize].threshold;
            }
        }
        sum / self.trees as f64
    }

    /// The class for a score: 1 (fraud) at or above the threshold.
    pub fn class_of(&self, probability: f64) -> u8 {
        u8::from(probability >= self.threshold)
    }

    /// Feature names in the order rows give them.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    pub fn n_trees(&self) -> usize {
        self.trees
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
        let m = small_model().compile(None).unwrap();
        let cases = [([0.2, 9.0], 0.2), ([0.7, 1.0], 0.45), ([0.7, 3.0], 0.6)];
        for (x, expected) in cases {
            let p = m.predict_proba(&x);
            assert!((p - expected).abs() < 1e-6, "{x:?}: {p}");
        }
        assert_eq!(m.class_of(0.45), 0);
        assert_eq!(m.class_of(0.6), 1);
    }

    #[test]
    fn lanes_without_a_tree_add_nothing_even_to_negative_zero() {
        // Three trees fill three of a group's lanes; the others walk the padding leaf. A sum of
        // -0.0 leaves is -0.0 tree by tree, and stays so only if the padding adds -0.0 too.
        let model = FraudModel {
            feature_names: vec!["a".into()],
            trees: vec![FlatTree::leaf(-0.0); 3],
            threshold: 0.5,
        };
        let p = model.compile(None).unwrap().predict_proba(&[1.0]);
        assert_eq!(p.to_bits(), (-0.0f64).to_bits(), "{p}");
    }

    #[test]
    fn a_node_with_two_parents_is_refused_at_compile() {
        // Valid node by node (children after their parent), but nodes 3 and 4 hang under both
        // 1 and 2: laid out as a tree, shared subtrees would be copied once per path.
        let shared = FlatTree {
            feature: vec![0, 0, 0, LEAF, LEAF],
            threshold: vec![0.5, 0.2, 0.8, 0.0, 0.0],
            left: vec![1, 3, 3, 0, 0],
            right: vec![2, 4, 4, 0, 0],
            value: vec![0.0, 0.0, 0.0, 0.1, 0.9],
        };
        let model = FraudModel {
            feature_names: vec!["a".into()],
            trees: vec![FlatTree::leaf(0.5), shared],
            threshold: 0.5,
        };
        model.validate(None).unwrap();
        let err = model.compile(None).unwrap_err().to_string();
        assert!(err.contains("tree 1: node 3 has two parents"), "{err}");
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
            // Up to three groups of lanes, the last one part-filled.
            seeds in proptest::collection::vec(proptest::prelude::any::<u64>(), 1..3 * LANES),
            // Rows short enough to be copied into the fixed-length array, and longer ones.
            features in proptest::sample::select(vec![1, 3, SHORT_ROW - 1, SHORT_ROW, SHORT_ROW + 5]),
            picks in proptest::collection::vec(0usize..6, SHORT_ROW + 5),
        ) {
            // Rows on the thresholds, either side of them, and NaN (which goes right).
            let cuts = [-1.5, 0.0, 0.25, 7.0];
            let values = [-1.5, 0.0, 0.25, 7.0, 3.0, f64::NAN];
            let row: Vec<f64> = picks[..features].iter().map(|&i| values[i]).collect();
            let model = FraudModel {
                feature_names: (0..features).map(|j| format!("f{j}")).collect(),
                trees: seeds.iter().map(|&s| random_tree(s, features as u32, &cuts)).collect(),
                threshold: 0.5,
            };
            let compiled = model.compile(None).unwrap();
            // The mean in tree order, from -0.0 (the identity of addition).
            let by_rule = model.trees.iter()
                .fold(-0.0, |sum, t| sum + f64::from(score_by_the_rule(t, &row)));
            let expected = by_rule / model.trees.len() as f64;
            let p = compiled.predict_proba(&row);
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
