//! Recent clicks per user, for real-time fold-in: in this process's memory (the embedded
//! default) or in Redis, shared by every replica (`CLICKS_URL`).
//!
//! Both stores keep the same limits: `per_user` newest clicks per user and a time to live per
//! click; the memory store also caps its users ([`ClickLimits::users`]), where Redis leaves that to
//! its own `maxmemory` policy. Serving never depends on the store: a read that fails or takes
//! longer than `CLICKS_TIMEOUT_MS` gives no clicks, and the answer says so
//! ([`Recent::available`]); a write that fails is refused (503), so a client knows to retry.
//! Both are counted in `recommender_clicks_unavailable_total{operation}`.

mod memory;
pub mod redis;

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{IntCounterVec, Opts, Registry};
use shared_lib::http::register_metric;

pub use self::memory::{MAX_SHARDS, MemoryClicks, USERS_PER_SHARD};
pub use self::redis::{RedisClicks, RedisSettings};

use crate::error::Error;
use crate::ids::{ItemId, UserId};

#[derive(Debug, Clone)]
pub struct ClickLimits {
    pub per_user: usize,
    /// Users kept by the memory store; Redis bounds its memory with its own `maxmemory`.
    pub users: usize,
    pub ttl: Duration,
}

/// An item id's fingerprint: a 64-bit hash under one random key per process, so a key made
/// when a click is read matches the item in any model this process loads
/// ([`crate::model::ItemKeys`]), and clients cannot choose ids that collide. Never stored
/// outside the process: Redis keeps item ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemKey(u64);

impl ItemKey {
    pub fn of(item_id: &str) -> Self {
        static KEY: OnceLock<RandomState> = OnceLock::new();
        Self(KEY.get_or_init(RandomState::new).hash_one(item_id))
    }
}

/// A click as the recommendations use it.
#[derive(Debug, Clone, PartialEq)]
pub struct Click {
    pub item: ItemKey,
    /// A rating (explicit models) or an interaction strength (implicit); `None` uses the default.
    pub weight: Option<f32>,
}

/// A click as the events endpoint accepted it: a known item id and a checked weight.
#[derive(Debug, Clone, PartialEq)]
pub struct NewClick {
    pub item_id: ItemId,
    pub weight: Option<f32>,
}

/// Some users' recent clicks, oldest first, in the order the users were asked for.
#[derive(Debug)]
pub struct Recent {
    pub clicks: Vec<Vec<Click>>,
    /// False when the store could not be read in time: `clicks` are then all empty.
    pub available: bool,
}

enum Backend {
    Memory(MemoryClicks),
    Redis(RedisClicks),
}

/// Where the clicks live, chosen once at start-up.
pub struct ClickStore {
    backend: Backend,
    unavailable: IntCounterVec,
}

/// Where to keep clicks: `CLICKS_URL` unset keeps them in memory.
#[derive(Debug, Clone)]
pub struct ClickSettings {
    pub limits: ClickLimits,
    pub redis: Option<RedisSettings>,
}

impl ClickStore {
    /// Opens the store. Redis is connected lazily, so the service starts (and serves from the
    /// model alone) while Redis is down.
    ///
    /// # Errors
    /// When the metric cannot be registered or the Redis client cannot be made.
    pub fn open(settings: &ClickSettings, metrics: &Registry) -> Result<Self, shared_lib::Error> {
        let unavailable = register_metric(
            metrics,
            IntCounterVec::new(
                Opts::new(
                    "recommender_clicks_unavailable_total",
                    "Click reads answered without clicks and writes refused, because the click \
                     store failed or was too slow, by operation (read, write).",
                ),
                &["operation"],
            ),
        )?;
        let backend = match &settings.redis {
            None => Backend::Memory(MemoryClicks::new(settings.limits.clone())),
            Some(redis) => {
                Backend::Redis(RedisClicks::open(redis, settings.limits.clone(), metrics)?)
            }
        };
        Ok(Self {
            backend,
            unavailable,
        })
    }

    /// `memory` or `redis`.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// Adds clicks for `user`, newest last.
    ///
    /// # Errors
    /// [`Error::ClicksUnavailable`] when Redis fails or does not answer in time.
    pub async fn record(&self, user: &UserId, clicks: &[NewClick]) -> Result<(), Error> {
        match &self.backend {
            Backend::Memory(store) => {
                let keyed = clicks
                    .iter()
                    .map(|c| Click {
                        item: ItemKey::of(c.item_id.as_str()),
                        weight: c.weight,
                    })
                    .collect();
                store.record(user.as_str(), keyed);
                Ok(())
            }
            Backend::Redis(store) => store.record(user, clicks).await.map_err(|e| {
                self.unavailable.with_label_values(&["write"]).inc();
                tracing::warn!(error = %e, "Clicks could not be written to Redis.");
                Error::ClicksUnavailable
            }),
        }
    }

    /// The unexpired clicks of each of `users`: one Redis round trip however many users.
    pub async fn recent(&self, users: &[UserId]) -> Recent {
        match &self.backend {
            Backend::Memory(store) => Recent {
                clicks: users.iter().map(|u| store.recent(u.as_str())).collect(),
                available: true,
            },
            Backend::Redis(store) => match store.recent(users).await {
                Ok(clicks) => Recent {
                    clicks,
                    available: true,
                },
                Err(e) => {
                    self.unavailable.with_label_values(&["read"]).inc();
                    tracing::warn!(
                        error = %e,
                        "Clicks could not be read from Redis; answering from the model alone."
                    );
                    Recent {
                        clicks: users.iter().map(|_| Vec::new()).collect(),
                        available: false,
                    }
                }
            },
        }
    }
}
