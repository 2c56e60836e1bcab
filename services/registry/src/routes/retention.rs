//! Retention: `POST /v1/models/{model}/gc` and the keep marker of a version.

use std::num::NonZeroU32;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use shared_lib::model_id::{ModelName, ModelVersion};
use shared_lib::registry::Change;
use shared_lib::registry::retention::{MAX_RETAIN_DAYS, RetentionPolicy};

use super::{AppState, ChangeRequest};
use crate::auth::{Archive, Caller};
use crate::error::Error;
use crate::retention;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/models/{model}/gc", web::post().to(gc))
        .route(
            "/v1/models/{model}/versions/{version}/keep",
            web::post().to(keep),
        )
        .route(
            "/v1/models/{model}/versions/{version}/unkeep",
            web::post().to(unkeep),
        );
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GcRequest {
    /// With `retain_days`, replaces the configured policy for this run.
    retain_versions: Option<NonZeroU32>,
    retain_days: Option<NonZeroU32>,
    /// Report what would be deleted, delete nothing.
    #[serde(default)]
    dry_run: bool,
    reason: Option<String>,
    /// Accepted from older clients and ignored: the actor is the caller's identity.
    #[expect(dead_code, reason = "accepted from older clients and ignored")]
    actor: Option<String>,
}

/// Applies retention to one model now: the body's rules, else `RETAIN_VERSIONS`/`RETAIN_DAYS`.
/// The body is optional but, when present, must parse: a misspelt `dry_run` must not become a
/// real run.
async fn gc(
    caller: Caller<Archive>,
    path: web::Path<ModelName>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let body: GcRequest = if body.iter().all(u8::is_ascii_whitespace) {
        GcRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Error::BadRequest(format!("invalid gc request: {e}")))?
    };
    if body.retain_days.is_some_and(|d| d.get() > MAX_RETAIN_DAYS) {
        return Err(Error::BadRequest(format!(
            "retain_days must be at most {MAX_RETAIN_DAYS}"
        )));
    }
    let policy = RetentionPolicy::new(body.retain_versions, body.retain_days)
        .or(state.retention)
        .ok_or_else(|| {
            Error::BadRequest(
                "no retention policy: give retain_versions or retain_days, or configure \
                 RETAIN_VERSIONS or RETAIN_DAYS"
                    .into(),
            )
        })?;
    let change = Change {
        actor: caller.name(),
        reason: body.reason.as_deref(),
    };
    let report = retention::apply(&state, &path, &policy, &change, body.dry_run).await?;
    Ok(HttpResponse::Ok().json(report))
}

async fn keep(
    caller: Caller<Archive>,
    path: web::Path<(ModelName, ModelVersion)>,
    body: Option<web::Json<ChangeRequest>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    set_keep(caller, path, body, state, true).await
}

async fn unkeep(
    caller: Caller<Archive>,
    path: web::Path<(ModelName, ModelVersion)>,
    body: Option<web::Json<ChangeRequest>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    set_keep(caller, path, body, state, false).await
}

/// Sets or lifts the keep marker; answers whether anything changed.
async fn set_keep(
    caller: Caller<Archive>,
    path: web::Path<(ModelName, ModelVersion)>,
    body: Option<web::Json<ChangeRequest>>,
    state: web::Data<AppState>,
    keep: bool,
) -> Result<HttpResponse, Error> {
    let (model, version) = path.into_inner();
    let body = ChangeRequest::or_default(body);
    let change = body.change(caller.name());
    let changed = state
        .registry
        .keep_version(&model, version, keep, &change)
        .await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "model": model, "version": version, "kept": keep, "changed": changed })))
}
