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

/// The readers' errors become the trainer's of the same name: same message, same exit code.
impl From<suite_data::Error> for Error {
    fn from(e: suite_data::Error) -> Self {
        match e {
            suite_data::Error::BadRow { file, line, reason } => Self::BadRow { file, line, reason },
            suite_data::Error::Input { path, reason } => Self::Input { path, reason },
            suite_data::Error::Usage(reason) => Self::Usage(reason),
            suite_data::Error::Training(reason) => Self::Training(reason),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader's error keeps its message and gets the exit code of the trainer's variant of
    /// the same name, as when the readers were the trainer's own code.
    #[test]
    fn readers_errors_keep_their_message_and_exit_code() {
        let bad_row = || suite_data::Error::BadRow {
            file: "r.csv".into(),
            line: 7,
            reason: "not a number".into(),
        };
        let cases = [
            (bad_row(), 3),
            (
                suite_data::Error::Input {
                    path: "x.parquet".into(),
                    reason: "not Parquet".into(),
                },
                3,
            ),
            (suite_data::Error::Usage("key is the label".into()), 2),
            (suite_data::Error::Training("one class".into()), 1),
        ];
        for (data_error, code) in cases {
            let message = data_error.to_string();
            let error = Error::from(data_error);
            assert_eq!(error.to_string(), message);
            assert_eq!(error.exit_code(), code, "{message}");
        }
        assert!(matches!(
            Error::from(bad_row()),
            Error::BadRow { line: 7, .. }
        ));
    }
}
