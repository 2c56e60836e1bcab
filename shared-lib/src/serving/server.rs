//! The start of every model server: metrics, readiness, the deployment following the selected
//! versions (loading in the background), and the shadow runner.

use std::sync::Arc;

use super::{Deployment, ServableModel, ServingMetrics, ServingSettings, ShadowRunner};
use crate::Error;
use crate::http::{Metrics, Readiness};
use crate::registry::Registry;
use crate::service::CommonSettings;
use crate::store::ObjectStore;

/// A model server's moving parts, ready to be given routes.
pub struct ModelServer<M> {
    pub metrics: Metrics,
    pub readiness: Readiness,
    pub deployment: Arc<Deployment<M>>,
    pub shadow: ShadowRunner,
    /// The background loop that loads and follows the versions; abort it at shutdown.
    pub reconciler: tokio::task::JoinHandle<()>,
}

impl<M: ServableModel> ModelServer<M> {
    /// Opens the (read-only) store and starts following the selected versions. The server
    /// answers at once and reports not-ready until the primary version loads.
    ///
    /// # Errors
    /// When the store location cannot be opened or metrics cannot be registered.
    pub async fn start(
        service: &str,
        common: &CommonSettings,
        serving: &ServingSettings,
    ) -> Result<Self, Error> {
        let store = ObjectStore::open(&common.store).await?;
        let metrics = Metrics::new(service)?;
        let serving_metrics = ServingMetrics::register(&metrics)?;
        let readiness = Readiness::default();
        let deployment = Deployment::new(
            serving,
            Registry::new(store),
            serving_metrics.clone(),
            readiness.clone(),
        );
        let reconciler = deployment.spawn();
        let shadow = ShadowRunner::new(
            serving.model.as_str(),
            serving_metrics,
            serving.shadow_concurrency,
        );
        Ok(Self {
            metrics,
            readiness,
            deployment,
            shadow,
            reconciler,
        })
    }
}
