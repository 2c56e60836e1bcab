//! `trainer train fraud` end to end against a local-directory registry: the known rule is
//! recovered, the artifact round-trips, bad input is reported, and the quality gate decides
//! both ways.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use clap::Parser as _;
use shared_lib::artifact::ModelKind;
use shared_lib::model_id::{AliasName, ModelName, ModelVersion};
use shared_lib::models::forest::FraudModel;
use shared_lib::registry::Registry;
use shared_lib::registry::manifest::{GateOutcome, HeldOutRule, Manifest};
use shared_lib::store::{ObjectStore, StoreLocation};
use trainer::Error;
use trainer::cli::{Cli, Command, GenerateCommand, TrainCommand};
use trainer::data::source::Input;
use trainer::data::table::{TableOptions, read_table};
use trainer::fraud::{self, Algorithm, Report};
use trainer::pipeline::Context;
use trainer::progress::Progress;
use trainer::split::SplitRule;

struct TestEnv {
    dir: tempfile::TempDir,
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
            actor: "fraud-test".into(),
            progress: Progress::hidden(),
        };
        Self { dir, ctx }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `trainer generate fraud`, through the real command line.
    fn generate(&self, name: &str, rows: usize, seed: u64) -> String {
        let out = self.path(name);
        let cli = Cli::try_parse_from([
            "trainer",
            "generate",
            "fraud",
            "--rows",
            &rows.to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        let Command::Generate(GenerateCommand::Fraud(args)) = cli.command else {
            panic!("not generate fraud");
        };
        let report = fraud::generate(&args).unwrap();
        assert_eq!(report.rows, rows);
        out.to_str().unwrap().to_owned()
    }

    /// `trainer train fraud --data <data> <extra...>`, through the real command line.
    async fn train(&self, data: &str, extra: &[&str]) -> Result<Report, Error> {
        let mut argv = vec!["trainer", "train", "fraud", "--data", data];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv).unwrap();
        let Command::Train(TrainCommand::Fraud(args)) = cli.command else {
            panic!("not train fraud");
        };
        fraud::train(&self.ctx, &args).await
    }

    async fn manifest(&self, version: ModelVersion) -> Manifest {
        self.ctx
            .registry
            .as_store()
            .unwrap()
            .manifest(&model(), version)
            .await
            .unwrap()
    }

    async fn production(&self) -> Option<ModelVersion> {
        self.ctx
            .registry
            .as_store()
            .unwrap()
            .resolve_alias(&model(), &AliasName::production())
            .await
            .ok()
    }
}

