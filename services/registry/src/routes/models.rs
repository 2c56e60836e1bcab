//! `GET /v1/models`, `GET /v1/models/{model}/events`, `GET /v1/models/{model}/compare`.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use shared_lib::model_id::{ModelName, ModelVersion};

use super::AppState;
use crate::auth::Reader;
use crate::catalog;
use crate::error::Error;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/models", web::get().to(list_models))
        .route("/v1/models/{model}/events", web::get().to(list_events))
        .route(
            "/v1/models/{model}/compare",
            web::get().to(compare_versions),
        );
}

async fn list_models(_: Reader, state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    Ok(HttpResponse::Ok().json(json!({ "models": catalog::models(&state).await? })))
}

async fn list_events(
    _: Reader,
    path: web::Path<ModelName>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let events = catalog::history(&state, &path).await?;
    Ok(HttpResponse::Ok().json(json!({ "model": path.into_inner(), "events": events })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareQuery {
    a: ModelVersion,
    b: ModelVersion,
}

/// Both versions' metrics side by side, with `b - a` for metrics both have.
async fn compare_versions(
    _: Reader,
    path: web::Path<ModelName>,
    query: web::Query<CompareQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let a = state
        .index
        .manifest(&state.registry, &path, query.a)
        .await?;
    let b = state
        .index
        .manifest(&state.registry, &path, query.b)
        .await?;
    let names: BTreeSet<&String> = a.metrics.keys().chain(b.metrics.keys()).collect();
    let delta: BTreeMap<&String, f64> = names
        .into_iter()
        .filter_map(|n| Some((n, b.metrics.get(n)? - a.metrics.get(n)?)))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "model": path.into_inner(),
        "a": { "version": a.version, "metrics": a.metrics, "algorithm": a.algorithm },
        "b": { "version": b.version, "metrics": b.metrics, "algorithm": b.algorithm },
        "delta": delta,
    })))
}
