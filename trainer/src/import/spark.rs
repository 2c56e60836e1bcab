//! `trainer import spark-als`: a directory written by `pyspark.ml.recommendation.ALSModel.save`
//! (Spark 3.x and 4.x) as the served [`AlsModel`].
//!
//! The directory holds `metadata/part-*` (one JSON line: the class, the Spark version, `rank`)
//! and `userFactors/`, `itemFactors/` (Parquet part files of `id int`, `features array<float>`).
//! Ids are kept as Spark gave them (printed as decimals); users and items are ordered by id. A
//! score is the dot product of the two factor vectors, as Spark's `transform` computes it.
//!
//! `ALSModel` does not save the estimator's `regParam`, `implicitPrefs` or `alpha`, which serving
//! needs to fold in a new user's clicks: they are `--reg-param`, `--feedback`, `--alpha` (Spark's
//! defaults), recorded in the manifest. What else serving uses comes from `--ratings` (the
//! training ratings: each user's seen items, never recommended again, and item popularity for
//! cold start) or is recorded as absent (nothing excluded, popularity all zero).
//!
//! Bounds: rank 1..=[`MAX_RANK`], at most [`MAX_ENTITIES`] users and items each, a metadata file
//! of at most [`MAX_METADATA_BYTES`], and the dataset bounds of [`crate::data::source`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parquet::basic::Type as PhysicalType;
use parquet::record::Field;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use suite_models::als::{AlsModel, Feedback, MAX_RANK};
use suite_models::artifact::{ModelKind, encode_artifact};
use suite_models::model_id::ModelName;
use suite_storage::registry::manifest::{DataFingerprint, HeldOutRule, NewVersion};

use crate::Error;
use crate::data::parquet::{columns, for_each_row, open};
use crate::data::ratings::Ratings;
use crate::data::source::{Dataset, read_dataset};
use crate::gate::{GateMetric, GatePolicy};
use crate::import::{ImportPublication, publish_without_gate};
use crate::pipeline::{Candidate, Context, gate_and_publish};
use crate::recommender::evaluate::Holdout;
use crate::recommender::{AnnArgs, FeedbackArg, RatingInputArgs, RecommenderChallenger};

/// The most users, and the most items, an imported model may have.
pub const MAX_ENTITIES: usize = 100_000_000;
/// The largest metadata file read.
pub const MAX_METADATA_BYTES: usize = 1 << 20;
const ALS_MODEL_CLASS: &str = "org.apache.spark.ml.recommendation.ALSModel";

#[derive(Debug, Clone, clap::Args)]
pub struct SparkArgs {
    /// The directory ALSModel.save wrote: a local path or s3://bucket/prefix.
    #[arg(long)]
    pub path: String,
    #[arg(long, default_value = "recommender")]
    pub model: String,
    /// The training ratings (file or Parquet directory): seen items and item popularity.
    #[arg(long)]
    pub ratings: Option<String>,
    /// Held-out ratings: score the model and gate it as a trained one.
    #[arg(long)]
    pub test_ratings: Option<String>,
    /// Without held-out data, move `production` to the import anyway (the operator's decision).
    #[arg(long, conflicts_with = "test_ratings")]
    pub promote: bool,
    /// How the model was trained (ALS implicitPrefs); Spark does not save it.
    #[arg(long, value_enum, default_value_t = FeedbackArg::Explicit)]
    pub feedback: FeedbackArg,
    /// The ALS regParam it was trained with; Spark does not save it.
    #[arg(long, default_value_t = 0.1)]
    pub reg_param: f64,
    /// The ALS alpha (implicit); Spark does not save it.
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
    /// Cut-off of the ranking metrics (implicit).
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    #[arg(long, default_value_t = 0.0)]
    pub min_improvement: f64,
    /// Explicit: the RMSE above which it is not promoted [default: predicting the mean rating].
    #[arg(long)]
    pub max_rmse: Option<f64>,
    /// Implicit: the NDCG@k below which it is not promoted [default: most popular, or 0].
    #[arg(long)]
    pub min_ndcg: Option<f64>,
    #[command(flatten)]
    pub input: RatingInputArgs,
    #[command(flatten)]
    pub ann: AnnArgs,
}

