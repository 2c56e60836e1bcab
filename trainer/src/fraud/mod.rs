//! Fraud classifiers: generate synthetic transactions, train a random forest (default) or a
//! decision tree on a CSV table, evaluate on a held-out split, gate against the champion and
//! publish as the served [`FraudModel`].
//!
//! - [`generate`](mod@generate): the synthetic data and its known rule;
//! - [`forest`]: our histogram CART random forest (and why it is not smartcore's);
//! - [`decision_tree`]: the linfa-trees alternative, converted to the same served format;
//! - [`binning`]: quantile binning of features for the forest.
//!
//! A run: read the table (local path or `s3://`), hold out rows by the split rule
//! ([`crate::split`]; or evaluate on `--test-data`), fit, score the held-out rows, then hand a
//! [`FraudChallenger`] to [`crate::pipeline`], which scores the `production` champion and the
//! challenger on the rows neither trained on and gates on ROC AUC.

pub mod binning;
pub mod decision_tree;
pub mod forest;
pub mod generate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;
use suite_models::artifact::{ModelKind, encode_artifact};
use suite_models::drift::{Binned, DRIFT_BINS, DriftProfile};
use suite_models::forest::{CompiledForest, FraudModel};
use suite_models::model_id::ModelName;
use suite_storage::registry::manifest::{
    FeatureSchema, FeatureSpec, FeatureType, HeldOutRule, Manifest, NewVersion,
};

use self::decision_tree::TreeParams;
use self::forest::{ClassWeight, ForestParams, MAX_BINS};
use crate::Error;
use crate::data::source::{Dataset, read_dataset};
use crate::data::table::{Table, TableOptions, read_dataset_table};
use crate::evaluate::classification::{ClassificationMetrics, roc_auc};
use crate::gate::{GateMetric, GatePolicy};
use crate::pipeline::{Candidate, Challenger, Context, Publication, gate_and_publish};
use crate::split::{RowKey, SplitArgs, SplitRule};

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Rows to write.
    #[arg(long)]
    pub rows: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The CSV file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Which learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// Our histogram CART forest (many trees, bootstrap, random features per split).
    RandomForest,
    /// One CART tree fitted by linfa-trees.
    DecisionTree,
}

impl Algorithm {
    fn kind(self) -> ModelKind {
        match self {
            Self::RandomForest => ModelKind::FraudRandomForest,
            Self::DecisionTree => ModelKind::FraudDecisionTree,
        }
    }

