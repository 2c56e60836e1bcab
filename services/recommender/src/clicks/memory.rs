//! Recent clicks in this process's memory: the embedded default, and the store of a single
//! replica.
//!
//! Clicks are kept by item *key* (a 64-bit keyed hash of the item id, [`ItemKey`]), not index,
//! so they survive a model reload whose catalogue is numbered differently, and a click costs 16
//! bytes however long its item id is. Bounds: `per_user` newest clicks per user, `users` users (the least
//! recently active is dropped first), and a time-to-live after which clicks are forgotten.
//!
//! No global lock: users are spread by a keyed hash of their id over [`MemoryClicks::shards`]
//! shards, each an LRU list ([`lru::LruCache`]) behind its own mutex. Recording or reading one
//! user's clicks locks that user's shard for O(per_user) work (a lookup, a push, an O(1)
//! eviction, a copy out); a recommendation for one user never waits for a click of a user in
//! another shard. Small stores (`users` < 2 × [`USERS_PER_SHARD`]) are one shard, an exact LRU;
//! larger ones drop the least recently active user *of the shard* a new user lands in, which with
//! a random hash key and shards of over a thousand users is the global LRU order in all but name.
//!
//! Memory: at most `users` × (300 + 16 × `per_user`) bytes, about 105 MiB with the defaults
//! (100,000 users × 50 clicks). Per user: its id (at most 128 bytes, 144 allocated), the LRU entry
//! (80), its share of the preallocated hash table (under 40) and a click buffer that grows by
//! doubling but never past `per_user` clicks of 16 bytes (plus 16 of allocation overhead).

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use lru::LruCache;

use super::{Click, ClickLimits, ItemKey};

/// A shard holds at least this many users; fewer shards would make eviction less exact.
pub const USERS_PER_SHARD: usize = 1024;
/// Enough shards that 2 × cores request threads rarely meet on one lock.
pub const MAX_SHARDS: usize = 64;

/// A click as stored, 16 bytes: the item key, the weight (0 for the default: weights are
/// positive) and when it came, in whole seconds since the store was made.
struct Stored {
    item: ItemKey,
    weight: f32,
    at: u32,
}

struct UserClicks {
    clicks: VecDeque<Stored>,
    /// The newest click (seconds since the store was made); the LRU order of a shard.
    updated: u32,
}

type Shard = LruCache<Box<str>, UserClicks>;

pub struct MemoryClicks {
    limits: ClickLimits,
    /// Click times are kept as whole seconds since this.
    epoch: Instant,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

impl MemoryClicks {
    pub fn new(limits: ClickLimits) -> Self {
        let count = (limits.users / USERS_PER_SHARD).clamp(1, MAX_SHARDS);
        // Each shard's share, rounded up: the store holds at most `count - 1` users over `users`.
        let per_shard =
            NonZeroUsize::new(limits.users.div_ceil(count)).unwrap_or(NonZeroUsize::MIN);
        let shards = (0..count)
            .map(|_| Mutex::new(LruCache::new(per_shard)))
            .collect();
        Self {
            limits,
            epoch: Instant::now(),
            hasher: RandomState::new(),
            shards,
        }
    }

    /// How many shards the users are spread over.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// The most users the store can hold: `users`, rounded up to a multiple of the shard count.
    pub fn capacity(&self) -> usize {
        self.shards.iter().map(|s| lock(s).cap().get()).sum()
    }

    fn shard(&self, user: &str) -> MutexGuard<'_, Shard> {
        // The hash is keyed per process, so a client cannot aim all its users at one shard.
        let index = (self.hasher.hash_one(user) % self.shards.len() as u64) as usize;
        lock(&self.shards[index])
    }

    /// Adds clicks for `user`, newest last.
    pub fn record(&self, user: &str, clicks: Vec<Click>) {
        self.record_at(user, clicks, Instant::now());
    }

    /// Whole seconds from the store's epoch to `at` (0 before it, saturating after 136 years).
    fn seconds(&self, at: Instant) -> u32 {
        u32::try_from(at.saturating_duration_since(self.epoch).as_secs()).unwrap_or(u32::MAX)
    }

    fn expired(&self, at: u32, now: u32) -> bool {
        u64::from(now.saturating_sub(at)) >= self.limits.ttl.as_secs()
    }

    fn record_at(&self, user: &str, clicks: Vec<Click>, now: Instant) {
        let now = self.seconds(now);
        let mut shard = self.shard(user);
        self.drop_expired(&mut shard, now);
        if !shard.contains(user) {
            // `push` drops the least recently active user when the shard is full: O(1).
            shard.push(
                user.into(),
                UserClicks {
                    clicks: VecDeque::with_capacity(clicks.len().min(self.limits.per_user)),
                    updated: now,
                },
            );
        }
        // `get_mut` makes the user the most recently active of the shard.
        let Some(entry) = shard.get_mut(user) else {
            return;
        };
        entry.updated = now;
        for click in clicks {
            let len = entry.clicks.len();
            if len >= self.limits.per_user {
                entry.clicks.pop_front();
            } else if len == entry.clicks.capacity() {
                // Double, but never past `per_user`: the memory bound counts exactly that many.
                entry
                    .clicks
                    .reserve_exact(len.max(1).min(self.limits.per_user - len));
            }
            entry.clicks.push_back(Stored {
                item: click.item,
                weight: click.weight.unwrap_or(0.0),
                at: now,
            });
        }
    }

    /// Frees users whose newest click has expired, least recently active first: each user is
    /// dropped once, so this is O(1) per recorded user on average.
    fn drop_expired(&self, shard: &mut Shard, now: u32) {
        while shard
            .peek_lru()
            .is_some_and(|(_, u)| self.expired(u.updated, now))
        {
            shard.pop_lru();
        }
    }