fn model() -> ModelName {
    ModelName::parse("fraud").unwrap()
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

const SMALL_FOREST: [&str; 4] = ["--trees", "30", "--max-depth", "10"];

#[tokio::test]
async fn the_forest_recovers_the_rule_and_its_artifact_round_trips() {
    // Arrange
    let env = TestEnv::new().await;
    let data = env.generate("fraud.csv", 20_000, 1);

    // Act
    let report = env.train(&data, &SMALL_FOREST).await.unwrap();

    // Assert: quality well above chance on held-out rows.
    assert!(report.metrics.roc_auc > 0.9, "{:?}", report.metrics);
    assert!(report.metrics.recall > 0.5 && report.metrics.precision > 0.5);
    // About a fifth held out, by the hash of each row.
    assert_eq!(report.data.train_rows + report.data.test_rows, 20_000);
    assert!(
        (3_600..4_400).contains(&report.data.test_rows),
        "{}",
        report.data.test_rows
    );
    assert_eq!(report.trees, 30);
    // The first model is promoted.
    let publication = report.publication.unwrap();
    assert!(publication.promoted);
    assert_eq!(publication.version, ModelVersion::FIRST);
    assert_eq!(env.production().await, Some(ModelVersion::FIRST));
    // The manifest describes the run.
    let manifest = env.manifest(ModelVersion::FIRST).await;
    assert_eq!(manifest.algorithm, "random_forest");
    assert_eq!(manifest.artifact.kind, ModelKind::FraudRandomForest);
    assert_eq!(manifest.created_by, "fraud-test");
    assert_eq!(manifest.training_data.rows, 20_000);
    assert_eq!(manifest.training_data.sha256, report.data.sha256);
    assert_eq!(manifest.metrics["roc_auc"], report.metrics.roc_auc);
    for key in [
        "pr_auc",
        "precision",
        "recall",
        "f1",
        "tp",
        "fp",
        "tn",
        "fn",
        "train_seconds",
    ] {
        assert!(manifest.metrics.contains_key(key), "{key}");
    }
    assert_eq!(manifest.parameters["n_trees"], 30);
    let names: Vec<&str> = manifest
        .feature_schema
        .features
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["txn_amount", "amount_spent_past_mo", "txns_same_merchant"]
    );
    let merchant = &manifest.feature_schema.features[2];
    assert_eq!(merchant.min, Some(0.0));
    assert!(merchant.max.unwrap() >= 10.0);
    // The held-out rows' distributions, for drift: deciles of the score and of each feature.
    let drift = manifest.drift.as_ref().expect("a drift profile");
    drift.validate().unwrap();
    assert_eq!(drift.rows, report.data.test_rows as u64);
    let drift_names: Vec<&str> = drift.features.keys().map(String::as_str).collect();
    assert_eq!(
        drift_names,
        ["amount_spent_past_mo", "txn_amount", "txns_same_merchant"]
    );
    let amount = &drift.features["txn_amount"];
    assert_eq!(amount.shares.len(), 10, "a continuous feature has 10 bins");
    assert!(
        amount.shares.iter().all(|s| (s - 0.1).abs() < 0.02),
        "{amount:?}"
    );
    assert!(drift.score.shares.len() >= 2, "{:?}", drift.score);
    // The artifact loads, validates against the manifest and scores the rule.
    let served: FraudModel = env
        .ctx
        .registry
        .as_store()
        .unwrap()
        .load_model(&manifest, ModelKind::FraudRandomForest)
        .await
        .unwrap();
    let served = served.compile(Some(&manifest.feature_schema)).unwrap();
    assert_eq!(served.n_trees(), 30);
    let fraud_like = served.predict_proba(&[900.0, 1000.0, 0.0]);
    let legit_like = served.predict_proba(&[40.0, 1000.0, 12.0]);
    assert!(
        fraud_like > 0.8 && legit_like < 0.2,
        "{fraud_like} {legit_like}"
    );
}

#[tokio::test]
async fn the_gate_promotes_only_a_strictly_better_challenger() {
    // Arrange: a champion.
    let env = TestEnv::new().await;
    let data = env.generate("fraud.csv", 5_000, 2);
    let first = env.train(&data, &SMALL_FOREST).await.unwrap();
    assert!(first.publication.unwrap().promoted);

    // Act: the same data and seed again (a tie), then a clearly worse model.
    let tie = env.train(&data, &SMALL_FOREST).await.unwrap();
    let worse = env
        .train(&data, &["--trees", "1", "--max-depth", "1"])
        .await
        .unwrap();

    // Assert
    let tie_gate = tie.publication.unwrap();
    // Same rule, same rows: the champion is scored on exactly its own held-out rows.
    assert_eq!(tie_gate.gate.champion_score, Some(tie.metrics.roc_auc));
    assert_eq!(tie_gate.gate.outcome, Some(GateOutcome::NotBetter));
    assert!(!tie_gate.promoted, "a tie is not a win");
    assert_eq!(tie_gate.version.get(), 2, "still published, for the record");
    let worse_gate = worse.publication.unwrap();
    assert!(worse.metrics.roc_auc < first.metrics.roc_auc - 0.02);
    assert!(!worse_gate.promoted && !worse_gate.gate.promoted);
    assert_eq!(worse_gate.gate.champion_version, Some(ModelVersion::FIRST));
    assert_eq!(env.production().await, Some(ModelVersion::FIRST));
}

