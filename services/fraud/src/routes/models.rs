//! `GET /v1/models`: which versions are loaded, their digests, roles and traffic split.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/models", web::get().to(list_models));
}

async fn list_models(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "model": state.deployment.model(),
        "slots": state.deployment.status(),
    }))
}
