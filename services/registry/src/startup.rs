//! Building the service: store, registry, index rebuilt from the store, routes, server.

use actix_web::web;
use shared_lib::http::{Metrics, Readiness};
use shared_lib::registry::Registry;
use shared_lib::service::Application;
use shared_lib::store::ObjectStore;

use crate::auth::Auth;
use crate::index::ManifestIndex;
use crate::retention::RetentionMetrics;
use crate::routes::{self, AppState};
use crate::{SERVICE, Settings};

/// Opens the store, starts rebuilding the index in the background (ready when done; retried
/// with backoff while the store is unreachable), and binds the server.
///
/// # Errors
/// When the store location cannot be opened, metrics cannot be registered or the address cannot
/// be bound.
pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
    let store = ObjectStore::open(&settings.common.store).await?;
    let readiness = Readiness::default();
    let metrics = Metrics::new(SERVICE)?;
    let state = web::Data::new(AppState {
        registry: Registry::new(store),
        index: ManifestIndex::default(),
        auth: Auth::new(settings.token.as_ref(), settings.read_auth),
        max_upload_bytes: settings.max_upload_bytes,
        retention: settings.retention,
        retention_metrics: RetentionMetrics::register(metrics.registry())?,
    });
    if let Some(policy) = settings.retention {
        tracing::info!(%policy, "Retention runs after each registration.");
    }
    let indexing = tokio::spawn(rebuild_index(state.clone(), readiness.clone()));
    let app = Application::build(&settings.common, metrics, readiness, move |cfg| {
        cfg.app_data(state.clone());
        routes::models::configure(cfg);
        routes::artifacts::configure(cfg);
        routes::versions::configure(cfg);
        routes::aliases::configure(cfg);
        routes::retention::configure(cfg);
        routes::page::configure(cfg);
        shared_lib::http::configure_openapi(cfg, routes::OPENAPI_JSON);
    })?;
    Ok(app.with_background_task(indexing))
}

async fn rebuild_index(state: web::Data<AppState>, readiness: Readiness) {
    let mut backoff = std::time::Duration::from_millis(250);
    loop {
        match state.index.rebuild(&state.registry).await {
            Ok(count) => {
                tracing::info!(manifests = count, "Registry index rebuilt from the store.");
                readiness.set_ready(true);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %shared_lib::error_chain(&e), "Could not rebuild the index; retrying.");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
            }
        }
    }
}
