//! The trainer's one error type, with the exit code a CronJob (or a person) can act on.

// The exit-code mapping must place every variant explicitly (STYLE.md: no `_` arm), so a new
// error cannot fall into another's code unnoticed.
#![warn(
    clippy::wildcard_enum_match_arm,
    clippy::match_wildcard_for_single_variants
)]

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad input row or file; names the file and line.
    #[error("{file}:{line}: {reason}")]
    BadRow {
        file: String,
        line: u64,
        reason: String,
    },
    #[error("cannot read {path}: {reason}")]
    Input { path: String, reason: String },
    #[error("cannot write {path}: {source}")]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bad arguments or configuration.
    #[error("{0}")]
    Usage(String),
    /// Training could not produce a model (e.g. one class only in the training window).
    #[error("training failed: {0}")]
    Training(String),
    #[error(transparent)]
    Library(#[from] suite_models::Error),
    /// The registry service refused a request or could not be reached.
    #[error("registry: {message}")]
    Registry {
        status: Option<u16>,
        message: String,
    },
    /// The gate failed closed: the challenger was published as a candidate, `production` was
    /// left alone, because the champion could not be compared.
    #[error(
        "published {model} v{version} as a candidate; production not moved because the gate \
         failed closed: {reason}"
    )]
    GateFailedClosed {
        model: suite_models::model_id::ModelName,
        version: suite_models::model_id::ModelVersion,
        reason: String,
    },
}

impl Error {
    /// 2: usage or configuration; 3: input data; 4: the store or registry; 5: the gate failed
    /// closed (a candidate was published, `production` kept); 1: anything else. A CronJob's
    /// `podFailurePolicy` should not retry 2, 3 or 5: the same run would fail the same way.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::BadRow { .. } | Self::Input { .. } => 3,
            Self::Library(suite_models::Error::Settings { .. }) => 2,
            Self::Library(_) | Self::Registry { .. } => 4,
            Self::GateFailedClosed { .. } => 5,
            Self::Output { .. } | Self::Training(_) => 1,
        }
    }
}
