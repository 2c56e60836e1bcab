//! ALS recommenders: generate planted data, train (explicit or implicit), evaluate against the
//! champion on the same held-out rows, gate, publish a [`shared_lib::models::als::AlsModel`].
//!
//! The gate metric is `rmse` (lower is better) for explicit ratings and `ndcg_at_k` (higher is
//! better) for implicit feedback. How unknown users and items are scored is in [`evaluate`].
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

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::Serialize;
use shared_lib::artifact::{ModelKind, encode_artifact};
use shared_lib::model_id::{ModelName, ModelVersion};
use shared_lib::models::als::{AlsModel, Feedback, MAX_RANK};
use shared_lib::registry::manifest::NewVersion;

use crate::Error;
use crate::cli::Context;
use crate::data::ratings::{RatingFormat, Ratings, parse_ratings};
use crate::data::source::read_input;
use crate::evaluate::ranking::RankingMetrics;
use crate::publish::{ChampionScore, GatePolicy, Publication, load_champion, publish_and_gate};

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
    /// Rating file: a local path or s3://bucket/key.
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
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// How much the challenger must beat the champion by to move `production`.
    #[arg(long, default_value_t = 0.0)]
    pub min_improvement: f64,
    /// Skip and count bad rows instead of failing on the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
    #[arg(long, value_enum, default_value_t = RatingFormat::Auto)]
    pub format: RatingFormat,
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
    pub gate_metric: String,
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

fn check_args(args: &TrainArgs) -> Result<ModelName, Error> {
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
    if args.test_ratings.is_none() && !(args.test_fraction > 0.0 && args.test_fraction < 1.0) {
        return usage("--test-fraction must be in (0, 1)");
    }
    ModelName::parse(&args.model).map_err(|e| Error::Usage(e.to_string()))
}

/// Splits rows into train and test with a seeded generator: each row is held out with
/// probability `fraction`, independently, so the split is a pure function of the seed.
pub fn split(data: &Ratings, fraction: f64, seed: u64) -> (Ratings, Ratings) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_5EED);
    let held_out: Vec<bool> = (0..data.len())
        .map(|_| rng.r#gen::<f64>() < fraction)
        .collect();
    (data.subset(|r| !held_out[r]), data.subset(|r| held_out[r]))
}

/// Read → split → train → evaluate → (champion, gate, publish).
///
/// # Errors
/// Bad arguments, unreadable or bad input, an empty split, registry failures.
pub async fn train(ctx: &Context, args: &TrainArgs) -> Result<Report, Error> {
    let model_name = check_args(args)?;
    let input = read_input(&args.ratings).await?;
    let read = parse_ratings(&input.name, &input.bytes, args.format, args.skip_bad_rows)?;
    let rows_read = read.ratings.len();
    let mut skipped = read.skipped;
    let (train_set, test_set) = match &args.test_ratings {
        Some(location) => {
            let test_input = read_input(location).await?;
            let test = parse_ratings(
                &test_input.name,
                &test_input.bytes,
                args.format,
                args.skip_bad_rows,
            )?;
            skipped += test.skipped;
            (read.ratings, test.ratings)
        }
        None => split(&read.ratings, args.test_fraction, args.seed),
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
    let (serving, holdout, mut metrics, baseline) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let model = als::train(&train_set, &params, |it| progress.set_position(it as u64));
        let train_seconds = started.elapsed().as_secs_f64();
        let serving = model.prepare()?;
        let holdout = Holdout::new(train_set, test_set);
        let mut metrics = BTreeMap::new();
        metrics.insert("train_seconds".to_owned(), train_seconds);
        let baseline = match feedback {
            Feedback::Explicit => {
                metrics.insert("rmse".to_owned(), holdout.rmse(&serving));
                metrics.insert(
                    "unscored_test_pairs".to_owned(),
                    holdout.unscored_pairs(&serving) as f64,
                );
                None
            }
            Feedback::Implicit => {
                let r = holdout.ranking(&serving, k);
                metrics.insert("precision_at_k".to_owned(), r.precision_at_k);
                metrics.insert("recall_at_k".to_owned(), r.recall_at_k);
                metrics.insert("ndcg_at_k".to_owned(), r.ndcg_at_k);
                metrics.insert("evaluated_users".to_owned(), r.users as f64);
                Some(holdout.popularity_baseline(k))
            }
        };
        Ok::<_, Error>((serving, holdout, metrics, baseline))
    })
    .await
    .map_err(|e| Error::Training(format!("the training task failed: {e}")))??;
    bar.finish_and_clear();
    let policy = match feedback {
        Feedback::Explicit => GatePolicy {
            metric: "rmse".into(),
            higher_is_better: false,
            min_improvement: args.min_improvement,
        },
        Feedback::Implicit => GatePolicy {
            metric: "ndcg_at_k".into(),
            higher_is_better: true,
            min_improvement: args.min_improvement,
        },
    };
    let challenger = metrics.get(&policy.metric).copied().unwrap_or(f64::NAN);
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
        gate_metric: policy.metric.clone(),
        publication: None,
    };
    if args.no_publish {
        return Ok(report);
    }

    let (production, champion) =
        score_champion(ctx, &model_name, holdout, &policy.metric, k).await?;
    let decision = policy.decide(challenger, champion);
    let artifact = encode_artifact(ModelKind::RecommenderAls, serving.model())?;
    let parameters = BTreeMap::from([
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
        (
            "test_fraction".to_owned(),
            serde_json::json!(args.test_fraction),
        ),
    ]);
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
        gate: None,
    };
    report.publication = Some(
        publish_and_gate(
            &ctx.publisher,
            draft,
            artifact,
            decision,
            production,
            &ctx.actor,
        )
        .await?,
    );
    Ok(report)
}

/// Loads `production` and scores it on the challenger's held-out rows (see [`evaluate`]).
async fn score_champion(
    ctx: &Context,
    model: &ModelName,
    holdout: Holdout,
    metric: &str,
    k: usize,
) -> Result<(Option<ModelVersion>, Option<ChampionScore>), Error> {
    let champion =
        load_champion::<AlsModel>(&ctx.publisher, model, &[ModelKind::RecommenderAls]).await?;
    let production = champion.production;
    let Some((manifest, champion)) = champion.loaded else {
        return Ok((production, None));
    };
    let champion = match champion.prepare() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(version = %manifest.version, error = %e, "The champion is invalid; gating as if there were none.");
            return Ok((production, None));
        }
    };
    let metric = metric.to_owned();
    let score = tokio::task::spawn_blocking(move || match metric.as_str() {
        "rmse" => holdout.rmse(&champion),
        _ => holdout.ranking(&champion, k).ndcg_at_k,
    })
    .await
    .map_err(|e| Error::Training(format!("the evaluation task failed: {e}")))?;
    let score = score.is_finite().then_some(ChampionScore {
        version: manifest.version,
        score,
    });
    Ok((production, score))
}
