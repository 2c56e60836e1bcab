//! Models trained elsewhere: a Spark `ALSModel.save` directory and a scikit-learn forest via
//! skl2onnx, both made by the real tools (`tests/fixtures/make_fixtures.py`), served here with
//! the scores those tools give; bad inputs are refused by name and publish nothing; imports are
//! gated with held-out data, candidates otherwise, promoted only on the operator's word.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::HashMap;
use std::path::Path;

use crate::support::served_in_ann_mode;
use clap::Parser as _;
use prost::Message as _;
use shared_lib::artifact::ModelKind;
use shared_lib::model_id::{AliasName, ModelName, ModelVersion};
use shared_lib::models::als::{AlsModel, Filter};
use shared_lib::models::forest::FraudModel;
use shared_lib::registry::Registry;
use shared_lib::registry::manifest::GateOutcome;
use shared_lib::registry::records::EventKind;
use shared_lib::store::{ObjectStore, StoreLocation};
use trainer::Error;
use trainer::cli::{Cli, Command};
use trainer::data::parquet::{for_each_row, number, open};
use trainer::data::source::Input;
use trainer::import::{ImportCommand, onnx, spark};
use trainer::pipeline::Context;
use trainer::progress::Progress;

const FEATURES: &str = "amount,spent_month,same_merchant,score";

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

struct TestEnv {
    _dir: tempfile::TempDir,
    ctx: Context,
}

impl TestEnv {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(&StoreLocation::Local(dir.path().join("store")))
            .await
            .unwrap();
        let ctx = Context {
            registry: Registry::new(store).into(),
            actor: "import-test".into(),
            progress: Progress::hidden(),
        };
        Self { _dir: dir, ctx }
    }

    fn registry(&self) -> &Registry {
        self.ctx.registry.as_store().unwrap()
    }

    async fn spark(&self, extra: &[&str]) -> Result<spark::Report, Error> {
        let mut argv = vec!["trainer", "import", "spark-als"];
        argv.extend_from_slice(extra);
        let Command::Import(ImportCommand::SparkAls(args)) =
            Cli::try_parse_from(argv).unwrap().command
        else {
            panic!("not import spark-als");
        };
        spark::import(&self.ctx, &args).await
    }

    async fn onnx(&self, extra: &[&str]) -> Result<onnx::Report, Error> {
        let mut argv = vec!["trainer", "import", "onnx"];
        argv.extend_from_slice(extra);
        let Command::Import(ImportCommand::Onnx(args)) = Cli::try_parse_from(argv).unwrap().command
        else {
            panic!("not import onnx");
        };
        onnx::import(&self.ctx, &args).await
    }

    async fn load<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        model: &str,
        version: ModelVersion,
        kind: ModelKind,
    ) -> T {
        let name = ModelName::parse(model).unwrap();
        let manifest = self.registry().manifest(&name, version).await.unwrap();
        self.registry().load_model(&manifest, kind).await.unwrap()
    }

    async fn versions(&self, model: &str) -> usize {
        self.registry()
            .list_versions(&ModelName::parse(model).unwrap())
            .await
            .map_or(0, |v| v.len())
    }

    async fn production(&self, model: &str) -> Option<ModelVersion> {
        self.registry()
            .resolve_alias(&ModelName::parse(model).unwrap(), &AliasName::production())
            .await
            .ok()
    }
}

/// Every row of a Parquet fixture as its cells, by column name.
fn parquet_rows(name: &str) -> Vec<HashMap<String, parquet::record::Field>> {
    let path = fixture(name);
    let input = Input::from_bytes(path.clone(), std::fs::read(&path).unwrap());
    let reader = open(&input).unwrap();
    let mut rows = Vec::new();
    for_each_row::<trainer::Error>(&input, &reader, |_, row| {
        rows.push(
            row.get_column_iter()
                .map(|(n, f)| (n.clone(), f.clone()))
                .collect(),
        );
        Ok(())
    })
    .unwrap();
    rows
}

fn num(row: &HashMap<String, parquet::record::Field>, column: &str) -> f64 {
    number(&row[column]).unwrap()
}

