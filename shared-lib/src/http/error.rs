//! The one JSON error envelope, and the one mapping of [`crate::Error`] to HTTP.
//!
//! Every error response of every service has the body
//! `{"error": {"code": "...", "message": "..."}, "request_id": "..."}`. `code` comes from a
//! small fixed set ([`ErrorCode`]) a client can branch on; `message` says what was wrong. 5xx
//! messages say nothing internal: the cause chain goes to the log, not the client.

// Mapping errors to HTTP must place every variant explicitly (STYLE.md: no `_` arm).
#![warn(
    clippy::wildcard_enum_match_arm,
    clippy::match_wildcard_for_single_variants
)]

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use super::request_context::current_request_id;
use crate::{Error, error_chain};

/// Machine-readable error codes, shared by all services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed request: bad JSON, bad query, bad path parameter.
    InvalidRequest,
    /// Model inputs missing, extra, non-numeric, non-finite or out of the schema.
    InvalidFeatures,
    NotFound,
    MethodNotAllowed,
    /// A compare-and-swap lost, or the state forbids the change.
    Conflict,
    PayloadTooLarge,
    Unauthorized,
    /// A valid credential that lacks the permission (scope) the request needs.
    Forbidden,
    UnsupportedMediaType,
    /// Not ready, or a dependency (the store) is unreachable.
    Unavailable,
    /// The model version was deleted by retention (HTTP 410): its manifest remains, its
    /// artifact does not.
    VersionDeleted,
    Internal,
}

/// An error response. Services convert their errors into this once, in their `error.rs`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
    request_id: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: ErrorCode,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
    }

    pub fn invalid_features(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidFeatures,
            message,
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            message,
        )
    }

    /// A 500 whose cause is logged with the request id and not shown to the client.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(request_id = current_request_id().as_deref(), error = %error_chain(cause), "Request failed on an internal error.");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; the request id is in the server log",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = Envelope {
            error: Body {
                code: self.code,
                message: &self.message,
            },
            request_id: current_request_id(),
        };
        HttpResponse::build(self.status)
            .insert_header(ContentType::json())
            .body(serde_json::to_string(&body).unwrap_or_default())
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        Self::from(&err)
    }
}

impl From<&Error> for ApiError {
    /// The single mapping of library errors to HTTP; exhaustive so a new variant must be placed.
    fn from(err: &Error) -> Self {
        use StatusCode as S;
        let (status, code) = match err {
            Error::InvalidName { .. }
            | Error::InvalidVersion { .. }
            | Error::InvalidDigest { .. }
            | Error::InvalidKey { .. }
            | Error::InvalidManifest { .. }
            | Error::UploadInterrupted { .. } => (S::BAD_REQUEST, ErrorCode::InvalidRequest),
            Error::UploadTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge),
            Error::DigestMismatch { .. }
            | Error::SizeMismatch { .. }
            | Error::UnsupportedFormat { .. }
            | Error::WrongModelKind { .. }
            | Error::CorruptArtifact { .. }
            | Error::NotServable { .. } => (S::UNPROCESSABLE_ENTITY, ErrorCode::InvalidRequest),
            Error::ObjectNotFound { .. }
            | Error::UnknownModel { .. }
            | Error::UnknownVersion { .. }
            | Error::UnknownAlias { .. } => (S::NOT_FOUND, ErrorCode::NotFound),
            Error::ObjectExists { .. }
            | Error::AliasConflict { .. }
            | Error::NothingToRollBack { .. }
            | Error::VersionArchived { .. }
            | Error::VersionInUse { .. }
            | Error::AllocationContention { .. }
            | Error::ArtifactNotUploaded { .. } => (S::CONFLICT, ErrorCode::Conflict),
            Error::VersionDeleted { .. } => (S::GONE, ErrorCode::VersionDeleted),
            Error::Store { .. } => {
                tracing::error!(error = %error_chain(err), "Model store request failed.");
                return Self::unavailable("the model store is unreachable; try again later");
            }
            Error::CorruptRecord { .. }
            | Error::InvalidStoreLocation { .. }
            | Error::Settings { .. }
            | Error::Telemetry { .. } => return Self::internal(err),
        };
        Self::new(status, code, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_id::{AliasName, ModelName, ModelVersion};

    #[test]
    fn library_errors_map_to_client_errors_with_their_message() {
        let model = ModelName::parse("fraud").unwrap();
        let cases = [
            (
                Error::UnknownVersion {
                    model: model.clone(),
                    version: ModelVersion::new(9).unwrap(),
                },
                404,
                ErrorCode::NotFound,
            ),
            (
                Error::AliasConflict {
                    model: model.clone(),
                    alias: AliasName::production(),
                    expected: Some(ModelVersion::FIRST),
                    actual: ModelVersion::new(2).ok(),
                },
                409,
                ErrorCode::Conflict,
            ),
            (
                Error::VersionDeleted {
                    model: model.clone(),
                    version: ModelVersion::new(3).unwrap(),
                },
                410,
                ErrorCode::VersionDeleted,
            ),
            (
                ModelName::parse("Bad").unwrap_err(),
                400,
                ErrorCode::InvalidRequest,
            ),
        ];
        for (err, status, code) in cases {
            let text = err.to_string();
            let api = ApiError::from(err);
            assert_eq!(api.status.as_u16(), status, "{text}");
            assert_eq!(api.code, code, "{text}");
            assert_eq!(api.message, text);
        }
    }

    #[tokio::test]
    async fn internal_failures_are_500_coded_internal_saying_nothing_internal() {
        // Arrange: a failure whose text names a store key and a reason, as a corrupt record does.
        let err = Error::CorruptRecord {
            key: "models/fraud/aliases/secret-alias.json".into(),
            reason: "secret detail".into(),
        };

        // Act
        let api = ApiError::from(err);
        let res = api.error_response();
        let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();

        // Assert: the promised code, and a body that says nothing of the cause.
        assert_eq!(api.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal", "{body}");
        let text = body.to_string();
        assert!(
            !text.contains("secret") && !text.contains("models/"),
            "a 500 body reveals internals: {text}"
        );
    }

    #[test]
    fn store_failures_are_503_without_internals() {
        let err = Error::store("get", "models/x", std::io::Error::other("secret detail"));
        let api = ApiError::from(err);
        assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!api.message.contains("secret"), "{}", api.message);
    }
}
