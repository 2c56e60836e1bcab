//! What every service and the trainer share.
//!
//! - [`store`]: the object store (local directory or S3) that is the source of truth;
//! - [`artifact`]: the checked envelope around a serialised model;
//! - [`registry`]: versions, manifests and aliases on top of the store;
//! - [`models`]: the served model formats (fraud tree ensemble, ALS factors) and their scoring;
//! - [`settings`]: environment variables in, every problem reported by name;
//! - [`telemetry`]: JSON logs and OpenTelemetry traces;
//! - [`http`]: the actix-web pieces every service mounts (errors, request ids, health, metrics);
//! - [`application`]: the settings and start-up every service binary shares (an [`application::Application`]);
//! - [`healthcheck`]: `<binary> healthcheck`, the container health check of a distroless image;
//! - [`serving`]: version selection, A/B and shadow routing, hot reload of models;
//! - `testing` (feature): an in-process S3 server for tests.
//!
//! Training code lives in the trainer; only the served formats and their scoring live here.

pub mod application;
pub mod artifact;
mod error;
pub mod healthcheck;
pub mod http;
pub mod model_id;
pub mod models;
pub mod registry;
pub mod serving;
pub mod settings;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{BoxError, Error, error_chain};
