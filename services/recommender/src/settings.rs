//! The recommender's settings: the shared ones, which versions to serve, and its limits.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `MAX_N` | 100 | largest `n` a request may ask for |
//! | `MAX_BATCH_USERS` | 1000 | most users in one `POST /v1/recommendations` |
//! | `EVENTS_PER_USER` | 50 | recent clicks kept per user (oldest dropped first) |
//! | `EVENT_USERS` | 100000 | users with recent clicks kept in memory (least recently active dropped first) |
//! | `EVENT_TTL_SECONDS` | 3600 | clicks older than this are forgotten |
//! | `CLICKS_URL` | unset: in memory | `redis://…` or `rediss://…`: recent clicks in Redis, shared by every replica (from a Secret) |
//! | `CLICKS_KEY_PREFIX` | `recommender:clicks:` | prefix of each user's list in Redis |
//! | `CLICKS_TIMEOUT_MS` | 50 | longest wait for Redis; a slower read answers from the model alone, a slower write gets 503 |
//! | `MAX_CLICK_WEIGHT` | 100 | largest click `weight`; more is refused (400) |
//! | `EVENTS_TOKEN` | unset: open | bearer token `POST /v1/users/{id}/events` requires, ≥ 16 characters (from a Secret) |
//! | `MAX_CONCURRENT_SCORING` | 2 × cores | fold-ins and catalogue scans running at once; more wait, then get 503 |
//! | `RECOMMEND_SEARCH` | `exact` | how a catalogue is scanned: `exact` (f32, today's answers), `int8` (int8 codes pick candidates, rescored in f32; a quarter of the bytes read) or `ann` (the index the trainer stored with `--ann-index`: its HNSW graph is walked, or only its nearest IVF lists' codes are scanned); recall measured at load |
//! | `RECOMMEND_OVERSAMPLE` | 10 | int8 and ann modes: candidates rescored in f32 per item asked for (`n × oversample`) |
//! | `RECOMMEND_PROBE` | 0 | ann mode: the index's breadth per request (HNSW: items kept by the graph search, `ef`; IVF: lists scanned); 0 takes the one the trainer tuned to its target recall |
//! | `SCORING_WAIT_MS` | 100 | longest wait for a scoring slot, for at most 32 × `MAX_CONCURRENT_SCORING` waiting requests; then 503 with `Retry-After`; 0 refuses at once |
//!
//! plus the shared `MODEL_NAME` (default `recommender`), `MODEL_VERSION`, `SHADOW_CONCURRENCY`, `MAX_BODY_BYTES`, `MODEL_VERSION_B`,
//! `AB_PERCENT_B`, `MODEL_VERSION_SHADOW`, `MODEL_POLL_SECONDS`, `MODEL_CACHE_DIR`, `MODEL_CACHE_KEEP`,
//! `MODEL_STORE`, `HOST`, `PORT` and telemetry ones.

use std::time::Duration;

use secrecy::SecretString;
use shared_lib::application::CommonSettings;
use shared_lib::models::als::{MAX_LISTS, Search};
use shared_lib::serving::ServingSettings;
use shared_lib::settings::Env;

use crate::SERVICE;
use crate::auth::MIN_TOKEN_LEN;
use crate::clicks::redis::{DEFAULT_KEY_PREFIX, DEFAULT_TIMEOUT};
use crate::clicks::{ClickLimits, ClickSettings, RedisSettings};
use crate::scoring::{QUEUE_PER_PERMIT, ScoringLimits};

pub const DEFAULT_PORT: u16 = 8081;

