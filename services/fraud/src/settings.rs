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

use shared_lib::service::CommonSettings;
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
