//! ALS recommenders: generate planted data, train (explicit or implicit), hold out rows by the
//! split rule, then hand a [`RecommenderChallenger`] to [`crate::pipeline`] to gate against the
//! champion on rows neither trained on and publish a [`suite_models::als::AlsModel`].
//!
//! The gate metric is `rmse` (lower is better) for explicit ratings and `ndcg_at_k` (higher is
//! better) for implicit feedback; a champion with the other feedback type is not comparable.
//! The floors default to the baselines of the same run: an explicit model must predict better
//! than the training mean, an implicit one must rank better than "most popular". How unknown
//! users and items are scored is in [`evaluate`].
//!
//! Defaults: rank 10, 10 iterations, λ = 0.1 (Spark MLlib's). For implicit feedback `alpha`
//! defaults to 1.0 like Spark and the `implicit` package (confidence `1 + alpha·count`); the
//! paper's 40 suits raw click counts with long tails, pass `--alpha 40` for it. Implicit rows
//! with a count ≤ 0 are dropped before training (no interaction); held-out rows with a count ≤ 0
//! are not relevant.

pub mod als;
pub mod evaluate;
pub mod generate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use std::sync::Arc;

use serde::Serialize;
use suite_models::als::{
    AlsModel, AnnBuild, AnnParams, Feedback, HnswParams, IvfParams, MAX_RANK, ServingAls,
    with_ann_index,
};
use suite_models::artifact::{ModelKind, encode_artifact};
use suite_models::drift::{Binned, DRIFT_BINS, DriftProfile};
use suite_models::model_id::ModelName;
use suite_storage::registry::manifest::{HeldOutRule, Manifest, NewVersion};

use crate::Error;
use crate::data::parquet::RatingColumns;
use crate::data::ratings::{RatingFormat, Ratings, ReadRatings, read_dataset_ratings};
use crate::data::source::{Dataset, read_dataset};
use crate::evaluate::ranking::RankingMetrics;
use crate::gate::{GateMetric, GatePolicy};
use crate::pipeline::{Candidate, Challenger, Context, Publication, gate_and_publish};
use crate::split::{RowKey, SplitArgs, SplitRule};

use self::als::AlsParams;
use self::evaluate::Holdout;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FeedbackArg {
    Explicit,
    Implicit,
}

impl From<FeedbackArg> for Feedback {
    fn from(f: FeedbackArg) -> Self {
        match f {
            FeedbackArg::Explicit => Feedback::Explicit,
            FeedbackArg::Implicit => Feedback::Implicit,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    #[arg(long)]
    pub users: usize,
    #[arg(long)]
    pub items: usize,
    /// Rank of the planted model U·Vᵀ.
    #[arg(long, default_value_t = 10)]
    pub rank: usize,
    /// Fraction of user × item cells observed.
    #[arg(long, default_value_t = 0.05)]
    pub density: f64,
    /// Standard deviation of the Gaussian noise: the best achievable RMSE.
    #[arg(long, default_value_t = 0.5)]
    pub noise: f64,
    /// Zipf exponent of item popularity (0 = uniform).
    #[arg(long, default_value_t = 0.8)]
    pub popularity_skew: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = RatingFormat::Tsv)]
    pub format: RatingFormat,
    /// Write interaction counts instead of ratings.
    #[arg(long)]
    pub implicit: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Rating file (MovieLens text or Parquet) or a directory of Parquet part files: a local
    /// path or s3://bucket/key.
    #[arg(long)]
    pub ratings: String,
    /// Evaluate on this file instead of a held-out split of --ratings (train on all of it).
    #[arg(long)]
    pub test_ratings: Option<String>,
    /// Train and evaluate only: no champion, no gate, no publishing.
    #[arg(long)]
    pub no_publish: bool,
    #[arg(long, default_value = "recommender")]
    pub model: String,
    #[arg(long, value_enum, default_value_t = FeedbackArg::Explicit)]
    pub feedback: FeedbackArg,
    #[arg(long, default_value_t = 10)]
    pub rank: usize,
    #[arg(long, default_value_t = 10)]
    pub iterations: usize,
    #[arg(long, default_value_t = 0.1)]
    pub lambda: f64,
    /// Implicit confidence scale: c = 1 + alpha · count.
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
    /// Conjugate-gradient steps per row and sweep (implicit).
    #[arg(long, default_value_t = 3)]
    pub cg_steps: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Cut-off of the ranking metrics (implicit).
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    #[command(flatten)]
    pub split: SplitArgs,
    /// How much the challenger must beat the champion by to move `production`.
    #[arg(long, default_value_t = 0.0)]
    pub min_improvement: f64,
    /// Explicit: no model with a held-out RMSE above this is promoted, not even the first.
    /// Default: the RMSE of predicting the training mean on the same rows.
    #[arg(long)]
    pub max_rmse: Option<f64>,
    /// Implicit: no model with a held-out NDCG@k below this is promoted, not even the first.
    /// Default: the NDCG@k of recommending the most popular unseen items on the same rows.
    #[arg(long)]
    pub min_ndcg: Option<f64>,
    #[command(flatten)]
    pub input: RatingInputArgs,
    #[command(flatten)]
    pub ann: AnnArgs,
}

