//! The recommender service.
//!
//! Storefront recommendations from an ALS model (`shared_lib::models::als`): top-N for a user
//! excluding what they already rated or bought, the "actively shopping users" subset in one
//! call, similar items, and real-time clicks folded into the user's factors at once without
//! retraining. Version selection, A/B, shadow, hot reload, headers, metrics and errors come from
//! `shared_lib`, exactly as in the fraud service.

pub mod auth;
pub mod clicks;
pub mod drift;
pub mod error;
pub mod ids;
pub mod model;
pub mod recommend;
pub mod routes;
pub mod scoring;
pub mod settings;
pub mod startup;

pub use settings::Settings;
pub use shared_lib::application::Application;
pub use startup::build;

pub const SERVICE: &str = "recommender";
