//! The fraud service's settings: the shared ones, which versions to serve, and its limits.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `MODEL_VERSION` (or the classic `FF_CLF_VERSION`) | `production` | version number to pin, or alias to follow |
//! | `MAX_BATCH_ROWS` | 1000 | most rows in one `POST /v1/classify` |
//!
//! plus the shared `MODEL_NAME`, `SHADOW_CONCURRENCY`, `MAX_BODY_BYTES`, `MODEL_VERSION_B`, `AB_PERCENT_B`, `MODEL_VERSION_SHADOW`,
//! `MODEL_POLL_SECONDS`, `MODEL_CACHE_DIR`, `MODEL_CACHE_KEEP`, `MODEL_STORE`, `HOST`, `PORT` and
//! telemetry ones.

use shared_lib::application::CommonSettings;
use shared_lib::serving::ServingSettings;
use shared_lib::settings::Env;

use crate::SERVICE;

pub const DEFAULT_PORT: u16 = 8080;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub serving: ServingSettings,
    pub max_batch_rows: usize,
}

impl Settings {
    /// # Errors
    /// Every bad variable, by name.
    pub fn from_env(mut env: Env) -> Result<Self, shared_lib::Error> {
        let common = CommonSettings::read(&mut env, SERVICE, DEFAULT_PORT);
        let serving = ServingSettings::from_env(&mut env, SERVICE, Some("FF_CLF_VERSION"));
        let max_batch_rows = env.parse_or("MAX_BATCH_ROWS", 1000usize);
        if max_batch_rows == 0 {
            env.problem("MAX_BATCH_ROWS", "must be at least 1");
        }
        env.finish()?;
        match (common, serving) {
            (Some(common), Some(serving)) => Ok(Self {
                common,
                serving,
                max_batch_rows,
            }),
            _ => Err(shared_lib::Error::Settings {
                problems: vec!["invalid settings".into()],
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names behind scripts/check_env_names.py: every variable this binary reads, over a
    /// local and an S3 store (the S3 variables are read only for an s3:// store), and its
    /// health check.
    #[test]
    fn env_names_txt_lists_every_variable_read() {
        let recorder = shared_lib::settings::NameRecorder::start();
        for probe in [&[][..], &[("MODEL_STORE", "s3://probe/models")][..]] {
            let _ = Settings::from_env(Env::from_pairs(probe.iter().copied()));
        }
        shared_lib::healthcheck::run(Env::from_pairs([("PORT", "1")]), DEFAULT_PORT);
        shared_lib::testing::assert_env_names(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("env-names.txt"),
            &recorder.finish(),
        );
    }
}