/// Which approximate-search index `--ann-index` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AnnKind {
    /// A graph (HNSW): the fastest search at a given recall; the slowest build.
    Hnsw,
    /// Inverted lists (IVF): builds in minutes at 10M items; slower to search.
    Ivf,
}

/// The approximate-search index stored with the model, for `RECOMMEND_SEARCH=ann`.
#[derive(Debug, Clone, clap::Args)]
pub struct AnnArgs {
    /// Build an approximate-search index over the item factors and store it in the artifact.
    #[arg(long)]
    pub ann_index: bool,
    /// Which index.
    #[arg(long, value_enum, default_value_t = AnnKind::Hnsw)]
    pub ann_kind: AnnKind,
    /// IVF: lists of the index [default: √items].
    #[arg(long)]
    pub ann_lists: Option<usize>,
    /// HNSW: neighbours per item on the bottom layer (half as many on the layers above).
    #[arg(long, default_value_t = HnswParams::new().degree)]
    pub ann_degree: usize,
    /// HNSW: breadth of the search that links each item as it is inserted.
    #[arg(long, default_value_t = HnswParams::new().ef_construction)]
    pub ann_ef_construction: usize,
    /// The index's probe is the smallest whose recall@10 against the exact scan reaches this.
    #[arg(long, default_value_t = 0.95)]
    pub ann_target_recall: f64,
    /// Candidates per item asked for, as the service's RECOMMEND_OVERSAMPLE (recall depends on it).
    #[arg(long, default_value_t = 10)]
    pub ann_oversample: usize,
}

impl Default for AnnArgs {
    fn default() -> Self {
        Self {
            ann_index: false,
            ann_kind: AnnKind::Hnsw,
            ann_lists: None,
            ann_degree: HnswParams::new().degree,
            ann_ef_construction: HnswParams::new().ef_construction,
            ann_target_recall: 0.95,
            ann_oversample: 10,
        }
    }
}

/// Users the index's recall is tuned and measured on.
const ANN_RECALL_USERS: usize = 200;

impl AnnArgs {
    pub(crate) fn check(&self) -> Result<(), Error> {
        let usage = |m: &str| Err(Error::Usage(m.into()));
        if !(self.ann_target_recall > 0.0 && self.ann_target_recall <= 1.0) {
            return usage("--ann-target-recall must be in (0, 1]");
        }
        if !(1..=1000).contains(&self.ann_oversample) {
            return usage("--ann-oversample must be from 1 to 1000");
        }
        if self
            .ann_lists
            .is_some_and(|l| l == 0 || l > suite_models::als::MAX_LISTS)
        {
            return usage("--ann-lists must be from 1 to 65536");
        }
        if self.ann_lists.is_some() && self.ann_kind != AnnKind::Ivf {
            return usage("--ann-lists sets the lists of an IVF index: add --ann-kind ivf");
        }
        if !(4..=suite_models::als::MAX_DEGREE).contains(&self.ann_degree) {
            return usage("--ann-degree must be from 4 to 256");
        }
        if !(1..=suite_models::als::MAX_EF).contains(&self.ann_ef_construction) {
            return usage("--ann-ef-construction must be from 1 to 65536");
        }
        Ok(())
    }

