//! The registry service's settings.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `REGISTRY_CREDENTIALS_FILE` | unset | path of the credentials file: one `identity scopes token-sha256` line per credential (format in `auth::credentials`; a mounted Kubernetes Secret) |
//! | `REGISTRY_TOKEN` | unset | legacy single credential: identity `admin` with every scope (a Kubernetes Secret); with neither set, every change and download is refused |
//! | `REGISTRY_READ_AUTH` | `false` | when `true`, metadata reads and the page need the `read` scope too; artifact downloads always need it |
//! | `MAX_UPLOAD_BYTES` | 1073741824 (1 GiB) | largest artifact upload (`PUT .../artifacts/{sha256}`); uploads stream to the store, so memory does not grow with it: the limit only bounds what one upload may put in the store (a 1M-user recommender at rank 64 is about 280 MB) |
//! | `RETAIN_VERSIONS` | unset | after each registration, keep the newest N versions of that model (plus aliased and kept ones) |
//! | `RETAIN_DAYS` | unset | after each registration, keep the versions created in the last N days (plus aliased and kept ones); at most 36500 |
//!
//! Retention is off unless one of the two is set, because deleting is the one thing the
//! registry cannot undo: an operator opts in, knowing the store's budget.
//!
//! plus the shared `MODEL_STORE` (with the S3 variables), `HOST`, `PORT` and telemetry ones.

use std::num::NonZeroU32;

use secrecy::SecretString;
use shared_lib::application::CommonSettings;
use shared_lib::registry::retention::{MAX_RETAIN_DAYS, RetentionPolicy};
use shared_lib::settings::Env;

use crate::SERVICE;
use crate::auth::{Credentials, Scope};

pub const DEFAULT_PORT: u16 = 8082;

/// 1 GiB: several times the largest artifact the trainer writes today (a 1M-user recommender
/// at rank 64, about 280 MB). Uploads stream, so this bounds store use per upload, not memory.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 1024 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    /// From `REGISTRY_CREDENTIALS_FILE` and `REGISTRY_TOKEN`.
    pub credentials: Credentials,
    pub read_auth: bool,
    pub max_upload_bytes: usize,
    /// Applied after each registration; `None`: no automatic retention.
    pub retention: Option<RetentionPolicy>,
}

