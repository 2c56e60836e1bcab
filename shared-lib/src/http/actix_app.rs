//! The actix-web `App` and `HttpServer` every service runs: shared middleware and routes around
//! its own (the HTTP layer; `serving::model_server` starts a model server on top of it, and
//! `application` is what every binary reads and starts).

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use super::{Metrics, Readiness, configure, not_found, request_context};

/// How long SIGTERM waits for in-flight requests; below Kubernetes' 30 s grace period.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// Starts serving on `listener`: request context middleware, `/healthz`, `/readyz`, `/metrics`,
/// the service's own `routes`, and a JSON 404 for the rest. Stops gracefully on SIGTERM and
/// SIGINT, finishing in-flight requests.
///
/// # Errors
/// When the listener cannot be used.
pub fn run_server<F>(
    listener: TcpListener,
    metrics: Metrics,
    readiness: Readiness,
    workers: Option<usize>,
    routes: F,
) -> std::io::Result<Server>
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let metrics = web::Data::new(metrics);
    let readiness = web::Data::new(readiness);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .app_data(readiness.clone())
            .wrap(from_fn(request_context))
            .configure(configure)
            .configure(routes.clone())
            .default_service(web::to(not_found))
    })
    .shutdown_timeout(SHUTDOWN_GRACE.as_secs());
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    Ok(server.listen(listener)?.run())
}