    /// `model` with its index when asked for one, and what building it did.
    pub(crate) fn index(&self, model: AlsModel) -> Result<(AlsModel, Option<AnnBuild>), Error> {
        if !self.ann_index {
            return Ok((model, None));
        }
        let params = match self.ann_kind {
            AnnKind::Ivf => {
                let mut params = IvfParams::for_items(model.n_items());
                if let Some(lists) = self.ann_lists {
                    params.lists = lists;
                    params.train_items = lists.saturating_mul(64);
                }
                AnnParams::Ivf(params)
            }
            AnnKind::Hnsw => AnnParams::Hnsw(HnswParams {
                ef_construction: self.ann_ef_construction,
                ..HnswParams::with_degree(self.ann_degree)
            }),
        };
        let (model, build) = with_ann_index(
            model,
            &params,
            self.ann_target_recall,
            self.ann_oversample,
            ANN_RECALL_USERS,
        )?;
        tracing::info!(
            index = build.params.kind().as_str(),
            probe = build.probe,
            recall_at_10 = build.recall_at_10,
            seconds = build.build_seconds,
            "Built the ann index."
        );
        Ok((model, Some(build)))
    }
}

/// How rating files are read, the training data's and the held-out ratings' alike; `train
/// recommender` and `import spark-als` take the same flags.
#[derive(Debug, Clone, clap::Args)]
pub struct RatingInputArgs {
    /// Skip and count bad rows instead of failing on the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
    #[arg(long, value_enum, default_value_t = RatingFormat::Auto)]
    pub format: RatingFormat,
    #[command(flatten)]
    pub columns: RatingColumnArgs,
}

impl RatingInputArgs {
    /// The ratings of `data` read as these flags say.
    ///
    /// # Errors
    /// Unreadable or malformed rating data.
    pub fn read(&self, data: &Dataset) -> Result<ReadRatings, Error> {
        Ok(read_dataset_ratings(
            data,
            self.format,
            &self.columns.columns(),
            self.skip_bad_rows,
        )?)
    }
}

/// Parquet rating columns by name (text rating files are positional).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RatingColumnArgs {
    /// Parquet: the user id column [default: the first of userId, user_id, user].
    #[arg(long)]
    pub user_col: Option<String>,
    /// Parquet: the item id column [default: the first of movieId, itemId, item_id, item].
    #[arg(long)]
    pub item_col: Option<String>,
    /// Parquet: the rating (or count) column [default: rating].
    #[arg(long)]
    pub rating_col: Option<String>,
    /// Parquet: the Unix-seconds timestamp column [default: timestamp, if present].
    #[arg(long)]
    pub time_col: Option<String>,
}

impl RatingColumnArgs {
    pub fn columns(&self) -> RatingColumns {
        RatingColumns {
            user: self.user_col.clone(),
            item: self.item_col.clone(),
            rating: self.rating_col.clone(),
            time: self.time_col.clone(),
        }
    }
}

/// What `generate ratings` wrote.
#[derive(Debug, Serialize)]
pub struct GenerateReport {
    pub out: PathBuf,
    pub format: RatingFormat,
    #[serde(flatten)]
    pub generated: generate::Generated,
}

/// What `train recommender` did.
#[derive(Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub feedback: Feedback,
    pub format: RatingFormat,
    pub rows_read: usize,
    pub bad_rows_skipped: u64,
    pub train_rows: usize,
    pub test_rows: usize,
    pub users: usize,
    pub items: usize,
    pub parameters: AlsParams,
    pub metrics: BTreeMap<String, f64>,
    /// Implicit only: the same metrics for "most popular unseen items".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub popularity_baseline: Option<RankingMetrics>,
    pub gate_metric: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publication: Option<Publication>,
}

