//! One file per resource; each ends in `configure`.

pub mod classify;

/// The OpenAPI document, `services/fraud/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

use std::sync::Arc;

use shared_lib::serving::{ModelSlots, ShadowRunner};

use crate::model::Classifier;

/// What the handlers share.
pub struct AppState {
    pub slots: Arc<ModelSlots<Classifier>>,
    pub shadow: ShadowRunner,
    pub max_batch_rows: usize,
}
