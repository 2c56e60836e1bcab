//! ALS recommenders. OWNED BY THE ALS HELPER: replace this stub.

use std::path::PathBuf;

use serde::Serialize;

use crate::Error;
use crate::cli::Context;

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[arg(long)]
    pub users: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Rating file: a local path or s3://bucket/key.
    #[arg(long)]
    pub ratings: String,
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
