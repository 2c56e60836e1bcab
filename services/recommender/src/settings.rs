//! The recommender's settings: the shared ones, which versions to serve, and its limits.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `MAX_N` | 100 | largest `n` a request may ask for |
//! | `MAX_BATCH_USERS` | 1000 | most users in one `POST /v1/recommendations` |
//! | `EVENTS_PER_USER` | 50 | recent clicks kept per user (oldest dropped first) |
//! | `EVENT_USERS` | 100000 | users with recent clicks kept in memory (least recently active dropped first) |
//! | `EVENT_TTL_SECONDS` | 3600 | clicks older than this are forgotten |
//!
//! plus the shared `MODEL_NAME` (default `recommender`), `MODEL_VERSION`, `SHADOW_CONCURRENCY`, `MAX_BODY_BYTES`, `MODEL_VERSION_B`,
//! `AB_PERCENT_B`, `MODEL_VERSION_SHADOW`, `MODEL_POLL_SECONDS`, `MODEL_CACHE_DIR`, `MODEL_CACHE_KEEP`,
//! `MODEL_STORE`, `HOST`, `PORT` and telemetry ones.

use std::time::Duration;

use shared_lib::service::CommonSettings;
use shared_lib::serving::ServingSettings;
use shared_lib::settings::Env;

use crate::SERVICE;
use crate::clicks::ClickLimits;

pub const DEFAULT_PORT: u16 = 8081;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub serving: ServingSettings,
    pub max_n: usize,
    pub max_batch_users: usize,
    pub clicks: ClickLimits,
}

impl Settings {
    /// # Errors
    /// Every bad variable, by name.
    pub fn from_env(mut env: Env) -> Result<Self, shared_lib::Error> {
        let common = CommonSettings::read(&mut env, SERVICE, DEFAULT_PORT);
        let serving = ServingSettings::from_env(&mut env, SERVICE, None);
        let positive = |env: &mut Env, name: &str, default: usize| {
            let v = env.parse_or(name, default);
            if v == 0 {
                env.problem(name, "must be at least 1");
            }
            v.max(1)
        };
        let max_n = positive(&mut env, "MAX_N", 100);
        let max_batch_users = positive(&mut env, "MAX_BATCH_USERS", 1000);
        let clicks = ClickLimits {
            per_user: positive(&mut env, "EVENTS_PER_USER", 50),
            users: positive(&mut env, "EVENT_USERS", 100_000),
            ttl: Duration::from_secs(positive(&mut env, "EVENT_TTL_SECONDS", 3600) as u64),
        };
        env.finish()?;
        match (common, serving) {
            (Some(common), Some(serving)) => Ok(Self {
                common,
                serving,
                max_n,
                max_batch_users,
                clicks,
            }),
            _ => Err(shared_lib::Error::Settings {
                problems: vec!["invalid settings".into()],
            }),
        }
    }
}
