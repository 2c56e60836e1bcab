//! One file per resource; each ends in `configure`. Shared request parsing lives here.

pub mod events;
pub mod recommendations;
pub mod similar;

use std::sync::Arc;

use actix_web::{HttpMessage, HttpRequest};
use serde::Deserialize;
use shared_lib::http::RequestId;
use shared_lib::serving::{ModelSlots, ShadowRunner};

use crate::clicks::ClickStore;
use crate::drift::DriftGauges;
use crate::error::Error;
use crate::model::Recommender;
use crate::recommend::{ColdStart, Options};
use crate::scoring::ScoringLimiter;

/// The OpenAPI document, `services/recommender/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// Longest user or item id accepted, in bytes; it bounds the click store's memory.
pub const MAX_ID_LEN: usize = 128;
/// Most ids in an `exclude` or `allow` list.
const MAX_LIST: usize = 1000;

/// What the handlers share.
pub struct AppState {
    pub slots: Arc<ModelSlots<Recommender>>,
    pub clicks: ClickStore,
    pub shadow: ShadowRunner,
    pub max_n: usize,
    pub max_batch_users: usize,
    /// Largest click weight accepted (`MAX_CLICK_WEIGHT`).
    pub max_click_weight: f32,
    /// The bound on concurrent scoring work; every blocking scan takes a permit.
    pub scoring: ScoringLimiter,
    /// Bytes of item factors read by recommendation scans (`recommender_factor_bytes_read_total`).
    pub factor_bytes: prometheus::IntCounter,
    /// The recommender's own drift gauge (the cold-start share).
    pub drift: DriftGauges,
}

/// Checks a user or item id from a path or body.
///
/// # Errors
/// [`Error::InvalidRequest`] for empty, overlong or control-character ids.
pub fn check_id(kind: &str, id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(Error::InvalidRequest(format!(
            "{kind} must have 1-{MAX_ID_LEN} printable characters"
        )));
    }
    Ok(())
}

/// The query of the GET endpoints: `n`, comma-separated `exclude` and `allow`, `cold_start`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub n: Option<usize>,
    pub exclude: Option<String>,
    pub allow: Option<String>,
    pub cold_start: Option<ColdStart>,
    /// Only for A/B routing of item-based endpoints.
    pub user_id: Option<String>,
}

fn split_ids(name: &str, raw: Option<&str>) -> Result<Option<Vec<String>>, Error> {
    let Some(raw) = raw else { return Ok(None) };
    let ids: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    check_list(name, &ids)?;
    Ok(Some(ids))
}

/// # Errors
/// [`Error::InvalidRequest`] for too many or malformed ids.
pub fn check_list(name: &str, ids: &[String]) -> Result<(), Error> {
    if ids.len() > MAX_LIST {
        return Err(Error::InvalidRequest(format!(
            "{name} has {} ids; the limit is {MAX_LIST}",
            ids.len()
        )));
    }
    ids.iter().try_for_each(|id| check_id(name, id))
}

/// # Errors
/// [`Error::InvalidRequest`] when `n` is outside `1..=max_n`.
pub fn check_n(n: Option<usize>, max_n: usize) -> Result<usize, Error> {
    let n = n.unwrap_or(10);
    if n == 0 || n > max_n {
        return Err(Error::InvalidRequest(format!(
            "n must be from 1 to {max_n}, not {n}"
        )));
    }
    Ok(n)
}

impl ListQuery {
    /// # Errors
    /// [`Error::InvalidRequest`] naming the bad parameter.
    pub fn options(&self, max_n: usize) -> Result<Options, Error> {
        Ok(Options {
            n: check_n(self.n, max_n)?,
            exclude: split_ids("exclude", self.exclude.as_deref())?.unwrap_or_default(),
            allow: split_ids("allow", self.allow.as_deref())?,
            cold_start: self.cold_start.unwrap_or_default(),
        })
    }
}

/// The request id, the A/B key of requests without a user.
pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default()
}
