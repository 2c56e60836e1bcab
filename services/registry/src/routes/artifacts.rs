//! Artifacts: the streamed upload that a registration then names by sha256.
//!
//! `PUT /v1/models/{model}/artifacts/{sha256}` takes the raw artifact bytes
//! (`application/octet-stream`) with a `Content-Length` of at most `MAX_UPLOAD_BYTES`, the way
//! an OCI registry takes a blob. The credential (`publish` scope) is checked before a single body byte is read, the
//! length before the body is read; the body then streams into the store, checked on the way
//! (envelope from its first bytes, size, sha256), and becomes visible only when all pass.

use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::json;
use shared_lib::BoxError;
use shared_lib::artifact::ArtifactDigest;
use shared_lib::model_id::ModelName;

use super::AppState;
use crate::auth::{Caller, Publish};
use crate::error::Error;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v1/models/{model}/artifacts/{sha256}",
        web::put().to(upload_artifact),
    );
}

/// Streams an artifact into the store; answers 201 with its size and kind.
async fn upload_artifact(
    _: Caller<Publish>,
    req: HttpRequest,
    path: web::Path<(ModelName, ArtifactDigest)>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    // The caller was checked first (an extractor ahead of the payload, which is polled only
    // below): an unauthenticated upload costs no memory.
    let limit = state.max_upload_bytes as u64;
    // The server holds the body to this length; checked here, before the body is read.
    if declared_length(&req)? > limit {
        return Err(shared_lib::Error::UploadTooLarge { limit }.into());
    }
    let (model, sha256) = path.into_inner();
    let body = payload.map(|chunk| chunk.map_err(BoxError::from));
    let artifact = state
        .registry
        .upload_artifact(&model, &sha256, body, limit)
        .await?;
    Ok(HttpResponse::Created().json(json!({
        "model": model,
        "sha256": artifact.sha256,
        "size": artifact.size,
        "kind": artifact.kind,
    })))
}

/// The request's `Content-Length`: required, so an oversized upload is refused before its
/// body is read.
fn declared_length(req: &HttpRequest) -> Result<u64, Error> {
    let value = req
        .headers()
        .get(CONTENT_LENGTH)
        .ok_or(Error::LengthRequired)?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::BadRequest("Content-Length is not a number".into()))
}
