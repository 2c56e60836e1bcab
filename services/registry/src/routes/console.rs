//! `/console`: the registry page for people. Sign in with a registry token, then promote a
//! version, roll an alias back or archive a version, each with a reason that the event log
//! records under the credential's identity, within its scopes.
//!
//! Sessions, cookies and CSRF are described in [`crate::auth::session`]. The actions call the
//! same registry functions as the JSON API (`Registry::move_alias` with compare-and-swap,
//! `rollback_alias`, `archive_version`); only the form parsing is the console's own. Every
//! handler takes the [`ConsoleSession`] first (401 before any body is read), then checks the
//! form's CSRF token (403), then the scope (403), then the inputs (400, naming the field).
//! Success answers `303 See Other` back to the page (post/redirect/get).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use shared_lib::model_id::{AliasName, ModelName, ModelVersion};
use shared_lib::registry::Change;

use super::AppState;
use super::page::{self, Console};
use crate::auth::session::{self, COOKIE, SESSION_TTL, SIGN_IN_COOKIE};
use crate::auth::{ConsoleSession, ConsoleVisitor, Scope, Session};
use crate::error::Error;

/// The largest console form: a reason of [`MAX_REASON_CHARS`] characters (up to four bytes
/// each, percent-encoded) and a few short fields.
pub const FORM_LIMIT: usize = 16 * 1024;
/// The longest reason the event log takes.
pub const MAX_REASON_CHARS: usize = 1000;
/// The longest token a sign-in form may hold (a registry token is 64 hex digits).
pub const MAX_TOKEN_CHARS: usize = 256;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/console")
            .app_data(
                web::FormConfig::default()
                    .limit(FORM_LIMIT)
                    .error_handler(|err, _| {
                        Error::BadRequest(format!("the form could not be read: {err}")).into()
                    }),
            )
            .route("", web::get().to(console_page))
            .route("/sign-in", web::post().to(sign_in))
            .route("/sign-out", web::post().to(sign_out))
            .route("/models/{model}/promote", web::post().to(promote))
            .route("/models/{model}/rollback", web::post().to(rollback))
            .route("/models/{model}/archive", web::post().to(archive))
            .route(
                "/models/{model}/compare",
                web::get().to(super::comparison::compare_page),
            ),
    );
}

/// Every console form's fields; each action reads the ones it needs and checks them.
#[derive(Debug, Default, Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    alias: String,
    #[serde(default)]
    version: String,
    /// The version the person saw the alias at; empty: the alias must not exist yet.
    #[serde(default)]
    expected_version: String,
}

impl ActionForm {
    /// The form, if its CSRF token is the session's and the session holds `scope`.
    fn checked(self, session: &Session, scope: Scope, state: &AppState) -> Result<Self, Error> {
        if !session::csrf_matches(&session.csrf, &self.csrf) {
            tracing::info!(
                identity = session.identity.name(),
                "Refused a console form: CSRF token missing or wrong."
            );
            return Err(Error::CsrfMismatch);
        }
        state.auth.require_scope(&session.identity, scope)?;
        Ok(self)
    }

    fn reason(&self) -> Result<&str, Error> {
        let reason = self.reason.trim();
        let chars = reason.chars().count();
        if chars == 0 || chars > MAX_REASON_CHARS {
            return Err(Error::BadRequest(format!(
                "reason: say why, in 1 to {MAX_REASON_CHARS} characters (it goes in the audit history)"
            )));
        }
        Ok(reason)
    }

    fn alias(&self) -> Result<AliasName, Error> {
        AliasName::parse(self.alias.trim()).map_err(|e| Error::BadRequest(format!("alias: {e}")))
    }

    fn version(field: &str, value: &str) -> Result<ModelVersion, Error> {
        value.trim().parse().map_err(|_| {
            Error::BadRequest(format!(
                "{field}: must be a version number such as 3, not {value:?}"
            ))
        })
    }
}

#[derive(Debug, Default, Deserialize)]
struct SignInForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// The page; signed in, with the action forms; otherwise with the sign-in form, and the
/// registry's contents only if reads are anonymous.
async fn console_page(
    req: HttpRequest,
    visitor: ConsoleVisitor,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let Some(session) = visitor.0 else {
        let csrf = session::random_token();
        let html = page::render(
            &state,
            Some(Console::SignIn { csrf: &csrf }),
            !state.auth.protects_reads(),
        )
        .await?;
        let mut res = html_response(html);
        append_cookie(
            &mut res,
            &session::set_cookie(&req, SIGN_IN_COOKIE, &csrf, SESSION_TTL),
        )?;
        return Ok(res);
    };
    let may_read = !state.auth.protects_reads() || session.identity.scopes().contains(Scope::Read);
    let html = page::render(&state, Some(Console::SignedIn(&session)), may_read).await?;
    Ok(html_response(html))
}