    /// The user's unexpired clicks, oldest first. Reading does not count as activity.
    pub fn recent(&self, user: &str) -> Vec<Click> {
        self.recent_at(user, Instant::now())
    }

    fn recent_at(&self, user: &str, now: Instant) -> Vec<Click> {
        let now = self.seconds(now);
        let mut shard = self.shard(user);
        let Some(entry) = shard.peek_mut(user) else {
            return Vec::new();
        };
        while entry
            .clicks
            .front()
            .is_some_and(|c| self.expired(c.at, now))
        {
            entry.clicks.pop_front();
        }
        if entry.clicks.is_empty() {
            shard.pop(user);
            return Vec::new();
        }
        entry
            .clicks
            .iter()
            .map(|c| Click {
                item: c.item,
                weight: (c.weight > 0.0).then_some(c.weight),
            })
            .collect()
    }

    /// How many users have clicks in memory (locks each shard in turn, never all at once).
    pub fn users(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic under the lock leaves at worst one user's clicks half-updated; keep serving.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn click(item: &str) -> Click {
        Click {
            item: ItemKey::of(item),
            weight: None,
        }
    }

    fn items(clicks: Vec<Click>) -> Vec<ItemKey> {
        clicks.into_iter().map(|c| c.item).collect()
    }

    fn keys(ids: &[&str]) -> Vec<ItemKey> {
        ids.iter().map(|id| ItemKey::of(id)).collect()
    }

    fn store(per_user: usize, users: usize, ttl_secs: u64) -> MemoryClicks {
        MemoryClicks::new(ClickLimits {
            per_user,
            users,
            ttl: Duration::from_secs(ttl_secs),
        })
    }

    #[test]
    fn each_user_keeps_only_the_newest_clicks() {
        let s = store(3, 10, 60);
        s.record("u", ["a", "b", "c", "d"].map(click).to_vec());
        s.record("u", vec![click("e")]);
        assert_eq!(items(s.recent("u")), keys(&["c", "d", "e"]));
    }

    #[test]
    fn weights_are_kept_and_a_missing_weight_stays_missing() {
        let s = store(5, 10, 60);
        let weighted = Click {
            item: ItemKey::of("a"),
            weight: Some(3.5),
        };
        s.record("u", vec![weighted.clone(), click("b")]);
        assert_eq!(s.recent("u"), [weighted, click("b")]);
    }

    #[test]
    fn a_users_click_buffer_never_grows_past_the_per_user_cap() {
        let s = store(50, 10, 60);
        for i in 0..120 {
            s.record("u", vec![click(&format!("i{i}"))]);
            let capacity = s.shard("u").peek("u").map(|u| u.clicks.capacity());
            assert!(capacity.is_some_and(|c| c <= 50), "{capacity:?} after {i}");
        }
        assert_eq!(s.recent("u").len(), 50);
    }

    #[test]
    fn the_least_recently_active_user_is_dropped_when_full() {
        let s = store(5, 2, 600);
        let t0 = Instant::now();
        s.record_at("a", vec![click("x")], t0);
        s.record_at("b", vec![click("y")], t0 + Duration::from_secs(1));
        s.record_at("a", vec![click("z")], t0 + Duration::from_secs(2));
        // Reading is not activity: b stays the least recently active.
        assert_eq!(s.recent_at("b", t0 + Duration::from_secs(2)).len(), 1);
        s.record_at("c", vec![click("w")], t0 + Duration::from_secs(3));
        assert_eq!(s.users(), 2);
        assert!(
            s.recent_at("b", t0 + Duration::from_secs(4)).is_empty(),
            "b was least recently active"
        );
        assert_eq!(s.recent_at("a", t0 + Duration::from_secs(4)).len(), 2);
    }

    #[test]
    fn clicks_expire() {
        let s = store(5, 10, 10);
        let t0 = Instant::now();
        s.record_at("u", vec![click("old")], t0);
        s.record_at("u", vec![click("new")], t0 + Duration::from_secs(8));
        assert_eq!(
            items(s.recent_at("u", t0 + Duration::from_secs(12))),
            keys(&["new"])
        );
        assert!(s.recent_at("u", t0 + Duration::from_secs(30)).is_empty());
        assert_eq!(s.users(), 0, "a user with only expired clicks is dropped");
    }

    #[test]
    fn expired_users_are_freed_when_others_click() {
        let s = store(5, 100, 10);
        let t0 = Instant::now();
        for u in ["a", "b", "c"] {
            s.record_at(u, vec![click("x")], t0);
        }
        s.record_at("d", vec![click("x")], t0 + Duration::from_secs(11));
        assert_eq!(s.users(), 1, "only d is unexpired");
    }

    #[test]
    fn a_large_store_is_sharded_and_never_holds_more_than_its_capacity() {
        let users = 10 * USERS_PER_SHARD + 5;
        let s = store(2, users, 600);
        assert_eq!(s.shards(), 10);
        assert!(s.capacity() >= users && s.capacity() < users + s.shards());
        let t0 = Instant::now();
        for i in 0..3 * users {
            s.record_at(&format!("user-{i}"), vec![click("x")], t0);
        }
        assert!(s.users() <= s.capacity(), "{} users", s.users());
        assert!(s.users() > users - USERS_PER_SHARD, "{} users", s.users());
        assert_eq!(
            s.recent_at(&format!("user-{}", 3 * users - 1), t0).len(),
            1,
            "the newest user is kept"
        );
    }
}
