//! The storage layer: the object store and the model registry kept in it.
//!
//! - [`store`]: the object store (local directory or S3) that is the source of truth;
//! - [`registry`]: versions, manifests and aliases on top of the store.
//!
//! Below: `suite-models` (ids, artifacts, manifests, the [`Error`] type) and `suite-settings`
//! (the store's location comes from the environment). Above: `shared-lib`, the service kit,
//! and the trainer, which publishes straight into a store. No web server or telemetry
//! exporter here: the trainer links this without either.

pub mod registry;
pub mod store;

pub use suite_models::{BoxError, Error, error_chain};
