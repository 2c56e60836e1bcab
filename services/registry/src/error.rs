//! The registry service's errors, mapped to HTTP once, here.

// Mapping errors to HTTP must place every variant explicitly (STYLE.md: no `_` arm).
#![warn(clippy::wildcard_enum_match_arm)]

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use shared_lib::http::{ApiError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("an artifact upload needs a Content-Length header (chunked bodies are refused)")]
    LengthRequired,
    #[error(transparent)]
    Library(#[from] shared_lib::Error),
}

impl Error {
    fn to_api(&self) -> ApiError {
        match self {
            Self::Unauthorized(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                self.to_string(),
            ),
            Self::BadRequest(_) => ApiError::bad_request(self.to_string()),
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
        let mut res = self.to_api().error_response();
        if matches!(self, Self::Unauthorized(_)) {
            res.headers_mut().insert(
                actix_web::http::header::WWW_AUTHENTICATE,
                actix_web::http::header::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}
