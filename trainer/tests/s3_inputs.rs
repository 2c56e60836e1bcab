//! Parquet inputs and a Spark model read from `s3://` (an in-process S3 server), through the
//! real `trainer` binary: a part directory is a prefix, a file is a key.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use shared_lib::testing::TestS3;

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Runs the trainer with the store's environment; returns (success, stdout, stderr).
async fn trainer(s3: &TestS3, args: &[&str]) -> (bool, String, String) {
    let env: Vec<(String, String)> = s3
        .service_env("models", Some("suite"))
        .into_iter()
        .filter(|(k, _)| k != "HOST" && k != "PORT")
        .collect();
    let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_trainer"))
            .args(&args)
            .envs(env)
            .env("RUST_LOG", "error")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_data_and_spark_models_are_read_from_s3() {
    let s3 = TestS3::start().await;
    s3.bucket("data", None);
    let data = s3.bucket_dir("data");
    copy_dir(&fixtures().join("spark-als"), &data.join("spark"));
    copy_dir(&fixtures().join("table"), &data.join("table"));

    let (ok, out, err) = trainer(
        &s3,
        &[
            "import",
            "spark-als",
            "--path",
            "s3://data/spark/model",
            "--ratings",
            "s3://data/spark/ratings",
            "--test-ratings",
            "s3://data/spark/test.parquet",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["users"], 200, "{out}");
    assert_eq!(report["publication"]["promoted"], true, "{out}");

    let (ok, out, err) = trainer(
        &s3,
        &[
            "train",
            "fraud",
            "--data",
            "s3://data/table/fraud.parquet",
            "--trees",
            "5",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["data"]["rows"], 3000, "{out}");

    let (ok, out, err) = trainer(
        &s3,
        &[
            "train",
            "recommender",
            "--ratings",
            "s3://data/table/ratings",
            "--no-publish",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["rows_read"], 4000, "{out}");

    // A prefix with no ALSModel under it is named, and exits 3 (bad input).
    let (ok, _, err) = trainer(&s3, &["import", "spark-als", "--path", "s3://data/table"]).await;
    assert!(!ok);
    assert!(
        err.contains("s3://data/table") && err.contains("no readable metadata/"),
        "{err}"
    );
}
