//! The trainer: everything that produces models.
//!
//! - [`data`]: synthetic generators with known structure, and readers (CSV tables, MovieLens
//!   rating files, Parquet) from a local path or `s3://`;
//! - [`fraud`]: random forest and decision tree classifiers, converted to the served
//!   [`suite_models::forest::FraudModel`];
//! - [`recommender`]: ALS for explicit ratings and implicit feedback;
//! - [`import`]: models trained elsewhere (Spark ALS, scikit-learn forests via ONNX);
//! - [`split`]: which rows are held out, as a pure function of each row;
//! - [`evaluate`]: held-out metrics;
//! - [`gate`]: the quality gate's policy and decision;
//! - [`pipeline`]: what every training run shares after fitting: find and score the champion
//!   on rows neither model trained on, decide, publish, promote;
//! - [`registry_client`]: the registry, reached through its HTTP API or a store;
//! - [`schedule`]: in-process cron for deployments without Kubernetes CronJobs;
//! - [`cli`]: the command line, a thin layer over the above.

pub mod cli;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod fraud;
pub mod gate;
pub mod import;
pub mod pipeline;
pub mod progress;
pub mod recommender;
pub mod registry_client;
pub mod schedule;
pub mod split;

pub use error::Error;
