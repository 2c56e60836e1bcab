//! Recent clicks in Redis, shared by every replica: the online store of recent activity, as in
//! Feast.
//!
//! Layout: one list per user at `{CLICKS_KEY_PREFIX}{user_id}` (default prefix
//! `recommender:clicks:`), newest click first, each entry `"{unix seconds} {weight or -}
//! {item_id}"`. Item ids, not [`ItemKey`]s, because the keys' hash is private to each process.
//! A write is one `MULTI` (`LPUSH` the clicks, `LTRIM` to `per_user`, `EXPIRE` the list `ttl`
//! after its newest click); a read is one `LRANGE` per user, all users of a request pipelined in
//! one round trip. Entries older than the time to live are skipped on read, so a click expires
//! at the same moment in both stores. Memory per user: about `per_user` × (30 + item id length)
//! bytes plus Redis's overhead per key; bound the total with Redis's `maxmemory` and a
//! `volatile-lru` or `allkeys-lru` policy (every key here has a time to live).
//!
//! The connection is a [`ConnectionManager`]: one multiplexed connection, reconnected in the
//! background after a failure, so clicks work again when Redis is back without a restart. Every
//! command is cut off after `timeout`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{IntCounterVec, Opts, Registry};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use shared_lib::http::register_metric;

use super::{Click, ClickLimits, ItemKey, NewClick};
use crate::ids::UserId;

pub const DEFAULT_KEY_PREFIX: &str = "recommender:clicks:";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// `CLICKS_URL`, `CLICKS_KEY_PREFIX` and `CLICKS_TIMEOUT_MS`.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS); may hold a password.
    pub url: SecretString,
    pub key_prefix: String,
    /// Longest wait for any Redis command, reads and writes alike.
    pub timeout: Duration,
}

impl RedisSettings {
    /// Checks the URL without connecting.
    ///
    /// # Errors
    /// A message that names the problem but not the URL (it may hold a password).
    pub fn check_url(url: &str) -> Result<(), String> {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err("must start with redis:// or rediss://".into());
        }
        redis::Client::open(url)
            .map(drop)
            .map_err(|e| format!("is not a Redis URL ({})", e.category()))
    }
}

#[derive(Debug)]
pub enum RedisFailure {
    Redis(redis::RedisError),
    Timeout(Duration),
}

impl std::fmt::Display for RedisFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Redis(e) => write!(f, "{e}"),
            Self::Timeout(t) => write!(f, "no answer within {} ms", t.as_millis()),
        }
    }
}