impl Settings {
    /// # Errors
    /// Every bad variable, by name.
    pub fn from_env(mut env: Env) -> Result<Self, shared_lib::Error> {
        let common = CommonSettings::read(&mut env, SERVICE, DEFAULT_PORT);
        let token = env.optional_string("REGISTRY_TOKEN");
        if token.as_ref().is_some_and(|t| t.len() < 16) {
            env.problem("REGISTRY_TOKEN", "must have at least 16 characters");
        }
        let credentials = read_credentials(&mut env, token.map(SecretString::from));
        let read_auth = env.parse_or("REGISTRY_READ_AUTH", false);
        if read_auth && !credentials.any_with(Scope::Read) {
            env.problem(
                "REGISTRY_READ_AUTH",
                "is true but no credential has the read scope (REGISTRY_CREDENTIALS_FILE, \
                 REGISTRY_TOKEN)",
            );
        }
        let max_upload_bytes = env.parse_or("MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES);
        let retain_versions = positive(&mut env, "RETAIN_VERSIONS");
        let retain_days = positive(&mut env, "RETAIN_DAYS");
        if retain_days.is_some_and(|d| d.get() > MAX_RETAIN_DAYS) {
            env.problem("RETAIN_DAYS", format!("must be at most {MAX_RETAIN_DAYS}"));
        }
        env.finish()?;
        let common = common.ok_or_else(|| shared_lib::Error::Settings {
            problems: vec!["MODEL_STORE: invalid".into()],
        })?;
        Ok(Self {
            common,
            credentials,
            read_auth,
            max_upload_bytes,
            retention: RetentionPolicy::new(retain_versions, retain_days),
        })
    }
}

/// The credentials file, if any, plus the legacy token; every problem recorded by name and line.
fn read_credentials(env: &mut Env, token: Option<SecretString>) -> Credentials {
    const FILE: &str = "REGISTRY_CREDENTIALS_FILE";
    let mut credentials = Credentials::default();
    if let Some(path) = env.optional_string(FILE) {
        match std::fs::read_to_string(&path) {
            Ok(text) => match Credentials::parse(&text) {
                Ok(parsed) => credentials = parsed,
                Err(problems) => {
                    for problem in problems {
                        env.problem(FILE, format!("{path} {problem}"));
                    }
                }
            },
            Err(e) => env.problem(FILE, format!("cannot read {path}: {e}")),
        }
    }
    if let Some(token) = token
        && let Err(e) = credentials.add_legacy_token(&token)
    {
        env.problem("REGISTRY_TOKEN", e);
    }
    credentials
}

/// An optional whole number of at least 1; 0 is refused rather than read as "keep nothing".
fn positive(env: &mut Env, name: &str) -> Option<NonZeroU32> {
    let value: u32 = env.optional(name)?;
    let positive = NonZeroU32::new(value);
    if positive.is_none() {
        env.problem(name, "must be at least 1 (unset it to keep every version)");
    }
    positive
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, shared_lib::Error> {
        Settings::from_env(Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn retention_is_off_unless_a_rule_is_set() {
        assert_eq!(settings(&[]).unwrap().retention, None);
        let both = settings(&[("RETAIN_VERSIONS", "10"), ("RETAIN_DAYS", "30")])
            .unwrap()
            .retention
            .unwrap();
        assert_eq!(
            (both.retain_versions(), both.retain_days()),
            (NonZeroU32::new(10), NonZeroU32::new(30))
        );
    }

    #[test]
    fn the_default_upload_limit_takes_a_one_million_user_recommender() {
        // A 1M-user ALS model at rank 64 is about 280 MB (issue 13).
        assert!(settings(&[]).unwrap().max_upload_bytes >= 280_000_000);
    }

    #[test]
    fn bad_retention_values_are_named_together() {
        let err = settings(&[("RETAIN_VERSIONS", "0"), ("RETAIN_DAYS", "a week")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("RETAIN_VERSIONS: must be at least 1"), "{err}");
        assert!(
            err.contains("RETAIN_DAYS: \"a week\" is not valid"),
            "{err}"
        );
        let err = settings(&[("RETAIN_DAYS", "36501")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("RETAIN_DAYS: must be at most 36500"), "{err}");
    }

    fn credentials_file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn a_bad_credentials_file_is_named_with_each_bad_line() {
        let file = credentials_file("ci read,publish 00\nops reed 0000\n");
        let path = file.path().to_str().unwrap();
        let err = settings(&[("REGISTRY_CREDENTIALS_FILE", path)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "REGISTRY_CREDENTIALS_FILE: {path} line 1: the token sha256"
            )),
            "{err}"
        );
        assert!(err.contains("line 2: unknown scope \"reed\""), "{err}");
        let missing = settings(&[("REGISTRY_CREDENTIALS_FILE", "/nonexistent/credentials")])
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("REGISTRY_CREDENTIALS_FILE: cannot read /nonexistent/credentials"),
            "{missing}"
        );
    }

    #[test]
    fn the_file_and_the_legacy_token_combine_and_read_auth_needs_a_reader() {
        let hash = shared_lib::http::token::TokenDigest::of("ci-token-0123456789").to_hex();
        let file = credentials_file(&format!("ci publish {hash}\n"));
        let path = file.path().to_str().unwrap();
        let both = settings(&[
            ("REGISTRY_CREDENTIALS_FILE", path),
            ("REGISTRY_TOKEN", "admin-token-0123456789"),
            ("REGISTRY_READ_AUTH", "true"),
        ])
        .unwrap();
        assert_eq!(
            format!("{:?}", both.credentials),
            "{\"ci\": publish, \"admin\": read,publish,promote,archive}"
        );
        let err = settings(&[
            ("REGISTRY_CREDENTIALS_FILE", path),
            ("REGISTRY_READ_AUTH", "true"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("REGISTRY_READ_AUTH: is true but no credential has the read scope"),
            "{err}"
        );
    }

    /// The names behind scripts/check_env_names.py: every variable this binary reads, over a
    /// local and an S3 store, and its health check.
    #[test]
    fn env_names_txt_lists_every_variable_read() {
        let recorder = shared_lib::settings::NameRecorder::start();
        for probe in [&[][..], &[("MODEL_STORE", "s3://probe/models")][..]] {
            let _ = settings(probe);
        }
        shared_lib::healthcheck::run(Env::from_pairs([("PORT", "1")]), DEFAULT_PORT);
        shared_lib::testing::assert_env_names(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("env-names.txt"),
            &recorder.finish(),
        );
    }
}