/// Signs in with a token: double-submit CSRF check, then the token, then a new session.
async fn sign_in(
    req: HttpRequest,
    form: web::Form<SignInForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let expected = session::cookie(&req, SIGN_IN_COOKIE).unwrap_or_default();
    if !session::csrf_matches(expected, &form.csrf) {
        return Err(Error::CsrfMismatch);
    }
    let token = form.token.trim();
    if token.is_empty() || token.chars().count() > MAX_TOKEN_CHARS {
        return Err(Error::BadRequest(format!(
            "token: paste a registry token (1 to {MAX_TOKEN_CHARS} characters)"
        )));
    }
    let identity = state.auth.sign_in(token)?;
    // A sign-in replaces the browser's earlier session rather than leaving it alive.
    if let Some(old) = session::cookie(&req, COOKIE) {
        state.auth.sessions().remove(old);
    }
    let session = state.auth.sessions().create(identity);
    let mut res = see_other("/console");
    append_cookie(
        &mut res,
        &session::set_cookie(&req, COOKIE, &session.id, SESSION_TTL),
    )?;
    append_cookie(
        &mut res,
        &session::set_cookie(&req, SIGN_IN_COOKIE, "", std::time::Duration::ZERO),
    )?;
    Ok(res)
}

async fn sign_out(
    req: HttpRequest,
    ConsoleSession(session): ConsoleSession,
    form: web::Form<ActionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    if !session::csrf_matches(&session.csrf, &form.csrf) {
        return Err(Error::CsrfMismatch);
    }
    state.auth.sessions().remove(&session.id);
    tracing::info!(
        identity = session.identity.name(),
        "Signed out of the console."
    );
    let mut res = see_other("/console");
    append_cookie(
        &mut res,
        &session::set_cookie(&req, COOKIE, "", std::time::Duration::ZERO),
    )?;
    Ok(res)
}

/// Moves `alias` to `version`, compare-and-swap on the version the page showed.
async fn promote(
    ConsoleSession(session): ConsoleSession,
    path: web::Path<ModelName>,
    form: web::Form<ActionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let form = form
        .into_inner()
        .checked(&session, Scope::Promote, &state)?;
    let (alias, reason) = (form.alias()?, form.reason()?);
    let version = ActionForm::version("version", &form.version)?;
    let expected = match form.expected_version.trim() {
        "" => None,
        v => Some(ActionForm::version("expected_version", v)?),
    };
    let change = Change {
        actor: session.identity.name(),
        reason: Some(reason),
    };
    state
        .registry
        .move_alias(&path, &alias, version, expected, &change)
        .await?;
    Ok(see_other(&model_anchor(&path)))
}

async fn rollback(
    ConsoleSession(session): ConsoleSession,
    path: web::Path<ModelName>,
    form: web::Form<ActionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let form = form
        .into_inner()
        .checked(&session, Scope::Promote, &state)?;
    let (alias, reason) = (form.alias()?, form.reason()?);
    let change = Change {
        actor: session.identity.name(),
        reason: Some(reason),
    };
    state
        .registry
        .rollback_alias(&path, &alias, &change)
        .await?;
    Ok(see_other(&model_anchor(&path)))
}

async fn archive(
    ConsoleSession(session): ConsoleSession,
    path: web::Path<ModelName>,
    form: web::Form<ActionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let form = form
        .into_inner()
        .checked(&session, Scope::Archive, &state)?;
    let reason = form.reason()?;
    let version = ActionForm::version("version", &form.version)?;
    let change = Change {
        actor: session.identity.name(),
        reason: Some(reason),
    };
    state
        .registry
        .archive_version(&path, version, &change)
        .await?;
    Ok(see_other(&model_anchor(&path)))
}

fn model_anchor(model: &ModelName) -> String {
    format!("/console#model-{}", model.as_str())
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The console's page, with headers that keep it out of caches and frames and allow no
/// script or outside resource.
pub fn html_response(html: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .body(html)
}

fn append_cookie(res: &mut HttpResponse, cookie: &str) -> Result<(), Error> {
    let value = HeaderValue::from_str(cookie)
        .map_err(|_| Error::Internal("a Set-Cookie value is not a valid header"))?;
    res.headers_mut().append(header::SET_COOKIE, value);
    Ok(())
}
