//! Building the service from its settings: store, registry, deployment, routes, server.

use actix_web::web;
use shared_lib::service::Application;
use shared_lib::serving::ModelServer;

use crate::clicks::ClickStore;
use crate::model::Recommender;
use crate::routes::{self, AppState};
use crate::{SERVICE, Settings};

/// Opens the store, starts following the selected versions in the background (not ready until
/// the primary loads), and binds the server.
///
/// # Errors
/// When the store location cannot be opened, metrics cannot be registered or the address cannot
/// be bound.
pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
    let server =
        ModelServer::<Recommender>::start(SERVICE, &settings.common, &settings.serving).await?;
    let state = web::Data::new(AppState {
        deployment: server.deployment.clone(),
        clicks: ClickStore::new(settings.clicks.clone()),
        shadow: server.shadow.clone(),
        max_n: settings.max_n,
        max_batch_users: settings.max_batch_users,
    });
    let max_body = settings.serving.max_body_bytes;
    Ok(
        server.serve(&settings.common, routes::OPENAPI_JSON, move |cfg| {
            cfg.app_data(state.clone());
            routes::recommendations::configure(cfg, max_body);
            routes::similar::configure(cfg);
            routes::events::configure(cfg);
        })?,
    )
}
