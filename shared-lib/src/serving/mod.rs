//! What every model server shares: which versions to serve ([`selection`]), A/B assignment
//! ([`routing`]), loading and hot reload ([`slots`]), the last-good cache ([`cache`]),
//! shadow scoring ([`shadow`]) and the serving metrics ([`metrics`]). The fraud and recommender
//! services differ only in their model type and routes.

mod artifact_source;
pub mod cache;
pub mod metrics;
pub mod model_server;
pub mod routing;
pub mod selection;
pub mod shadow;
pub mod slots;

pub use metrics::ServingMetrics;
pub use model_server::ModelServer;
pub use routing::Variant;
pub use selection::{Selector, ServingSettings};
pub use shadow::ShadowRunner;
pub use slots::{Loaded, ModelSlots, Role, ServableModel, SlotStatus};

use std::sync::Arc;

use actix_web::{HttpResponse, web};

/// Mounts `GET /v1/models`: the model's slots (versions, digests, roles, traffic split).
pub fn configure_models<M: ServableModel>(cfg: &mut web::ServiceConfig, slots: Arc<ModelSlots<M>>) {
    cfg.route(
        "/v1/models",
        web::get().to(move || {
            let slots = slots.clone();
            async move {
                HttpResponse::Ok().json(serde_json::json!({
                    "model": slots.model(),
                    "slots": slots.status(),
                }))
            }
        }),
    );
}
