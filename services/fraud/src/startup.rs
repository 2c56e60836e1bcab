//! Building the service from its settings: store, registry, deployment, routes, server.

use std::sync::Arc;

use actix_web::web;
use shared_lib::serving::{Deployment, ModelServer};

use crate::model::Classifier;
use crate::routes::{self, AppState};
use crate::{SERVICE, Settings};

pub struct Application {
    inner: shared_lib::service::Application,
    deployment: Arc<Deployment<Classifier>>,
    reconciler: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Opens the store, starts following the selected versions in the background (the server
    /// answers at once and reports not-ready until the primary loads), and binds the server.
    ///
    /// # Errors
    /// When the store location cannot be opened, metrics cannot be registered or the address
    /// cannot be bound.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let server = ModelServer::<Classifier>::start(
            SERVICE,
            &settings.common,
            &settings.serving,
            settings.shadow_concurrency,
        )
        .await?;
        let deployment = server.deployment.clone();
        let state = web::Data::new(AppState {
            deployment: deployment.clone(),
            shadow: server.shadow,
            max_batch_rows: settings.max_batch_rows,
        });
        let (metrics, readiness, reconciler) =
            (server.metrics, server.readiness, server.reconciler);
        let max_body = settings.max_body_bytes;
        let models = deployment.clone();
        let inner = shared_lib::service::Application::build(
            &settings.common,
            metrics,
            readiness,
            move |cfg| {
                cfg.app_data(state.clone());
                routes::classify::configure(cfg, max_body);
                shared_lib::serving::configure_models(cfg, models.clone());
                shared_lib::http::configure_openapi(cfg, routes::OPENAPI_JSON);
            },
        )?;
        Ok(Self {
            inner,
            deployment,
            reconciler,
        })
    }

    pub fn port(&self) -> u16 {
        self.inner.port()
    }

    pub fn deployment(&self) -> &Arc<Deployment<Classifier>> {
        &self.deployment
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
