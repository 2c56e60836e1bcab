//! Who is calling, and what they may do; checked from the request's headers alone, before any
//! byte of its body is read.
//!
//! A credential is a named identity with [`Scope`]s (see [`credentials`] for the file format).
//! A client sends its token as `Authorization: Bearer <token>`, or as HTTP Basic
//! `Authorization: Basic base64(<identity>:<token>)`.
//!
//! | route | needs |
//! |---|---|
//! | artifact downloads | `read`, always: an artifact can hold personal data (every shopper's history) |
//! | lists, manifests, aliases, events, compare, the page | nothing, or `read` when `REGISTRY_READ_AUTH=true` |
//! | the console's forms | a console session (cookie) and its CSRF token, then the scope as above |
//! | register a version | `publish` |
//! | move an alias, roll back | `promote` |
//! | archive, keep, unkeep, `gc` | `archive` |
//!
//! A missing or wrong credential is 401; a valid one without the scope is 403 naming the scope.
//!
//! **Auth comes first.** Handlers take a [`Caller`] (or [`Reader`], [`PageReader`]) as their
//! *first* argument, and check nothing themselves after the body is in. actix-web extracts a
//! handler's arguments as a tuple whose future polls the extractors in argument order and
//! returns the first error at once (`actix-web/src/extract.rs`, `tuple_from_req!`:
//! `Poll::Ready(Err(err)) => return Poll::Ready(Err(err.into()))`). Ours are ready at once, so
//! a refused credential ends extraction on its first poll, before any body extractor after it
//! has been polled: not one byte of the body is read or buffered. (The body extractors' futures
//! are created up front, but creating `web::Json`/`web::Bytes` only checks `Content-Type` and
//! `Content-Length`.) A check inside the handler, as before, runs only after `web::Json` has
//! read and parsed the whole body. The tests `an_unauthenticated_upload_is_refused_before_its_body_is_sent`
//! (a 200 MB upload is answered 401 after a few bytes) and
//! `a_malformed_body_without_a_credential_is_401_not_400` hold this to account.
//!
//! **The page signs in with HTTP Basic.** It is server-rendered with no scripts, so a token
//! cannot be attached by the page itself; a sign-in form would need a session cookie, its
//! signing key and CSRF protection. With Basic, a 401 carrying
//! `WWW-Authenticate: Basic realm="model registry"` makes the browser ask for the identity
//! and token once and send them on every request; the registry stays stateless. Serve it over
//! TLS (the ingress), as any Basic-auth page. That page stays read-only: a browser sends Basic
//! credentials on its own, so actions there would be open to CSRF. The actions live in the
//! console (`/console`), which signs in with a token into a server-side session and puts a
//! CSRF token in every form ([`session`], `crate::routes::console`).
//!
//! Tokens are never logged; only the identity is. Refusals are counted in
//! `registry_auth_refusals_total{reason, scope}` (`reason`: `missing`, `invalid`, `forbidden`,
//! `unconfigured`): a climbing `invalid` is someone guessing tokens.

pub mod credentials;
pub mod session;

use std::borrow::Cow;
use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use base64::Engine as _;
use prometheus::{IntCounterVec, Opts, Registry as Prometheus};
use shared_lib::http::register_metric;

pub use credentials::{Credentials, Scope, Scopes};
pub use session::{Session, Sessions};

use crate::error::{Challenge, Error};

/// The registry's credentials and read policy; cheap to clone.
#[derive(Clone, Debug)]
pub struct Auth {
    credentials: Arc<Credentials>,
    protect_reads: bool,
    refusals: Option<IntCounterVec>,
    sessions: Sessions,
}

/// An authenticated caller: the identity recorded as the actor of what it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    name: String,
    scopes: Scopes,
}

impl Identity {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn scopes(&self) -> Scopes {
        self.scopes
    }
}

impl Auth {
    /// `protect_reads`: `REGISTRY_READ_AUTH`, metadata reads and the page need `read` too.
    pub fn new(credentials: Credentials, protect_reads: bool) -> Self {
        Self {
            credentials: Arc::new(credentials),
            protect_reads,
            refusals: None,
            sessions: Sessions::default(),
        }
    }

    /// The console's signed-in sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Whether reads need the `read` scope (`REGISTRY_READ_AUTH`).
    pub fn protects_reads(&self) -> bool {
        self.protect_reads
    }

