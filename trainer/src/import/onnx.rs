//! `trainer import onnx`: a scikit-learn forest exported by skl2onnx
//! (`convert_sklearn(..., options={'zipmap': False})`) as the served [`FraudModel`].
//!
//! The graph must be one `TreeEnsembleClassifier` node (`ai.onnx.ml`, opset 1-3) with two
//! integer classes `[0, 1]`, `post_transform` `NONE`, no base values, and float32 thresholds
//! (`nodes_values`). Any other operator (the opset-5 `TreeEnsemble` too), another mode
//! (`BRANCH_EQ`, `BRANCH_NEQ`), string labels, more classes or a post-transform is refused with
//! an error naming it.
//!
//! What the conversion keeps exactly:
//! - **float32 comparisons.** ONNX Runtime (and scikit-learn) compare `float32(x)` with a float32
//!   threshold `t`. The served forest compares the f64 input with an f64 threshold, so each
//!   threshold becomes the largest f64 `b` with `float32(b) <= t` ([`leq_bound`]): then
//!   `x <= b` exactly when `float32(x) <= t`. `BRANCH_LT` is `<= t.next_down()`; `BRANCH_GT`
//!   and `BRANCH_GTE` are those with the branches swapped.
//! - **Probabilities.** A leaf's weights are summed over the trees. With both class ids present,
//!   P(1) is the sum of class 1's weights; with a single class id (skl2onnx's binary encoding,
//!   which ONNX Runtime reads as `[1 - s, s]`) P(1) is the sum `s`. skl2onnx divides a forest's
//!   leaf probabilities by the number of trees, so each served leaf holds the weight times the
//!   tree count, and the served mean over trees is the same sum.
//!
//! Column names: a single tensor input carries none, so they come from `--feature-names`, in the
//! input's column order. Bounds: [`MAX_ONNX_BYTES`], [`MAX_NODES`] nodes, [`MAX_TREES`] trees.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prost::Message;
use serde::Serialize;
use serde_json::json;
use suite_models::artifact::{ModelKind, encode_artifact};
use suite_models::forest::{FlatTree, FraudModel, LEAF};
use suite_models::model_id::ModelName;
use suite_storage::registry::manifest::{
    DataFingerprint, FeatureSchema, FeatureSpec, FeatureType, HeldOutRule, NewVersion,
};

use crate::Error;
use crate::data::source::{Dataset, read_dataset, read_input};
use crate::data::table::{Table, TableOptions, check_feature_names, read_dataset_table};
use crate::evaluate::classification::ClassificationMetrics;
use crate::fraud::FraudChallenger;
use crate::gate::{GateMetric, GatePolicy};
use crate::import::{ImportPublication, publish_without_gate};
use crate::pipeline::{Candidate, Context, gate_and_publish};

/// The largest ONNX file read.
pub const MAX_ONNX_BYTES: usize = 256 << 20;
/// The most tree nodes over all trees.
pub const MAX_NODES: usize = 20_000_000;
/// The most trees.
pub const MAX_TREES: usize = 100_000;

/// The few ONNX messages needed, declared from the ONNX specification (`onnx.proto3`, field
/// numbers as published there); unknown fields are skipped by prost.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(int64, tag = "1")]
        pub ir_version: i64,
        #[prost(string, tag = "2")]
        pub producer_name: String,
        #[prost(string, tag = "3")]
        pub producer_version: String,
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        #[prost(string, tag = "1")]
        pub domain: String,
        #[prost(int64, tag = "2")]
        pub version: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub op_type: String,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
        #[prost(string, tag = "7")]
        pub domain: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(float, tag = "2")]
        pub f: f32,
        #[prost(int64, tag = "3")]
        pub i: i64,
        #[prost(bytes = "vec", tag = "4")]
        pub s: Vec<u8>,
        #[prost(float, repeated, tag = "7")]
        pub floats: Vec<f32>,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
        #[prost(bytes = "vec", repeated, tag = "9")]
        pub strings: Vec<Vec<u8>>,
        /// Present for tensor attributes (e.g. `nodes_values_as_tensor`); its content is not
        /// decoded, only noticed.
        #[prost(bytes = "vec", optional, tag = "5")]
        pub t: Option<Vec<u8>>,
        #[prost(int32, tag = "20")]
        pub r#type: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        #[prost(message, optional, tag = "1")]
        pub tensor_type: Option<TensorTypeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorTypeProto {
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<Dimension>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        #[prost(int64, optional, tag = "1")]
        pub dim_value: Option<i64>,
        #[prost(string, optional, tag = "2")]
        pub dim_param: Option<String>,
    }
}

