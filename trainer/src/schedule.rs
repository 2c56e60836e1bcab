//! `trainer schedule`: the CronJob's job, in-process, for deployments without Kubernetes.
//!
//! Each job is a cron expression and a trainer command line, e.g.
//! `--job "0 20 * * * *|train fraud --data /data/fraud.csv"` (tokio-cron-scheduler wants six
//! fields, seconds first, in UTC) or the same lines in `TRAINER_JOBS`, separated by `;` or
//! newlines. A job never overlaps itself: a tick that finds the previous run still going is
//! skipped and counted. A failed run is logged and counted; the next tick runs as usual.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use clap::Parser as _;
use serde::Serialize;
use suite_settings::Env;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::Error;
use crate::cli::{Cli, Command, TrainCommand};
use crate::pipeline::Context;

#[derive(Debug, clap::Args)]
pub struct ScheduleArgs {
    /// A job: `"<cron, 6 fields>|<trainer command line>"`. Repeatable; adds to TRAINER_JOBS.
    #[arg(long = "job")]
    pub jobs: Vec<String>,
}

/// One scheduled job: when, and which training run.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub cron: String,
    pub command: String,
    train: Arc<TrainCommand>,
}

/// The parsed jobs.
#[derive(Debug, Clone, Default)]
pub struct Jobs(pub Vec<JobSpec>);

impl Jobs {
    /// Jobs from `--job` and `TRAINER_JOBS`; bad ones are recorded as problems of that variable.
    pub fn from_env(env: &mut Env, args: &ScheduleArgs) -> Self {
        let mut specs = Vec::new();
        let from_env = env.optional_string("TRAINER_JOBS").unwrap_or_default();
        let lines = from_env
            .split([';', '\n'])
            .map(|l| ("TRAINER_JOBS", l))
            .chain(args.jobs.iter().map(|l| ("--job", l.as_str())));
        for (source, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
            match parse_job(line) {
                Ok(spec) => specs.push(spec),
                Err(e) => env.problem(source, e),
            }
        }
        if specs.is_empty() {
            env.problem("TRAINER_JOBS", "no jobs: give --job or TRAINER_JOBS");
        }
        Self(specs)
    }
}

/// Parses `"<cron>|<command line>"`.
///
/// # Errors
/// A message naming what is wrong with the line.
pub fn parse_job(line: &str) -> Result<JobSpec, String> {
    let (cron, command) = line
        .split_once('|')
        .ok_or_else(|| format!("{line:?}: expected \"<cron>|<command>\""))?;
    let cron = cron.trim();
    if cron.split_whitespace().count() != 6 {
        return Err(format!(
            "{cron:?}: cron needs 6 fields (sec min hour day month weekday)"
        ));
    }
    let words = std::iter::once("trainer").chain(command.split_whitespace());
    let cli = Cli::try_parse_from(words).map_err(|e| format!("{command:?}: {}", e.kind()))?;
    let Command::Train(train) = cli.command else {
        return Err(format!("{command:?}: only train commands can be scheduled"));
    };
    Ok(JobSpec {
        cron: cron.to_owned(),
        command: command.trim().to_owned(),
        train: Arc::new(train),
    })
}

/// Counters of one job, reported when the scheduler stops.
#[derive(Debug, Default, Serialize)]
pub struct JobStats {
    pub command: String,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped_overlapping: u64,
}