    /// Whether a signed-in `identity` holds `scope`.
    ///
    /// # Errors
    /// [`Error::Forbidden`] naming the scope (counted as `forbidden`).
    pub fn require_scope(&self, identity: &Identity, scope: Scope) -> Result<(), Error> {
        if identity.scopes.contains(scope) {
            return Ok(());
        }
        self.refused("forbidden", scope);
        tracing::info!(identity = identity.name, %scope, "Refused a console action: the credential lacks the scope.");
        Err(Error::Forbidden {
            identity: identity.name.clone(),
            scope,
        })
    }

    /// The identity a console sign-in form's token belongs to.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] when no credential has this token (counted as `invalid`).
    pub fn sign_in(&self, token: &str) -> Result<Identity, Error> {
        let unauthorized = |reason, message| {
            self.refused(reason, Scope::Read);
            Error::Unauthorized {
                message,
                challenge: Challenge::Bearer,
            }
        };
        if self.credentials.is_empty() {
            return Err(unauthorized(
                "unconfigured",
                "the registry has no credentials (REGISTRY_CREDENTIALS_FILE or REGISTRY_TOKEN), \
                 so no one can sign in",
            ));
        }
        let (name, scopes) = self
            .credentials
            .identify(token)
            .ok_or_else(|| unauthorized("invalid", "token: this is not a valid token"))?;
        tracing::info!(identity = name, "Signed in to the console.");
        Ok(Identity {
            name: name.to_owned(),
            scopes,
        })
    }

    /// Counts refusals in `registry_auth_refusals_total{reason, scope}`.
    ///
    /// # Errors
    /// When the name is already registered (a bug).
    pub fn with_metrics(mut self, registry: &Prometheus) -> Result<Self, shared_lib::Error> {
        let counter = register_metric(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "registry_auth_refusals_total",
                    "Requests refused for their credential, by reason and the scope needed.",
                ),
                &["reason", "scope"],
            ),
        )?;
        self.refusals = Some(counter);
        Ok(self)
    }

    fn refused(&self, reason: &str, scope: Scope) {
        if let Some(refusals) = &self.refusals {
            refusals.with_label_values(&[reason, scope.as_str()]).inc();
        }
    }

    /// The identity behind the request's `Authorization` header, which must hold `scope`.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] without a valid credential, [`Error::Forbidden`] without `scope`.
    pub fn require(&self, req: &HttpRequest, scope: Scope) -> Result<Identity, Error> {
        self.require_with(req, scope, Challenge::Bearer)
    }

    /// A metadata read: anonymous (`None`) unless reads are protected.
    ///
    /// # Errors
    /// As [`Auth::require`] for [`Scope::Read`], when reads are protected.
    pub fn allow_read(&self, req: &HttpRequest) -> Result<Option<Identity>, Error> {
        self.allow_read_with(req, Challenge::Bearer)
    }

    fn allow_read_with(
        &self,
        req: &HttpRequest,
        challenge: Challenge,
    ) -> Result<Option<Identity>, Error> {
        if self.protect_reads {
            self.require_with(req, Scope::Read, challenge).map(Some)
        } else {
            Ok(None)
        }
    }

    fn require_with(
        &self,
        req: &HttpRequest,
        scope: Scope,
        challenge: Challenge,
    ) -> Result<Identity, Error> {
        let unauthorized = |reason, message| {
            self.refused(reason, scope);
            Error::Unauthorized { message, challenge }
        };
        if self.credentials.is_empty() {
            return Err(unauthorized(
                "unconfigured",
                "the registry has no credentials (REGISTRY_CREDENTIALS_FILE or REGISTRY_TOKEN), \
                 so it refuses this",
            ));
        }
        let header = req
            .headers()
            .get(AUTHORIZATION)
            .ok_or_else(|| {
                unauthorized(
                    "missing",
                    "a bearer token is required (Authorization: Bearer <token>, or Basic \
                     <identity>:<token>)",
                )
            })?
            .to_str()
            .map_err(|_| unauthorized("invalid", "the Authorization header is not valid text"))?;
        let presented = parse_authorization(header).ok_or_else(|| {
            unauthorized(
                "invalid",
                "the Authorization header must be Bearer <token> or Basic credentials",
            )
        })?;
        let (name, scopes) = self
            .credentials
            .identify(&presented.token)
            .filter(|(name, _)| {
                presented
                    .identity
                    .as_deref()
                    .is_none_or(|claimed| claimed == *name)
            })
            .ok_or_else(|| unauthorized("invalid", "the bearer token is not valid"))?;
        if !scopes.contains(scope) {
            self.refused("forbidden", scope);
            tracing::info!(identity = name, %scope, "Refused a request: the credential lacks the scope.");
            return Err(Error::Forbidden {
                identity: name.to_owned(),
                scope,
            });
        }
        Ok(Identity {
            name: name.to_owned(),
            scopes,
        })
    }
}