/// # Errors
/// [`Error::Usage`] for impossible sizes, [`Error::Output`] when the file cannot be written.
pub fn generate(args: &GenerateArgs) -> Result<GenerateReport, Error> {
    let spec = generate::Spec {
        users: args.users,
        items: args.items,
        rank: args.rank,
        density: args.density,
        noise: args.noise,
        popularity_skew: args.popularity_skew,
        seed: args.seed,
        implicit: args.implicit,
    };
    let generated = generate::write_ratings(&spec, args.format, &args.out)?;
    Ok(GenerateReport {
        out: args.out.clone(),
        format: match args.format {
            RatingFormat::Auto => RatingFormat::Tsv,
            f => f,
        },
        generated,
    })
}

/// Checks the arguments before any data is read; returns the model name and the split rule.
fn check_args(args: &TrainArgs) -> Result<(ModelName, SplitRule), Error> {
    let usage = |m: &str| Err(Error::Usage(m.into()));
    if args.rank == 0 || args.rank > MAX_RANK as usize {
        return usage("--rank must be in 1..=1024");
    }
    if args.iterations == 0 {
        return usage("--iterations must be positive");
    }
    if !(args.lambda.is_finite() && args.lambda >= 0.0) {
        return usage("--lambda must be a non-negative number");
    }
    if !(args.alpha.is_finite() && args.alpha >= 0.0) {
        return usage("--alpha must be a non-negative number");
    }
    if args.k == 0 {
        return usage("--k must be positive");
    }
    for floor in [args.max_rmse, args.min_ndcg].into_iter().flatten() {
        if !floor.is_finite() || floor < 0.0 {
            return usage("--max-rmse and --min-ndcg must be non-negative numbers");
        }
    }
    if args.split.split_key.is_some() {
        return usage("--split-key is for tables; a rating row's key is its content");
    }
    args.ann.check()?;
    let rule = args.split.rule()?;
    let model = ModelName::parse(&args.model).map_err(|e| Error::Usage(e.to_string()))?;
    Ok((model, rule))
}

/// Splits rows by `rule` (see [`crate::split`]): a row's side depends on the row alone.
///
/// # Errors
/// [`Error::Usage`] for a time split of rows without timestamps.
pub fn split(data: &Ratings, rule: &SplitRule) -> Result<(Ratings, Ratings, HeldOutRule), Error> {
    let split = rule.split(&data.keys)?;
    Ok((
        data.select(&split.train),
        data.select(&split.test),
        split.record,
    ))
}

