//! A scikit-learn forest imported from ONNX (`trainer import onnx`) is served with the classes
//! scikit-learn's `predict` gives, over real HTTP (fixtures: `trainer/tests/fixtures/sklearn`).

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use shared_lib::artifact::{ModelKind, encode_artifact};
use shared_lib::registry::manifest::{FeatureSchema, FeatureSpec, FeatureType};
use trainer::data::parquet::{for_each_row, number, open};
use trainer::data::source::Input;

use crate::helpers::{S3Fixture, spawn_app};

const FEATURES: [&str; 4] = ["amount", "spent_month", "same_merchant", "score"];

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../trainer/tests/fixtures/sklearn")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classify_answers_scikit_learns_classes_for_an_imported_forest() {
    let names: Vec<String> = FEATURES.iter().map(|&n| n.to_owned()).collect();
    let onnx = std::fs::read(fixture("forest.onnx")).unwrap();
    let model = trainer::import::onnx::convert("forest.onnx", &onnx, &names, 0.5).unwrap();
    let fixture_s3 = S3Fixture::start().await;
    let artifact = encode_artifact(ModelKind::FraudRandomForest, &model).unwrap();
    let mut draft = shared_lib::testing::fraud_draft("test");
    draft.feature_schema = FeatureSchema {
        features: names
            .iter()
            .map(|n| FeatureSpec {
                name: n.clone(),
                dtype: FeatureType::Float,
                min: None,
                max: None,
            })
            .collect(),
    };
    fixture_s3
        .registry
        .publish(draft, Bytes::from(artifact.bytes), Some(&artifact.digest))
        .await
        .unwrap();
    fixture_s3.promote(1).await;
    let app = spawn_app(fixture_s3.env()).await;
    app.wait_ready().await;

    let path = fixture("reference.parquet");
    let input = Input::from_bytes(path.clone(), std::fs::read(&path).unwrap());
    let reader = open(&input).unwrap();
    let mut rows: Vec<HashMap<String, f64>> = Vec::new();
    for_each_row::<trainer::Error>(&input, &reader, |_, row| {
        rows.push(
            row.get_column_iter()
                .map(|(n, f)| (n.clone(), number(f).unwrap()))
                .collect(),
        );
        Ok(())
    })
    .unwrap();
    assert_eq!(rows.len(), 10_000);
    let mut mismatches = 0;
    for row in &rows {
        let query: Vec<String> = FEATURES
            .iter()
            .map(|n| format!("{n}={}", row[*n]))
            .collect();
        let res = app.get(&format!("/classify?{}", query.join("&"))).await;
        assert_eq!(res.status(), 200);
        let class = res.json::<Vec<u8>>().await.unwrap()[0];
        // Ties (P = 0.5 exactly) aside: scikit-learn's argmax says 0 there, our threshold 1.
        if (row["proba"] - 0.5).abs() > 1e-9 && f64::from(class) != row["predicted"] {
            mismatches += 1;
        }
    }
    assert_eq!(mismatches, 0, "of 10000 rows");
}
