//! The service kit: what the three services share on top of the lower layers, re-exported here
//! so a service needs one dependency and one path.
//!
//! The layers, each a crate in `shared-lib/` whose dependencies the compiler checks:
//! 1. `suite-models` (`shared-lib/models`): [`model_id`], [`artifact`], [`models`] (forest,
//!    ALS, drift, request features) and [`Error`]; no I/O, no async runtime, no web;
//! 2. `suite-settings` (`shared-lib/settings`): [`settings`], environment variables in, every
//!    problem reported by name;
//! 3. `suite-storage` (`shared-lib/storage`): [`store`] (local directory or S3) and
//!    [`registry`] (versions, manifests, aliases); tokio and aws-sdk-s3, no web, no telemetry;
//! 4. `suite-telemetry` (`shared-lib/telemetry`): [`telemetry`], JSON logs and OpenTelemetry
//!    traces; no web;
//! 5. this crate, the only one with actix-web:
//!    - [`http`]: the actix-web pieces every service mounts (errors, request ids, health, metrics);
//!    - [`application`]: the settings and start-up every service binary shares (an [`application::Application`]);
//!    - [`healthcheck`]: `<binary> healthcheck`, the container health check of a distroless image;
//!    - [`serving`]: version selection, A/B and shadow routing, hot reload of models;
//!    - `testing` (feature): an in-process S3 server for tests.
//!
//! Training code lives in the trainer, which depends on layers 1 to 4 only; only the served
//! formats and their scoring live here.

pub mod application;
pub mod healthcheck;
pub mod http;
pub mod serving;
#[cfg(feature = "testing")]
pub mod testing;

pub use suite_models::{BoxError, Error, artifact, error_chain, model_id};
pub use suite_settings as settings;
pub use suite_storage::{registry, store};
pub use suite_telemetry as telemetry;

/// The served model formats (fraud tree ensemble, ALS factors, drift profile) and their
/// scoring, from `suite-models`.
pub mod models {
    pub use suite_models::{als, drift, features, forest};
}
