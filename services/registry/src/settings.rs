//! The registry service's settings.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `REGISTRY_TOKEN` | unset: mutations refused | bearer token for registrations, alias moves, archive (from a Kubernetes Secret) |
//! | `REGISTRY_READ_AUTH` | `false` | when `true`, reads need the token too |
//! | `MAX_UPLOAD_BYTES` | 268435456 | largest registration body (artifact base64 plus manifest) |
//!
//! plus the shared `MODEL_STORE` (with the S3 variables), `HOST`, `PORT` and telemetry ones.

use secrecy::SecretString;
use shared_lib::service::CommonSettings;
use shared_lib::settings::Env;

use crate::SERVICE;

pub const DEFAULT_PORT: u16 = 8082;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub token: Option<SecretString>,
    pub read_auth: bool,
    pub max_upload_bytes: usize,
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
        let read_auth = env.parse_or("REGISTRY_READ_AUTH", false);
        if read_auth && token.is_none() {
            env.problem(
                "REGISTRY_READ_AUTH",
                "is true but REGISTRY_TOKEN is not set",
            );
        }
        let max_upload_bytes = env.parse_or("MAX_UPLOAD_BYTES", 256 * 1024 * 1024usize);
        env.finish()?;
        let common = common.ok_or_else(|| shared_lib::Error::Settings {
            problems: vec!["MODEL_STORE: invalid".into()],
        })?;
        Ok(Self {
            common,
            token: token.map(SecretString::from),
            read_auth,
            max_upload_bytes,
        })
    }
}
