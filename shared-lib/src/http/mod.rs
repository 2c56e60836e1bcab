//! The actix-web pieces every service mounts, so all three behave alike:
//! the error envelope ([`ApiError`]), the request middleware ([`request_context`]),
//! `/healthz`, `/readyz`, `/metrics`, extractor error handlers and the JSON 404.
//!
//! A service calls [`run_server`] with its own routes; the rest is the same everywhere.

mod actix_app;
mod error;
mod metrics;
mod request_context;
pub mod token;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

pub use actix_app::{SHUTDOWN_GRACE, run_server};
pub use error::{ApiError, ErrorCode};
pub use metrics::{HttpMetrics, LabelCache, Metrics};
pub use metrics::{register_metric, telemetry_error};
pub use request_context::{
    MODEL_VERSION, REQUEST_ID, REQUEST_SPAN, ServedBy, VARIANT, current_request_id,
    key_or_request_id, request_context, with_request_id,
};

/// Whether the service can take traffic (a model is loaded, an index is built), and an
/// optional sentence for the operator that `/readyz` shows beside its status (e.g. what the
/// service skipped to become ready). Without a detail, `/readyz` answers exactly as before.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<ReadinessState>);

#[derive(Debug, Default)]
struct ReadinessState {
    ready: AtomicBool,
    detail: RwLock<Option<String>>,
}

impl Readiness {
    pub fn set_ready(&self, ready: bool) {
        self.0.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Acquire)
    }

    /// Sets (or, with `None`, clears) the detail `/readyz` shows. It is public: say what an
    /// operator needs, nothing internal.
    pub fn set_detail(&self, detail: Option<String>) {
        *self
            .0
            .detail
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = detail;
    }

    pub fn detail(&self) -> Option<String> {
        self.0
            .detail
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The default JSON body limit; services with batch endpoints set their own with [`json_config`].
pub const DEFAULT_JSON_LIMIT: usize = 256 * 1024;

/// A JSON extractor config whose errors are the shared envelope: 413 over `limit` bytes, 415
/// for another content type, 400 for malformed JSON.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _| {
            use actix_web::error::JsonPayloadError as E;
            let (status, code) =
                if matches!(err, E::OverflowKnownLength { .. } | E::Overflow { .. }) {
                    (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge)
                } else if matches!(err, E::ContentType) {
                    (
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        ErrorCode::UnsupportedMediaType,
                    )
                } else {
                    (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest)
                };
            ApiError::new(status, code, format!("invalid JSON body: {err}")).into()
        })
}

/// Mounts `/healthz`, `/readyz`, `/metrics` and the JSON error handlers of the extractors.
/// Needs `web::Data<Metrics>` and `web::Data<Readiness>` in the app data.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(json_config(DEFAULT_JSON_LIMIT))
        .app_data(web::QueryConfig::default().error_handler(|err, _| {
            ApiError::bad_request(format!("invalid query string: {err}")).into()
        }))
        .app_data(web::PathConfig::default().error_handler(|err, _| {
            ApiError::bad_request(format!("invalid path parameter: {err}")).into()
        }))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics::metrics_route));
}

/// Mounts `GET /openapi.json` serving `document` (a service's OpenAPI 3 JSON, embedded with
/// `include_str!`).
pub fn configure_openapi(cfg: &mut web::ServiceConfig, document: &'static str) {
    cfg.route(
        "/openapi.json",
        web::get().to(move || async move {
            HttpResponse::Ok()
                .content_type("application/json")
                .body(document)
        }),
    );
}

/// `GET /healthz`: liveness. Answers `Healthy`, as the classic Flask service does.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("Healthy")
}

/// `GET /readyz`: 200 once the service can serve, 503 before; `{"status": "ready"}`, with a
/// `detail` field when the service set one (in the error message when not ready).
async fn readyz(readiness: web::Data<Readiness>) -> Result<HttpResponse, ApiError> {
    let detail = readiness.detail();
    if readiness.is_ready() {
        let mut body = serde_json::json!({ "status": "ready" });
        if let Some(detail) = detail {
            body["detail"] = serde_json::Value::String(detail);
        }
        Ok(HttpResponse::Ok().json(body))
    } else {
        Err(ApiError::unavailable(match detail {
            Some(detail) => format!("not ready: {detail}"),
            None => "not ready: no model loaded yet".to_owned(),
        }))
    }
}

/// The default service: a JSON 405 when the path exists with other methods, else a JSON 404,
/// naming the method and path.
///
/// # Errors
/// Always: that is its job.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    // A path that matches a registered resource reached here only because no route of that
    // resource accepts the method.
    if req.match_pattern().is_some() {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            format!("{} is not allowed on {}", req.method(), req.path()),
        ));
    }
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}
