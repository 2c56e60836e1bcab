//! Building the service: store, registry, index rebuilt from the store, routes, server.

use actix_web::web;
use prometheus::{IntCounterVec, IntGauge, Opts};
use shared_lib::application::Application;
use shared_lib::http::{Metrics, Readiness, register_metric};
use shared_lib::registry::Registry;
use shared_lib::store::ObjectStore;

use crate::auth::Auth;
use crate::index::{self, ManifestIndex};
use crate::retention::RetentionMetrics;
use crate::routes::{self, AppState};
use crate::{SERVICE, Settings};

/// Opens the store, starts rebuilding the index in the background (ready when done; retried
/// with backoff while the store is unreachable; corrupt or foreign manifests skipped and
/// reported), and binds the server.
///
/// # Errors
/// When the store location cannot be opened, metrics cannot be registered or the address cannot
/// be bound.
pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
    let store = ObjectStore::open(&settings.common.store).await?;
    let readiness = Readiness::default();
    let metrics = Metrics::new(SERVICE)?;
    let auth = Auth::new(settings.credentials.clone(), settings.read_auth)
        .with_metrics(metrics.registry())?;
    tracing::info!(credentials = ?settings.credentials, protect_reads = settings.read_auth, "Credentials loaded.");
    let auth_data = web::Data::new(auth.clone());
    let state = web::Data::new(AppState {
        registry: Registry::new(store),
        index: ManifestIndex::with_metrics(metrics.registry())?,
        auth,
        max_upload_bytes: settings.max_upload_bytes,
        retention: settings.retention,
        retention_metrics: RetentionMetrics::register(metrics.registry())?,
        alias_moves: register_metric(
            metrics.registry(),
            IntCounterVec::new(
                Opts::new(
                    "registry_alias_moves_total",
                    "Alias moves and rollbacks made through this registry, by model and alias.",
                ),
                &["model", "alias"],
            ),
        )?,
    });
    if let Some(policy) = settings.retention {
        tracing::info!(%policy, "Retention runs after each registration.");
    }
    let skipped = index::register_skipped_gauge(metrics.registry())?;
    let indexing = tokio::spawn(rebuild_index(state.clone(), readiness.clone(), skipped));
    let app = Application::build(&settings.common, metrics, readiness, move |cfg| {
        cfg.app_data(state.clone()).app_data(auth_data.clone());
        routes::models::configure(cfg);
        routes::artifacts::configure(cfg);
        routes::versions::configure(cfg);
        routes::aliases::configure(cfg);
        routes::retention::configure(cfg);
        routes::page::configure(cfg);
        routes::console::configure(cfg);
        shared_lib::http::configure_openapi(cfg, routes::OPENAPI_JSON);
    })?;
    Ok(app.with_background_task(indexing))
}

/// Rebuilds the index until the store answers, then reports what was skipped (log, gauge,
/// `/readyz` detail) and turns ready.
async fn rebuild_index(state: web::Data<AppState>, readiness: Readiness, skipped: IntGauge) {
    let started = std::time::Instant::now();
    let mut backoff = std::time::Duration::from_millis(250);
    loop {
        match state.index.rebuild(&state.registry).await {
            Ok(report) => {
                let seconds = started.elapsed().as_secs_f64();
                skipped.set(i64::try_from(report.skipped.len()).unwrap_or(i64::MAX));
                if report.skipped.is_empty() {
                    tracing::info!(
                        manifests = report.indexed,
                        seconds,
                        "Registry index rebuilt from the store."
                    );
                } else {
                    let names: Vec<String> = report
                        .skipped
                        .iter()
                        .map(|s| format!("{s}: {}", s.reason))
                        .collect();
                    tracing::warn!(manifests = report.indexed, skipped = ?names, seconds, "Registry index rebuilt from the store; corrupt or foreign manifests skipped.");
                }
                readiness.set_detail(report.detail());
                readiness.set_ready(true);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %shared_lib::error_chain(&e), "Could not rebuild the index; retrying.");
                readiness.set_detail(Some(
                    "the model store could not be read to build the index; retrying".into(),
                ));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
            }
        }
    }
}
