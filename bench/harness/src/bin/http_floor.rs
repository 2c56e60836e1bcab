//! The HTTP floor of the fraud benchmark (`bench/serving/`): the least an actix-web service can do
//! for `GET /classify?f1=..&f2=..&f3=..`: parse the same three numbers, answer a constant `[0]`.
//!
//! No model, no middleware, no metrics, no logs: whatever the fraud service spends beyond this
//! is the price of scoring, request ids, metrics and tracing. Same runtime and worker count as
//! the service (actix-web's default: one worker per core), bound to loopback.
//!
//! ```sh
//! cargo build --release -p bench-harness --bin http_floor
//! PORT=18602 target/release/http_floor
//! ```

use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;

const DEFAULT_PORT: u16 = 8090;

#[derive(Debug, Deserialize)]
struct Features {
    f1: f64,
    f2: f64,
    f3: f64,
}

/// `[0]` for three finite numbers, `400` otherwise (as the service refuses NaN and infinities).
async fn classify(query: web::Query<Features>) -> HttpResponse {
    if [query.f1, query.f2, query.f3].iter().all(|v| v.is_finite()) {
        HttpResponse::Ok().json([0u8])
    } else {
        HttpResponse::BadRequest().finish()
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("Healthy")
}

fn port_from_env() -> std::io::Result<u16> {
    match std::env::var("PORT") {
        Ok(text) => text.trim().parse().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("PORT={text:?} is not a port number: {e}"),
            )
        }),
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_PORT),
        Err(e) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("PORT: {e}"),
        )),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = port_from_env()?;
    HttpServer::new(|| {
        App::new()
            .route("/classify", web::get().to(classify))
            .route("/healthz", web::get().to(healthz))
    })
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
