//! The model registry service: the registry core (`shared_lib::registry`) over HTTP.
//!
//! It is the single writer of registry metadata on S3: every registration and alias move goes
//! through one `Registry`, which serialises them, so publishing and promotion stay safe on
//! stores that ignore conditional writes (Garage). Serving pods only read the bucket; the
//! trainer only holds a registry token. Shaped after MLflow's model registry: models, versions,
//! aliases (with compare-and-swap and one-call rollback), archive, retention (deleted versions
//! stay in the history), history and a web page.

pub mod auth;
pub mod catalog;
pub mod error;
pub mod index;
pub mod retention;
pub mod routes;
pub mod settings;
pub mod startup;

pub use settings::Settings;
pub use shared_lib::application::Application;
pub use startup::build;

pub const SERVICE: &str = "registry";