/// Covers ratings (1-5, 1-10) and implicit interaction counts, while one click can no longer
/// outweigh a user's whole history by orders of magnitude (the fold-in's confidence grows
/// linearly with the weight).
pub const DEFAULT_MAX_CLICK_WEIGHT: f32 = 100.0;
/// Long enough to absorb a burst of a few scans, short against a client's own timeout.
pub const DEFAULT_SCORING_WAIT_MS: u64 = 100;
/// Ten candidates per item asked for: recall@10 ≥ 0.99 on generated rank-64 factors at 1M
/// items (`bench/recommender/search.sh`), while the rescoring reads 100 × 256 B, nothing beside
/// the scan.
pub const DEFAULT_OVERSAMPLE: usize = 10;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub serving: ServingSettings,
    pub max_n: usize,
    pub max_batch_users: usize,
    pub clicks: ClickSettings,
    pub max_click_weight: f32,
    pub events_token: Option<SecretString>,
    pub scoring: ScoringLimits,
    /// `RECOMMEND_SEARCH`, `RECOMMEND_OVERSAMPLE` and `RECOMMEND_PROBE`.
    pub search: Search,
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
        let limits = ClickLimits {
            per_user: positive(&mut env, "EVENTS_PER_USER", 50),
            users: positive(&mut env, "EVENT_USERS", 100_000),
            ttl: Duration::from_secs(positive(&mut env, "EVENT_TTL_SECONDS", 3600) as u64),
        };
        let redis = read_redis(&mut env);
        let clicks = ClickSettings { limits, redis };
        let max_click_weight = env.parse_or("MAX_CLICK_WEIGHT", DEFAULT_MAX_CLICK_WEIGHT);
        if !(max_click_weight.is_finite() && max_click_weight > 0.0) {
            env.problem("MAX_CLICK_WEIGHT", "must be a positive number");
        }
        let events_token = env.optional_string("EVENTS_TOKEN");
        if events_token
            .as_ref()
            .is_some_and(|t| t.len() < MIN_TOKEN_LEN)
        {
            env.problem(
                "EVENTS_TOKEN",
                format!("must have at least {MIN_TOKEN_LEN} characters"),
            );
        }
        let permits = positive(
            &mut env,
            "MAX_CONCURRENT_SCORING",
            ScoringLimits::default_permits(),
        );
        let scoring = ScoringLimits {
            permits,
            wait: Duration::from_millis(env.parse_or("SCORING_WAIT_MS", DEFAULT_SCORING_WAIT_MS)),
            queue: permits.saturating_mul(QUEUE_PER_PERMIT),
        };
        let search = read_search(&mut env);
        env.finish()?;
        match (common, serving) {
            (Some(common), Some(serving)) => Ok(Self {
                common,
                serving,
                max_n,
                max_batch_users,
                clicks,
                max_click_weight,
                events_token: events_token.map(SecretString::from),
                scoring,
                search,
            }),
            _ => Err(shared_lib::Error::Settings {
                problems: vec!["invalid settings".into()],
            }),
        }
    }
}

/// `RECOMMEND_SEARCH` and, for int8 and ann, `RECOMMEND_OVERSAMPLE`; for ann `RECOMMEND_PROBE`.
fn read_search(env: &mut Env) -> Search {
    let oversample = env.parse_or("RECOMMEND_OVERSAMPLE", DEFAULT_OVERSAMPLE);
    if !(1..=1000).contains(&oversample) {
        env.problem("RECOMMEND_OVERSAMPLE", "must be from 1 to 1000");
    }
    let oversample = oversample.clamp(1, 1000);
    // 0: the probe the trainer recorded in the index.
    let probe = env.parse_or("RECOMMEND_PROBE", 0usize);
    if probe > MAX_LISTS {
        env.problem("RECOMMEND_PROBE", format!("must be from 0 to {MAX_LISTS}"));
    }
    match env.string_or("RECOMMEND_SEARCH", "exact").as_str() {
        "exact" => Search::Exact,
        "int8" => Search::Int8 { oversample },
        "ann" => Search::Ann {
            probe: probe.min(MAX_LISTS),
            oversample,
        },
        _ => {
            env.problem("RECOMMEND_SEARCH", "must be exact, int8 or ann");
            Search::Exact
        }
    }
}

