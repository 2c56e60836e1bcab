//! Reading a training input from a local path or an `s3://bucket/key` URI, with its fingerprint.
//!
//! Inputs are read whole: training needs every row in memory anyway, and the sha256 of exactly
//! the bytes trained on is the manifest's training-data fingerprint.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use shared_lib::registry::manifest::DataFingerprint;
use shared_lib::settings::Env;
use shared_lib::store::{ObjectKey, S3Settings, S3Store};

use crate::Error;

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

/// Reads `location`: `s3://bucket/key` through the S3 variables of the environment (the same
/// as `MODEL_STORE`'s: `S3_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, …), anything else
/// as a local path.
///
/// # Errors
/// [`Error::Input`] naming the location and the cause.
pub async fn read_input(location: &str) -> Result<Input, Error> {
    let fail = |reason: String| Error::Input {
        path: location.to_owned(),
        reason,
    };
    let bytes = match location.strip_prefix("s3://") {
        Some(rest) => {
            let (bucket, key) = rest
                .split_once('/')
                .ok_or_else(|| fail("expected s3://bucket/key".into()))?;
            let key = ObjectKey::parse(key).map_err(|e| fail(e.to_string()))?;
            let mut env = Env::from_process();
            let settings = S3Settings::from_env(&mut env, bucket.to_owned(), None);
            env.finish().map_err(|e| fail(e.to_string()))?;
            S3Store::new(&settings)
                .get_object(&key)
                .await
                .map_err(|e| fail(shared_lib::error_chain(&e)))?
        }
        None => Bytes::from(
            tokio::fs::read(location)
                .await
                .map_err(|e| fail(e.to_string()))?,
        ),
    };
    Ok(Input::from_bytes(location, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_files_are_read_and_fingerprinted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, "a,b\n1,2\n").unwrap();
        let input = read_input(path.to_str().unwrap()).await.unwrap();
        assert_eq!(&input.bytes[..], b"a,b\n1,2\n");
        assert_eq!(input.sha256, hex::encode(Sha256::digest(b"a,b\n1,2\n")));
        assert_eq!(input.fingerprint(1).rows, 1);
    }

    #[tokio::test]
    async fn missing_files_and_bad_uris_name_the_location() {
        let err = read_input("/no/such/file.csv")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("/no/such/file.csv"), "{err}");
        let err = read_input("s3://bucket-only")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("s3://bucket/key"), "{err}");
    }
}