#[tokio::test]
async fn the_decision_tree_path_publishes_one_tree_and_a_forest_can_beat_it() {
    // Arrange
    let env = TestEnv::new().await;
    let data = env.generate("fraud.csv", 10_000, 3);

    // Act
    let tree = env
        .train(&data, &["--algorithm", "decision-tree", "--max-depth", "6"])
        .await
        .unwrap();
    let forest = env.train(&data, &SMALL_FOREST).await.unwrap();

    // Assert: the tree is served as a one-tree model of its own kind.
    assert_eq!(tree.algorithm, Algorithm::DecisionTree);
    assert_eq!(tree.trees, 1);
    assert!(tree.metrics.roc_auc > 0.8, "{:?}", tree.metrics);
    let manifest = env.manifest(ModelVersion::FIRST).await;
    assert_eq!(manifest.artifact.kind, ModelKind::FraudDecisionTree);
    let served: FraudModel = env
        .ctx
        .registry
        .as_store()
        .unwrap()
        .load_model(&manifest, ModelKind::FraudDecisionTree)
        .await
        .unwrap();
    served.validate(Some(&manifest.feature_schema)).unwrap();
    assert!(
        served.trees[0]
            .value
            .iter()
            .all(|v| (0.0..=1.0).contains(v))
    );
    // The forest was gated against the tree (another kind) and won.
    let gate = forest.publication.as_ref().unwrap().gate.clone();
    assert_eq!(gate.champion_version, Some(ModelVersion::FIRST));
    assert_eq!(gate.champion_score, Some(tree.metrics.roc_auc));
    assert_eq!(gate.outcome, Some(GateOutcome::BeatsChampion));
    assert!(forest.metrics.roc_auc > tree.metrics.roc_auc);
    assert!(forest.publication.unwrap().promoted);
    assert_eq!(env.production().await, ModelVersion::new(2).ok());
}

#[tokio::test]
async fn bad_input_is_reported_by_file_and_line_or_skipped_and_counted() {
    let env = TestEnv::new().await;
    let mut good = String::from("a,b,is_fraud\n");
    for i in 0..60 {
        good.push_str(&format!("{i},{},{}\n", i % 7, u8::from(i % 5 == 0)));
    }
    let cases = [
        (
            "no_label.csv",
            "a,b,label\n1,2,0\n".to_owned(),
            "no_label.csv:1: no label column",
        ),
        (
            "text.csv",
            format!("{good}oops,1,0\n"),
            "text.csv:62: column 1: \"oops\" is not a number",
        ),
        (
            "fields.csv",
            format!("{good}1,2\n"),
            "text.csv:62: expected 3 fields",
        ),
    ];
    for (name, text, expected) in cases {
        let path = write(&env.path(name), &text);
        let err = env.train(&path, &[]).await.unwrap_err().to_string();
        let expected = expected.replace("text.csv", name);
        assert!(err.contains(&expected), "{name}: {err}");
        assert!(err.contains(&path), "the full path is named: {err}");
    }
    // With --skip-bad-rows the same files train, and the skipped rows are counted.
    let path = write(&env.path("two_bad.csv"), &format!("{good}oops,1,0\n1,2\n"));
    let report = env
        .train(&path, &["--skip-bad-rows", "--trees", "5"])
        .await
        .unwrap();
    assert_eq!(report.data.skipped_rows, 2);
    assert_eq!(report.data.rows, 60);
    // Nothing was published by the failed runs; the skipping run is version 1.
    assert_eq!(report.publication.unwrap().version, ModelVersion::FIRST);
}

#[tokio::test]
async fn one_class_only_is_a_training_error() {
    let env = TestEnv::new().await;
    let path = write(&env.path("calm.csv"), "a,is_fraud\n1,0\n2,0\n3,0\n");
    let err = env.train(&path, &[]).await.unwrap_err();
    assert!(matches!(err, Error::Training(_)), "{err:?}");
    assert!(err.to_string().contains("all of class 0"), "{err}");
}