    fn manifest_name(self) -> &'static str {
        match self {
            Self::RandomForest => "random_forest",
            Self::DecisionTree => "decision_tree",
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// CSV with a header, Parquet, or a directory of Parquet part files: a local path or
    /// s3://bucket/key.
    #[arg(long)]
    pub data: String,
    /// Evaluate on this file instead of a held-out split of --data (same columns).
    #[arg(long)]
    pub test_data: Option<String>,
    /// Train and evaluate only: no champion comparison, nothing published.
    #[arg(long)]
    pub no_publish: bool,
    /// The registry's model name.
    #[arg(long, default_value = "fraud")]
    pub model: String,
    #[arg(long, value_enum, default_value_t = Algorithm::RandomForest)]
    pub algorithm: Algorithm,
    /// Trees in the forest (random forest only).
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    /// Maximum tree depth, or `none` to grow until leaves are pure.
    #[arg(long, default_value = "16", value_parser = parse_max_depth)]
    pub max_depth: MaxDepth,
    /// Rows a node needs to be split.
    #[arg(long, default_value_t = 2)]
    pub min_samples_split: usize,
    /// Rows each leaf must keep.
    #[arg(long, default_value_t = 1)]
    pub min_samples_leaf: usize,
    /// Candidate features per split: `sqrt`, `log2`, `all` or a number (random forest only).
    #[arg(long, default_value = "sqrt")]
    pub max_features: String,
    /// `balanced` weighs each class by n / (2 · n_class), so rare fraud is not ignored.
    #[arg(long, value_enum, default_value_t = ClassWeight::Balanced)]
    pub class_weight: ClassWeight,
    /// Seeds the learner (bootstrap samples, feature choice); the split has its own seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// P(fraud) at or above this is class 1 (served with the model).
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    #[command(flatten)]
    pub split: SplitArgs,
    /// ROC AUC gain over the champion needed to move `production` (a tie never wins).
    #[arg(long, default_value_t = 0.0)]
    pub min_improvement: f64,
    /// The ROC AUC below which no model is promoted, not even the first.
    #[arg(long, default_value_t = 0.6)]
    pub min_roc_auc: f64,
    /// Skip and count bad rows instead of failing on the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// The label column (values 0/1).
    #[arg(long, default_value = "is_fraud")]
    pub label: String,
    /// Training threads; 0 means one per core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// `--max-depth`: a positive number or unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxDepth(pub Option<usize>);

fn parse_max_depth(value: &str) -> Result<MaxDepth, String> {
    if value.eq_ignore_ascii_case("none") {
        return Ok(MaxDepth(None));
    }
    match value.parse::<usize>() {
        Ok(d) if d >= 1 => Ok(MaxDepth(Some(d))),
        _ => Err(format!(
            "expected a depth of at least 1 or `none`, not {value:?}"
        )),
    }
}

/// What `generate fraud` wrote.
pub type GenerateReport = generate::Generated;

/// Writes synthetic transactions (see [`generate`](mod@generate) for the rule).
///
/// # Errors
/// [`Error::Output`] if the file cannot be written.
pub fn generate(args: &GenerateArgs) -> Result<GenerateReport, Error> {
    let report = generate::write_transactions(&args.out, args.rows, args.seed)?;
    tracing::info!(out = %report.out, rows = report.rows, fraud_rate = report.fraud_rate, "Generated fraud data.");
    Ok(report)
}

/// The data a run used.
#[derive(Debug, Clone, Serialize)]
pub struct DataSummary {
    pub source: String,
    pub sha256: String,
    pub rows: usize,
    pub skipped_rows: u64,
    pub train_rows: usize,
    pub test_rows: usize,
    /// `--test-data`, when evaluation used a separate file.
    pub test_source: Option<String>,
    pub fraud_rate: f64,
}

/// What `train fraud` did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub algorithm: Algorithm,
    pub data: DataSummary,
    pub metrics: ClassificationMetrics,
    /// Wall time of fitting only (not reading or scoring).
    pub train_seconds: f64,
    pub trees: usize,
    pub nodes: usize,
    /// `None` with `--no-publish`; the champion's score is in its `gate`.
    pub publication: Option<Publication>,
}

/// The CPU-bound part of a run, done off the async runtime.
struct Fitted {
    model: FraudModel,
    /// `model` as it scores: the held-out rows here, the champion's shared rows in the gate.
    compiled: CompiledForest,
    train: Table,
    test: Table,
    held_out: HeldOutRule,
    rows: usize,
    skipped: u64,
    metrics: ClassificationMetrics,
    train_seconds: f64,
    parameters: BTreeMap<String, serde_json::Value>,
    /// The held-out rows' score and feature distributions, for the servers' drift gauges.
    drift: DriftProfile,
}

/// Reads, trains, evaluates, gates and publishes (see the module doc).
///
/// # Errors
/// Usage errors for bad arguments, input and bad-row errors, [`Error::Training`] when a model
/// cannot be fitted or scored (e.g. one class only), registry errors from publishing.
pub async fn train(ctx: &Context, args: &TrainArgs) -> Result<Report, Error> {
    let model_name = ModelName::parse(&args.model)
        .map_err(|e| Error::Usage(format!("--model {:?}: {e}", args.model)))?;
    let rule = check_args(args)?;
    let input = read_dataset(&args.data).await?;
    let test_input = match &args.test_data {
        Some(location) => Some(read_dataset(location).await?),
        None => None,
    };
    let bar = ctx.progress.bar(tree_count(args) as u64, "training trees");
    let job = (args.clone(), rule, input.clone(), bar.clone());
    let fitted = tokio::task::spawn_blocking(move || {
        let (args, rule, input, bar) = job;
        fit_and_evaluate(&args, &rule, &input, test_input.as_ref(), &|| bar.inc(1))
    })
    .await
    .map_err(|e| Error::Training(format!("the training task failed: {e}")))??;
    bar.finish_and_clear();
    tracing::info!(
        algorithm = args.algorithm.manifest_name(),
        roc_auc = fitted.metrics.roc_auc,
        pr_auc = fitted.metrics.pr_auc,
        train_seconds = fitted.train_seconds,
        nodes = fitted.model.node_count(),
        "Trained the fraud model."
    );

    let mut report = Report {
        model: model_name.to_string(),
        algorithm: args.algorithm,
        data: DataSummary {
            source: input.name.clone(),
            sha256: input.sha256.clone(),
            rows: fitted.rows,
            skipped_rows: fitted.skipped,
            train_rows: fitted.train.n_rows(),
            test_rows: fitted.test.n_rows(),
            test_source: args.test_data.clone(),
            fraud_rate: fitted.train.positives() as f64 / fitted.train.n_rows() as f64,
        },
        metrics: fitted.metrics.clone(),
        train_seconds: fitted.train_seconds,
        trees: fitted.model.trees.len(),
        nodes: fitted.model.node_count(),
        publication: None,
    };
    if args.no_publish {
        return Ok(report);
    }
    let candidate = Candidate {
        draft: new_version(ctx, args, &model_name, &input, &fitted),
        held_out: fitted.held_out,
        artifact: encode_artifact(args.algorithm.kind(), &fitted.model)?,
        score: fitted.metrics.roc_auc,
        policy: GatePolicy {
            metric: GateMetric::RocAuc,
            floor: args.min_roc_auc,
            min_improvement: args.min_improvement,
        },
    };
    // The fitted model and held-out rows move to the pipeline: no copy of either.
    let challenger = Arc::new(FraudChallenger {
        model: fitted.compiled,
        test: fitted.test,
    });
    report.publication = Some(gate_and_publish(ctx, challenger, candidate).await?);
    Ok(report)
}

/// Checks the arguments before any data is read; returns the split rule they give.
fn check_args(args: &TrainArgs) -> Result<SplitRule, Error> {
    let usage = |m: String| Err(Error::Usage(m));
    if !(0.0..=1.0).contains(&args.threshold) {
        return usage(format!(
            "--threshold must be in [0, 1], not {}",
            args.threshold
        ));
    }
    if !(0.0..=1.0).contains(&args.min_roc_auc) {
        return usage(format!(
            "--min-roc-auc must be in [0, 1], not {}",
            args.min_roc_auc
        ));
    }
    if !(args.min_improvement >= 0.0 && args.min_improvement.is_finite()) {
        return usage(format!(
            "--min-improvement must be >= 0, not {}",
            args.min_improvement
        ));
    }
    if args.trees == 0 || args.min_samples_leaf == 0 || args.min_samples_split < 2 {
        return usage(
            "--trees and --min-samples-leaf must be >= 1, --min-samples-split >= 2".into(),
        );
    }
    resolve_max_features(&args.max_features, 1)?;
    args.split.rule()
}

fn tree_count(args: &TrainArgs) -> usize {
    match args.algorithm {
        Algorithm::RandomForest => args.trees,
        Algorithm::DecisionTree => 1,
    }
}

/// `--max-features` for `p` features.
fn resolve_max_features(value: &str, p: usize) -> Result<usize, Error> {
    let k = match value {
        "sqrt" => (p as f64).sqrt().floor() as usize,
        "log2" => (p as f64).log2().floor() as usize,
        "all" => p,
        n => match n.parse::<usize>() {
            Ok(k) if k >= 1 => k,
            _ => {
                return Err(Error::Usage(format!(
                    "--max-features must be sqrt, log2, all or a number >= 1, not {value:?}"
                )));
            }
        },
    };
    Ok(k.clamp(1, p.max(1)))
}

fn fit_and_evaluate(
    args: &TrainArgs,
    rule: &SplitRule,
    input: &Dataset,
    test_input: Option<&Dataset>,
    on_tree: &(dyn Fn() + Sync),
) -> Result<Fitted, Error> {
    let options = TableOptions {
        label: args.label.clone(),
        skip_bad_rows: args.skip_bad_rows,
        key_column: rule.key_column().map(str::to_owned),
    };
    let table = read_dataset_table(input, &options)?;
    table.require_both_classes(&input.name)?;
    let (rows, skipped) = (table.n_rows(), table.skipped);
    let (train, test, held_out) = match test_input {
        Some(test_input) => {
            let test = read_dataset_table(test_input, &options)?;
            if test.feature_names != table.feature_names {
                return Err(Error::Usage(format!(
                    "--test-data has columns {:?}, --data has {:?}",
                    test.feature_names, table.feature_names
                )));
            }
            let held_out = HeldOutRule::File {
                source: test_input.name.clone(),
                sha256: test_input.sha256.clone(),
            };
            (table, test, held_out)
        }
        None => {
            let split = rule.split(&table.keys)?;
            (
                table.select(&split.train),
                table.select(&split.test),
                split.record,
            )
        }
    };
    train.require_both_classes("the training split")?;
    test.require_both_classes("the held-out data")?;

    let p = train.n_features();
    let mut parameters = BTreeMap::from([
        ("max_depth".to_owned(), json!(args.max_depth.0)),
        (
            "min_samples_split".to_owned(),
            json!(args.min_samples_split),
        ),
        ("min_samples_leaf".to_owned(), json!(args.min_samples_leaf)),
        ("class_weight".to_owned(), json!(args.class_weight)),
        ("seed".to_owned(), json!(args.seed)),
        ("threshold".to_owned(), json!(args.threshold)),
        ("label".to_owned(), json!(args.label)),
    ]);
    let started = Instant::now();
    let trees = match args.algorithm {
        Algorithm::RandomForest => {
            let params = ForestParams {
                n_trees: args.trees,
                max_depth: args.max_depth.0,
                min_samples_split: args.min_samples_split,
                min_samples_leaf: args.min_samples_leaf,
                max_features: resolve_max_features(&args.max_features, p)?,
                class_weight: args.class_weight,
                seed: args.seed,
                max_bins: MAX_BINS,
                threads: args.threads,
            };
            parameters.insert("n_trees".into(), json!(params.n_trees));
            parameters.insert("max_features".into(), json!(params.max_features));
            parameters.insert("max_bins".into(), json!(params.max_bins));
            forest::fit_forest(&train, &params, on_tree)?
        }
        Algorithm::DecisionTree => {
            let params = TreeParams {
                max_depth: args.max_depth.0,
                min_samples_split: args.min_samples_split,
                min_samples_leaf: args.min_samples_leaf,
                class_weight: args.class_weight,
            };
            let tree = decision_tree::fit_tree(&train, &params)?;
            on_tree();
            vec![tree]
        }
    };
    let train_seconds = started.elapsed().as_secs_f64();
    let model = FraudModel {
        feature_names: train.feature_names.clone(),
        trees,
        threshold: args.threshold,
    };
    let compiled = model.compile(None)?;
    let scores = score(&compiled, &test);
    let metrics = ClassificationMetrics::compute(&scores, &test.labels, args.threshold)?;
    let drift = drift_profile(&test, &scores)?;
    Ok(Fitted {
        model,
        compiled,
        train,
        test,
        held_out,
        rows,
        skipped,
        metrics,
        train_seconds,
        parameters,
        drift,
    })
}

/// [`DRIFT_BINS`] quantile bins of the held-out rows' scores and of each feature.
pub(crate) fn drift_profile(test: &Table, scores: &[f64]) -> Result<DriftProfile, Error> {
    let binned = |what: &str, values: &[f64]| {
        Binned::from_sample(values, DRIFT_BINS)
            .ok_or_else(|| Error::Training(format!("the held-out {what} has no finite value")))
    };
    let mut features = BTreeMap::new();
    for (j, name) in test.feature_names.iter().enumerate() {
        let column: Vec<f64> = (0..test.n_rows()).map(|i| test.row(i)[j]).collect();
        features.insert(name.clone(), binned(&format!("feature {name}"), &column)?);
    }
    Ok(DriftProfile {
        rows: test.n_rows() as u64,
        score: binned("score", scores)?,
        features,
    })
}

/// P(fraud) for every row of `table`.
pub(crate) fn score(model: &CompiledForest, table: &Table) -> Vec<f64> {
    (0..table.n_rows())
        .map(|i| model.predict_proba(table.row(i)))
        .collect()
}

/// A fitted fraud model and its held-out rows, as the pipeline compares it with the champion.
pub struct FraudChallenger {
    pub model: CompiledForest,
    pub test: Table,
}

impl Challenger for FraudChallenger {
    type Champion = FraudModel;