#[tokio::test]
async fn spark_scores_and_top_10_agree_with_spark() {
    let env = TestEnv::new().await;
    let report = env
        .spark(&["--path", &fixture("spark-als/model")])
        .await
        .unwrap();
    assert_eq!((report.users, report.items, report.rank), (200, 150, 8));
    let publication = report.publication;
    let model: AlsModel = env
        .load(
            "recommender",
            publication.version,
            ModelKind::RecommenderAls,
        )
        .await;
    let serving = model.prepare().unwrap();

    let scores = parquet_rows("spark-als/scores.parquet");
    assert_eq!(scores.len(), 200 * 150);
    let mut max_diff = 0f64;
    for row in &scores {
        let user = serving
            .user_index(&(num(row, "user") as i64).to_string())
            .unwrap();
        let item = serving
            .item_index(&(num(row, "item") as i64).to_string())
            .unwrap();
        let ours = f64::from(serving.model().predict(user, item));
        max_diff = max_diff.max((ours - num(row, "prediction")).abs());
    }
    eprintln!(
        "Spark transform: max |ours - Spark| over {} pairs = {max_diff:e}",
        scores.len()
    );
    assert!(max_diff <= 1e-5, "max abs diff {max_diff}");

    let top10: HashMap<String, Vec<(i64, f64)>> =
        serde_json::from_str(&std::fs::read_to_string(fixture("spark-als/top10.json")).unwrap())
            .unwrap();
    assert_eq!(top10.len(), 200);
    let (mut equal_lists, mut tie_swaps) = (0, 0);
    for (user, spark_top) in &top10 {
        let u = serving.user_index(user).unwrap();
        let ours = serving.recommend(u, 10, Filter::default());
        assert_eq!(ours.len(), 10);
        let mut same = true;
        for (rank, (ours, &(item, score))) in ours.iter().zip(spark_top).enumerate() {
            if serving.item_id(ours.item) != item.to_string() {
                // Ties aside: a different item only where the scores are equal to float noise.
                assert!(
                    (f64::from(ours.score) - score).abs() <= 1e-5,
                    "user {user} rank {rank}: ours {} ({}) vs Spark {item} ({score})",
                    serving.item_id(ours.item),
                    ours.score
                );
                same = false;
            }
        }
        if same {
            equal_lists += 1;
        } else {
            tie_swaps += 1;
        }
    }
    eprintln!(
        "Spark recommendForUserSubset: {equal_lists}/200 top-10 lists equal, {tie_swaps} differ only by ties"
    );
    assert!(equal_lists >= 195, "{equal_lists} equal lists");
}

#[tokio::test]
async fn spark_imports_can_carry_an_ann_index_with_its_measured_recall() {
    let env = TestEnv::new().await;
    let path = fixture("spark-als/model");
    let err = env
        .spark(&["--path", &path, "--ann-index", "--ann-target-recall", "0"])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--ann-target-recall"), "{err}");
    assert_eq!(env.versions("recommender").await, 0, "nothing published");

    let err = env
        .spark(&["--path", &path, "--ann-index", "--ann-lists", "4"])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--ann-kind ivf"), "{err}");
    let report = env
        .spark(&[
            "--path",
            &path,
            "--ann-index",
            "--ann-kind",
            "ivf",
            "--ann-lists",
            "4",
        ])
        .await
        .unwrap();
    let version = report.publication.version;
    let model: AlsModel = env
        .load("recommender", version, ModelKind::RecommenderAls)
        .await;
    let index = model.index.as_ref().expect("the artifact holds the index");
    assert_eq!(index.lists(), 4);
    let manifest = env
        .registry()
        .manifest(&ModelName::parse("recommender").unwrap(), version)
        .await
        .unwrap();
    assert_eq!(manifest.parameters["ann_lists"], 4);
    assert_eq!(manifest.parameters["ann_probe"], u64::from(index.probe));
    let recall = manifest.metrics["ann_recall_at_10"];
    assert!((0.95..=1.0).contains(&recall), "recall {recall}");
    let ann = served_in_ann_mode(model);
    assert_eq!(ann.recommend(0, 10, Filter::default()).len(), 10);
}

