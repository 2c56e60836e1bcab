//! Where the model store is: parsed from `MODEL_STORE` and the standard AWS variables.

use std::path::PathBuf;

use secrecy::SecretString;
use suite_settings::Env;

use super::ObjectKey;
use crate::Error;

/// The store location: a local directory or an S3 bucket and prefix.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    Local(PathBuf),
    S3(S3Settings),
}

/// The default when `MODEL_STORE` is unset: a directory beside the working directory, so a
/// fresh clone runs with no S3 at all.
pub const DEFAULT_MODEL_STORE: &str = ".data/models";

/// Connection settings for an S3-compatible store.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub bucket: String,
    /// Keys are stored under this prefix, so one bucket can hold several environments.
    pub prefix: Option<ObjectKey>,
    /// A custom endpoint (MinIO, Ceph, Garage); `None` means AWS itself.
    pub endpoint: Option<String>,
    pub region: String,
    /// Path-style URLs (`http://host/bucket/key`); needed by most self-hosted stores.
    pub force_path_style: bool,
    /// Static credentials; `None` sends unsigned (anonymous) requests.
    pub credentials: Option<S3Credentials>,
}

#[derive(Debug, Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

impl StoreLocation {
    /// Parses a `MODEL_STORE` value: `s3://bucket[/prefix]`, `file:///abs/path`, or a plain path.
    /// S3 connection settings are left at their defaults; see [`StoreLocation::from_env`].
    ///
    /// # Errors
    /// [`Error::InvalidStoreLocation`] saying what is wrong with the value.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidStoreLocation {
            location: value.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = value.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if !is_bucket_name(bucket) {
                return Err(invalid(
                    "the bucket must have 3-63 characters of a-z, 0-9, '.' and '-'",
                ));
            }
            let prefix = prefix.trim_end_matches('/');
            let prefix = if prefix.is_empty() {
                None
            } else {
                Some(ObjectKey::parse(prefix).map_err(|e| invalid(&e.to_string()))?)
            };
            return Ok(Self::S3(S3Settings {
                bucket: bucket.to_owned(),
                prefix,
                endpoint: None,
                region: "us-east-1".to_owned(),
                force_path_style: false,
                credentials: None,
            }));
        }
        let path = match value.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => path,
            Some(_) => {
                return Err(invalid(
                    "a file:// URL needs an absolute path, e.g. file:///var/lib/models",
                ));
            }
            None if value.contains("://") => {
                return Err(invalid(
                    "use s3://bucket/prefix, file:///path or a plain path",
                ));
            }
            None => value,
        };
        if path.is_empty() {
            return Err(invalid("the path is empty"));
        }
        Ok(Self::Local(PathBuf::from(path)))
    }

    /// Reads `MODEL_STORE` and, for S3, the endpoint, region, path style and credentials:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `MODEL_STORE` | `s3://bucket/prefix`, `file:///path` or a path; default `.data/models` |
    /// | `S3_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`) | custom endpoint |
    /// | `AWS_REGION` (or `AWS_DEFAULT_REGION`) | region; default `us-east-1` |
    /// | `S3_FORCE_PATH_STYLE` | `true`/`false`; default true when an endpoint is set |
    /// | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | static credentials; none = anonymous |
    ///
    /// Problems are recorded in `env`, to be reported together by [`Env::finish`].
    pub fn from_env(env: &mut Env) -> Option<Self> {
        let raw = env.string_or("MODEL_STORE", DEFAULT_MODEL_STORE);
        let location = match Self::parse(&raw) {
            Ok(location) => location,
            Err(e) => {
                env.problem("MODEL_STORE", e.to_string());
                return None;
            }
        };
        let Self::S3(s3) = location else {
            return Some(location);
        };
        Some(Self::S3(S3Settings::from_env(env, s3.bucket, s3.prefix)))
    }
}

