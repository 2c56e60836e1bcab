//! The registry service's errors, mapped to HTTP once, here.

// Mapping errors to HTTP must place every variant explicitly (STYLE.md: no `_` arm).
#![warn(
    clippy::wildcard_enum_match_arm,
    clippy::match_wildcard_for_single_variants
)]

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use shared_lib::http::{ApiError, ErrorCode};

use crate::auth::Scope;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No valid credential (401).
    #[error("{message}")]
    Unauthorized {
        message: &'static str,
        challenge: Challenge,
    },
    /// A valid credential without the scope the route needs (403).
    #[error("{identity} may not do this: it needs the {scope} scope")]
    Forbidden { identity: String, scope: Scope },
    /// A console form without its session's CSRF token, or with another one (403).
    #[error(
        "csrf: the form's CSRF token is missing or does not match this session; reload the page and submit again"
    )]
    CsrfMismatch,
    #[error("{0}")]
    BadRequest(String),
    /// A bug in how the service is put together (500; the message is logged, not sent).
    #[error("{0}")]
    Internal(&'static str),
    #[error("an artifact upload needs a Content-Length header (chunked bodies are refused)")]
    LengthRequired,
    #[error(transparent)]
    Library(#[from] shared_lib::Error),
}

/// What a 401 asks the client for (`WWW-Authenticate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// API clients: `Bearer`.
    Bearer,
    /// The page: makes a browser ask for an identity and token (see `crate::auth`).
    Basic,
}

impl Challenge {
    fn header(self) -> HeaderValue {
        match self {
            Self::Bearer => HeaderValue::from_static("Bearer"),
            Self::Basic => {
                HeaderValue::from_static("Basic realm=\"model registry\", charset=\"UTF-8\"")
            }
        }
    }
}

impl Error {
    fn to_api(&self) -> ApiError {
        match self {
            Self::Unauthorized { .. } => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                self.to_string(),
            ),
            Self::Forbidden { .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                self.to_string(),
            ),
            Self::CsrfMismatch => ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                self.to_string(),
            ),
            Self::BadRequest(_) => ApiError::bad_request(self.to_string()),
            Self::Internal(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error",
            ),
            Self::LengthRequired => ApiError::new(
                StatusCode::LENGTH_REQUIRED,
                ErrorCode::InvalidRequest,
                self.to_string(),
            ),
            Self::Library(e) => ApiError::from(e),
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.to_api().status
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(what) = self {
            tracing::error!(error = what, "Internal error.");
        }
        let mut res = self.to_api().error_response();
        if let Self::Unauthorized { challenge, .. } = self {
            res.headers_mut()
                .insert(WWW_AUTHENTICATE, challenge.header());
        }
        res
    }
}