pub struct RedisClicks {
    connection: ConnectionManager,
    limits: ClickLimits,
    key_prefix: String,
    timeout: Duration,
    round_trips: IntCounterVec,
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl RedisClicks {
    /// A client that connects on first use and reconnects after failures.
    ///
    /// # Errors
    /// When the URL is not a Redis URL (settings check it first) or the metric exists already.
    pub fn open(
        settings: &RedisSettings,
        limits: ClickLimits,
        metrics: &Registry,
    ) -> Result<Self, shared_lib::Error> {
        let invalid = |e: redis::RedisError| shared_lib::Error::Settings {
            problems: vec![format!("CLICKS_URL: {}", e.category())],
        };
        let client = redis::Client::open(settings.url.expose_secret()).map_err(invalid)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(settings.timeout))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            // Reconnect quickly after an outage; commands never wait for it (`timeout`).
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(1));
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(invalid)?;
        // Connect now, in the background, so the first request does not pay for it (nor time
        // out on it); start-up does not wait, and a Redis that is down is only logged.
        let mut first = connection.clone();
        tokio::spawn(async move {
            let ping: Result<String, _> = redis::cmd("PING").query_async(&mut first).await;
            if let Err(e) = ping {
                tracing::warn!(error = %e, "Redis (CLICKS_URL) does not answer yet; serving from the model alone until it does.");
            }
        });
        let round_trips = register_metric(
            metrics,
            IntCounterVec::new(
                Opts::new(
                    "recommender_clicks_round_trips_total",
                    "Round trips to Redis, by operation (read, write); one per request.",
                ),
                &["operation"],
            ),
        )?;
        Ok(Self {
            connection,
            limits,
            key_prefix: settings.key_prefix.clone(),
            timeout: settings.timeout,
            round_trips,
        })
    }

    fn key(&self, user: &str) -> String {
        format!("{}{user}", self.key_prefix)
    }

    async fn query<T: redis::FromRedisValue>(
        &self,
        operation: &str,
        pipe: &redis::Pipeline,
    ) -> Result<T, RedisFailure> {
        self.round_trips.with_label_values(&[operation]).inc();
        let mut connection = self.connection.clone();
        tokio::time::timeout(self.timeout, pipe.query_async(&mut connection))
            .await
            .map_err(|_| RedisFailure::Timeout(self.timeout))?
            .map_err(RedisFailure::Redis)
    }

    /// Adds clicks for `user`, newest last, in one atomic round trip.
    ///
    /// # Errors
    /// When Redis fails or does not answer within the timeout.
    pub async fn record(&self, user: &UserId, clicks: &[NewClick]) -> Result<(), RedisFailure> {
        let key = self.key(user.as_str());
        let now = unix_seconds();
        // LPUSH puts each value at the head in turn: the newest click ends up first.
        let entries: Vec<String> = clicks
            .iter()
            .map(|c| match c.weight {
                Some(w) => format!("{now} {w} {}", c.item_id),
                None => format!("{now} - {}", c.item_id),
            })
            .collect();
        let last = isize::try_from(self.limits.per_user).unwrap_or(isize::MAX) - 1;
        let ttl = i64::try_from(self.limits.ttl.as_secs()).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .lpush(&key, entries)
            .ignore()
            .ltrim(&key, 0, last)
            .ignore()
            .expire(&key, ttl)
            .ignore();
        self.query::<()>("write", &pipe).await
    }

    /// Each user's unexpired clicks, oldest first: one pipelined round trip for all of them.
    ///
    /// # Errors
    /// When Redis fails or does not answer within the timeout.
    pub async fn recent(&self, users: &[UserId]) -> Result<Vec<Vec<Click>>, RedisFailure> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let last = isize::try_from(self.limits.per_user).unwrap_or(isize::MAX) - 1;
        let mut pipe = redis::pipe();
        for user in users {
            pipe.lrange(self.key(user.as_str()), 0, last);
        }
        let lists: Vec<Vec<Vec<u8>>> = self.query("read", &pipe).await?;
        let now = unix_seconds();
        let ttl = self.limits.ttl.as_secs();
        Ok(lists
            .into_iter()
            .map(|entries| {
                let mut clicks: Vec<Click> = entries
                    .iter()
                    .filter_map(|e| parse_entry(e, now, ttl))
                    .collect();
                clicks.reverse();
                clicks
            })
            .collect())
    }
}

/// An entry's click, unless it has expired or is not one this service wrote (skipped).
fn parse_entry(entry: &[u8], now: u64, ttl: u64) -> Option<Click> {
    let entry = std::str::from_utf8(entry).ok()?;
    let mut parts = entry.splitn(3, ' ');
    let at: u64 = parts.next()?.parse().ok()?;
    let weight = match parts.next()? {
        "-" => None,
        w => Some(
            w.parse::<f32>()
                .ok()
                .filter(|w| w.is_finite() && *w > 0.0)?,
        ),
    };
    let item_id = parts.next().filter(|id| !id.is_empty())?;
    (now.saturating_sub(at) < ttl).then(|| Click {
        item: ItemKey::of(item_id),
        weight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_back_to_their_clicks_and_expired_or_foreign_ones_are_skipped() {
        let click = |id: &str, weight| {
            Some(Click {
                item: ItemKey::of(id),
                weight,
            })
        };
        assert_eq!(parse_entry(b"100 - item 7", 105, 10), click("item 7", None));
        assert_eq!(
            parse_entry(b"100 2.5 a:b", 105, 10),
            click("a:b", Some(2.5))
        );
        assert_eq!(parse_entry(b"100 - old", 110, 10), None, "expired");
        for foreign in [
            &b"x - a"[..],
            b"100 -",
            b"100 - ",
            b"100 NaN a",
            b"100 -1 a",
            b"\xff",
        ] {
            assert_eq!(parse_entry(foreign, 100, 10), None, "{foreign:?}");
        }
    }

    #[test]
    fn only_redis_urls_pass_and_the_message_never_repeats_the_url() {
        assert!(RedisSettings::check_url("redis://127.0.0.1:6379/0").is_ok());
        assert!(RedisSettings::check_url("rediss://cache.internal:6380").is_ok());
        let err = RedisSettings::check_url("http://user:s3cret@host").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(RedisSettings::check_url("redis://[::1").is_err());
    }
}
