//! Recent clicks per user, in bounded memory, for real-time fold-in.
//!
//! Clicks are kept by item *id*, not index, so they survive a model reload whose catalogue is
//! numbered differently. Bounds: `per_user` newest clicks per user, `users` users (the least
//! recently active is dropped first), and a time-to-live after which clicks are forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ClickLimits {
    pub per_user: usize,
    pub users: usize,
    pub ttl: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Click {
    pub item_id: String,
    /// A rating (explicit models) or an interaction strength (implicit); `None` uses the default.
    pub weight: Option<f32>,
}

struct UserClicks {
    clicks: VecDeque<(Click, Instant)>,
    updated: Instant,
}

pub struct ClickStore {
    limits: ClickLimits,
    users: Mutex<HashMap<String, UserClicks>>,
}

impl ClickStore {
    pub fn new(limits: ClickLimits) -> Self {
        Self {
            limits,
            users: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, UserClicks>> {
        self.users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds clicks for `user`, newest last.
    pub fn record(&self, user: &str, clicks: Vec<Click>) {
        self.record_at(user, clicks, Instant::now());
    }

    fn record_at(&self, user: &str, clicks: Vec<Click>, now: Instant) {
        let mut users = self.lock();
        if !users.contains_key(user) && users.len() >= self.limits.users {
            self.evict(&mut users, now);
        }
        let entry = users.entry(user.to_owned()).or_insert_with(|| UserClicks {
            clicks: VecDeque::new(),
            updated: now,
        });
        entry.updated = now;
        for click in clicks {
            if entry.clicks.len() == self.limits.per_user {
                entry.clicks.pop_front();
            }
            entry.clicks.push_back((click, now));
        }
    }

    /// Drops expired users; if still full, the least recently active one.
    fn evict(&self, users: &mut HashMap<String, UserClicks>, now: Instant) {
        let ttl = self.limits.ttl;
        users.retain(|_, u| now.duration_since(u.updated) < ttl);
        if users.len() >= self.limits.users
            && let Some(oldest) = users
                .iter()
                .min_by_key(|(_, u)| u.updated)
                .map(|(k, _)| k.clone())
        {
            users.remove(&oldest);
        }
    }

    /// The user's unexpired clicks, oldest first.
    pub fn recent(&self, user: &str) -> Vec<Click> {
        self.recent_at(user, Instant::now())
    }

    fn recent_at(&self, user: &str, now: Instant) -> Vec<Click> {
        let mut users = self.lock();
        let Some(entry) = users.get_mut(user) else {
            return Vec::new();
        };
        let ttl = self.limits.ttl;
        entry.clicks.retain(|(_, at)| now.duration_since(*at) < ttl);
        if entry.clicks.is_empty() {
            users.remove(user);
            return Vec::new();
        }
        entry.clicks.iter().map(|(c, _)| c.clone()).collect()
    }

    /// How many users have clicks in memory.
    pub fn users(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click(item: &str) -> Click {
        Click {
            item_id: item.into(),
            weight: None,
        }
    }

    fn store(per_user: usize, users: usize, ttl_secs: u64) -> ClickStore {
        ClickStore::new(ClickLimits {
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
        let items: Vec<String> = s.recent("u").into_iter().map(|c| c.item_id).collect();
        assert_eq!(items, ["c", "d", "e"]);
    }

    #[test]
    fn the_least_recently_active_user_is_dropped_when_full() {
        let s = store(5, 2, 600);
        let t0 = Instant::now();
        s.record_at("a", vec![click("x")], t0);
        s.record_at("b", vec![click("y")], t0 + Duration::from_secs(1));
        s.record_at("a", vec![click("z")], t0 + Duration::from_secs(2));
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
        let items: Vec<String> = s
            .recent_at("u", t0 + Duration::from_secs(12))
            .into_iter()
            .map(|c| c.item_id)
            .collect();
        assert_eq!(items, ["new"]);
        assert!(s.recent_at("u", t0 + Duration::from_secs(30)).is_empty());
        assert_eq!(s.users(), 0, "a user with only expired clicks is dropped");
    }
}