/// The largest f64 `b` such that `float32(b) <= t` (round to nearest, ties to even), so that
/// for every f64 `x`: `x <= b` exactly when `(x as f32) <= t`. `t` must be finite.
pub fn leq_bound(t: f32) -> f64 {
    let up = t.next_up();
    let (lo, hi) = (f64::from(t), f64::from(up));
    // The midpoint is exact in f64 (f32 has 24 significant bits); at f32::MAX the next value
    // up is infinite, and the midpoint is the half-way point to 2^128.
    let mid = if up.is_finite() {
        (lo + hi) / 2.0
    } else {
        lo + (lo - f64::from(t.next_down())) / 2.0
    };
    // A tie rounds to the even one of t and up: to t when t's last significand bit is 0.
    if t.to_bits() & 1 == 0 && up.is_finite() {
        mid
    } else {
        mid.next_down()
    }
}

fn bad(path: &str, reason: impl Into<String>) -> Error {
    Error::Input {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// The attributes of the tree node, by name.
struct Attributes<'a>(HashMap<&'a str, &'a proto::AttributeProto>);

impl<'a> Attributes<'a> {
    fn ints(&self, name: &str) -> &'a [i64] {
        self.0.get(name).map_or(&[], |a| a.ints.as_slice())
    }
    fn floats(&self, name: &str) -> &'a [f32] {
        self.0.get(name).map_or(&[], |a| a.floats.as_slice())
    }
    fn strings(&self, name: &str) -> Vec<String> {
        self.0.get(name).map_or_else(Vec::new, |a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
    }
    fn string(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }
}

/// Decodes an ONNX file and converts its forest; `feature_names` name the input's columns.
///
/// # Errors
/// [`Error::Input`] naming `path` for anything that is not a supported forest.
pub fn convert(
    path: &str,
    bytes: &[u8],
    feature_names: &[String],
    threshold: f64,
) -> Result<FraudModel, Error> {
    if bytes.len() > MAX_ONNX_BYTES {
        return Err(bad(path, format!("more than {MAX_ONNX_BYTES} bytes")));
    }
    let model = proto::ModelProto::decode(bytes)
        .map_err(|e| bad(path, format!("not an ONNX model: {e}")))?;
    let graph = model
        .graph
        .ok_or_else(|| bad(path, "not an ONNX model: no graph"))?;
    let others: Vec<String> = graph
        .node
        .iter()
        .filter(|n| !(n.op_type == "TreeEnsembleClassifier" && n.domain == "ai.onnx.ml"))
        .map(|n| {
            format!(
                "{} ({})",
                n.op_type,
                if n.domain.is_empty() {
                    "ai.onnx"
                } else {
                    &n.domain
                }
            )
        })
        .collect();
    if !others.is_empty() || graph.node.len() != 1 {
        return Err(bad(
            path,
            format!(
                "unsupported operator(s): {}; only a graph of one ai.onnx.ml \
                 TreeEnsembleClassifier (skl2onnx with zipmap False) is imported",
                if others.is_empty() {
                    format!("{} TreeEnsembleClassifier nodes", graph.node.len())
                } else {
                    others.join(", ")
                }
            ),
        ));
    }
    let node = &graph.node[0];
    let attrs = Attributes(
        node.attribute
            .iter()
            .map(|a| (a.name.as_str(), a))
            .collect(),
    );
    for tensor_attr in [
        "nodes_values_as_tensor",
        "class_weights_as_tensor",
        "base_values_as_tensor",
    ] {
        if attrs.0.contains_key(tensor_attr) {
            return Err(bad(
                path,
                format!("unsupported attribute {tensor_attr} (double precision)"),
            ));
        }
    }
    let post = attrs
        .string("post_transform")
        .unwrap_or_else(|| "NONE".into());
    if post != "NONE" {
        return Err(bad(
            path,
            format!("unsupported post_transform {post}; only NONE"),
        ));
    }
    if attrs.floats("base_values").iter().any(|&v| v != 0.0) {
        return Err(bad(path, "unsupported non-zero base_values"));
    }
    if !attrs.strings("classlabels_strings").is_empty() {
        return Err(bad(
            path,
            "string class labels are not supported; the classes must be 0 and 1",
        ));
    }
    let labels = attrs.ints("classlabels_int64s");
    if labels != [0, 1] {
        return Err(bad(
            path,
            format!("class labels {labels:?}; only the two classes [0, 1] are supported"),
        ));
    }
    // The input's column count, when the graph says it.
    let width = graph
        .input
        .first()
        .and_then(|i| i.r#type.as_ref())
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .and_then(|s| s.dim.get(1))
        .and_then(|d| d.dim_value);
    if graph.input.len() != 1 {
        return Err(bad(
            path,
            format!(
                "{} inputs; one float tensor input is supported",
                graph.input.len()
            ),
        ));
    }
    if feature_names.is_empty() {
        return Err(Error::Usage(format!(
            "{path}: its input {:?} carries no column names: pass --feature-names with its {} columns in order",
            graph.input[0].name,
            width.map_or_else(|| "?".into(), |w| w.to_string())
        )));
    }
    if let Some(w) = width
        && w != feature_names.len() as i64
    {
        return Err(Error::Usage(format!(
            "{path}: the input has {w} columns, --feature-names names {}",
            feature_names.len()
        )));
    }
    check_feature_names(feature_names)
        .map_err(|e| Error::Usage(format!("--feature-names: {e}")))?;

    let tree_ids = attrs.ints("nodes_treeids");
    let node_ids = attrs.ints("nodes_nodeids");
    let features = attrs.ints("nodes_featureids");
    let values = attrs.floats("nodes_values");
    let modes = attrs.strings("nodes_modes");
    let trues = attrs.ints("nodes_truenodeids");
    let falses = attrs.ints("nodes_falsenodeids");
    let n = tree_ids.len();
    if n == 0 || n > MAX_NODES {
        return Err(bad(
            path,
            format!("{n} tree nodes; 1..={MAX_NODES} are supported"),
        ));
    }
    if [
        node_ids.len(),
        features.len(),
        values.len(),
        modes.len(),
        trues.len(),
        falses.len(),
    ] != [n; 6]
    {
        return Err(bad(path, "the nodes_* attributes differ in length"));
    }
    let class_trees = attrs.ints("class_treeids");
    let class_nodes = attrs.ints("class_nodeids");
    let class_ids = attrs.ints("class_ids");
    let class_weights = attrs.floats("class_weights");
    let m = class_trees.len();
    if [class_nodes.len(), class_ids.len(), class_weights.len()] != [m; 3] {
        return Err(bad(path, "the class_* attributes differ in length"));
    }
    let mut present: Vec<i64> = class_ids.to_vec();
    present.sort_unstable();
    present.dedup();
    // Which class id's weights are P(1): class 1 with both present, else the single one.
    let positive = match present.as_slice() {
        [_, 1] if present.len() == 2 => 1,
        [single] if (0..=1).contains(single) => *single,
        other => return Err(bad(path, format!("class ids {other:?}; expected 0 and 1"))),
    };
    if class_weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
        return Err(bad(path, "a class weight is negative or not finite"));
    }
    let mut leaf_weight: HashMap<(i64, i64), f64> = HashMap::new();
    for j in 0..m {
        if class_ids[j] == positive {
            *leaf_weight
                .entry((class_trees[j], class_nodes[j]))
                .or_default() += f64::from(class_weights[j]);
        }
    }

    // Nodes of each tree, by node id.
    let mut trees: BTreeMap<i64, HashMap<i64, usize>> = BTreeMap::new();
    for i in 0..n {
        if trees.len() > MAX_TREES {
            return Err(bad(path, format!("more than {MAX_TREES} trees")));
        }
        if trees
            .entry(tree_ids[i])
            .or_default()
            .insert(node_ids[i], i)
            .is_some()
        {
            return Err(bad(
                path,
                format!("tree {} has node {} twice", tree_ids[i], node_ids[i]),
            ));
        }
    }
    let n_trees = trees.len() as f64;
    let mut flat = Vec::with_capacity(trees.len());
    for (&tree, nodes) in &trees {
        let fail = |reason: String| bad(path, format!("tree {tree}: {reason}"));
        let mut children = std::collections::HashSet::new();
        for &i in nodes.values() {
            if modes[i] != "LEAF" {
                children.insert(trues[i]);
                children.insert(falses[i]);
            }
        }
        let roots: Vec<i64> = nodes
            .keys()
            .filter(|id| !children.contains(id))
            .copied()
            .collect();
        let [root] = roots.as_slice() else {
            return Err(fail(format!("{} roots", roots.len())));
        };
        // Pre-order, so children come after their parent.
        let mut t = FlatTree {
            feature: vec![],
            threshold: vec![],
            left: vec![],
            right: vec![],
            value: vec![],
        };
        let mut stack: Vec<(i64, Option<(usize, bool)>)> = vec![(*root, None)];
        while let Some((id, parent)) = stack.pop() {
            let at = t.feature.len();
            if at >= nodes.len() {
                return Err(fail("a node is reached twice: not a tree".into()));
            }
            if let Some((p, left)) = parent {
                if left {
                    t.left[p] = at as u32
                } else {
                    t.right[p] = at as u32
                }
            }
            let &i = nodes
                .get(&id)
                .ok_or_else(|| fail(format!("child {id} does not exist")))?;
            let mode = modes[i].as_str();
            if mode == "LEAF" {
                let w = leaf_weight.get(&(tree, id)).copied().unwrap_or(0.0) * n_trees;
                if w > 1.0 + 1e-5 {
                    return Err(fail(format!(
                        "leaf {id} has probability {w} (weight times {n_trees} trees) above 1: \
                         not an averaged forest"
                    )));
                }
                t.feature.push(LEAF);
                t.threshold.push(0.0);
                t.left.push(0);
                t.right.push(0);
                t.value.push(w.min(1.0) as f32);
                continue;
            }
            let v = values[i];
            if !v.is_finite() {
                return Err(fail(format!("node {id} has threshold {v}")));
            }
            let (bound, swap) = match mode {
                "BRANCH_LEQ" => (leq_bound(v), false),
                "BRANCH_LT" => (leq_bound(v.next_down()), false),
                "BRANCH_GT" => (leq_bound(v), true),
                "BRANCH_GTE" => (leq_bound(v.next_down()), true),
                other => return Err(fail(format!("unsupported node mode {other} at node {id}"))),
            };
            let f = features[i];
            if !(0..feature_names.len() as i64).contains(&f) {
                return Err(fail(format!(
                    "node {id} splits on feature {f} of {}",
                    feature_names.len()
                )));
            }
            t.feature.push(f as u32);
            t.threshold.push(bound);
            t.left.push(0);
            t.right.push(0);
            t.value.push(0.0);
            let (le, gt) = if swap {
                (falses[i], trues[i])
            } else {
                (trues[i], falses[i])
            };
            // Push right first so the left subtree is numbered first.
            stack.push((gt, Some((at, false))));
            stack.push((le, Some((at, true))));
        }
        flat.push(t);
    }
    let model = FraudModel {
        feature_names: feature_names.to_vec(),
        trees: flat,
        threshold,
    };
    model
        .validate(None)
        .map_err(|e| bad(path, format!("the converted forest is invalid: {e}")))?;
    Ok(model)
}

#[derive(Debug, Clone, clap::Args)]
pub struct OnnxArgs {
    /// The .onnx file: a local path or s3://bucket/key.
    #[arg(long)]
    pub path: String,
    /// The input's columns, in order (comma-separated): the served query parameters.
    #[arg(long, value_delimiter = ',')]
    pub feature_names: Vec<String>,
    #[arg(long, default_value = "fraud")]
    pub model: String,
    /// Held-out rows (CSV or Parquet, the feature columns by name plus --label): gate on them.
    #[arg(long)]
    pub test_data: Option<String>,
    #[arg(long, default_value = "is_fraud")]
    pub label: String,
    /// Without held-out data, move `production` to the import anyway (the operator's decision).
    #[arg(long, conflicts_with = "test_data")]
    pub promote: bool,
    /// P(fraud) at or above this is class 1 (served with the model).
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    #[arg(long, default_value_t = 0.6)]
    pub min_roc_auc: f64,
    #[arg(long, default_value_t = 0.0)]
    pub min_improvement: f64,
    #[arg(long)]
    pub skip_bad_rows: bool,
}

/// What `import onnx` did.
#[derive(Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub source: String,
    pub trees: usize,
    pub nodes: usize,
    pub metrics: BTreeMap<String, f64>,
    pub publication: ImportPublication,
}

