//! Building the service from its settings: store, registry, deployment, routes, server.

use actix_web::web;
use shared_lib::service::Application;
use shared_lib::serving::ModelServer;

use crate::model::Classifier;
use crate::routes::{self, AppState};
use crate::{SERVICE, Settings};

/// Opens the store, starts following the selected versions in the background (the server
/// answers at once and reports not-ready until the primary loads), and binds the server.
///
/// # Errors
/// When the store location cannot be opened, metrics cannot be registered or the address cannot
/// be bound.
pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
    let server =
        ModelServer::<Classifier>::start(SERVICE, &settings.common, &settings.serving).await?;
    let deployment = server.deployment.clone();
    let state = web::Data::new(AppState {
        deployment: deployment.clone(),
        shadow: server.shadow,
        max_batch_rows: settings.max_batch_rows,
    });
    let max_body = settings.serving.max_body_bytes;
    let app = Application::build(
        &settings.common,
        server.metrics,
        server.readiness,
        move |cfg| {
            cfg.app_data(state.clone());
            routes::classify::configure(cfg, max_body);
            shared_lib::serving::configure_models(cfg, deployment.clone());
            shared_lib::http::configure_openapi(cfg, routes::OPENAPI_JSON);
        },
    )?;
    Ok(app.with_background_task(server.reconciler))
}