/// Read → split → train → evaluate → (champion, gate, publish).
///
/// # Errors
/// Bad arguments, unreadable or bad input, an empty split, registry failures.
pub async fn train(ctx: &Context, args: &TrainArgs) -> Result<Report, Error> {
    let (model_name, rule) = check_args(args)?;
    let input = read_dataset(&args.ratings).await?;
    let read = args.input.read(&input)?;
    let rows_read = read.ratings.len();
    let mut skipped = read.skipped;
    let (train_set, test_set, held_out) = match &args.test_ratings {
        Some(location) => {
            let test_input = read_dataset(location).await?;
            let test = args.input.read(&test_input)?;
            skipped += test.skipped;
            let rule = HeldOutRule::File {
                source: test_input.name.clone(),
                sha256: test_input.sha256.clone(),
            };
            (read.ratings, test.ratings, rule)
        }
        None => split(&read.ratings, &rule)?,
    };
    if train_set.is_empty() || test_set.is_empty() {
        return Err(Error::Training(format!(
            "the split has {} training and {} held-out rows; both must be non-empty",
            train_set.len(),
            test_set.len()
        )));
    }
    let feedback = Feedback::from(args.feedback);
    // Implicit feedback: a count ≤ 0 is no interaction (and would make a confidence below 1).
    let train_set = match feedback {
        Feedback::Implicit => train_set.subset(|row| train_set.values[row] > 0.0),
        Feedback::Explicit => train_set,
    };
    if train_set.is_empty() {
        return Err(Error::Training(
            "no positive interaction to train on".into(),
        ));
    }
    let params = AlsParams {
        feedback,
        rank: args.rank,
        iterations: args.iterations,
        lambda: args.lambda,
        alpha: args.alpha,
        cg_steps: args.cg_steps.max(1),
        seed: args.seed,
    };
    let k = args.k;
    let bar = ctx.progress.bar(args.iterations as u64, "ALS iterations");
    let progress = bar.clone();
    let ann = args.ann.clone();
    let (serving, holdout, mut metrics, baseline, default_floor, drift, ann_build) =
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let model = als::train(&train_set, &params, |it| progress.set_position(it as u64));
            let train_seconds = started.elapsed().as_secs_f64();
            let (model, ann_build) = ann.index(model)?;
            let serving = model.prepare()?;
            let holdout = Holdout::new(train_set, test_set);
            let mut metrics = BTreeMap::new();
            metrics.insert("train_seconds".to_owned(), train_seconds);
            let (baseline, default_floor) = match feedback {
                Feedback::Explicit => {
                    let mean_rmse = holdout.mean_baseline_rmse();
                    metrics.insert("rmse".to_owned(), holdout.rmse(&serving));
                    metrics.insert("mean_baseline_rmse".to_owned(), mean_rmse);
                    metrics.insert(
                        "unscored_test_pairs".to_owned(),
                        holdout.unscored_pairs(&serving) as f64,
                    );
                    (None, mean_rmse)
                }
                Feedback::Implicit => {
                    let r = holdout.ranking(&serving, k);
                    metrics.insert("precision_at_k".to_owned(), r.precision_at_k);
                    metrics.insert("recall_at_k".to_owned(), r.recall_at_k);
                    metrics.insert("ndcg_at_k".to_owned(), r.ndcg_at_k);
                    metrics.insert("evaluated_users".to_owned(), r.users as f64);
                    let popular = holdout.popularity_baseline(k);
                    metrics.insert("popularity_ndcg_at_k".to_owned(), popular.ndcg_at_k);
                    (Some(popular), popular.ndcg_at_k)
                }
            };
            let drift = drift_profile(&holdout, &serving, &mut metrics);
            if let Some(build) = &ann_build {
                metrics.extend(build.manifest_metrics());
            }
            Ok::<_, Error>((
                serving,
                holdout,
                metrics,
                baseline,
                default_floor,
                drift,
                ann_build,
            ))
        })
        .await
        .map_err(|e| Error::Training(format!("the training task failed: {e}")))??;
    bar.finish_and_clear();
    let policy = match feedback {
        Feedback::Explicit => GatePolicy {
            metric: GateMetric::Rmse,
            floor: args.max_rmse.unwrap_or(default_floor),
            min_improvement: args.min_improvement,
        },
        Feedback::Implicit => GatePolicy {
            metric: GateMetric::NdcgAtK,
            floor: args.min_ndcg.unwrap_or(default_floor),
            min_improvement: args.min_improvement,
        },
    };
    let challenger = metrics
        .get(policy.metric.as_str())
        .copied()
        .unwrap_or(f64::NAN);
    if !challenger.is_finite() {
        return Err(Error::Training(format!(
            "{} is not a number",
            policy.metric
        )));
    }
    metrics.insert("k".to_owned(), k as f64);
    let mut report = Report {
        model: model_name.to_string(),
        feedback,
        format: read.format,
        rows_read,
        bad_rows_skipped: skipped,
        train_rows: holdout.train.len(),
        test_rows: holdout.test.len(),
        users: serving.model().n_users(),
        items: serving.model().n_items(),
        parameters: params,
        metrics: metrics.clone(),
        popularity_baseline: baseline,
        gate_metric: policy.metric.as_str(),
        publication: None,
    };
    if args.no_publish {
        return Ok(report);
    }

    let artifact = encode_artifact(ModelKind::RecommenderAls, serving.model())?;
    let mut parameters = BTreeMap::from([
        ("feedback".to_owned(), serde_json::json!(feedback.as_str())),
        ("rank".to_owned(), serde_json::json!(params.rank)),
        (
            "iterations".to_owned(),
            serde_json::json!(params.iterations),
        ),
        ("lambda".to_owned(), serde_json::json!(params.lambda)),
        ("alpha".to_owned(), serde_json::json!(params.alpha)),
        ("cg_steps".to_owned(), serde_json::json!(params.cg_steps)),
        ("seed".to_owned(), serde_json::json!(params.seed)),
        ("k".to_owned(), serde_json::json!(k)),
    ]);
    if let Some(build) = &ann_build {
        parameters.extend(build.manifest_parameters());
    }
    let draft = NewVersion {
        model: model_name,
        run_id: uuid::Uuid::now_v7(),
        algorithm: format!("als-{}", feedback.as_str()),
        parameters,
        feature_schema: Default::default(),
        training_data: input.fingerprint(rows_read as u64),
        metrics,
        trainer_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_by: ctx.actor.clone(),
        // Both filled in by the pipeline.
        gate: None,
        held_out: None,
        drift,
    };
    let candidate = Candidate {
        draft,
        held_out,
        artifact,
        score: challenger,
        policy,
    };
    let challenger = Arc::new(RecommenderChallenger {
        model: serving,
        holdout,
        k,
    });
    report.publication = Some(gate_and_publish(ctx, challenger, candidate).await?);
    Ok(report)
}