#[tokio::test]
async fn test_data_without_publishing_leaves_the_registry_alone() {
    // Arrange
    let env = TestEnv::new().await;
    let train = env.generate("train.csv", 4_000, 4);
    let test = env.generate("test.csv", 1_500, 5);

    // Act
    let report = env
        .train(
            &train,
            &["--test-data", &test, "--no-publish", "--trees", "20"],
        )
        .await
        .unwrap();

    // Assert
    assert_eq!(
        (report.data.train_rows, report.data.test_rows),
        (4_000, 1_500)
    );
    assert_eq!(report.data.test_source.as_deref(), Some(test.as_str()));
    assert!(report.metrics.roc_auc > 0.85, "{:?}", report.metrics);
    assert!(report.train_seconds > 0.0);
    assert!(report.publication.is_none());
    assert!(
        env.ctx
            .registry
            .as_store()
            .unwrap()
            .list_models()
            .await
            .unwrap()
            .is_empty()
    );
    // A test file with other columns is refused.
    let other = write(&env.path("other.csv"), "x,is_fraud\n1,0\n2,1\n");
    let err = env
        .train(&train, &["--test-data", &other, "--no-publish"])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err:?}");
}

#[tokio::test]
async fn a_champion_with_other_features_fails_the_gate_closed() {
    // Arrange: a champion trained on two of the three features.
    let env = TestEnv::new().await;
    let data = env.generate("fraud.csv", 3_000, 6);
    let text = std::fs::read_to_string(&data).unwrap();
    let narrow: String = text
        .lines()
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            format!("{},{},{}\n", cells[0], cells[1], cells[3])
        })
        .collect();
    let narrow = write(&env.path("narrow.csv"), &narrow);
    env.train(&narrow, &["--trees", "10"]).await.unwrap();

    // Act: a challenger on all three features cannot be compared with it.
    let err = env.train(&data, &["--trees", "10"]).await.unwrap_err();

    // Assert: published as a candidate, production kept, the run fails with exit code 5.
    assert_eq!(err.exit_code(), 5, "{err}");
    assert!(err.to_string().contains("features"), "{err}");
    assert_fails_closed(&env, ModelVersion::new(2).unwrap(), "features").await;
}

/// `version` is published with a gate that failed closed for `why`; production is still v1.
async fn assert_fails_closed(env: &TestEnv, version: ModelVersion, why: &str) {
    assert_eq!(env.production().await, Some(ModelVersion::FIRST));
    let manifest = env.manifest(version).await;
    let gate = manifest.gate.unwrap();
    assert_eq!(gate.outcome, Some(GateOutcome::ChampionUnavailable));
    assert!(!gate.promoted);
    assert_eq!(gate.champion_version, Some(ModelVersion::FIRST));
    let reason = gate.reason.unwrap();
    assert!(reason.contains(why), "{reason}");
}

#[tokio::test]
async fn a_corrupted_champion_artifact_fails_the_gate_closed() {
    // Arrange: a champion whose artifact is then damaged in the store.
    let env = TestEnv::new().await;
    let data = env.generate("fraud.csv", 3_000, 8);
    let first = env.train(&data, &["--trees", "10"]).await.unwrap();
    let sha = first.publication.unwrap().sha256;
    let artifact = env
        .path("store")
        .join(format!("models/fraud/artifacts/{sha}.msgpack"));
    let mut bytes = std::fs::read(&artifact).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&artifact, bytes).unwrap();

    // Act: even a much better challenger is not promoted over an unreadable champion.
    let err = env.train(&data, &SMALL_FOREST).await.unwrap_err();

    // Assert
    assert_eq!(err.exit_code(), 5, "{err}");
    assert_fails_closed(&env, ModelVersion::new(2).unwrap(), "sha256").await;
}

#[tokio::test]
async fn a_first_model_below_the_floor_is_published_but_not_promoted() {
    let env = TestEnv::new().await;
    let data = env.generate("fraud.csv", 3_000, 9);

    // A floor no model reaches, then the default floor (0.6) that a real model meets.
    let low = env
        .train(&data, &["--trees", "5", "--min-roc-auc", "0.9999"])
        .await
        .unwrap();
    let ok = env.train(&data, &["--trees", "5"]).await.unwrap();

    let low = low.publication.unwrap();
    assert_eq!(low.gate.outcome, Some(GateOutcome::BelowFloor));
    assert!(!low.promoted);
    assert_eq!(low.gate.floor, Some(0.9999));
    let ok = ok.publication.unwrap();
    assert_eq!(
        ok.gate.outcome,
        Some(GateOutcome::FirstModel),
        "{:?}",
        ok.gate
    );
    assert_eq!(env.production().await, ModelVersion::new(2).ok());
}

