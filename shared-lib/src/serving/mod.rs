//! What every model server shares: which versions to serve ([`selection`]), A/B assignment
//! ([`routing`]), loading and hot reload ([`deployment`]), the last-good cache ([`cache`]),
//! shadow scoring ([`shadow`]) and the serving metrics ([`metrics`]). The fraud and recommender
//! services differ only in their model type and routes.

pub mod cache;
pub mod deployment;
pub mod metrics;
pub mod routing;
pub mod selection;
pub mod server;
pub mod shadow;

pub use deployment::{Deployment, Loaded, Role, ServableModel, SlotStatus};
pub use metrics::ServingMetrics;
pub use routing::Variant;
pub use selection::{Selector, ServingSettings};
pub use server::ModelServer;
pub use shadow::ShadowRunner;

use std::sync::Arc;

use actix_web::{HttpResponse, web};

/// Mounts `GET /v1/models`: the model's slots (versions, digests, roles, traffic split).
pub fn configure_models<M: ServableModel>(
    cfg: &mut web::ServiceConfig,
    deployment: Arc<Deployment<M>>,
) {
    cfg.route(
        "/v1/models",
        web::get().to(move || {
            let deployment = deployment.clone();
            async move {
                HttpResponse::Ok().json(serde_json::json!({
                    "model": deployment.model(),
                    "slots": deployment.status(),
                }))
            }
        }),
    );
}
