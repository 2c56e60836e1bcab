//! Support for the end-to-end tests: where the real S3 store is.
//!
//! `scripts/test.sh` starts Garage and exports `E2E_S3_*`; the tests that need it are
//! `#[ignore]`d so a plain `cargo test` without Garage skips them visibly rather than failing,
//! and the test script runs them with `--run-ignored all`.

use secrecy::SecretString;
use shared_lib::store::{ObjectKey, S3Credentials, S3Settings};

/// S3 settings for the store started by `scripts/garage.sh`, under a fresh prefix per test.
///
/// # Panics
/// When `E2E_S3_ENDPOINT` and friends are not set: run the tests through `scripts/test.sh`.
pub fn garage_settings(prefix: &str) -> S3Settings {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: start Garage with scripts/garage.sh or run scripts/test.sh")
        })
    };
    let prefix = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
    S3Settings {
        bucket: var("E2E_S3_BUCKET"),
        prefix: Some(ObjectKey::parse(&prefix).unwrap_or_else(|e| panic!("{e}"))),
        endpoint: Some(var("E2E_S3_ENDPOINT")),
        region: var("E2E_S3_REGION"),
        force_path_style: true,
        credentials: Some(S3Credentials {
            access_key_id: var("E2E_S3_ACCESS_KEY_ID"),
            secret_access_key: SecretString::from(var("E2E_S3_SECRET_ACCESS_KEY")),
            session_token: None,
        }),
    }
}