/// `CLICKS_URL` and its companions; `None` when clicks stay in memory.
fn read_redis(env: &mut Env) -> Option<RedisSettings> {
    let url = env.optional_string("CLICKS_URL")?;
    if let Err(problem) = RedisSettings::check_url(&url) {
        env.problem("CLICKS_URL", problem);
    }
    let timeout_ms = env.parse_or("CLICKS_TIMEOUT_MS", DEFAULT_TIMEOUT.as_millis() as u64);
    if timeout_ms == 0 {
        env.problem("CLICKS_TIMEOUT_MS", "must be at least 1");
    }
    let key_prefix = env.string_or("CLICKS_KEY_PREFIX", DEFAULT_KEY_PREFIX);
    if key_prefix.len() > 128 {
        env.problem("CLICKS_KEY_PREFIX", "must have at most 128 characters");
    }
    Some(RedisSettings {
        url: SecretString::from(url),
        key_prefix,
        timeout: Duration::from_millis(timeout_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, shared_lib::Error> {
        Settings::from_env(Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn the_click_and_scoring_limits_have_their_defaults() {
        let s = settings(&[]).unwrap();
        assert!((s.max_click_weight - 100.0).abs() < f32::EPSILON);
        assert!(s.events_token.is_none());
        assert_eq!(s.scoring.permits, ScoringLimits::default_permits());
        assert_eq!(s.scoring.wait, Duration::from_millis(100));
        assert_eq!(s.scoring.queue, 32 * s.scoring.permits);
        assert!(
            s.clicks.redis.is_none(),
            "clicks stay in memory without CLICKS_URL"
        );
        assert_eq!(s.search, Search::Exact);
    }

    #[test]
    fn recommend_search_selects_int8_or_ann_with_their_knobs_and_refuses_others() {
        let s = settings(&[("RECOMMEND_SEARCH", "int8")]).unwrap();
        assert_eq!(s.search, Search::Int8 { oversample: 10 });
        let s = settings(&[("RECOMMEND_SEARCH", "int8"), ("RECOMMEND_OVERSAMPLE", "3")]).unwrap();
        assert_eq!(s.search, Search::Int8 { oversample: 3 });
        let s = settings(&[("RECOMMEND_SEARCH", "ann")]).unwrap();
        assert_eq!(
            s.search,
            Search::Ann {
                probe: 0,
                oversample: 10
            }
        );
        let s = settings(&[("RECOMMEND_SEARCH", "ann"), ("RECOMMEND_PROBE", "24")]).unwrap();
        assert_eq!(
            s.search,
            Search::Ann {
                probe: 24,
                oversample: 10
            }
        );
        let err = settings(&[
            ("RECOMMEND_SEARCH", "hnsw"),
            ("RECOMMEND_OVERSAMPLE", "0"),
            ("RECOMMEND_PROBE", "70000"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("RECOMMEND_SEARCH"), "{err}");
        assert!(err.contains("RECOMMEND_OVERSAMPLE"), "{err}");
        assert!(err.contains("RECOMMEND_PROBE"), "{err}");
    }

    #[test]
    fn clicks_url_selects_redis_with_its_prefix_and_timeout() {
        let s = settings(&[
            ("CLICKS_URL", "redis://127.0.0.1:6390/2"),
            ("CLICKS_TIMEOUT_MS", "20"),
        ])
        .unwrap();
        let redis = s.clicks.redis.unwrap();
        assert_eq!(redis.key_prefix, "recommender:clicks:");
        assert_eq!(redis.timeout, Duration::from_millis(20));
    }

    #[test]
    fn bad_click_and_scoring_limits_are_all_named() {
        let err = settings(&[
            ("EVENTS_TOKEN", "too-short"),
            ("MAX_CLICK_WEIGHT", "-1"),
            ("MAX_CONCURRENT_SCORING", "0"),
            ("SCORING_WAIT_MS", "soon"),
            ("CLICKS_URL", "http://user:s3cret@cache:6379"),
            ("CLICKS_TIMEOUT_MS", "0"),
        ])
        .unwrap_err()
        .to_string();
        for name in [
            "EVENTS_TOKEN",
            "MAX_CLICK_WEIGHT",
            "MAX_CONCURRENT_SCORING",
            "SCORING_WAIT_MS",
            "CLICKS_URL",
            "CLICKS_TIMEOUT_MS",
        ] {
            assert!(err.contains(name), "{name} in {err}");
        }
        assert!(
            !err.contains("s3cret"),
            "the URL's password is not repeated: {err}"
        );
    }

    /// The names behind scripts/check_env_names.py: every variable this binary reads, over a
    /// local and an S3 store, with and without a Redis click store (each reads more
    /// variables), and its health check.
    #[test]
    fn env_names_txt_lists_every_variable_read() {
        let recorder = shared_lib::settings::NameRecorder::start();
        let probes: [&[(&str, &str)]; 2] = [
            &[],
            &[
                ("MODEL_STORE", "s3://probe/models"),
                ("CLICKS_URL", "redis://127.0.0.1:1"),
            ],
        ];
        for probe in probes {
            let _ = settings(probe);
        }
        shared_lib::healthcheck::run(Env::from_pairs([("PORT", "1")]), DEFAULT_PORT);
        shared_lib::testing::assert_env_names(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("env-names.txt"),
            &recorder.finish(),
        );
    }
}
