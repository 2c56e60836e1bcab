//! The fraud classifier service.
//!
//! A drop-in for the classic Flask service (`GET /classify?f1=..&f2=..&f3=..` answering `[1]`,
//! `GET /healthz` answering `Healthy`), plus batch scoring with probabilities
//! (`POST /v1/classify`), `GET /v1/models`, A/B and shadow versions and hot reload, all through
//! `shared_lib::serving`. The model is `shared_lib::models::forest::FraudModel`, compiled at load
//! into the `CompiledForest` that scores.

pub mod error;
pub use shared_lib::models::features;
pub mod model;
pub mod routes;
pub mod settings;
pub mod startup;

pub use settings::Settings;
pub use shared_lib::application::Application;
pub use startup::build;

pub const SERVICE: &str = "fraud";
