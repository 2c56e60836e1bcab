//! Bearer-token checks. The token is compared in constant time (on its sha256, so even its
//! length does not leak) and never logged.

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Error;

#[derive(Clone)]
pub struct Auth {
    token_digest: Option<[u8; 32]>,
    read_auth: bool,
}

impl Auth {
    pub fn new(token: Option<&SecretString>, read_auth: bool) -> Self {
        Self {
            token_digest: token.map(|t| Sha256::digest(t.expose_secret().as_bytes()).into()),
            read_auth,
        }
    }

    /// Checks a mutation.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] without a valid bearer token (always, when none is configured).
    pub fn require_write(&self, req: &HttpRequest) -> Result<(), Error> {
        let Some(expected) = &self.token_digest else {
            return Err(Error::Unauthorized(
                "changes are disabled: the registry has no REGISTRY_TOKEN",
            ));
        };
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(Error::Unauthorized(
                "a bearer token is required (Authorization: Bearer <token>)",
            ))?;
        let given: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        if bool::from(given.ct_eq(expected)) {
            Ok(())
        } else {
            Err(Error::Unauthorized("the bearer token is not valid"))
        }
    }

    /// Checks a read: open unless `REGISTRY_READ_AUTH` is set.
    ///
    /// # Errors
    /// As [`Auth::require_write`], when reads are protected.
    pub fn require_read(&self, req: &HttpRequest) -> Result<(), Error> {
        if self.read_auth {
            self.require_write(req)
        } else {
            Ok(())
        }
    }
}
