//! Fraud classifiers. OWNED BY THE FRAUD HELPER: replace this stub.

use std::path::PathBuf;

use serde::Serialize;

use crate::Error;
use crate::cli::Context;

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[arg(long)]
    pub rows: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// CSV with a header: a local path or s3://bucket/key.
    #[arg(long)]
    pub data: String,
}

#[derive(Debug, Serialize)]
pub struct Report {}

/// # Errors
/// Not implemented yet.
pub fn generate(_args: &GenerateArgs) -> Result<Report, Error> {
    Err(Error::Training("not implemented".into()))
}

/// # Errors
/// Not implemented yet.
pub async fn train(_ctx: &Context, _args: &TrainArgs) -> Result<Report, Error> {
    Err(Error::Training("not implemented".into()))
}
