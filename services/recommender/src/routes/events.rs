//! `POST /v1/users/{user_id}/events`: recent clicks, used at once by the next recommendations.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::auth::EventsAuth;
use crate::clicks::NewClick;
use crate::error::Error;
use crate::ids::{ItemId, UserId};

/// Most events in one request.
const MAX_EVENTS: usize = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/users/{user_id}/events", web::post().to(record_events));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    item_id: ItemId,
    /// A rating (explicit models) or an interaction strength (implicit); default: a top rating
    /// or one interaction.
    weight: Option<f32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsRequest {
    events: Vec<Event>,
}

/// `EventsAuth` comes first: it refuses a request without the token before the body is read.
async fn record_events(
    _auth: EventsAuth,
    path: web::Path<UserId>,
    body: web::Json<EventsRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let user_id = path.into_inner();
    let events = body.into_inner().events;
    if events.is_empty() || events.len() > MAX_EVENTS {
        return Err(Error::InvalidRequest(format!(
            "events must have 1 to {MAX_EVENTS} entries"
        )));
    }
    let (loaded, _) = state.slots.route(user_id.as_str()).ok_or(Error::NotReady)?;
    let mut unknown = Vec::new();
    for e in &events {
        check_weight(e, state.max_click_weight)?;
        if loaded.model.0.item_index(e.item_id.as_str()).is_none() {
            unknown.push(e.item_id.to_string());
        }
    }
    if !unknown.is_empty() {
        return Err(Error::UnknownItems(unknown));
    }
    let accepted = events.len();
    let clicks: Vec<NewClick> = events
        .into_iter()
        .map(|e| NewClick {
            item_id: e.item_id,
            weight: e.weight,
        })
        .collect();
    state.clicks.record(&user_id, &clicks).await?;
    Ok(HttpResponse::Accepted().json(json!({ "user_id": user_id, "accepted": accepted })))
}

fn check_weight(event: &Event, max: f32) -> Result<(), Error> {
    match event.weight {
        Some(w) if !w.is_finite() || w <= 0.0 => Err(Error::InvalidRequest(format!(
            "the weight of {} must be a positive number",
            event.item_id
        ))),
        Some(w) if w > max => Err(Error::InvalidRequest(format!(
            "the weight of {} is {w}; the maximum is {max} (MAX_CLICK_WEIGHT)",
            event.item_id
        ))),
        Some(_) | None => Ok(()),
    }
}
