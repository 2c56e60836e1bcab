//! The command line: parse, set up logging and the registry, dispatch, map errors to exit codes.
//!
//! Logs go to stderr (JSON); a command's result goes to stdout as one JSON object, so a
//! script or the suite launcher can read what was published.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;
use suite_settings::Env;
use suite_telemetry::TelemetrySettings;

use crate::import::ImportCommand;
use crate::pipeline::Context;
use crate::{Error, fraud, import, recommender, schedule};

#[derive(Debug, Parser)]
#[command(
    name = "trainer",
    version,
    about = "Train, evaluate, gate and publish fraud and recommender models."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write synthetic data with known structure.
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Train, evaluate against the held-out split, publish, and promote if the gate passes.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Publish a model trained elsewhere, through the same gate (with held-out data) or as a
    /// candidate (promoted only with --promote).
    #[command(subcommand)]
    Import(ImportCommand),
    /// Run training jobs on cron schedules, in-process (for deployments without CronJobs).
    Schedule(schedule::ScheduleArgs),
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Card transactions with ~2 % fraud following a known non-linear rule.
    Fraud(fraud::GenerateArgs),
    /// Ratings or interactions from a planted low-rank model with popularity skew.
    Ratings(recommender::GenerateArgs),
}

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// A fraud classifier: random forest (default) or decision tree.
    Fraud(fraud::TrainArgs),
    /// An ALS recommender: explicit ratings or implicit feedback.
    Recommender(recommender::TrainArgs),
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let mut env = Env::from_process();
    let telemetry = TelemetrySettings::from_env(&mut env, "trainer");
    let _guard = match suite_telemetry::init_with_writer(&telemetry, std::io::stderr) {
        Ok(guard) => Some(guard),
        Err(e) => {
            eprintln!("trainer: {e}");
            None
        }
    };
    match dispatch(cli.command, env).await {
        Ok(report) => {
            emit(&report);
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %suite_models::error_chain(&e), "Trainer run failed.");
            eprintln!("trainer: {}", suite_models::error_chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

async fn dispatch(command: Command, mut env: Env) -> Result<serde_json::Value, Error> {
    let report = match command {
        Command::Generate(GenerateCommand::Fraud(args)) => to_json(fraud::generate(&args)?),
        Command::Generate(GenerateCommand::Ratings(args)) => to_json(recommender::generate(&args)?),
        Command::Train(what) => {
            let ctx = Context::from_env(&mut env).await;
            env.finish()?;
            let ctx = ctx?;
            match what {
                TrainCommand::Fraud(args) => to_json(fraud::train(&ctx, &args).await?),
                TrainCommand::Recommender(args) => to_json(recommender::train(&ctx, &args).await?),
            }
        }
        Command::Import(what) => {
            let ctx = Context::from_env(&mut env).await;
            env.finish()?;
            let ctx = ctx?;
            match what {
                ImportCommand::SparkAls(args) => to_json(import::spark::import(&ctx, &args).await?),
                ImportCommand::Onnx(args) => to_json(import::onnx::import(&ctx, &args).await?),
            }
        }
        Command::Schedule(args) => {
            let ctx = Context::from_env(&mut env).await;
            let jobs = schedule::Jobs::from_env(&mut env, &args);
            env.finish()?;
            to_json(schedule::run(ctx?, jobs).await?)
        }
    };
    Ok(report)
}

fn to_json<T: Serialize>(report: T) -> serde_json::Value {
    serde_json::to_value(report).unwrap_or(serde_json::Value::Null)
}

#[allow(clippy::print_stdout)] // The command's result is its stdout.
fn emit(report: &serde_json::Value) {
    println!("{report}");
}

#[cfg(test)]
mod tests {
    use suite_settings::{Env, NameRecorder};
    use suite_telemetry::TelemetrySettings;

    use crate::pipeline::Context;
    use crate::schedule::{Jobs, ScheduleArgs};

    /// The names behind scripts/check_env_names.py: every variable a run reads, through the
    /// registry (no wait, so no network) and straight into an S3 store (as its sole writer, so
    /// no probe), plus telemetry and the scheduler's jobs.
    #[tokio::test(flavor = "current_thread")]
    async fn env_names_txt_lists_every_variable_read() {
        let recorder = NameRecorder::start();
        let probes: [&[(&str, &str)]; 2] = [
            &[
                ("REGISTRY_URL", "http://127.0.0.1:1"),
                ("REGISTRY_TOKEN", "probe-token-probe-token"),
                ("REGISTRY_WAIT_SECONDS", "0"),
            ],
            &[
                ("MODEL_STORE", "s3://probe/models"),
                ("TRAINER_SOLE_WRITER", "true"),
            ],
        ];
        for probe in probes {
            let mut env = Env::from_pairs(probe.iter().copied());
            let _ = TelemetrySettings::from_env(&mut env, "trainer");
            Context::from_env(&mut env)
                .await
                .expect("the probe builds a context");
            let _ = Jobs::from_env(&mut env, &ScheduleArgs { jobs: Vec::new() });
        }
        shared_lib::testing::assert_env_names(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("env-names.txt"),
            &recorder.finish(),
        );
    }
}
