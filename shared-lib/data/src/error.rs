//! The readers' one error type. The trainer maps each variant onto its own of the same name,
//! so exit codes and messages are the trainer's either way.

/// What went wrong reading training data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad row; names the file and line.
    #[error("{file}:{line}: {reason}")]
    BadRow {
        file: String,
        line: u64,
        reason: String,
    },
    /// A file that cannot be read as asked: not the format, missing columns, too few rows.
    #[error("cannot read {path}: {reason}")]
    Input { path: String, reason: String },
    /// The options contradict each other or the file (e.g. the split key is the label).
    #[error("{0}")]
    Usage(String),
    /// The data cannot train a model (e.g. one class only).
    #[error("training failed: {0}")]
    Training(String),
}
