//! Reading a training input from a local path or an `s3://bucket/key` URI, with its fingerprint.
//!
//! Inputs are read whole: training needs every row in memory anyway, and the sha256 of exactly
//! the bytes trained on is the manifest's training-data fingerprint. A [`Dataset`] is one file or
//! a directory (local, or an `s3://` prefix) of part files as Spark writes them: every file below
//! it whose name does not start with `_` or `.` (`_SUCCESS`, `.crc` checksums), in name order;
//! its fingerprint is the sha256 of the parts' bytes in that order.
//!
//! Bounds: a file of at most [`MAX_INPUT_BYTES`], at most [`MAX_PARTS`] part files, at most
//! [`MAX_DATASET_BYTES`] in all.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use suite_settings::Env;
use suite_storage::store::{ObjectKey, ObjectStore, S3Settings, S3Store};

pub use suite_data::dataset::{Dataset, Input};

use crate::Error;

/// The largest single input file read (inputs are read whole into memory).
pub const MAX_INPUT_BYTES: u64 = 8 << 30;
/// The most part files in one directory input.
pub const MAX_PARTS: usize = 100_000;
/// The largest directory input, all parts together.
pub const MAX_DATASET_BYTES: u64 = 32 << 30;

/// Whether a file in a directory input is a data part (not `_SUCCESS`, `.crc`, `.DS_Store`).
fn is_part(file_name: &str) -> bool {
    !(file_name.is_empty() || file_name.starts_with('_') || file_name.starts_with('.'))
}

/// Reads `location`, a file or a directory (local, or an `s3://bucket/prefix` with objects
/// below it) of part files; see the module doc.
///
/// # Errors
/// [`Error::Input`] naming the location (or the part) and the cause: missing, unreadable, too
/// large, an empty directory.
pub async fn read_dataset(location: &str) -> Result<Dataset, Error> {
    let fail = |path: &str, reason: String| Error::Input {
        path: path.to_owned(),
        reason,
    };
    let names: Vec<String> = match location.strip_prefix("s3://") {
        Some(rest) => {
            let (bucket, key) = rest
                .trim_end_matches('/')
                .split_once('/')
                .ok_or_else(|| fail(location, "expected s3://bucket/key".into()))?;
            let prefix = ObjectKey::parse(key).map_err(|e| fail(location, e.to_string()))?;
            let store = ObjectStore::S3(s3_store(location, bucket)?);
            let keys = store
                .list(&prefix)
                .await
                .map_err(|e| fail(location, suite_models::error_chain(&e)))?;
            if keys.is_empty() {
                return Ok(Dataset::from_input(read_input(location).await?));
            }
            keys.into_iter()
                .filter(|k| k.as_str().rsplit('/').next().is_some_and(is_part))
                .map(|k| format!("s3://{bucket}/{k}"))
                .collect()
        }
        None => {
            let meta = tokio::fs::metadata(location)
                .await
                .map_err(|e| fail(location, e.to_string()))?;
            if !meta.is_dir() {
                return Ok(Dataset::from_input(read_input(location).await?));
            }
            let mut entries = tokio::fs::read_dir(location)
                .await
                .map_err(|e| fail(location, e.to_string()))?;
            let mut names = Vec::new();
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(|e| fail(location, e.to_string()))?
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_file = entry.file_type().await.is_ok_and(|t| t.is_file());
                if is_file && is_part(&name) {
                    names.push(entry.path().to_string_lossy().into_owned());
                }
                if names.len() > MAX_PARTS {
                    return Err(fail(location, format!("more than {MAX_PARTS} part files")));
                }
            }
            names.sort();
            names
        }
    };
    if names.is_empty() {
        return Err(fail(location, "the directory has no data files".into()));
    }
    if names.len() > MAX_PARTS {
        return Err(fail(location, format!("more than {MAX_PARTS} part files")));
    }
    let mut parts = Vec::with_capacity(names.len());
    let mut total = 0u64;
    let mut hasher = Sha256::new();
    for name in names {
        let part = read_input(&name).await?;
        total += part.bytes.len() as u64;
        if total > MAX_DATASET_BYTES {
            return Err(fail(
                location,
                format!("the parts exceed {MAX_DATASET_BYTES} bytes in all"),
            ));
        }
        hasher.update(&part.bytes);
        parts.push(part);
    }
    Ok(Dataset {
        name: location.to_owned(),
        sha256: hex::encode(hasher.finalize()),
        parts,
    })
}

fn s3_store(location: &str, bucket: &str) -> Result<S3Store, Error> {
    let mut env = Env::from_process();
    let settings = S3Settings::from_env(&mut env, bucket.to_owned(), None);
    env.finish().map_err(|e| Error::Input {
        path: location.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(S3Store::new(&settings))
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
            s3_store(location, bucket)?
                .get_object(&key)
                .await
                .map_err(|e| fail(suite_models::error_chain(&e)))?
        }
        None => {
            let meta = tokio::fs::metadata(location)
                .await
                .map_err(|e| fail(e.to_string()))?;
            if meta.len() > MAX_INPUT_BYTES {
                return Err(fail(format!(
                    "{} bytes is more than the {MAX_INPUT_BYTES} bytes an input may have",
                    meta.len()
                )));
            }
            Bytes::from(
                tokio::fs::read(location)
                    .await
                    .map_err(|e| fail(e.to_string()))?,
            )
        }
    };
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(fail(format!(
            "{} bytes is more than the {MAX_INPUT_BYTES} bytes an input may have",
            bytes.len()
        )));
    }
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
    async fn directories_read_their_parts_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("part-1"), "b").unwrap();
        std::fs::write(dir.path().join("part-0"), "a").unwrap();
        std::fs::write(dir.path().join("_SUCCESS"), "").unwrap();
        std::fs::write(dir.path().join(".part-0.crc"), "x").unwrap();
        let data = read_dataset(dir.path().to_str().unwrap()).await.unwrap();
        let bodies: Vec<&[u8]> = data.parts.iter().map(|p| &p.bytes[..]).collect();
        assert_eq!(bodies, [b"a", b"b"]);
        assert_eq!(data.sha256, hex::encode(Sha256::digest(b"ab")));
        assert!(data.single().is_err());
        let empty = tempfile::tempdir().unwrap();
        let err = read_dataset(empty.path().to_str().unwrap())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no data files"), "{err}");
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
