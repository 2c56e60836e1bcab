//! The bottom layer of the suite: model formats as served, plain data plus the maths to score
//! them, with no I/O, no async runtime and no web, cloud or telemetry dependencies. Trainers
//! produce these; services load them from artifacts and score them; fuzz targets parse them.
//!
//! - [`model_id`]: model names, versions and alias names, parsed once;
//! - [`object_key`]: the checked key under which the object store keeps a thing;
//! - [`artifact`]: the checked envelope around a serialised model;
//! - [`manifest`]: the JSON document that describes one published version (its feature
//!   schema, metrics, gate decision and artifact reference);
//! - [`forest`], [`als`], [`drift`]: the fraud tree ensemble, the ALS recommender and the
//!   drift profile, with their scoring;
//! - [`features`]: request input (query pairs or JSON) turned into a forest's feature row;
//! - [`Error`]: the one error type of every library layer above this one too.
//!
//! Layers above: `suite-settings`, `suite-storage` (object store and registry core),
//! `suite-telemetry`, and `shared-lib` (the service kit). None of them is visible from here.

pub mod als;
pub mod artifact;
pub mod drift;
mod error;
pub mod features;
pub mod forest;
pub mod manifest;
pub mod model_id;
pub mod object_key;

pub use error::{BoxError, Error, error_chain};
