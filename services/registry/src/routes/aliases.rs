//! Aliases: list, read (now or at a time), move with compare-and-swap, roll back.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use shared_lib::model_id::{AliasName, ModelName, ModelVersion};
use shared_lib::registry::Change;
use shared_lib::registry::records::alias_version_at;

use super::{AppState, ChangeRequest};
use crate::auth::{Caller, Promote, Reader};
use crate::error::Error;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/models/{model}/aliases", web::get().to(list_aliases))
        .route(
            "/v1/models/{model}/aliases/{alias}",
            web::get().to(get_alias),
        )
        .route(
            "/v1/models/{model}/aliases/{alias}",
            web::put().to(move_alias),
        )
        .route(
            "/v1/models/{model}/aliases/{alias}/rollback",
            web::post().to(rollback_alias),
        );
}

async fn list_aliases(
    _: Reader,
    path: web::Path<ModelName>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let aliases = state.registry.list_aliases(&path).await?;
    Ok(HttpResponse::Ok().json(json!({ "model": path.into_inner(), "aliases": aliases })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AtQuery {
    /// RFC 3339 time: which version did the alias point to then?
    at: Option<DateTime<Utc>>,
}

async fn get_alias(
    _: Reader,
    path: web::Path<(ModelName, AliasName)>,
    query: web::Query<AtQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let (model, alias) = path.into_inner();
    let Some(at) = query.at else {
        return Ok(HttpResponse::Ok().json(state.registry.alias(&model, &alias).await?));
    };
    let revisions = state.registry.alias_history(&model, &alias).await?;
    if revisions.is_empty() {
        return Err(shared_lib::Error::UnknownAlias { model, alias }.into());
    }
    let version = alias_version_at(&revisions, at);
    Ok(HttpResponse::Ok()
        .json(json!({ "model": model, "alias": alias, "at": at, "version": version })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveRequest {
    version: ModelVersion,
    /// The version the caller believes the alias holds now; null or absent: the alias must
    /// not exist yet. A mismatch is a 409 naming the actual version.
    #[serde(default)]
    expected_version: Option<ModelVersion>,
    reason: Option<String>,
    /// Accepted from older clients and ignored: the actor is the caller's identity.
    #[expect(dead_code, reason = "accepted from older clients and ignored")]
    actor: Option<String>,
}

async fn move_alias(
    caller: Caller<Promote>,
    path: web::Path<(ModelName, AliasName)>,
    body: web::Json<MoveRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let (model, alias) = path.into_inner();
    let body = body.into_inner();
    let change = Change {
        actor: caller.name(),
        reason: body.reason.as_deref(),
    };
    let record = state
        .registry
        .move_alias(&model, &alias, body.version, body.expected_version, &change)
        .await?;
    count_move(&state, &model, &alias);
    Ok(HttpResponse::Ok().json(record))
}

/// Moves the alias back, in one call, to the most recent version it held that was not rolled
/// back from, archived or deleted; the answer says which and why (see
/// `shared_lib::registry::rollback`).
async fn rollback_alias(
    caller: Caller<Promote>,
    path: web::Path<(ModelName, AliasName)>,
    body: Option<web::Json<ChangeRequest>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let (model, alias) = path.into_inner();
    let body = ChangeRequest::or_default(body);
    let change = body.change(caller.name());
    let rollback = state
        .registry
        .rollback_alias(&model, &alias, &change)
        .await?;
    count_move(&state, &model, &alias);
    Ok(HttpResponse::Ok().json(rollback))
}

fn count_move(state: &AppState, model: &ModelName, alias: &AliasName) {
    state
        .alias_moves
        .with_label_values(&[model.as_str(), alias.as_str()])
        .inc();
}