#[tokio::test]
async fn spark_imports_are_gated_with_held_out_data_else_candidates_unless_promoted() {
    let env = TestEnv::new().await;
    let model = fixture("spark-als/model");
    let (ratings, test) = (
        fixture("spark-als/ratings"),
        fixture("spark-als/test.parquet"),
    );
    let gated = [
        "--path",
        &model,
        "--ratings",
        &ratings,
        "--test-ratings",
        &test,
    ];
    // Held-out ratings: scored and gated like a trained model; the first meets the floor.
    let r = env.spark(&gated).await.unwrap();
    let gate = r.publication.gate.unwrap();
    assert_eq!(gate.outcome, Some(GateOutcome::FirstModel), "{gate:?}");
    assert!(r.metrics["rmse"] < gate.floor.unwrap(), "{:?}", r.metrics);
    assert_eq!(
        env.production("recommender").await,
        Some(ModelVersion::FIRST)
    );
    // Seen items come from the ratings and are never recommended.
    let served: AlsModel = env
        .load(
            "recommender",
            ModelVersion::FIRST,
            ModelKind::RecommenderAls,
        )
        .await;
    assert!(served.seen_items.len() > 4000);
    let serving = served.prepare().unwrap();
    let recs = serving.recommend(0, 10, Filter::default());
    assert!(
        recs.iter()
            .all(|s| !serving.model().seen(0).contains(&s.item))
    );
    // The same model again against that champion on the same rows: equal, so not promoted.
    let r = env.spark(&gated).await.unwrap();
    let gate = r.publication.gate.unwrap();
    assert_eq!(gate.outcome, Some(GateOutcome::NotBetter), "{gate:?}");
    assert_eq!(
        env.production("recommender").await,
        Some(ModelVersion::FIRST)
    );

    // No held-out data: a candidate, production untouched, seen items recorded as absent.
    let r = env.spark(&["--path", &model]).await.unwrap();
    assert!(!r.publication.promoted);
    assert_eq!(
        env.production("recommender").await,
        Some(ModelVersion::FIRST)
    );
    let manifest = env
        .registry()
        .manifest(
            &ModelName::parse("recommender").unwrap(),
            r.publication.version,
        )
        .await
        .unwrap();
    assert_eq!(manifest.parameters["seen_items"], "absent");
    assert!(manifest.gate.is_none());

    // --promote: production moves, and the event log says it was the operator.
    let r = env.spark(&["--path", &model, "--promote"]).await.unwrap();
    assert!(r.publication.promoted);
    let promoted = r.publication.version;
    assert_eq!(env.production("recommender").await, Some(promoted));
    let history = env
        .registry()
        .history(&ModelName::parse("recommender").unwrap())
        .await
        .unwrap();
    let moved = history
        .iter()
        .rev()
        .find(|e| matches!(e.kind, EventKind::AliasMoved { to, .. } if to == promoted))
        .unwrap();
    assert_eq!(moved.provenance.actor, "import-test");
    let reason = moved.provenance.reason.as_deref().unwrap();
    assert!(
        reason.contains("operator's decision (--promote)"),
        "{reason}"
    );

    // A champion that was never gated records no held-out rows: the next gated import cannot
    // be compared with it, so the gate fails closed (a candidate, production kept).
    let err = env.spark(&gated).await.unwrap_err();
    assert!(matches!(err, Error::GateFailedClosed { .. }), "{err}");
    assert_eq!(env.production("recommender").await, Some(promoted));
}

#[tokio::test]
async fn bad_spark_directories_name_the_file_and_publish_nothing() {
    let env = TestEnv::new().await;
    let dir = tempfile::tempdir().unwrap();
    // A copy of the model with one factor file truncated.
    let copy = dir.path().join("model");
    for sub in ["metadata", "userFactors", "itemFactors"] {
        std::fs::create_dir_all(copy.join(sub)).unwrap();
        for entry in std::fs::read_dir(fixture(&format!("spark-als/model/{sub}"))).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), copy.join(sub).join(entry.file_name())).unwrap();
        }
    }
    let mut parts: Vec<_> = std::fs::read_dir(copy.join("userFactors"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    parts.sort();
    let bytes = std::fs::read(&parts[3]).unwrap();
    std::fs::write(&parts[3], &bytes[..bytes.len() - 20]).unwrap();
    let truncated = parts[3].to_str().unwrap().to_owned();
    let err = env
        .spark(&["--path", copy.to_str().unwrap()])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&truncated) && err.contains("not a readable Parquet"),
        "{err}"
    );

    // A directory without metadata.
    std::fs::remove_dir_all(copy.join("metadata")).unwrap();
    let err = env
        .spark(&["--path", copy.to_str().unwrap()])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(copy.to_str().unwrap()) && err.contains("no readable metadata/"),
        "{err}"
    );
    // Another kind of Parquet where factors should be.
    let err = env
        .spark(&["--path", &fixture("spark-als"), "--ratings", "x"])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no readable metadata/"), "{err}");
    assert_eq!(env.versions("recommender").await, 0);
}

