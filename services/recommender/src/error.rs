//! The recommender's errors, mapped to HTTP once, here.

// Mapping errors to HTTP must place every variant explicitly (STYLE.md: no `_` arm).
#![warn(
    clippy::wildcard_enum_match_arm,
    clippy::match_wildcard_for_single_variants
)]

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use shared_lib::http::{ApiError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("unknown item(s): {}", .0.join(", "))]
    UnknownItems(Vec<String>),
    #[error("unknown item {0}")]
    UnknownItem(String),
    #[error("the request has {count} users; the limit is {limit}")]
    TooManyUsers { count: usize, limit: usize },
    #[error("no model is loaded yet; see /readyz")]
    NotReady,
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error(
        "the recommender is at its limit of concurrent scoring work; retry after {retry_after} s"
    )]
    Busy { retry_after: u32 },
    #[error(
        "the click store is unavailable; retry after {} s",
        crate::scoring::RETRY_AFTER_SECONDS
    )]
    ClicksUnavailable,
    #[error("scoring failed: {0}")]
    Scoring(String),
    #[error(transparent)]
    Library(#[from] shared_lib::Error),
}

impl Error {
    fn to_api(&self) -> ApiError {
        match self {
            Self::InvalidRequest(_) => ApiError::bad_request(self.to_string()),
            Self::UnknownItems(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidRequest,
                self.to_string(),
            ),
            Self::UnknownItem(_) => ApiError::not_found(self.to_string()),
            Self::TooManyUsers { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                self.to_string(),
            ),
            Self::NotReady | Self::Busy { .. } | Self::ClicksUnavailable => {
                ApiError::unavailable(self.to_string())
            }
            Self::Unauthorized(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                self.to_string(),
            ),
            Self::Scoring(reason) => ApiError::internal(&std::io::Error::other(reason.clone())),
            Self::Library(e) => ApiError::from(e),
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.to_api().status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = self.to_api().error_response();
        let header = match self {
            Self::Busy { retry_after } => Some((RETRY_AFTER, HeaderValue::from(*retry_after))),
            Self::ClicksUnavailable => Some((
                RETRY_AFTER,
                HeaderValue::from(crate::scoring::RETRY_AFTER_SECONDS),
            )),
            Self::Unauthorized(_) => Some((WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))),
            Self::InvalidRequest(_)
            | Self::UnknownItems(_)
            | Self::UnknownItem(_)
            | Self::TooManyUsers { .. }
            | Self::NotReady
            | Self::Scoring(_)
            | Self::Library(_) => None,
        };
        if let Some((name, value)) = header {
            response.headers_mut().insert(name, value);
        }
        response
    }
}
