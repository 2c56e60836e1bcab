//! Console sessions: a person signs in once with a credential's token (see [`super`]) and the
//! browser then holds only a random session id, in a cookie.
//!
//! **Server-side, bounded.** The store maps the sha256 of each session id to the identity and
//! scopes it signed in as, a CSRF token and an expiry; at most [`MAX_SESSIONS`] live at once
//! (expired ones are dropped first, then the oldest). We chose this over a signed (HMAC)
//! cookie because sign-out then really ends the session (a copied signed cookie stays valid
//! until it expires), there is no signing key to generate, keep secret and rotate, and the
//! registry is the single writer, one process, so no other replica needs to see the session.
//! A restart signs everyone out, which is acceptable for a console.
//!
//! **The cookie** ([`COOKIE`]): `HttpOnly` (no script reads it), `SameSite=Strict` (a
//! cross-site request does not carry it), `Path=/console` (the JSON API never sees it, so the
//! API cannot be driven by a browser's ambient cookie), `Max-Age` the session's lifetime, and
//! `Secure` when the request came over TLS (directly or, as the ingress says with
//! `X-Forwarded-Proto: https`).
//!
//! **CSRF.** Every form carries a synchronizer token: the session's [`Session::csrf`], random,
//! compared with the form's in constant time ([`csrf_matches`], `subtle`). The sign-in form
//! has no session yet; it uses a double-submit token instead: a random value in the
//! [`SIGN_IN_COOKIE`] (same attributes) and in the form, which must be equal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use actix_web::http::header::COOKIE as COOKIE_HEADER;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::Identity;

/// The session cookie's name.
pub const COOKIE: &str = "registry_session";
/// The sign-in form's double-submit cookie.
pub const SIGN_IN_COOKIE: &str = "registry_sign_in";
/// The path both cookies are scoped to: the console's page and forms.
pub const COOKIE_PATH: &str = "/console";
/// How many sessions may live at once: bounds memory whatever the sign-in rate.
pub const MAX_SESSIONS: usize = 1024;
/// A session's lifetime from sign-in: a working day.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// A signed-in console user.
#[derive(Debug, Clone)]
pub struct Session {
    pub identity: Identity,
    /// The synchronizer token every form of this session carries.
    pub csrf: String,
    /// The session id (the cookie's value), kept to sign out.
    pub id: String,
    created: Instant,
}

/// The session store; cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    by_digest: Arc<Mutex<HashMap<[u8; 32], Session>>>,
}

impl Sessions {
    /// Starts a session for `identity`; returns it (its id goes in the cookie).
    pub fn create(&self, identity: Identity) -> Session {
        let session = Session {
            identity,
            csrf: random_token(),
            id: random_token(),
            created: Instant::now(),
        };
        let mut map = self.lock();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.created.elapsed() < SESSION_TTL);
        }
        while map.len() >= MAX_SESSIONS {
            let Some(oldest) = map.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(digest(&session.id), session.clone());
        session
    }

    /// The live session with this id, if any (an expired one is dropped).
    pub fn get(&self, id: &str) -> Option<Session> {
        let key = digest(id);
        let mut map = self.lock();
        match map.get(&key) {
            Some(s) if s.created.elapsed() < SESSION_TTL => Some(s.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session with this id.
    pub fn remove(&self, id: &str) {
        self.lock().remove(&digest(id));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock cannot leave the map half-updated: every change is
        // one insert or remove.
        self.by_digest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Keyed by digest, so a lookup's timing says nothing about the ids the store holds.
fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// 256 random bits from the operating system, as 64 hex digits.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether the form's CSRF token equals the expected one, in constant time (for equal
/// lengths; a token of another length is refused without comparing).
pub fn csrf_matches(expected: &str, presented: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// The value of the request's cookie `name`, if it sent one.
pub fn cookie<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(COOKIE_HEADER)
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value with the console's attributes; `max_age` zero deletes the cookie.
pub fn set_cookie(req: &HttpRequest, name: &str, value: &str, max_age: Duration) -> String {
    let secure = if req.connection_info().scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{name}={value}; Path={COOKIE_PATH}; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scopes;

    fn identity(name: &str) -> Identity {
        Identity {
            name: name.to_owned(),
            scopes: Scopes::all(),
        }
    }

    #[test]
    fn the_store_never_holds_more_than_its_bound_and_drops_the_oldest() {
        let sessions = Sessions::default();
        let first = sessions.create(identity("first"));
        for _ in 0..MAX_SESSIONS + 10 {
            sessions.create(identity("other"));
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.get(&first.id).is_none(), "the oldest went first");
    }

    #[test]
    fn a_removed_session_is_gone_and_ids_and_tokens_are_random() {
        let sessions = Sessions::default();
        let s = sessions.create(identity("alice"));
        assert_eq!(s.id.len(), 64);
        assert_ne!(s.id, s.csrf);
        assert_eq!(sessions.get(&s.id).unwrap().identity.name(), "alice");
        sessions.remove(&s.id);
        assert!(sessions.get(&s.id).is_none());
    }

    #[test]
    fn csrf_tokens_match_only_when_equal_and_present() {
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abc", "abd"));
        assert!(!csrf_matches("abc", "ab"));
        assert!(!csrf_matches("abc", ""));
        assert!(!csrf_matches("", ""));
    }
}