#[derive(Default)]
struct JobState {
    running: AtomicBool,
    succeeded: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

/// Runs one tick of a job unless the previous run is still going.
async fn tick<F>(command: &str, state: &JobState, run: F)
where
    F: std::future::Future<Output = Result<(), Error>>,
{
    if state.running.swap(true, Ordering::AcqRel) {
        state.skipped.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(command, "Previous run still going; tick skipped.");
        return;
    }
    match run.await {
        Ok(()) => {
            state.succeeded.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            state.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(command, error = %suite_models::error_chain(&e), "Scheduled run failed.");
        }
    }
    state.running.store(false, Ordering::Release);
}

async fn train(ctx: &Context, train: &TrainCommand) -> Result<(), Error> {
    match train {
        TrainCommand::Fraud(args) => crate::fraud::train(ctx, args).await.map(|_| ()),
        TrainCommand::Recommender(args) => crate::recommender::train(ctx, args).await.map(|_| ()),
    }
}

/// Runs the jobs until Ctrl-C or SIGTERM, then reports their counters.
///
/// # Errors
/// When the scheduler cannot start or a cron expression is refused.
pub async fn run(ctx: Context, jobs: Jobs) -> Result<Vec<JobStats>, Error> {
    let fail = |e: tokio_cron_scheduler::JobSchedulerError| Error::Usage(format!("scheduler: {e}"));
    let mut scheduler = JobScheduler::new().await.map_err(fail)?;
    let mut states = Vec::new();
    for spec in jobs.0 {
        let state = Arc::new(JobState::default());
        states.push((spec.command.clone(), state.clone()));
        let ctx = ctx.clone();
        let job_spec = spec.clone();
        let job = Job::new_async(spec.cron.as_str(), move |_, _| {
            let (ctx, spec, state) = (ctx.clone(), job_spec.clone(), state.clone());
            Box::pin(async move { tick(&spec.command, &state, train(&ctx, &spec.train)).await })
        })
        .map_err(|e| Error::Usage(format!("{:?}: {e}", spec.cron)))?;
        scheduler.add(job).await.map_err(fail)?;
        tracing::info!(cron = %spec.cron, command = %spec.command, "Job scheduled.");
    }
    scheduler.start().await.map_err(fail)?;
    wait_for_stop().await;
    scheduler.shutdown().await.map_err(fail)?;
    Ok(states
        .into_iter()
        .map(|(command, s)| JobStats {
            command,
            succeeded: s.succeeded.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            skipped_overlapping: s.skipped.load(Ordering::Relaxed),
        })
        .collect())
}

async fn wait_for_stop() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_parse_cron_and_a_train_command() {
        let job = parse_job("0 20 * * * *|train fraud --data d.csv").unwrap();
        assert_eq!(job.cron, "0 20 * * * *");
        assert!(matches!(job.train.as_ref(), TrainCommand::Fraud(_)));
        for (bad, expected) in [
            (
                "20 * * * *|train fraud --data d.csv",
                r#""20 * * * *": cron needs 6 fields (sec min hour day month weekday)"#,
            ),
            (
                "0 20 * * * * train fraud",
                r#""0 20 * * * * train fraud": expected "<cron>|<command>""#,
            ),
            (
                "0 20 * * * *|generate fraud --rows 5 --out x",
                r#""generate fraud --rows 5 --out x": only train commands can be scheduled"#,
            ),
            (
                "0 20 * * * *|train fraud --no-such-flag",
                r#""train fraud --no-such-flag": unexpected argument found"#,
            ),
        ] {
            assert_eq!(parse_job(bad).unwrap_err(), expected, "{bad}");
        }
    }

    #[test]
    fn jobs_come_from_the_variable_and_flags_and_bad_ones_are_named() {
        let mut env = Env::from_pairs([(
            "TRAINER_JOBS".to_owned(),
            "0 20 * * * *|train fraud --data a.csv; 0 5 * * * *|train recommender --ratings r.tsv"
                .to_owned(),
        )]);
        let args = ScheduleArgs {
            jobs: vec!["bad".into()],
        };
        let jobs = Jobs::from_env(&mut env, &args);
        assert_eq!(jobs.0.len(), 2);
        let err = env.finish().unwrap_err().to_string();
        assert!(err.contains("--job"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_overlapping_tick_is_skipped_and_a_failure_does_not_stop_the_next_run() {
        // Arrange: a slow run that says when it has started and ends when told to, so the
        // overlapping tick lands while it runs however the threads are scheduled.
        let state = Arc::new(JobState::default());
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (finish_tx, finish_rx) = tokio::sync::oneshot::channel::<()>();
        let slow = {
            let state = state.clone();
            tokio::spawn(async move {
                tick("slow", &state, async {
                    started_tx.send(()).unwrap();
                    finish_rx.await.unwrap();
                    Ok(())
                })
                .await;
            })
        };
        started_rx.await.unwrap();
        // Act: a tick while the slow run goes on, then a failing run, then a good one.
        tick("overlap", &state, async { Ok(()) }).await;
        finish_tx.send(()).unwrap();
        slow.await.unwrap();
        tick("fails", &state, async {
            Err(Error::Training("boom".into()))
        })
        .await;
        tick("next", &state, async { Ok(()) }).await;
        // Assert
        assert_eq!(state.skipped.load(Ordering::Relaxed), 1);
        assert_eq!(state.failed.load(Ordering::Relaxed), 1);
        assert_eq!(state.succeeded.load(Ordering::Relaxed), 2);
    }
}