    fn champion_kinds(&self) -> &'static [ModelKind] {
        // The champion may be a forest or a single tree; both load as a FraudModel.
        &[ModelKind::FraudRandomForest, ModelKind::FraudDecisionTree]
    }

    fn held_out_keys(&self) -> &[RowKey] {
        &self.test.keys
    }

    fn compare(
        &self,
        manifest: &Manifest,
        champion: FraudModel,
        rows: &[usize],
    ) -> Result<(f64, f64), String> {
        let champion = champion
            .compile(Some(&manifest.feature_schema))
            .map_err(|e| format!("the champion is invalid: {e}"))?;
        if champion.feature_names() != self.test.feature_names {
            return Err(format!(
                "the champion's features {:?} differ from the data's {:?}",
                champion.feature_names(),
                self.test.feature_names
            ));
        }
        let shared = self.test.select(rows);
        let auc = |model: &CompiledForest| {
            roc_auc(&score(model, &shared), &shared.labels).map_err(|e| {
                format!(
                    "the {} rows held out from both cannot be scored: {e}",
                    rows.len()
                )
            })
        };
        Ok((auc(&champion)?, auc(&self.model)?))
    }
}

fn new_version(
    ctx: &Context,
    args: &TrainArgs,
    model: &ModelName,
    input: &Dataset,
    fitted: &Fitted,
) -> NewVersion {
    let features = fitted
        .train
        .feature_names
        .iter()
        .zip(fitted.train.feature_ranges())
        .map(|(name, range)| FeatureSpec {
            name: name.clone(),
            dtype: FeatureType::Float,
            min: range.map(|r| r.0),
            max: range.map(|r| r.1),
        })
        .collect();
    let mut metrics = fitted.metrics.to_map();
    metrics.insert("train_seconds".into(), fitted.train_seconds);
    metrics.insert("train_rows".into(), fitted.train.n_rows() as f64);
    metrics.insert("test_rows".into(), fitted.test.n_rows() as f64);
    metrics.insert("skipped_rows".into(), fitted.skipped as f64);
    NewVersion {
        model: model.clone(),
        run_id: uuid::Uuid::now_v7(),
        algorithm: args.algorithm.manifest_name().to_owned(),
        parameters: fitted.parameters.clone(),
        feature_schema: FeatureSchema { features },
        training_data: input.fingerprint(fitted.rows as u64),
        metrics,
        trainer_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_by: ctx.actor.clone(),
        // Both filled in by the pipeline.
        gate: None,
        held_out: None,
        drift: Some(fitted.drift.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_features_resolves_like_scikit_learn() {
        let cases = [
            ("sqrt", 3, 1),
            ("sqrt", 16, 4),
            ("log2", 8, 3),
            ("all", 5, 5),
            ("2", 5, 2),
            ("9", 3, 3),
            ("sqrt", 1, 1),
        ];
        for (value, p, expected) in cases {
            assert_eq!(
                resolve_max_features(value, p).unwrap(),
                expected,
                "{value} of {p}"
            );
        }
        assert!(resolve_max_features("0", 3).is_err());
        assert!(resolve_max_features("half", 3).is_err());
    }

    #[test]
    fn max_depth_takes_a_number_or_none() {
        assert_eq!(parse_max_depth("16"), Ok(MaxDepth(Some(16))));
        assert_eq!(parse_max_depth("None"), Ok(MaxDepth(None)));
        assert!(parse_max_depth("0").is_err());
        assert!(parse_max_depth("deep").is_err());
    }
}
