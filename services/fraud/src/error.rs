//! The fraud service's errors, mapped to HTTP once, here.

// Mapping errors to HTTP must place every variant explicitly (STYLE.md: no `_` arm).
#![warn(
    clippy::wildcard_enum_match_arm,
    clippy::match_wildcard_for_single_variants
)]

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use shared_lib::http::{ApiError, ErrorCode};

use crate::features::FeatureError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Features(#[from] FeatureError),
    #[error("instance {index}: {source}")]
    BatchRow {
        index: usize,
        #[source]
        source: FeatureError,
    },
    #[error("the batch has {rows} instances; the limit is {limit}")]
    BatchTooLarge { rows: usize, limit: usize },
    #[error("the batch has no instances")]
    EmptyBatch,
    #[error("no model is loaded yet; see /readyz")]
    NotReady,
    #[error(transparent)]
    Library(#[from] shared_lib::Error),
}

impl Error {
    fn to_api(&self) -> ApiError {
        match self {
            Self::Features(_) | Self::BatchRow { .. } => {
                ApiError::invalid_features(self.to_string())
            }
            Self::BatchTooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                self.to_string(),
            ),
            Self::EmptyBatch => ApiError::bad_request(self.to_string()),
            Self::NotReady => ApiError::unavailable(self.to_string()),
            Self::Library(e) => ApiError::from(e),
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.to_api().status
    }

    fn error_response(&self) -> HttpResponse {
        self.to_api().error_response()
    }
}
