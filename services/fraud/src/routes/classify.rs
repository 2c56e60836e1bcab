//! `GET /classify` (the classic drop-in) and `POST /v1/classify` (batches with probabilities).

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use shared_lib::http::{ServedBy, key_or_request_id, with_request_id};
use shared_lib::serving::{Loaded, Variant};

use super::AppState;
use crate::error::Error;
use crate::features::{
    FeatureRow, key_in_json, key_in_query, query_pairs, row_from_json, row_from_query,
};
use crate::model::Classifier;

pub fn configure(cfg: &mut web::ServiceConfig, max_body_bytes: usize) {
    cfg.route("/classify", web::get().to(classify_one)).service(
        web::resource("/v1/classify")
            .app_data(shared_lib::http::json_config(max_body_bytes))
            .route(web::post().to(classify_batch)),
    );
}

/// The version and variant for one request keyed as [`key_or_request_id`] says, without
/// copying the request id.
fn route_request(
    state: &AppState,
    explicit: Option<&str>,
) -> Option<(Arc<Loaded<Classifier>>, Variant)> {
    match explicit {
        Some(key) => state.slots.route(key),
        None => with_request_id(|id| state.slots.route(id)),
    }
}

/// One scored row.
struct Scored {
    class: u8,
    probability: f64,
}

/// Scores `row` with `loaded` served as `variant`, labelling metrics with its version label.
fn score(
    state: &AppState,
    loaded: &Arc<Loaded<Classifier>>,
    variant: Variant,
    row: &FeatureRow,
) -> Scored {
    let model = &loaded.model.0;
    let probability = model.predict_proba(row.values());
    let class = model.class_of(probability);
    let metrics = state.slots.metrics();
    let name = state.slots.model().as_str();
    let version = &*loaded.version_label;
    metrics.observe_score(name, version, variant.as_str(), probability);
    if let Some(drift) = &loaded.model.1
        && let Some(reading) = drift.observe(probability, row.values())
    {
        metrics.record_drift(name, version, variant.as_str(), &reading);
    }
    if let Some(shadow) = state.slots.shadow() {
        let row = row.clone();
        state.shadow.submit(move || {
            let model = &shadow.model.0;
            if model.n_features() != row.values().len() {
                return Err(shared_lib::Error::CorruptArtifact {
                    reason: "the shadow model has another feature count".into(),
                });
            }
            Ok(model.class_of(model.predict_proba(row.values())) == class)
        });
    }
    Scored { class, probability }
}

fn served_by(state: &AppState, loaded: &Loaded<Classifier>, variant: Variant) -> ServedBy {
    ServedBy {
        model: state.slots.model_label(),
        version: Arc::clone(&loaded.version_label),
        variant: variant.as_str().into(),
    }
}

/// `GET /classify?f1=..&f2=..&f3=..` → `[class]`, exactly as the classic service answers.
async fn classify_one(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let query = query_pairs(req.query_string());
    let (loaded, variant) = route_request(&state, key_in_query(&query)).ok_or(Error::NotReady)?;
    let (row, _) = row_from_query(&query, loaded.model.0.feature_names())?;
    let scored = score(&state, &loaded, variant, &row);
    served_by(&state, &loaded, variant).record();
    Ok(HttpResponse::Ok().json([scored.class]))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    instances: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct Prediction {
    class: u8,
    probability: f64,
    version: u32,
    variant: Variant,
}

#[derive(Debug, Serialize)]
struct BatchResponse {
    model: String,
    predictions: Vec<Prediction>,
}

/// `POST /v1/classify` with `{"instances": [[..], {..}, ...]}`: per row, class, P(fraud),
/// version and variant. Rows with a `card_id`/`user_id` are routed by it.
async fn classify_batch(
    body: web::Json<BatchRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let instances = body.into_inner().instances;
    if instances.is_empty() {
        return Err(Error::EmptyBatch);
    }
    if instances.len() > state.max_batch_rows {
        return Err(Error::BatchTooLarge {
            rows: instances.len(),
            limit: state.max_batch_rows,
        });
    }
    let request_key = key_or_request_id(None);
    let mut routed = Vec::with_capacity(instances.len());
    for (index, instance) in instances.iter().enumerate() {
        let key = key_in_json(instance).unwrap_or_else(|| request_key.clone());
        let (loaded, variant) = state.slots.route(&key).ok_or(Error::NotReady)?;
        let (row, _) = row_from_json(instance, loaded.model.0.feature_names())
            .map_err(|source| Error::BatchRow { index, source })?;
        routed.push((loaded, variant, row));
    }
    let scoring_state = state.clone();
    let predictions = web::block(move || {
        routed
            .iter()
            .map(|(loaded, variant, row)| {
                let s = score(&scoring_state, loaded, *variant, row);
                (loaded.manifest.version.get(), *variant, s)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| {
        Error::Library(shared_lib::Error::Telemetry {
            reason: e.to_string(),
        })
    })?;

    let versions: BTreeSet<String> = predictions.iter().map(|(v, _, _)| v.to_string()).collect();
    let variants: BTreeSet<&str> = predictions.iter().map(|(_, v, _)| v.as_str()).collect();
    ServedBy {
        model: state.slots.model_label(),
        version: versions.into_iter().collect::<Vec<_>>().join(",").into(),
        variant: variants.into_iter().collect::<Vec<_>>().join(",").into(),
    }
    .record();
    Ok(HttpResponse::Ok().json(BatchResponse {
        model: state.slots.model().to_string(),
        predictions: predictions
            .into_iter()
            .map(|(version, variant, s)| Prediction {
                class: s.class,
                probability: s.probability,
                version,
                variant,
            })
            .collect(),
    }))
}