/// For the service's drift gauges: [`DRIFT_BINS`] quantile bins of the top item's score on the
/// held-out users the model knows (no feature distributions), and, as the metric
/// `held_out_cold_start_share`, the share of held-out users it does not know (the training-time
/// cold-start share; the service's `recommender_cold_start_share` is not compared with it,
/// as live cold starts depend on new visitors, not on the model). `None` when the model knows
/// no held-out user.
fn drift_profile(
    holdout: &Holdout,
    serving: &ServingAls,
    metrics: &mut BTreeMap<String, f64>,
) -> Option<DriftProfile> {
    let (scores, unknown) = holdout.top_item_scores(serving);
    let users = scores.len() + unknown;
    if users > 0 {
        metrics.insert(
            "held_out_cold_start_share".to_owned(),
            unknown as f64 / users as f64,
        );
    }
    Some(DriftProfile {
        rows: scores.len() as u64,
        score: Binned::from_sample(&scores, DRIFT_BINS)?,
        features: BTreeMap::new(),
    })
}

/// A fitted ALS model and its held-out rows, as the pipeline compares it with the champion.
pub struct RecommenderChallenger {
    pub model: ServingAls,
    pub holdout: Holdout,
    /// The ranking metrics' cut-off.
    pub k: usize,
}

impl RecommenderChallenger {
    fn score(&self, holdout: &Holdout, model: &ServingAls) -> f64 {
        match self.model.model().feedback {
            Feedback::Explicit => holdout.rmse(model),
            Feedback::Implicit => holdout.ranking(model, self.k).ndcg_at_k,
        }
    }
}

impl Challenger for RecommenderChallenger {
    type Champion = AlsModel;

    fn champion_kinds(&self) -> &'static [ModelKind] {
        &[ModelKind::RecommenderAls]
    }

    fn held_out_keys(&self) -> &[RowKey] {
        &self.holdout.test.keys
    }

    fn compare(
        &self,
        _manifest: &Manifest,
        champion: AlsModel,
        rows: &[usize],
    ) -> Result<(f64, f64), String> {
        let ours = self.model.model().feedback;
        if champion.feedback != ours {
            return Err(format!(
                "the champion was trained on {} feedback, the challenger on {}: their metrics \
                 do not compare",
                champion.feedback.as_str(),
                ours.as_str()
            ));
        }
        let champion = champion
            .prepare()
            .map_err(|e| format!("the champion is invalid: {e}"))?;
        let shared = Holdout::new(self.holdout.train.clone(), self.holdout.test.select(rows));
        Ok((
            self.score(&shared, &champion),
            self.score(&shared, &self.model),
        ))
    }
}