#[tokio::test]
async fn onnx_probabilities_and_classes_agree_with_scikit_learn() {
    let bytes = std::fs::read(fixture("sklearn/forest.onnx")).unwrap();
    let names: Vec<String> = FEATURES.split(',').map(str::to_owned).collect();
    let model = onnx::convert("forest.onnx", &bytes, &names, 0.5).unwrap();
    assert_eq!(model.trees.len(), 25);
    let model = model.compile(None).unwrap();
    let rows = parquet_rows("sklearn/reference.parquet");
    assert_eq!(rows.len(), 10_000);
    let (mut max_diff, mut class_mismatches, mut ties) = (0f64, 0, 0);
    for row in &rows {
        let x: Vec<f64> = names.iter().map(|n| num(row, n)).collect();
        let p = model.predict_proba(&x);
        let sk = num(row, "proba");
        max_diff = max_diff.max((p - sk).abs());
        // scikit-learn's predict is the argmax: class 1 only above 0.5; ours is >= threshold.
        if (sk - 0.5).abs() < 1e-9 {
            ties += 1;
        } else if u8::from(model.class_of(p) == 1) != num(row, "predicted") as u8 {
            class_mismatches += 1;
        }
    }
    eprintln!(
        "ONNX forest: max |ours - predict_proba| over 10000 rows = {max_diff:e}; class \
         mismatches {class_mismatches}, exact 0.5 ties {ties}"
    );
    assert!(max_diff <= 1e-6, "max abs diff {max_diff}");
    assert_eq!(class_mismatches, 0);
}

#[tokio::test]
async fn onnx_imports_are_gated_with_test_data() {
    let env = TestEnv::new().await;
    let path = fixture("sklearn/forest.onnx");
    let r = env
        .onnx(&[
            "--path",
            &path,
            "--feature-names",
            FEATURES,
            "--test-data",
            &fixture("sklearn/test.csv"),
        ])
        .await
        .unwrap();
    let gate = r.publication.gate.unwrap();
    assert_eq!(gate.outcome, Some(GateOutcome::FirstModel), "{gate:?}");
    assert!(r.metrics["roc_auc"] > 0.85, "{:?}", r.metrics);
    assert_eq!(env.production("fraud").await, Some(ModelVersion::FIRST));
    let served: FraudModel = env
        .load("fraud", ModelVersion::FIRST, ModelKind::FraudRandomForest)
        .await;
    assert_eq!(served.feature_names.join(","), FEATURES);
}

#[tokio::test]
async fn unsupported_onnx_models_are_refused_by_name_and_publish_nothing() {
    let env = TestEnv::new().await;
    let linear = fixture("sklearn/linear.onnx");
    let err = env
        .onnx(&["--path", &linear, "--feature-names", FEATURES])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&linear) && err.contains("LinearClassifier"),
        "{err}"
    );

    // Edited copies of the forest: another mode, the opset-5 operator, a post-transform.
    let bytes = std::fs::read(fixture("sklearn/forest.onnx")).unwrap();
    let names: Vec<String> = FEATURES.split(',').map(str::to_owned).collect();
    type Edit = Box<dyn Fn(&mut onnx::proto::NodeProto)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "BRANCH_EQ",
            Box::new(|n| {
                let modes = n
                    .attribute
                    .iter_mut()
                    .find(|a| a.name == "nodes_modes")
                    .unwrap();
                modes.strings[0] = b"BRANCH_EQ".to_vec();
            }),
        ),
        (
            "TreeEnsemble (ai.onnx.ml)",
            Box::new(|n| n.op_type = "TreeEnsemble".into()),
        ),
        (
            "post_transform SOFTMAX",
            Box::new(|n| {
                let post = n
                    .attribute
                    .iter_mut()
                    .find(|a| a.name == "post_transform")
                    .unwrap();
                post.s = b"SOFTMAX".to_vec();
            }),
        ),
    ];
    for (needle, edit) in edits {
        let mut model = onnx::proto::ModelProto::decode(&bytes[..]).unwrap();
        edit(&mut model.graph.as_mut().unwrap().node[0]);
        let err = onnx::convert("edited.onnx", &model.encode_to_vec(), &names, 0.5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("edited.onnx") && err.contains(needle), "{err}");
    }
    // Too few names for the input's columns.
    let err = env
        .onnx(&[
            "--path",
            &fixture("sklearn/forest.onnx"),
            "--feature-names",
            "a,b",
        ])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("4 columns"), "{err}");
    assert_eq!(env.versions("fraud").await, 0);
}
