//! The start of every model server: metrics, readiness, the model slots following the selected
//! versions (loading in the background), and the shadow runner.

use std::sync::Arc;

use actix_web::web;

use super::{ModelSlots, ServableModel, ServingMetrics, ServingSettings, ShadowRunner};
use crate::Error;
use crate::application::{Application, CommonSettings};
use crate::http::{Metrics, Readiness};
use crate::registry::Registry;
use crate::store::ObjectStore;

/// A model server's moving parts, ready to be given routes.
pub struct ModelServer<M> {
    pub metrics: Metrics,
    pub readiness: Readiness,
    pub slots: Arc<ModelSlots<M>>,
    pub shadow: ShadowRunner,
    /// The background loop that loads and follows the versions; abort it at shutdown.
    pub reconciler: tokio::task::JoinHandle<()>,
}

impl<M: ServableModel> ModelServer<M> {
    /// Opens the (read-only) store and starts following the selected versions. The server
    /// answers at once and reports not-ready until the primary version loads.
    ///
    /// `config` makes the model type's load configuration, given the registry for any metrics
    /// it sets while loading.
    ///
    /// # Errors
    /// When the store location cannot be opened or metrics cannot be registered.
    pub async fn start(
        service: &str,
        common: &CommonSettings,
        serving: &ServingSettings,
        config: impl FnOnce(&Metrics) -> Result<M::Config, Error>,
    ) -> Result<Self, Error> {
        let store = ObjectStore::open(&common.store).await?;
        let metrics = Metrics::new(service)?;
        let serving_metrics = ServingMetrics::register(&metrics)?;
        let config = config(&metrics)?;
        let readiness = Readiness::default();
        let slots = ModelSlots::new(
            serving,
            Registry::new(store),
            serving_metrics.clone(),
            readiness.clone(),
            config,
        );
        let reconciler = slots.spawn();
        let shadow = ShadowRunner::new(
            serving.model.as_str(),
            serving_metrics,
            serving.shadow_concurrency,
        );
        Ok(Self {
            metrics,
            readiness,
            slots,
            shadow,
            reconciler,
        })
    }

    /// Binds the server: the service's `routes` plus what every model server has, the loaded
    /// versions (`/v1/models`) and its OpenAPI document (`openapi_json`) beside health,
    /// readiness and metrics. The version-following loop stops with the server.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn serve<F>(
        self,
        common: &CommonSettings,
        openapi_json: &'static str,
        routes: F,
    ) -> std::io::Result<Application>
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let slots = self.slots;
        let app = Application::build(common, self.metrics, self.readiness, move |cfg| {
            routes(cfg);
            super::configure_models(cfg, slots.clone());
            crate::http::configure_openapi(cfg, openapi_json);
        })?;
        Ok(app.with_background_task(self.reconciler))
    }
}