/// What an `Authorization` header presents: a token, and for Basic the identity it claims.
#[derive(Debug, PartialEq, Eq)]
struct Presented<'a> {
    identity: Option<String>,
    token: Cow<'a, str>,
}

/// Parses `Bearer <token>` or `Basic base64(identity:token)` (schemes are case-insensitive).
fn parse_authorization(header: &str) -> Option<Presented<'_>> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Presented {
            identity: None,
            token: Cow::Borrowed(rest),
        });
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (identity, token) = decoded.split_once(':')?;
    Some(Presented {
        identity: Some(identity.to_owned()),
        token: Cow::Owned(token.to_owned()),
    })
}

fn auth_of(req: &HttpRequest) -> Result<&Auth, Error> {
    req.app_data::<web::Data<Auth>>()
        .map(|data| data.get_ref())
        .ok_or_else(|| Error::Internal("the Auth app data is not registered"))
}

/// The scope a [`Caller`] must hold, as a type.
pub trait RequiredScope {
    const SCOPE: Scope;
}

/// [`Scope::Read`]: artifact downloads.
pub struct Read;
/// [`Scope::Publish`]: registrations.
pub struct Publish;
/// [`Scope::Promote`]: alias moves and rollbacks.
pub struct Promote;
/// [`Scope::Archive`]: archive, keep marks, retention.
pub struct Archive;

impl RequiredScope for Read {
    const SCOPE: Scope = Scope::Read;
}
impl RequiredScope for Publish {
    const SCOPE: Scope = Scope::Publish;
}
impl RequiredScope for Promote {
    const SCOPE: Scope = Scope::Promote;
}
impl RequiredScope for Archive {
    const SCOPE: Scope = Scope::Archive;
}

/// An extractor: a caller holding scope `S`. Put it first in a handler's arguments.
pub struct Caller<S> {
    pub identity: Identity,
    scope: PhantomData<S>,
}

impl<S> Caller<S> {
    /// The identity, recorded as the actor of the change.
    pub fn name(&self) -> &str {
        self.identity.name()
    }
}

impl<S: RequiredScope> FromRequest for Caller<S> {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(auth_of(req).and_then(|auth| {
            Ok(Self {
                identity: auth.require(req, S::SCOPE)?,
                scope: PhantomData,
            })
        }))
    }
}

/// An extractor for a metadata read: anonymous unless reads are protected; 401s challenge
/// for a bearer token.
pub struct Reader(pub Option<Identity>);

impl FromRequest for Reader {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(auth_of(req).and_then(|auth| auth.allow_read_with(req, Challenge::Bearer).map(Self)))
    }
}

/// [`Reader`] for the page: its 401 asks the browser for Basic credentials.
pub struct PageReader(pub Option<Identity>);

impl FromRequest for PageReader {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(auth_of(req).and_then(|auth| auth.allow_read_with(req, Challenge::Basic).map(Self)))
    }
}

/// An extractor: the console's signed-in session (by its cookie). Put it first.
pub struct ConsoleSession(pub Session);

impl FromRequest for ConsoleSession {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(auth_of(req).and_then(|auth| {
            session::cookie(req, session::COOKIE)
                .and_then(|id| auth.sessions.get(id))
                .map(Self)
                .ok_or(Error::Unauthorized {
                    message: "sign in first: no console session (or it expired)",
                    challenge: Challenge::Bearer,
                })
        }))
    }
}

/// An extractor: the console's session if the browser has one.
pub struct ConsoleVisitor(pub Option<Session>);

impl FromRequest for ConsoleVisitor {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(auth_of(req).map(|auth| {
            Self(session::cookie(req, session::COOKIE).and_then(|id| auth.sessions.get(id)))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_headers_parse_and_others_do_not() {
        let basic = base64::engine::general_purpose::STANDARD.encode("alice:s3cret:with-colon");
        let cases = [
            ("Bearer abc", Some((None, "abc"))),
            ("bearer   abc  ", Some((None, "abc"))),
            (
                &*format!("Basic {basic}"),
                Some((Some("alice"), "s3cret:with-colon")),
            ),
            (
                &*format!("BASIC {basic}"),
                Some((Some("alice"), "s3cret:with-colon")),
            ),
            ("Basic not-base64!", None),
            ("Digest abc", None),
            ("Bearer", None),
        ];
        for (header, expected) in cases {
            let parsed = parse_authorization(header);
            assert_eq!(
                parsed
                    .as_ref()
                    .map(|p| (p.identity.as_deref(), p.token.as_ref())),
                expected,
                "{header}"
            );
        }
    }
}