/// The key hashes of the rows `rule` puts on the training and on the held-out side of the
/// table in `path`.
fn sides(path: &str, rule: &SplitRule) -> (Vec<u64>, Vec<u64>) {
    let input = Input::from_bytes(path, std::fs::read(path).unwrap());
    let options = TableOptions {
        label: "is_fraud".into(),
        skip_bad_rows: false,
        key_column: None,
    };
    let table = read_table(&input, &options).unwrap();
    let split = rule.split(&table.keys).unwrap();
    let hashes = |rows: &[usize]| rows.iter().map(|&i| table.keys[i].hash).collect();
    (hashes(&split.train), hashes(&split.test))
}

/// The hash split rule version `v`'s manifest records.
async fn recorded_rule(env: &TestEnv, v: u32) -> SplitRule {
    let manifest = env.manifest(ModelVersion::new(v).unwrap()).await;
    rule_of(&manifest.held_out.unwrap())
}

fn rule_of(held_out: &HeldOutRule) -> SplitRule {
    let HeldOutRule::Hash {
        key_column,
        test_fraction,
        hash_seed,
        ..
    } = held_out.clone()
    else {
        panic!("not a hash rule: {held_out:?}");
    };
    SplitRule::Hash {
        key_column,
        test_fraction,
        seed: hash_seed,
    }
}

#[tokio::test]
async fn the_champion_is_scored_only_on_rows_it_never_saw_as_the_data_grows() {
    // Arrange: v1 on N rows; then the file grows by 25 % new rows from the same generator.
    let env = TestEnv::new().await;
    let data = env.generate("fraud.csv", 40_000, 11);
    let extra = env.generate("extra.csv", 10_000, 14);
    let grown = env.path("grown.csv");
    let mut text = std::fs::read_to_string(&data).unwrap();
    text.extend(
        std::fs::read_to_string(&extra)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| format!("{l}\n")),
    );
    let grown = write(&grown, &text);
    // A fraud rate of 2 % leaves ~200 frauds among the held-out rows: ROC AUC moves by about
    // 0.01 between samples of that size (extra seed 12 gives a 0.012 gap), so the bound is
    // tight but honest; scored on its own training rows, a champion looks ~0.02 better.
    let deep = ["--trees", "50"];
    let v1 = env.train(&data, &deep).await.unwrap();

    // Act: the same settings on the grown file, then another learner seed.
    let same = env.train(&grown, &deep).await.unwrap();
    let mut reseeded = deep.to_vec();
    reseeded.extend(["--seed", "7"]);
    let other_seed = env.train(&grown, &reseeded).await.unwrap();

    // Assert: from the recorded rules, no challenger test row was in v1's training set.
    let (v1_train, _) = sides(&data, &recorded_rule(&env, 1).await);
    let v1_train: std::collections::HashSet<u64> = v1_train.into_iter().collect();
    for (version, report) in [(2, &same), (3, &other_seed)] {
        let (_, test) = sides(&grown, &recorded_rule(&env, version).await);
        assert!(test.iter().all(|hash| !v1_train.contains(hash)));
        assert_eq!(test.len(), report.data.test_rows);
        // The champion's gate score is its honest held-out score, give or take sampling.
        let gate = &report.publication.as_ref().unwrap().gate;
        let champion = gate.champion_score.unwrap();
        assert!(
            (champion - v1.metrics.roc_auc).abs() < 0.01,
            "v{version}: champion scored {champion}, its own held-out score {}",
            v1.metrics.roc_auc
        );
        assert_eq!(gate.compared_rows, Some(report.data.test_rows as u64));
    }
}
