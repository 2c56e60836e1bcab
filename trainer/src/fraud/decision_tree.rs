//! The decision-tree alternative: one CART tree fitted by linfa-trees, served as a one-tree
//! [`FraudModel`](suite_models::forest::FraudModel).
//!
//! linfa's leaves store only a predicted label, not class counts, so after fitting the tree is
//! flattened into a [`FlatTree`] and the (class-weighted) training rows are routed through it to
//! set each leaf's value to its fraction of fraud weight. Routing uses the flat tree itself, so
//! the values match the served `x <= threshold` rule exactly. (linfa fits with `x <= split` but
//! predicts with `x < split`; the two differ only for a value exactly on a split midpoint.)
//!
//! Two linfa behaviours to know: it prunes sibling leaves that predict the same label (with
//! imbalanced data and no class weights that collapses most of the tree, so P(fraud) becomes
//! coarse: prefer `--class-weight balanced`), and its `min_weight_leaf` counts sample weight, so
//! `--min-samples-leaf` is passed as that many rows of the lighter class's weight.

use linfa::prelude::*;
use linfa_trees::{DecisionTree, SplitQuality, TreeNode};
use ndarray::{Array1, Array2};
use suite_models::forest::{FlatTree, LEAF};

use super::forest::ClassWeight;
use crate::Error;
use crate::data::table::Table;

/// Hyperparameters of the single tree.
#[derive(Debug, Clone)]
pub struct TreeParams {
    pub max_depth: Option<usize>,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    pub class_weight: ClassWeight,
}

/// Fits one tree on `table` and returns it in the served layout.
///
/// # Errors
/// [`Error::Training`] for a single class or if linfa refuses the data or parameters.
pub fn fit_tree(table: &Table, params: &TreeParams) -> Result<FlatTree, Error> {
    table.require_both_classes("the training split")?;
    let class_weight = params.class_weight.weights(&table.labels);
    let records =
        Array2::from_shape_vec((table.n_rows(), table.n_features()), table.values.clone())
            .map_err(|e| Error::Training(format!("cannot shape the training data: {e}")))?;
    let targets: Array1<usize> = table.labels.iter().map(|&y| usize::from(y)).collect();
    let weights: Array1<f32> = table
        .labels
        .iter()
        .map(|&y| class_weight[usize::from(y)] as f32)
        .collect();
    let dataset = Dataset::new(records, targets).with_weights(weights);
    let lightest = class_weight[0].min(class_weight[1]) as f32;
    let fitted: DecisionTree<f64, usize> = DecisionTree::params()
        .split_quality(SplitQuality::Gini)
        .max_depth(params.max_depth)
        .min_weight_split(params.min_samples_split as f32)
        .min_weight_leaf(params.min_samples_leaf as f32 * lightest * 0.999)
        .fit(&dataset)
        .map_err(|e| Error::Training(format!("linfa decision tree: {e}")))?;
    let mut tree = flatten(fitted.root_node());
    set_leaf_values(&mut tree, table, class_weight);
    Ok(tree)
}

/// linfa's boxed nodes, depth first, into parallel arrays (children after their parent).
fn flatten(root: &TreeNode<f64, usize>) -> FlatTree {
    let mut tree = FlatTree {
        feature: Vec::new(),
        threshold: Vec::new(),
        left: Vec::new(),
        right: Vec::new(),
        value: Vec::new(),
    };
    let mut stack = vec![(root, push_leaf(&mut tree))];
    while let Some((node, at)) = stack.pop() {
        let children = node.children();
        let (Some(left), Some(right)) = (children[0].as_deref(), children[1].as_deref()) else {
            continue;
        };
        if node.is_leaf() {
            continue;
        }
        let (feature, split, _) = node.split();
        let (l, r) = (push_leaf(&mut tree), push_leaf(&mut tree));
        tree.feature[at] = feature as u32;
        tree.threshold[at] = split;
        tree.left[at] = l as u32;
        tree.right[at] = r as u32;
        stack.push((right, r));
        stack.push((left, l));
    }
    tree
}

fn push_leaf(tree: &mut FlatTree) -> usize {
    tree.feature.push(LEAF);
    tree.threshold.push(0.0);
    tree.left.push(0);
    tree.right.push(0);
    tree.value.push(0.0);
    tree.feature.len() - 1
}

/// Sets each leaf to the class-weighted fraction of fraud among the training rows reaching it.
fn set_leaf_values(tree: &mut FlatTree, table: &Table, class_weight: [f64; 2]) {
    let mut weight = vec![[0.0f64; 2]; tree.feature.len()];
    for i in 0..table.n_rows() {
        let x = table.row(i);
        let mut node = 0usize;
        while tree.feature[node] != LEAF {
            node = if x[tree.feature[node] as usize] <= tree.threshold[node] {
                tree.left[node] as usize
            } else {
                tree.right[node] as usize
            };
        }
        let y = usize::from(table.labels[i]);
        weight[node][y] += class_weight[y];
    }
    for (value, w) in tree.value.iter_mut().zip(&weight) {
        let total = w[0] + w[1];
        // A leaf no training row reaches (possible only at a split midpoint tie) keeps 0.
        *value = if total > 0.0 {
            (w[1] / total) as f32
        } else {
            0.0
        };
    }
}

#[cfg(test)]
mod tests {
    use suite_models::forest::FraudModel;

    use super::*;

    /// Fraud when `a > 0.7` and `b < 0.3`: a two-level rule a tree represents exactly.
    fn table() -> Table {
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for i in 0..30 {
            for j in 0..30 {
                let (a, b) = (f64::from(i) / 30.0, f64::from(j) / 30.0);
                values.extend_from_slice(&[a, b]);
                labels.push(u8::from(a > 0.7 && b < 0.3));
            }
        }
        Table {
            feature_names: vec!["a".into(), "b".into()],
            values,
            labels,
            keys: Vec::new(),
            skipped: 0,
        }
    }

    fn params(class_weight: ClassWeight) -> TreeParams {
        TreeParams {
            max_depth: Some(6),
            min_samples_split: 2,
            min_samples_leaf: 1,
            class_weight,
        }
    }

    #[test]
    fn the_tree_recovers_the_rule_with_pure_leaves() {
        let table = table();
        let tree = fit_tree(&table, &params(ClassWeight::Balanced)).unwrap();
        let model = FraudModel {
            feature_names: table.feature_names.clone(),
            trees: vec![tree],
            threshold: 0.5,
        };
        let model = model.compile(None).unwrap();
        for i in 0..table.n_rows() {
            let p = model.predict_proba(table.row(i));
            assert_eq!(p, f64::from(table.labels[i]), "row {i}: {:?}", table.row(i));
        }
    }

    #[test]
    fn leaf_values_are_weighted_fractions_of_the_rows_reaching_them() {
        // A depth-0 tree is one leaf holding every row: 1 fraud in 3, weighted or not.
        let t = Table {
            feature_names: vec!["a".into()],
            values: vec![1.0, 2.0, 3.0],
            labels: vec![0, 1, 0],
            keys: Vec::new(),
            skipped: 0,
        };
        let mut tree = FlatTree::leaf(0.0);
        set_leaf_values(&mut tree, &t, [1.0, 1.0]);
        assert!((tree.value[0] - 1.0 / 3.0).abs() < 1e-6);
        set_leaf_values(&mut tree, &t, ClassWeight::Balanced.weights(&t.labels));
        assert!((tree.value[0] - 0.5).abs() < 1e-6);
    }
}
