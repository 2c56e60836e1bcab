//! Parquet training data: the same rows as CSV (or a rating file) train the same model, byte
//! for byte; Spark-style part directories are read; bad files and bad rows are reported by name
//! and nothing is published.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use clap::Parser as _;
use shared_lib::model_id::ModelName;
use shared_lib::registry::Registry;
use shared_lib::store::{ObjectStore, StoreLocation};
use trainer::Error;
use trainer::cli::{Cli, Command, TrainCommand};
use trainer::pipeline::{Context, Publication};
use trainer::progress::Progress;
use trainer::{fraud, recommender};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

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
            actor: "parquet-test".into(),
            progress: Progress::hidden(),
        };
        Self { dir, ctx }
    }

    async fn train_fraud(&self, data: &str, extra: &[&str]) -> Result<fraud::Report, Error> {
        let mut argv = vec!["trainer", "train", "fraud", "--data", data, "--trees", "8"];
        argv.extend_from_slice(extra);
        let Command::Train(TrainCommand::Fraud(args)) = Cli::try_parse_from(argv).unwrap().command
        else {
            panic!("not train fraud");
        };
        fraud::train(&self.ctx, &args).await
    }

    async fn train_recommender(&self, ratings: &str) -> Result<recommender::Report, Error> {
        let argv = ["trainer", "train", "recommender", "--ratings", ratings];
        let Command::Train(TrainCommand::Recommender(args)) =
            Cli::try_parse_from(argv).unwrap().command
        else {
            panic!("not train recommender");
        };
        recommender::train(&self.ctx, &args).await
    }

    /// The artifact's bytes as stored.
    fn artifact(&self, model: &str, publication: &Publication) -> Vec<u8> {
        let path: PathBuf = self.dir.path().join(format!(
            "store/models/{model}/artifacts/{}.msgpack",
            publication.sha256
        ));
        std::fs::read(path).unwrap()
    }

    async fn versions(&self, model: &str) -> usize {
        self.ctx
            .registry
            .as_store()
            .unwrap()
            .list_versions(&ModelName::parse(model).unwrap())
            .await
            .map_or(0, |v| v.len())
    }
}

#[tokio::test]
async fn parquet_and_csv_of_the_same_rows_train_identical_fraud_models() {
    let (csv, parquet) = (TestEnv::new().await, TestEnv::new().await);
    let a = csv
        .train_fraud(&fixture("table/fraud.csv"), &[])
        .await
        .unwrap();
    let b = parquet
        .train_fraud(&fixture("table/fraud.parquet"), &[])
        .await
        .unwrap();
    // The same split (content keys agree), the same rows, the same model.
    assert_eq!(
        (a.data.train_rows, a.data.test_rows),
        (b.data.train_rows, b.data.test_rows)
    );
    assert_eq!(a.metrics.roc_auc, b.metrics.roc_auc);
    let (pa, pb) = (a.publication.unwrap(), b.publication.unwrap());
    let (bytes_a, bytes_b) = (csv.artifact("fraud", &pa), parquet.artifact("fraud", &pb));
    assert!(bytes_a == bytes_b, "the artifacts differ");
    assert_eq!(pa.sha256, pb.sha256);
}

#[tokio::test]
async fn a_parquet_part_directory_and_a_rating_file_train_identical_recommenders() {
    let (tsv, parquet) = (TestEnv::new().await, TestEnv::new().await);
    let a = tsv
        .train_recommender(&fixture("table/ratings.tsv"))
        .await
        .unwrap();
    let b = parquet
        .train_recommender(&fixture("table/ratings"))
        .await
        .unwrap();
    assert_eq!((a.rows_read, a.train_rows), (b.rows_read, b.train_rows));
    let (pa, pb) = (a.publication.unwrap(), b.publication.unwrap());
    assert!(
        tsv.artifact("recommender", &pa) == parquet.artifact("recommender", &pb),
        "the artifacts differ"
    );
}

#[tokio::test]
async fn bad_parquet_inputs_name_the_file_and_publish_nothing() {
    let env = TestEnv::new().await;
    let good = std::fs::read(fixture("table/fraud.parquet")).unwrap();
    let truncated = env.dir.path().join("truncated.parquet");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    let truncated = truncated.to_str().unwrap().to_owned();
    let ratings_part = fixture("table/ratings/part-00000.snappy.parquet");
    let text_column = fixture("table/fraud-text-column.parquet");
    let cases = [
        (truncated.as_str(), "not a readable Parquet file"),
        (ratings_part.as_str(), "no label column \"is_fraud\""),
        (
            text_column.as_str(),
            "column \"txn_amount\" has type BYTE_ARRAY",
        ),
    ];
    for (path, needle) in cases {
        let err = env.train_fraud(path, &[]).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Input { .. }), "{msg}");
        assert!(msg.contains(path) && msg.contains(needle), "{msg}");
    }
    // A fraud table is no rating file.
    let err = env
        .train_recommender(&fixture("table/fraud.parquet"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fraud.parquet") && err.contains("no user column"),
        "{err}"
    );
    assert_eq!(env.versions("fraud").await, 0);
    assert_eq!(env.versions("recommender").await, 0);
}

#[tokio::test]
async fn null_and_nan_cells_are_bad_rows_as_in_csv() {
    let env = TestEnv::new().await;
    let path = fixture("table/fraud-bad-rows.parquet");
    let err = env.train_fraud(&path, &["--no-publish"]).await.unwrap_err();
    match &err {
        Error::BadRow { file, line, reason } => {
            assert_eq!((file.as_str(), *line), (path.as_str(), 2), "{err}");
            assert!(
                reason.contains("txn_amount") && reason.contains("null"),
                "{err}"
            );
        }
        other => panic!("expected a bad row, got {other}"),
    }
    // Skipped and counted: the null row and the NaN row. Three rows are too few to train, so
    // the reader is called directly.
    let data = trainer::data::source::read_dataset(&path).await.unwrap();
    let options = trainer::data::table::TableOptions {
        label: "is_fraud".into(),
        skip_bad_rows: true,
        key_column: None,
    };
    let table = trainer::data::table::read_dataset_table(&data, &options).unwrap();
    assert_eq!((table.n_rows(), table.skipped), (3, 2));
    assert_eq!(table.values[..3], [1.5, 10.0, 1.0]);
}