/// The test table's columns in the model's order.
fn reorder(table: Table, names: &[String], source: &str) -> Result<Table, Error> {
    if table.feature_names == names {
        return Ok(table);
    }
    let at: Vec<usize> = names
        .iter()
        .map(|n| {
            table
                .feature_names
                .iter()
                .position(|c| c == n)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--test-data {source} has no column {n:?} (columns: {})",
                        table.feature_names.join(",")
                    ))
                })
        })
        .collect::<Result<_, _>>()?;
    let mut values = Vec::with_capacity(table.n_rows() * names.len());
    for i in 0..table.n_rows() {
        let row = table.row(i);
        values.extend(at.iter().map(|&c| row[c]));
    }
    Ok(Table {
        feature_names: names.to_vec(),
        values,
        ..table
    })
}

/// Reads, converts, (scores and gates with `--test-data`), publishes.
///
/// # Errors
/// Bad arguments, an unsupported or malformed model (nothing is published then), bad test data,
/// registry errors.
pub async fn import(ctx: &Context, args: &OnnxArgs) -> Result<Report, Error> {
    let model_name =
        ModelName::parse(&args.model).map_err(|e| Error::Usage(format!("--model: {e}")))?;
    if !(0.0..=1.0).contains(&args.threshold) || !(0.0..=1.0).contains(&args.min_roc_auc) {
        return Err(Error::Usage(
            "--threshold and --min-roc-auc must be in [0, 1]".into(),
        ));
    }
    if !(args.min_improvement.is_finite() && args.min_improvement >= 0.0) {
        return Err(Error::Usage("--min-improvement must be >= 0".into()));
    }
    let input = read_input(&args.path).await?;
    let model = convert(
        &input.name,
        &input.bytes,
        &args.feature_names,
        args.threshold,
    )?;
    let test: Option<(Dataset, Table)> = match &args.test_data {
        Some(location) => {
            let data = read_dataset(location).await?;
            let options = TableOptions {
                label: args.label.clone(),
                skip_bad_rows: args.skip_bad_rows,
                key_column: None,
            };
            let table = read_dataset_table(&data, &options)?;
            let table = reorder(table, &model.feature_names, location)?;
            table.require_both_classes(location)?;
            Some((data, table))
        }
        None => None,
    };
    let artifact = encode_artifact(ModelKind::FraudRandomForest, &model)?;
    let features = model
        .feature_names
        .iter()
        .map(|name| FeatureSpec {
            name: name.clone(),
            dtype: FeatureType::Float,
            min: None,
            max: None,
        })
        .collect();
    let (trees, nodes) = (model.trees.len(), model.node_count());
    let parameters = BTreeMap::from([
        ("imported_from".to_owned(), json!("onnx")),
        (
            "operator".to_owned(),
            json!("ai.onnx.ml.TreeEnsembleClassifier"),
        ),
        ("n_trees".to_owned(), json!(trees)),
        ("threshold".to_owned(), json!(args.threshold)),
        ("onnx_sha256".to_owned(), json!(input.sha256)),
    ]);
    let mut metrics = BTreeMap::from([("nodes".to_owned(), nodes as f64)]);
    let mut draft = NewVersion {
        model: model_name.clone(),
        run_id: uuid::Uuid::now_v7(),
        algorithm: "random_forest".to_owned(),
        parameters,
        feature_schema: FeatureSchema { features },
        training_data: DataFingerprint {
            sha256: input.sha256.clone(),
            rows: 0,
            source: input.name.clone(),
        },
        metrics: metrics.clone(),
        trainer_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_by: ctx.actor.clone(),
        gate: None,
        held_out: None,
        drift: None,
    };
    let publication = match test {
        None => publish_without_gate(ctx, draft, artifact, args.promote).await?,
        Some((data, table)) => {
            let compiled = model.compile(None)?;
            let scores = crate::fraud::score(&compiled, &table);
            let m = ClassificationMetrics::compute(&scores, &table.labels, args.threshold)?;
            metrics.extend(m.to_map());
            metrics.insert("test_rows".into(), table.n_rows() as f64);
            draft.metrics = metrics.clone();
            // The held-out rows' distributions, as for a trained forest: the service's drift.
            draft.drift = Some(crate::fraud::drift_profile(&table, &scores)?);
            let candidate = Candidate {
                draft,
                held_out: HeldOutRule::File {
                    source: data.name.clone(),
                    sha256: data.sha256.clone(),
                },
                artifact,
                score: m.roc_auc,
                policy: GatePolicy {
                    metric: GateMetric::RocAuc,
                    floor: args.min_roc_auc,
                    min_improvement: args.min_improvement,
                },
            };
            let challenger = Arc::new(FraudChallenger {
                model: compiled,
                test: table,
            });
            gate_and_publish(ctx, challenger, candidate).await?.into()
        }
    };
    Ok(Report {
        model: model_name.to_string(),
        source: args.path.clone(),
        trees,
        nodes,
        metrics,
        publication,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leq_bound_matches_float32_comparison() {
        let ts = [
            0.0f32,
            -0.0,
            1.0,
            0.1,
            -0.1,
            92.02325,
            1e-40,
            f32::MAX,
            -f32::MAX,
            3.0e7,
        ];
        for t in ts {
            let b = leq_bound(t);
            assert!((b as f32) <= t, "{t}: {b} rounds above");
            let above = b.next_up();
            assert!((above as f32) > t, "{t}: {above} still rounds to <= t");
        }
    }

    #[test]
    fn garbage_is_not_an_onnx_model() {
        let err = convert("m.onnx", b"\xff\xff\xff", &["a".into()], 0.5)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("m.onnx") && err.contains("not an ONNX model"),
            "{err}"
        );
    }
}
