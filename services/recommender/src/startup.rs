//! Building the service from its settings: store, registry, slots, routes, server.

use actix_web::web;
use prometheus::IntCounter;
use shared_lib::application::Application;
use shared_lib::http::register_metric;
use shared_lib::serving::ModelServer;

use crate::auth::EventsToken;
use crate::clicks::ClickStore;
use crate::drift::DriftGauges;
use crate::model::{LoadConfig, Recommender};
use crate::routes::{self, AppState};
use crate::scoring::ScoringLimiter;
use crate::{SERVICE, Settings};

/// Opens the store, starts following the selected versions in the background (not ready until
/// the primary loads), and binds the server.
///
/// # Errors
/// When the store location cannot be opened, metrics cannot be registered or the address cannot
/// be bound.
pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
    build_with_limiter(settings, ScoringLimiter::new(settings.scoring.clone())).await
}

/// [`build`] with a given scoring bound, which the caller may share (tests fill it to see 503s).
///
/// # Errors
/// As [`build`].
pub async fn build_with_limiter(
    settings: &Settings,
    scoring: ScoringLimiter,
) -> anyhow::Result<Application> {
    let search = settings.search;
    let server = ModelServer::<Recommender>::start(
        SERVICE,
        &settings.common,
        &settings.serving,
        |metrics| LoadConfig::new(search, metrics.registry()),
    )
    .await?;
    let factor_bytes = register_metric(
        server.metrics.registry(),
        IntCounter::new(
            "recommender_factor_bytes_read_total",
            "Bytes of item factors (f32, int8 codes and scales) read by the scans of \
             recommendation requests, counted by the scans.",
        ),
    )?;
    let state = web::Data::new(AppState {
        slots: server.slots.clone(),
        clicks: ClickStore::open(&settings.clicks, server.metrics.registry())?,
        shadow: server.shadow.clone(),
        max_n: settings.max_n,
        max_batch_users: settings.max_batch_users,
        max_click_weight: settings.max_click_weight,
        scoring,
        factor_bytes,
        drift: DriftGauges::register(server.metrics.registry())?,
    });
    let events_token = web::Data::new(EventsToken::new(settings.events_token.as_ref()));
    let max_body = settings.serving.max_body_bytes;
    Ok(
        server.serve(&settings.common, routes::OPENAPI_JSON, move |cfg| {
            cfg.app_data(state.clone()).app_data(events_token.clone());
            routes::recommendations::configure(cfg, max_body);
            routes::similar::configure(cfg);
            routes::events::configure(cfg);
        })?,
    )
}
