//! `GET /openapi.json`: the service's OpenAPI 3 document (`services/registry/openapi.json`).

use actix_web::{HttpResponse, web};

pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi));
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI_JSON)
}
