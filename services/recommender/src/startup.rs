//! Building the service from its settings: store, registry, deployment, routes, server.

use std::sync::Arc;

use actix_web::web;
use shared_lib::http::{Metrics, Readiness};
use shared_lib::registry::Registry;
use shared_lib::serving::{Deployment, ServingMetrics, ShadowRunner};
use shared_lib::store::ObjectStore;

use crate::clicks::ClickStore;
use crate::model::Recommender;
use crate::routes::{self, AppState};
use crate::{SERVICE, Settings};

pub struct Application {
    inner: shared_lib::service::Application,
    reconciler: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Opens the store, starts following the selected versions in the background (not ready
    /// until the primary loads), and binds the server.
    ///
    /// # Errors
    /// When the store location cannot be opened, metrics cannot be registered or the address
    /// cannot be bound.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let store = ObjectStore::open(&settings.common.store).await?;
        let metrics = Metrics::new(SERVICE)?;
        let serving_metrics = ServingMetrics::register(&metrics)?;
        let readiness = Readiness::default();
        let deployment: Arc<Deployment<Recommender>> = Deployment::new(
            &settings.serving,
            Registry::new(store),
            serving_metrics.clone(),
            readiness.clone(),
        );
        let reconciler = deployment.spawn();
        let state = web::Data::new(AppState {
            deployment: deployment.clone(),
            clicks: ClickStore::new(settings.clicks.clone()),
            shadow: ShadowRunner::new(
                settings.serving.model.as_str(),
                serving_metrics,
                settings.shadow_concurrency,
            ),
            max_n: settings.max_n,
            max_batch_users: settings.max_batch_users,
        });
        let max_body = settings.max_body_bytes;
        let inner = shared_lib::service::Application::build(
            &settings.common,
            metrics,
            readiness,
            move |cfg| {
                cfg.app_data(state.clone());
                routes::recommendations::configure(cfg, max_body);
                routes::similar::configure(cfg);
                routes::events::configure(cfg);
                shared_lib::serving::configure_models(cfg, deployment.clone());
                shared_lib::http::configure_openapi(cfg, routes::OPENAPI_JSON);
            },
        )?;
        Ok(Self { inner, reconciler })
    }

    pub fn port(&self) -> u16 {
        self.inner.port()
    }

    /// Serves until SIGTERM or SIGINT, then drains in-flight requests.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.inner.run_until_stopped().await;
        self.reconciler.abort();
        result
    }
}
