//! One file per resource; each ends in `configure`.

pub mod aliases;
pub mod models;
pub mod page;
pub mod versions;

/// The OpenAPI document, `services/registry/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

use actix_web::HttpRequest;
use shared_lib::registry::Registry;

use crate::auth::Auth;
use crate::index::ManifestIndex;

/// What the handlers share.
pub struct AppState {
    pub registry: Registry,
    pub index: ManifestIndex,
    pub auth: Auth,
    pub max_upload_bytes: usize,
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
