//! The trainer: everything that produces models.
//!
//! - [`data`]: synthetic generators with known structure, and readers (CSV tables, MovieLens
//!   rating files) from a local path or `s3://`;
//! - [`fraud`]: random forest and decision tree classifiers, converted to the served
//!   [`shared_lib::models::forest::FraudModel`];
//! - [`recommender`]: ALS for explicit ratings and implicit feedback;
//! - [`evaluate`]: held-out metrics;
//! - [`publish`]: the quality gate and publishing into the registry;
//! - [`schedule`]: in-process cron for deployments without Kubernetes CronJobs;
//! - [`cli`]: the command line, a thin layer over the above.

pub mod cli;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod fraud;
pub mod progress;
pub mod publish;
pub mod publisher;
pub mod recommender;
pub mod schedule;

pub use error::Error;
