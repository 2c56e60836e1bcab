//! One file per resource; each ends in `configure`.

pub mod aliases;
pub mod models;
pub mod page;
pub mod retention;
pub mod versions;

/// The OpenAPI document, `services/registry/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

use actix_web::HttpRequest;
use shared_lib::registry::Registry;
use shared_lib::registry::retention::RetentionPolicy;

use crate::auth::Auth;
use crate::index::ManifestIndex;
use crate::retention::RetentionMetrics;

/// What the handlers share.
pub struct AppState {
    pub registry: Registry,
    pub index: ManifestIndex,
    pub auth: Auth,
    pub max_upload_bytes: usize,
    /// `RETAIN_VERSIONS`/`RETAIN_DAYS`, applied after each registration; `None`: off.
    pub retention: Option<RetentionPolicy>,
    pub retention_metrics: RetentionMetrics,
}

/// Who is making a change: the body's `actor`, else the `X-Actor` header, else `api`.
pub fn actor(req: &HttpRequest, from_body: Option<&str>) -> String {
    from_body
        .map(str::to_owned)
        .or_else(|| {
            req.headers()
                .get("x-actor")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "api".to_owned())
}
