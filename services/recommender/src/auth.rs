//! The optional ingestion credential of `POST /v1/users/{user_id}/events` (`EVENTS_TOKEN`).
//!
//! [`EventsAuth`] is an extractor: placed first among a handler's arguments, it runs before the
//! body extractor, and actix-web polls a handler's extractors in order and stops at the first
//! error (`FromRequest for (A, B, ..)` in actix-web's `extract.rs`), so a request without the
//! token is refused before any byte of its body is read. The token is checked as every service
//! checks one ([`shared_lib::http::token`]: constant time on its sha256) and never logged.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use secrecy::{ExposeSecret, SecretString};
use shared_lib::http::token::{TokenDigest, bearer_token};

use crate::error::Error;

/// The shortest token accepted by the settings.
pub const MIN_TOKEN_LEN: usize = 16;

/// The digest of `EVENTS_TOKEN`, or `None` when ingestion is open.
#[derive(Clone, Default)]
pub struct EventsToken(Option<TokenDigest>);

impl EventsToken {
    pub fn new(token: Option<&SecretString>) -> Self {
        Self(token.map(|t| TokenDigest::of(t.expose_secret())))
    }

    /// # Errors
    /// [`Error::Unauthorized`] when a token is configured and the request lacks it.
    pub fn check(&self, req: &HttpRequest) -> Result<(), Error> {
        let Some(expected) = &self.0 else {
            return Ok(());
        };
        let given = bearer_token(req).ok_or(Error::Unauthorized(
            "a bearer token is required (Authorization: Bearer <EVENTS_TOKEN>)",
        ))?;
        if TokenDigest::of(given).matches(expected) {
            Ok(())
        } else {
            Err(Error::Unauthorized("the bearer token is not valid"))
        }
    }
}

/// Proof that the request may record events; extract it before the body.
pub struct EventsAuth;

impl FromRequest for EventsAuth {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match req.app_data::<web::Data<EventsToken>>() {
            Some(token) => token.check(req).map(|()| Self),
            // Missing configuration must not open the door.
            None => Err(Error::Unauthorized("the events endpoint is not configured")),
        };
        ready(result)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::AUTHORIZATION;
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn only_the_configured_bearer_token_passes() {
        let token = EventsToken::new(Some(&SecretString::from("0123456789abcdef-events")));
        let cases = [
            (None, false, "no header"),
            (Some("Bearer 0123456789abcdef-events"), true, "the token"),
            (Some("Bearer 0123456789abcdef-event"), false, "a prefix"),
            (Some("Bearer 0123456789abcdef-eventsX"), false, "longer"),
            (Some("0123456789abcdef-events"), false, "no scheme"),
            (
                Some("Basic 0123456789abcdef-events"),
                false,
                "another scheme",
            ),
        ];
        for (header, ok, message) in cases {
            let mut req = TestRequest::default();
            if let Some(h) = header {
                req = req.insert_header((AUTHORIZATION, h));
            }
            assert_eq!(token.check(&req.to_http_request()).is_ok(), ok, "{message}");
        }
    }

    #[test]
    fn without_a_token_ingestion_is_open() {
        let req = TestRequest::default().to_http_request();
        assert!(EventsToken::new(None).check(&req).is_ok());
    }
}
