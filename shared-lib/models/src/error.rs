//! The one error type of the library layers (`suite-models` up to `shared-lib`).
//!
//! It never names HTTP: each service maps it to a status code once, in its own `error.rs`.
//! Variants are nouns for what went wrong; their messages name the thing involved so that a
//! 4xx body or a start-up failure tells the reader what to fix.

use crate::artifact::{ArtifactDigest, ModelKind};
use crate::model_id::{AliasName, ModelName, ModelVersion};

/// A boxed cause, for errors from the S3 SDK and the file system.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- identifiers -------------------------------------------------------------------
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidName {
        kind: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("invalid model version {value:?}: must be a positive whole number")]
    InvalidVersion { value: String },

    // --- object store ------------------------------------------------------------------
    #[error("object {key:?} does not exist")]
    ObjectNotFound { key: String },
    #[error("object {key:?} already exists")]
    ObjectExists { key: String },
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("invalid model store location {location:?}: {reason}")]
    InvalidStoreLocation { location: String, reason: String },
    #[error("object store {operation} of {key:?} failed")]
    Store {
        operation: &'static str,
        key: String,
        #[source]
        source: BoxError,
    },

    #[error("the upload is larger than the limit of {limit} bytes")]
    UploadTooLarge { limit: u64 },
    #[error("the upload was interrupted: {reason}")]
    UploadInterrupted { reason: String },

    // --- artifacts ---------------------------------------------------------------------
    #[error("artifact digest mismatch: expected sha256 {expected}, got {actual}")]
    DigestMismatch {
        expected: ArtifactDigest,
        actual: ArtifactDigest,
    },
    #[error("artifact size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error(
        "unsupported artifact format version {found} (this build reads versions 1 to {newest})"
    )]
    UnsupportedFormat { found: u32, newest: u32 },
    #[error("artifact holds a {found} model, expected {expected}")]
    WrongModelKind {
        expected: ModelKind,
        found: ModelKind,
    },
    #[error("corrupt artifact: {reason}")]
    CorruptArtifact { reason: String },
    /// A sound model that cannot be served as this service is configured (ann search of a
    /// model without an index).
    #[error("the model cannot be served as configured: {reason}")]
    NotServable { reason: String },
    #[error("invalid sha256 digest {value:?}: expected 64 lowercase hex characters")]
    InvalidDigest { value: String },

    // --- registry ----------------------------------------------------------------------
    #[error("unknown model {model}")]
    UnknownModel { model: ModelName },
    #[error("unknown version {version} of model {model}")]
    UnknownVersion {
        model: ModelName,
        version: ModelVersion,
    },
    #[error("model {model} has no alias {alias}")]
    UnknownAlias { model: ModelName, alias: AliasName },
    #[error(
        "alias {alias} of model {model} points to {}, not the expected {}",
        show_version(.actual), show_version(.expected)
    )]
    AliasConflict {
        model: ModelName,
        alias: AliasName,
        expected: Option<ModelVersion>,
        actual: Option<ModelVersion>,
    },
    #[error(
        "alias {alias} of model {model} has no earlier version to roll back to{}",
        if .skipped.is_empty() { String::new() } else { format!(" (passed over: {})", .skipped) }
    )]
    NothingToRollBack {
        model: ModelName,
        alias: AliasName,
        /// The versions passed over and why, e.g. `v2 (rolled back from), v1 (archived)`.
        skipped: String,
    },
    #[error("version {version} of model {model} is archived")]
    VersionArchived {
        model: ModelName,
        version: ModelVersion,
    },
    #[error(
        "version {version} of model {model} was deleted by retention: its manifest and history \
         remain, its artifact does not"
    )]
    VersionDeleted {
        model: ModelName,
        version: ModelVersion,
    },
    #[error("version {version} of model {model} is in use by alias {alias}")]
    VersionInUse {
        model: ModelName,
        version: ModelVersion,
        alias: AliasName,
    },
    #[error(
        "model {model} has no artifact with sha256 {sha256} in the store: upload it first \
         (PUT /v1/models/{model}/artifacts/{sha256}), then register"
    )]
    ArtifactNotUploaded {
        model: ModelName,
        sha256: ArtifactDigest,
    },
    #[error("invalid manifest: {reason}")]
    InvalidManifest { reason: String },
    #[error("corrupt registry record {key:?}: {reason}")]
    CorruptRecord { key: String, reason: String },
    #[error("gave up allocating a version of model {model} after {attempts} collisions")]
    AllocationContention { model: ModelName, attempts: u32 },

    // --- settings and start-up -----------------------------------------------------------
    #[error("invalid configuration:\n{}", .problems.join("\n"))]
    Settings { problems: Vec<String> },
    #[error("telemetry set-up failed: {reason}")]
    Telemetry { reason: String },
}

fn show_version(v: &Option<ModelVersion>) -> String {
    match v {
        Some(v) => format!("version {v}"),
        None => "nothing".to_owned(),
    }
}

impl Error {
    pub fn store(
        operation: &'static str,
        key: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Store {
            operation,
            key: key.into(),
            source: source.into(),
        }
    }

    pub fn corrupt_record(key: impl Into<String>, reason: impl ToString) -> Self {
        Self::CorruptRecord {
            key: key.into(),
            reason: reason.to_string(),
        }
    }

    /// What went wrong, for a person reading a status page such as `/v1/models`: the reason
    /// without internals. Store keys, paths and SDK or OS error text stay in the log (which
    /// gets [`error_chain`]); everything else is its own message, which names only models,
    /// versions, aliases and digests.
    pub fn public_reason(&self) -> String {
        match self {
            Self::ObjectNotFound { .. } => {
                "an object this version needs is missing from the model store".into()
            }
            Self::ObjectExists { .. } => "an object already exists in the model store".into(),
            Self::InvalidKey { .. } => "invalid object key in a registry record".into(),
            Self::InvalidStoreLocation { .. } => "invalid model store location".into(),
            Self::Store { operation, .. } => {
                format!("the model store failed a {operation}; see the server log")
            }
            Self::CorruptRecord { .. } => "a registry record is corrupt; see the server log".into(),
            Self::Settings { .. } => "invalid configuration; see the server log".into(),
            Self::Telemetry { .. } => "telemetry set-up failed; see the server log".into(),
            other => other.to_string(),
        }
    }

    /// True for errors that say a thing does not exist (as opposed to failing to reach it).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::ObjectNotFound { .. }
                | Self::UnknownModel { .. }
                | Self::UnknownVersion { .. }
                | Self::UnknownAlias { .. }
        )
    }
}

/// Formats an error with its whole `source()` chain, for logs (5xx bodies never carry it).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_reasons_drop_keys_and_causes_but_keep_the_rest() {
        let store = Error::store(
            "get",
            "models/fraud/artifacts/abc",
            std::io::Error::other("connection refused to 10.0.0.7:9000"),
        );
        let reason = store.public_reason();
        assert!(reason.contains("model store failed a get"), "{reason}");
        assert!(!reason.contains("models/fraud"), "{reason}");
        assert!(!reason.contains("10.0.0.7"), "{reason}");

        let missing = Error::ObjectNotFound {
            key: "models/fraud/artifacts/abc".into(),
        };
        assert!(!missing.public_reason().contains("models/"));

        let size = Error::SizeMismatch {
            expected: 10,
            actual: 9,
        };
        assert_eq!(size.public_reason(), size.to_string());
    }
}