impl S3Settings {
    /// Connection settings for `bucket` from the standard variables (endpoint, region, path
    /// style, credentials; see [`StoreLocation::from_env`]). Problems are recorded in `env`.
    pub fn from_env(env: &mut Env, bucket: String, prefix: Option<ObjectKey>) -> Self {
        let endpoint = env
            .first_string(&["S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
            .map(|(name, url)| {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    env.problem(name, "must be an http:// or https:// URL");
                }
                url.trim_end_matches('/').to_owned()
            });
        let region = env
            .first_string(&["AWS_REGION", "AWS_DEFAULT_REGION"])
            .map_or_else(|| "us-east-1".to_owned(), |(_, region)| region);
        let force_path_style = env.parse_or("S3_FORCE_PATH_STYLE", endpoint.is_some());
        let key_id = env.optional_string("AWS_ACCESS_KEY_ID");
        let secret = env.optional_string("AWS_SECRET_ACCESS_KEY");
        let token = env.optional_string("AWS_SESSION_TOKEN");
        let credentials = match (key_id, secret) {
            (Some(access_key_id), Some(secret)) => Some(S3Credentials {
                access_key_id,
                secret_access_key: SecretString::from(secret),
                session_token: token.map(SecretString::from),
            }),
            (None, None) => None,
            (Some(_), None) => {
                env.problem(
                    "AWS_SECRET_ACCESS_KEY",
                    "is required when AWS_ACCESS_KEY_ID is set",
                );
                None
            }
            (None, Some(_)) => {
                env.problem(
                    "AWS_ACCESS_KEY_ID",
                    "is required when AWS_SECRET_ACCESS_KEY is set",
                );
                None
            }
        };
        Self {
            bucket,
            prefix,
            endpoint,
            region,
            force_path_style,
            credentials,
        }
    }
}

fn is_bucket_name(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn parses_every_accepted_form() {
        let cases = [
            ("s3://models", "s3 models -"),
            ("s3://models/prod/eu", "s3 models prod/eu"),
            ("s3://models/prod/", "s3 models prod"),
            ("file:///var/lib/models", "local /var/lib/models"),
            ("/var/lib/models", "local /var/lib/models"),
            ("data/models", "local data/models"),
        ];
        for (value, expected) in cases {
            let got = match StoreLocation::parse(value).unwrap() {
                StoreLocation::S3(s) => format!(
                    "s3 {} {}",
                    s.bucket,
                    s.prefix.map_or("-".to_owned(), |p| p.to_string())
                ),
                StoreLocation::Local(p) => format!("local {}", p.display()),
            };
            assert_eq!(got, expected, "{value}");
        }
    }

    #[test]
    fn rejects_malformed_locations_with_a_reason() {
        for bad in [
            "s3://",
            "s3://ab",
            "s3://Models",
            "s3://models/../x",
            "file://rel",
            "gs://b/p",
            "",
        ] {
            let err = StoreLocation::parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidStoreLocation { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn s3_settings_come_from_the_standard_variables() {
        let mut e = env(&[
            ("MODEL_STORE", "s3://models/prod"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:3900/"),
            ("AWS_REGION", "garage"),
            ("AWS_ACCESS_KEY_ID", "GK123"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ]);
        let Some(StoreLocation::S3(s3)) = StoreLocation::from_env(&mut e) else {
            panic!("expected S3");
        };
        e.finish().unwrap();
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(s3.region, "garage");
        assert!(
            s3.force_path_style,
            "custom endpoints default to path style"
        );
        assert_eq!(s3.credentials.unwrap().access_key_id, "GK123");
    }

    #[test]
    fn half_a_credential_pair_is_reported_by_name() {
        let mut e = env(&[
            ("MODEL_STORE", "s3://models"),
            ("AWS_ACCESS_KEY_ID", "GK123"),
            ("S3_FORCE_PATH_STYLE", "maybe"),
        ]);
        let _ = StoreLocation::from_env(&mut e);
        let err = e.finish().unwrap_err().to_string();
        assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
        assert!(err.contains("S3_FORCE_PATH_STYLE"), "{err}");
    }

    #[test]
    fn default_is_the_local_data_directory() {
        let mut e = env(&[]);
        let location = StoreLocation::from_env(&mut e).unwrap();
        assert!(
            matches!(location, StoreLocation::Local(p) if p.as_path() == std::path::Path::new(DEFAULT_MODEL_STORE))
        );
    }
}
