//! Training data read into memory: one file ([`Input`]) or a directory of part files as Spark
//! writes them ([`Dataset`]), each with the sha256 the manifest records as the training-data
//! fingerprint. Fetching the bytes (a local path or `s3://`) is the trainer's `data::source`.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use suite_models::manifest::DataFingerprint;

use crate::Error;

/// A file or a directory of part files, read.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The path or URI as given.
    pub name: String,
    /// sha256 of the parts' bytes, concatenated in order, hex (a single file's own sha256).
    pub sha256: String,
    /// The files, in name order; one for a file.
    pub parts: Vec<Input>,
}

impl Dataset {
    pub fn from_input(input: Input) -> Self {
        Self {
            name: input.name.clone(),
            sha256: input.sha256.clone(),
            parts: vec![input],
        }
    }

    /// The manifest's training-data fingerprint for `rows` rows read from this dataset.
    pub fn fingerprint(&self, rows: u64) -> DataFingerprint {
        DataFingerprint {
            sha256: self.sha256.clone(),
            rows,
            source: self.name.clone(),
        }
    }

    /// True when the data is Parquet: every part starts with the magic `PAR1`, or the name
    /// says `.parquet` (then a damaged file is reported as bad Parquet, not as bad CSV).
    pub fn is_parquet(&self) -> bool {
        let named = |n: &str| n.trim_end_matches('/').ends_with(".parquet");
        named(&self.name)
            || self
                .parts
                .iter()
                .all(|p| p.bytes.starts_with(b"PAR1") || named(&p.name))
    }

    /// The one file of a single-file dataset.
    ///
    /// # Errors
    /// [`Error::Input`] for a directory: only Parquet is read from directories.
    pub fn single(&self) -> Result<&Input, Error> {
        match self.parts.as_slice() {
            [one] => Ok(one),
            _ => Err(Error::Input {
                path: self.name.clone(),
                reason: format!(
                    "a directory of {} files is read only as Parquet part files, and these \
                     are not Parquet",
                    self.parts.len()
                ),
            }),
        }
    }
}

/// One input file, read.
#[derive(Debug, Clone)]
pub struct Input {
    /// The path or URI as given, for messages (`file:line`).
    pub name: String,
    pub bytes: Bytes,
    /// sha256 of `bytes`, hex.
    pub sha256: String,
}

impl Input {
    /// Wraps bytes already in memory (tests, generated data).
    pub fn from_bytes(name: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            name: name.into(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            bytes,
        }
    }

    /// The manifest's training-data fingerprint for `rows` rows read from this input.
    pub fn fingerprint(&self, rows: u64) -> DataFingerprint {
        DataFingerprint {
            sha256: self.sha256.clone(),
            rows,
            source: self.name.clone(),
        }
    }
}
