//! `GET /v1/items/{item_id}/similar`: the nearest items in factor space.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use shared_lib::http::{ServedBy, key_or_request_id};

use super::{AppState, ListQuery};
use crate::error::Error;
use crate::ids::{ItemId, UserId};
use crate::recommend::{Item, similar};

#[derive(Debug, Serialize)]
struct SimilarAnswer {
    model: String,
    version: u32,
    variant: shared_lib::serving::Variant,
    item_id: ItemId,
    items: Vec<Item>,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/items/{item_id}/similar", web::get().to(similar_items));
}

async fn similar_items(
    path: web::Path<ItemId>,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let item_id = path.into_inner();
    let query = query.into_inner();
    let key = key_or_request_id(query.user_id.as_ref().map(UserId::as_str));
    let options = query.options(state.max_n)?;
    let (loaded, variant) = state.slots.route(&key).ok_or(Error::NotReady)?;
    let scoring = loaded.clone();
    let item = item_id.clone();
    let permit = state.scoring.acquire().await?;
    let items = web::block(move || similar(&scoring.model.0, &item, &options))
        .await
        .map_err(|e| Error::Scoring(e.to_string()))??;
    drop(permit);
    ServedBy {
        model: state.slots.model_label(),
        version: Arc::clone(&loaded.version_label),
        variant: variant.as_str().into(),
    }
    .record();
    Ok(HttpResponse::Ok().json(SimilarAnswer {
        model: state.slots.model().to_string(),
        version: loaded.manifest.version.get(),
        variant,
        item_id,
        items,
    }))
}
