//! Building the service from its settings: store, registry, slots, routes, server.

use actix_web::web;
use shared_lib::application::Application;
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
        ModelServer::<Classifier>::start(SERVICE, &settings.common, &settings.serving, |_| Ok(()))
            .await?;
    let state = web::Data::new(AppState {
        slots: server.slots.clone(),
        shadow: server.shadow.clone(),
        max_batch_rows: settings.max_batch_rows,
    });
    let max_body = settings.serving.max_body_bytes;
    Ok(
        server.serve(&settings.common, routes::OPENAPI_JSON, move |cfg| {
            cfg.app_data(state.clone());
            routes::classify::configure(cfg, max_body);
        })?,
    )
}
