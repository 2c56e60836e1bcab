//! Building the service from its settings: store, registry, deployment, routes, server.

use actix_web::web;
use shared_lib::serving::ModelServer;

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
        let server = ModelServer::<Recommender>::start(
            SERVICE,
            &settings.common,
            &settings.serving,
            settings.shadow_concurrency,
        )
        .await?;
        let deployment = server.deployment.clone();
        let state = web::Data::new(AppState {
            deployment: deployment.clone(),
            clicks: ClickStore::new(settings.clicks.clone()),
            shadow: server.shadow,
            max_n: settings.max_n,
            max_batch_users: settings.max_batch_users,
        });
        let (metrics, readiness, reconciler) =
            (server.metrics, server.readiness, server.reconciler);
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
