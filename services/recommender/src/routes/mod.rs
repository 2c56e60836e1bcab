//! One file per resource; each ends in `configure`. Shared request parsing lives here.

pub mod events;
pub mod recommendations;
pub mod similar;

use std::sync::Arc;

use serde::Deserialize;
use shared_lib::serving::{ModelSlots, ShadowRunner};

use crate::clicks::ClickStore;
use crate::drift::DriftGauges;
use crate::error::Error;
use crate::ids::{Allow, Exclude, IdList, UserId, comma_separated};
use crate::model::Recommender;
use crate::recommend::{ColdStart, Options, TopN};
use crate::scoring::ScoringLimiter;

/// The OpenAPI document, `services/recommender/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

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

/// The query of the GET endpoints: `n`, comma-separated `exclude` and `allow`, `cold_start`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub n: Option<usize>,
    #[serde(default, deserialize_with = "comma_separated")]
    pub exclude: Option<IdList<Exclude>>,
    #[serde(default, deserialize_with = "comma_separated")]
    pub allow: Option<IdList<Allow>>,
    pub cold_start: Option<ColdStart>,
    /// Only for A/B routing of item-based endpoints.
    pub user_id: Option<UserId>,
}

impl ListQuery {
    /// The options of the request; the ids are already checked, `n` is checked here against
    /// the service's `MAX_N`.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when `n` is out of range.
    pub fn options(self, max_n: usize) -> Result<Options, Error> {
        Ok(Options {
            n: TopN::new(self.n, max_n)?,
            exclude: self.exclude.unwrap_or_default(),
            allow: self.allow,
            cold_start: self.cold_start.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::web::Query;

    use super::*;
    use crate::ids::ItemId;

    fn ids<F>(list: &IdList<F>) -> Vec<&str> {
        list.as_slice().iter().map(ItemId::as_str).collect()
    }

    #[test]
    fn the_query_parses_its_ids_and_lists_once() {
        let query = Query::<ListQuery>::from_query("n=3&exclude=a1,,%20a2&allow=&user_id=bob")
            .unwrap()
            .into_inner();
        assert_eq!(query.user_id.as_ref().map(UserId::as_str), Some("bob"));
        let options = query.options(100).unwrap();
        assert_eq!(options.n.get(), 3);
        assert_eq!(ids(&options.exclude), ["a1", "a2"]);
        assert_eq!(
            options.allow.as_ref().map(ids),
            Some(vec![]),
            "an empty allow list"
        );
        let options = Query::<ListQuery>::from_query("")
            .unwrap()
            .into_inner()
            .options(100)
            .unwrap();
        assert_eq!(options.n.get(), 10);
        assert!(options.exclude.as_slice().is_empty() && options.allow.is_none());
    }

    #[test]
    fn a_bad_query_is_refused_naming_the_parameter() {
        let refused = [
            (
                "exclude=a1,%01",
                "exclude must have 1-128 printable characters",
            ),
            ("allow=%7F", "allow must have 1-128 printable characters"),
            ("user_id=", "user_id must have 1-128 printable characters"),
        ];
        for (query, message) in refused {
            let error = Query::<ListQuery>::from_query(query).unwrap_err();
            assert!(error.to_string().contains(message), "{query}: {error}");
        }
        let error = Query::<ListQuery>::from_query("n=0")
            .unwrap()
            .into_inner()
            .options(100)
            .unwrap_err();
        assert_eq!(error.to_string(), "n must be from 1 to 100, not 0");
    }
}
