//! One file per resource; each ends in `configure`.

pub mod aliases;
pub mod artifacts;
pub mod comparison;
pub mod console;
pub mod models;
pub mod page;
pub mod retention;
pub mod versions;

/// The OpenAPI document, `services/registry/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

use actix_web::web;
use prometheus::IntCounterVec;
use serde::Deserialize;
use shared_lib::registry::retention::RetentionPolicy;
use shared_lib::registry::{Change, Registry};

use crate::auth::Auth;
use crate::index::ManifestIndex;
use crate::retention::RetentionMetrics;

/// What the handlers share.
pub struct AppState {
    pub registry: Registry,
    pub index: ManifestIndex,
    pub auth: Auth,
    /// `MAX_UPLOAD_BYTES`: the largest artifact upload.
    pub max_upload_bytes: usize,
    /// `RETAIN_VERSIONS`/`RETAIN_DAYS`, applied after each registration; `None`: off.
    pub retention: Option<RetentionPolicy>,
    pub retention_metrics: RetentionMetrics,
    /// `registry_alias_moves_total{model, alias}`: moves and rollbacks this process made, for
    /// the dashboards' alias-move annotations.
    pub alias_moves: IntCounterVec,
}

/// The optional body of a change that needs only who and why: archive, keep, unkeep, rollback.
///
/// Who is the caller's credential identity ([`crate::auth::Caller`]), never the body: `actor`
/// is still accepted so that older clients keep working, and ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    pub reason: Option<String>,
    #[expect(
        dead_code,
        reason = "accepted from older clients and ignored: see the type's docs"
    )]
    actor: Option<String>,
}

impl ChangeRequest {
    /// The body sent, or an empty one.
    pub fn or_default(body: Option<web::Json<Self>>) -> Self {
        body.map(web::Json::into_inner).unwrap_or_default()
    }

    /// The change, made by `who` (the caller's identity) for the body's reason.
    pub fn change<'a>(&'a self, who: &'a str) -> Change<'a> {
        Change {
            actor: who,
            reason: self.reason.as_deref(),
        }
    }
}