/// What `import spark-als` did.
#[derive(Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub source: String,
    pub spark_version: String,
    pub rank: u32,
    pub users: usize,
    pub items: usize,
    /// Rating rows of `--ratings` whose user or item the model does not know.
    pub ratings_unmatched: u64,
    pub metrics: BTreeMap<String, f64>,
    /// Reading and converting (not encoding or publishing).
    pub read_seconds: f64,
    /// Encoding the artifact and publishing it.
    pub publish_seconds: f64,
    pub publication: ImportPublication,
}

/// What `metadata/part-*` says.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub spark_version: String,
    pub uid: String,
    pub rank: u32,
}

fn input_error(path: &str, reason: impl Into<String>) -> Error {
    Error::Input {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn join(base: &str, child: &str) -> String {
    format!("{}/{child}", base.trim_end_matches('/'))
}

/// Parses the metadata JSON line.
///
/// # Errors
/// [`Error::Input`] naming `name`: not JSON, not an `ALSModel`, no usable rank.
pub fn parse_metadata(name: &str, bytes: &[u8]) -> Result<Metadata, Error> {
    if bytes.len() > MAX_METADATA_BYTES {
        return Err(input_error(
            name,
            format!("more than {MAX_METADATA_BYTES} bytes of metadata"),
        ));
    }
    let line = bytes
        .split(|&b| b == b'\n')
        .find(|l| !l.iter().all(u8::is_ascii_whitespace))
        .ok_or_else(|| input_error(name, "the metadata file is empty"))?;
    let meta: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| input_error(name, format!("the metadata is not JSON: {e}")))?;
    let class = meta["class"].as_str().unwrap_or("");
    if class != ALS_MODEL_CLASS {
        return Err(input_error(
            name,
            format!("the metadata is of class {class:?}, not {ALS_MODEL_CLASS}"),
        ));
    }
    let rank = meta["rank"]
        .as_u64()
        .filter(|r| (1..=u64::from(MAX_RANK)).contains(r))
        .ok_or_else(|| {
            input_error(
                name,
                format!("rank {} is not a number in 1..={MAX_RANK}", meta["rank"]),
            )
        })?;
    Ok(Metadata {
        spark_version: meta["sparkVersion"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned(),
        uid: meta["uid"].as_str().unwrap_or("").to_owned(),
        rank: rank as u32,
    })
}

/// Factors read from one of the factor directories: ids ascending, vectors row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Factors {
    pub ids: Vec<i64>,
    pub values: Vec<f32>,
}

/// Reads `userFactors/` or `itemFactors/`: every vector must have `rank` finite floats, ids
/// must be unique.
///
/// # Errors
/// [`Error::Input`] naming the part file (and row) for a wrong schema, a null, a wrong length.
pub fn read_factors(data: &Dataset, rank: u32) -> Result<Factors, Error> {
    let k = rank as usize;
    let mut pairs: Vec<(i64, u32)> = Vec::new();
    let mut raw: Vec<f32> = Vec::new();
    for part in &data.parts {
        let reader = open(part)?;
        let cols = columns(part, &reader)?;
        let id_at = cols.iter().position(|c| c.name == "id");
        let features_at = cols.iter().position(|c| c.name == "features");
        let (Some(id_at), Some(features_at)) = (id_at, features_at) else {
            return Err(input_error(
                &part.name,
                format!(
                    "expected columns id and features (array<float>), found {}",
                    cols.iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ));
        };
        if !matches!(
            cols[id_at].physical,
            Some(PhysicalType::INT32 | PhysicalType::INT64)
        ) || cols[features_at].physical.is_some()
        {
            return Err(input_error(
                &part.name,
                "expected id int and features array<float>",
            ));
        }
        for_each_row(part, &reader, |n, row| {
            let bad = |reason: String| input_error(&part.name, format!("row {n}: {reason}"));
            let mut id = None;
            let mut got = 0usize;
            for (i, (_, field)) in row.get_column_iter().enumerate() {
                if i == id_at {
                    id = match field {
                        Field::Int(v) => Some(i64::from(*v)),
                        Field::Long(v) => Some(*v),
                        other => return Err(bad(format!("id {other} is not an integer"))),
                    };
                } else if i == features_at {
                    let Field::ListInternal(list) = field else {
                        return Err(bad(format!("features {field} is not an array")));
                    };
                    for element in list.elements() {
                        match element {
                            Field::Float(v) if v.is_finite() => raw.push(*v),
                            other => {
                                return Err(bad(format!("feature {other} is not a finite float")));
                            }
                        }
                        got += 1;
                    }
                }
            }
            if got != k {
                return Err(bad(format!("{got} factors, rank is {rank}")));
            }
            let id = id.ok_or_else(|| bad("no id".into()))?;
            if pairs.len() >= MAX_ENTITIES {
                return Err(bad(format!("more than {MAX_ENTITIES} rows")));
            }
            pairs.push((id, pairs.len() as u32));
            Ok(())
        })?;
    }
    if pairs.is_empty() {
        return Err(input_error(&data.name, "no factors"));
    }
    pairs.sort_unstable();
    if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(input_error(
            &data.name,
            format!("id {} appears twice", w[0].0),
        ));
    }
    let mut values = Vec::with_capacity(raw.len());
    for &(_, at) in &pairs {
        let at = at as usize * k;
        values.extend_from_slice(&raw[at..at + k]);
    }
    Ok(Factors {
        ids: pairs.into_iter().map(|(id, _)| id).collect(),
        values,
    })
}

/// A Spark model read from its directory, before the served extras.
#[derive(Debug, Clone)]
pub struct SparkModel {
    pub metadata: Metadata,
    pub users: Factors,
    pub items: Factors,
    /// sha256 over the three directories' fingerprints.
    pub sha256: String,
}

/// Reads an `ALSModel.save` directory.
///
/// # Errors
/// [`Error::Input`] naming the directory or file: no `metadata/`, a bad metadata file, bad or
/// missing factor files.
pub async fn read_model(path: &str) -> Result<SparkModel, Error> {
    let not_spark = |what: &str, e: Error| {
        input_error(
            path,
            format!(
                "not an ALSModel.save directory: no readable {what} ({})",
                suite_models::error_chain(&e)
            ),
        )
    };
    let meta = read_dataset(&join(path, "metadata"))
        .await
        .map_err(|e| not_spark("metadata/", e))?;
    let first = &meta.parts[0];
    let metadata = parse_metadata(&first.name, &first.bytes)?;
    let user_data = read_dataset(&join(path, "userFactors"))
        .await
        .map_err(|e| not_spark("userFactors/", e))?;
    let item_data = read_dataset(&join(path, "itemFactors"))
        .await
        .map_err(|e| not_spark("itemFactors/", e))?;
    let mut hasher = Sha256::new();
    for d in [&meta.sha256, &user_data.sha256, &item_data.sha256] {
        hasher.update(d.as_bytes());
    }
    let rank = metadata.rank;
    let (users, items) = tokio::task::spawn_blocking(move || {
        Ok::<_, Error>((
            read_factors(&user_data, rank)?,
            read_factors(&item_data, rank)?,
        ))
    })
    .await
    .map_err(|e| Error::Training(format!("the reading task failed: {e}")))??;
    Ok(SparkModel {
        metadata,
        users,
        items,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// The served model: factors, plus seen items and popularity from `ratings` when given.
/// Returns the model and the rating rows whose user or item the model does not know.
pub fn to_served(
    spark: SparkModel,
    feedback: Feedback,
    reg_param: f32,
    alpha: f32,
    ratings: Option<&Ratings>,
) -> (AlsModel, u64) {
    let user_ids: Vec<String> = spark.users.ids.iter().map(i64::to_string).collect();
    let item_ids: Vec<String> = spark.items.ids.iter().map(i64::to_string).collect();
    let mut seen: Vec<Vec<u32>> = vec![Vec::new(); user_ids.len()];
    let mut popularity = vec![0u32; item_ids.len()];
    let mut unmatched = 0u64;
    if let Some(r) = ratings {
        let index = |ids: &[String]| -> HashMap<String, u32> {
            ids.iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), i as u32))
                .collect()
        };
        let (users, items) = (index(&user_ids), index(&item_ids));
        let user_of: Vec<Option<u32>> =
            r.user_ids.iter().map(|id| users.get(id).copied()).collect();
        let item_of: Vec<Option<u32>> =
            r.item_ids.iter().map(|id| items.get(id).copied()).collect();
        for row in 0..r.len() {
            if feedback == Feedback::Implicit && r.values[row] <= 0.0 {
                continue;
            }
            match (
                user_of[r.users[row] as usize],
                item_of[r.items[row] as usize],
            ) {
                (Some(u), Some(i)) => {
                    seen[u as usize].push(i);
                    popularity[i as usize] = popularity[i as usize].saturating_add(1);
                }
                _ => unmatched += 1,
            }
        }
    }
    let mut seen_offsets = Vec::with_capacity(user_ids.len() + 1);
    let mut seen_items = Vec::new();
    seen_offsets.push(0u32);
    for mut s in seen {
        s.sort_unstable();
        s.dedup();
        seen_items.extend_from_slice(&s);
        seen_offsets.push(seen_items.len() as u32);
    }
    let model = AlsModel {
        feedback,
        rank: spark.metadata.rank,
        lambda: reg_param,
        alpha,
        user_ids,
        item_ids,
        user_factors: spark.users.values,
        item_factors: spark.items.values,
        seen_offsets,
        seen_items,
        item_popularity: popularity,
        index: None,
        graph: None,
    };
    (model, unmatched)
}

fn check_args(args: &SparkArgs) -> Result<ModelName, Error> {
    let usage = |m: &str| Err(Error::Usage(m.into()));
    if !(args.reg_param.is_finite() && args.reg_param >= 0.0) {
        return usage("--reg-param must be a non-negative number");
    }
    if !(args.alpha.is_finite() && args.alpha >= 0.0) {
        return usage("--alpha must be a non-negative number");
    }
    if args.k == 0 {
        return usage("--k must be positive");
    }
    if !(args.min_improvement.is_finite() && args.min_improvement >= 0.0) {
        return usage("--min-improvement must be >= 0");
    }
    args.ann.check()?;
    ModelName::parse(&args.model).map_err(|e| Error::Usage(format!("--model: {e}")))
}

/// Reads, converts, (scores and gates, with `--test-ratings`), publishes.
///
/// # Errors
/// Bad arguments, unreadable or malformed inputs (nothing is published then), registry errors.
pub async fn import(ctx: &Context, args: &SparkArgs) -> Result<Report, Error> {
    let model_name = check_args(args)?;
    let started = std::time::Instant::now();
    let spark = read_model(&args.path).await?;
    let (spark_version, spark_uid, rank) = (
        spark.metadata.spark_version.clone(),
        spark.metadata.uid.clone(),
        spark.metadata.rank,
    );
    let fingerprint_sha = spark.sha256.clone();
    let train = match &args.ratings {
        Some(location) => Some(args.input.read(&read_dataset(location).await?)?.ratings),
        None => None,
    };
    let test = match &args.test_ratings {
        Some(location) => {
            let data = read_dataset(location).await?;
            let read = args.input.read(&data)?;
            Some((data, read.ratings))
        }
        None => None,
    };
    let feedback = args.feedback.into();
    let (model, unmatched) = to_served(
        spark,
        feedback,
        args.reg_param as f32,
        args.alpha as f32,
        train.as_ref(),
    );
    let serving = model
        .prepare()
        .map_err(|e| input_error(&args.path, format!("the model is not servable: {e}")))?;
    let read_seconds = started.elapsed().as_secs_f64();
    // Only with --ann-index is the model prepared a second time, with its new index.
    let (serving, ann_build) = if args.ann.ann_index {
        let ann = args.ann.clone();
        let model = serving.into_model();
        let (model, build) = tokio::task::spawn_blocking(move || ann.index(model))
            .await
            .map_err(|e| Error::Training(format!("building the ann index failed: {e}")))??;
        (model.prepare()?, build)
    } else {
        (serving, None)
    };
    let (users, items) = (serving.model().n_users(), serving.model().n_items());
    tracing::info!(path = %args.path, users, items, rank, read_seconds, "Read the Spark ALS model.");
    let publish_started = std::time::Instant::now();
    let artifact = encode_artifact(ModelKind::RecommenderAls, serving.model())?;
    let absent_or = |what: &Option<String>| match what {
        Some(p) => json!(format!("from --ratings {p}")),
        None => json!("absent"),
    };
    let mut parameters = BTreeMap::from([
        ("imported_from".to_owned(), json!("spark-als")),
        ("spark_version".to_owned(), json!(spark_version)),
        ("spark_uid".to_owned(), json!(spark_uid)),
        ("feedback".to_owned(), json!(feedback.as_str())),
        ("rank".to_owned(), json!(rank)),
        ("lambda".to_owned(), json!(args.reg_param)),
        ("alpha".to_owned(), json!(args.alpha)),
        (
            "lambda_alpha_feedback".to_owned(),
            json!("given by the operator: ALSModel.save does not record them"),
        ),
        ("seen_items".to_owned(), absent_or(&args.ratings)),
        ("item_popularity".to_owned(), absent_or(&args.ratings)),
    ]);
    if let Some(build) = &ann_build {
        parameters.extend(build.manifest_parameters());
    }
    let mut metrics = BTreeMap::from([
        ("users".to_owned(), users as f64),
        ("items".to_owned(), items as f64),
        ("import_read_seconds".to_owned(), read_seconds),
    ]);
    if let Some(build) = &ann_build {
        metrics.extend(build.manifest_metrics());
    }
    let mut draft = NewVersion {
        model: model_name.clone(),
        run_id: uuid::Uuid::now_v7(),
        algorithm: format!("als-{}", feedback.as_str()),
        parameters,
        feature_schema: Default::default(),
        training_data: DataFingerprint {
            sha256: fingerprint_sha,
            rows: train.as_ref().map_or(0, |t| t.len() as u64),
            source: args.path.clone(),
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
        Some((test_data, test)) => {
            let k = args.k;
            let train_set = train.unwrap_or_default();
            let has_train = !train_set.is_empty();
            let test_values: Vec<f64> = test.values.iter().map(|&v| f64::from(v)).collect();
            let holdout = Holdout::new(train_set, test);
            let (policy, score) = match feedback {
                Feedback::Explicit => {
                    let rmse = holdout.rmse(&serving);
                    metrics.insert("rmse".into(), rmse);
                    let floor = args.max_rmse.unwrap_or_else(|| {
                        if has_train {
                            holdout.mean_baseline_rmse()
                        } else {
                            spread(&test_values)
                        }
                    });
                    let policy = GatePolicy {
                        metric: GateMetric::Rmse,
                        floor,
                        min_improvement: args.min_improvement,
                    };
                    (policy, rmse)
                }
                Feedback::Implicit => {
                    let r = holdout.ranking(&serving, k);
                    metrics.insert("precision_at_k".into(), r.precision_at_k);
                    metrics.insert("recall_at_k".into(), r.recall_at_k);
                    metrics.insert("ndcg_at_k".into(), r.ndcg_at_k);
                    metrics.insert("k".into(), k as f64);
                    let floor = args.min_ndcg.unwrap_or_else(|| {
                        if has_train {
                            holdout.popularity_baseline(k).ndcg_at_k
                        } else {
                            0.0
                        }
                    });
                    let policy = GatePolicy {
                        metric: GateMetric::NdcgAtK,
                        floor,
                        min_improvement: args.min_improvement,
                    };
                    (policy, r.ndcg_at_k)
                }
            };
            if !score.is_finite() {
                return Err(Error::Training(format!(
                    "{} is not a number",
                    policy.metric
                )));
            }
            draft.metrics = metrics.clone();
            let candidate = Candidate {
                draft,
                held_out: HeldOutRule::File {
                    source: test_data.name.clone(),
                    sha256: test_data.sha256.clone(),
                },
                artifact,
                score,
                policy,
            };
            let challenger = Arc::new(RecommenderChallenger {
                model: serving,
                holdout,
                k,
            });
            gate_and_publish(ctx, challenger, candidate).await?.into()
        }
    };
    Ok(Report {
        model: model_name.to_string(),
        source: args.path.clone(),
        spark_version,
        rank,
        users,
        items,
        ratings_unmatched: unmatched,
        metrics,
        read_seconds,
        publish_seconds: publish_started.elapsed().as_secs_f64(),
        publication,
    })
}

/// The RMSE of predicting the mean of `values` (their standard deviation).
fn spread(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_must_be_an_als_model_with_a_rank() {
        let good = br#"{"class":"org.apache.spark.ml.recommendation.ALSModel","sparkVersion":"3.5.1","uid":"ALS_1","rank":12}"#;
        let m = parse_metadata("m", good).unwrap();
        assert_eq!((m.rank, m.spark_version.as_str()), (12, "3.5.1"));
        let cases: [(&[u8], &str); 4] = [
            (b"", "empty"),
            (b"{not json", "not JSON"),
            (
                br#"{"class":"org.apache.spark.ml.classification.LogisticRegressionModel","rank":3}"#,
                "of class",
            ),
            (
                br#"{"class":"org.apache.spark.ml.recommendation.ALSModel","rank":5000}"#,
                "rank 5000",
            ),
        ];
        for (bytes, needle) in cases {
            let err = parse_metadata("dir/metadata/part-0", bytes)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("dir/metadata/part-0") && err.contains(needle),
                "{err}"
            );
        }
    }
}
