//! Versions: list, read, download (streamed), register (then retention, when configured),
//! archive.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use shared_lib::artifact::ArtifactDigest;
use shared_lib::model_id::{ModelName, ModelVersion};
use shared_lib::models::drift::DriftProfile;
use shared_lib::registry::manifest::{
    DataFingerprint, FeatureSchema, GateDecision, HeldOutRule, NewVersion,
};

use super::{AppState, ChangeRequest};
use crate::auth::{Archive, Caller, Publish, Read, Reader};
use crate::error::Error;
use crate::{catalog, retention};

/// The largest registration body: manifest fields only (the artifact is uploaded before, by
/// `PUT .../artifacts/{sha256}`); generous for parameters, metrics and a feature schema.
pub const REGISTER_JSON_LIMIT: usize = 1024 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/models/{model}/versions")
            .app_data(shared_lib::http::json_config(REGISTER_JSON_LIMIT))
            .route(web::get().to(list_versions))
            .route(web::post().to(register_version)),
    )
    .route(
        "/v1/models/{model}/versions/{version}",
        web::get().to(get_version),
    )
    .route(
        "/v1/models/{model}/versions/{version}/artifact",
        web::get().to(download_artifact),
    )
    .route(
        "/v1/models/{model}/versions/{version}/archive",
        web::post().to(archive_version),
    );
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// `active`, `archived`, `deleted` or `all` (default).
    status: Option<String>,
    /// Only versions this alias points to.
    alias: Option<String>,
    /// `desc` (newest first, default) or `asc`.
    order: Option<String>,
    page_size: Option<usize>,
    /// The `next_page_token` of the previous page.
    page_token: Option<ModelVersion>,
}

async fn list_versions(
    _: Reader,
    path: web::Path<ModelName>,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let q = query.into_inner();
    let status = q.status.as_deref().unwrap_or("all");
    if !matches!(status, "all" | "active" | "archived" | "deleted") {
        return Err(Error::BadRequest(format!(
            "status must be active, archived, deleted or all, not {status:?}"
        )));
    }
    let descending = match q.order.as_deref().unwrap_or("desc") {
        "desc" => true,
        "asc" => false,
        other => {
            return Err(Error::BadRequest(format!(
                "order must be asc or desc, not {other:?}"
            )));
        }
    };
    let page_size = q.page_size.unwrap_or(50);
    if !(1..=500).contains(&page_size) {
        return Err(Error::BadRequest("page_size must be from 1 to 500".into()));
    }
    let (mut versions, _) = catalog::versions(&state, &path).await?;
    versions.retain(|v| status == "all" || v.status == status);
    if let Some(alias) = &q.alias {
        versions.retain(|v| v.aliases.iter().any(|a| a == alias));
    }
    if descending {
        versions.reverse();
    }
    if let Some(after) = q.page_token {
        versions.retain(|v| {
            if descending {
                v.version < after
            } else {
                v.version > after
            }
        });
    }
    let next_page_token = (versions.len() > page_size).then(|| versions[page_size - 1].version);
    versions.truncate(page_size);
    Ok(HttpResponse::Ok().json(json!({
        "model": path.into_inner(),
        "versions": versions,
        "next_page_token": next_page_token,
    })))
}

async fn get_version(
    _: Reader,
    path: web::Path<(ModelName, ModelVersion)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let (model, version) = path.into_inner();
    let manifest = state
        .index
        .manifest(&state.registry, &model, version)
        .await?;
    let listed = state
        .registry
        .list_versions(&model)
        .await?
        .into_iter()
        .find(|s| s.version == version);
    let aliases: Vec<String> = state
        .registry
        .list_aliases(&model)
        .await?
        .into_iter()
        .filter(|a| a.version == version)
        .map(|a| a.alias.to_string())
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "manifest": manifest.as_ref(),
        "status": listed.as_ref().map_or("active", |s| s.status().as_str()),
        "kept": listed.is_some_and(|s| s.kept),
        "aliases": aliases,
    })))
}

/// Downloads need the `read` scope whatever `REGISTRY_READ_AUTH` says: an artifact can hold
/// personal data (the recommender's holds every shopper's history).
async fn download_artifact(
    _: Caller<Read>,
    path: web::Path<(ModelName, ModelVersion)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let (model, version) = path.into_inner();
    let manifest = state
        .index
        .manifest(&state.registry, &model, version)
        .await?;
    let artifact = state.registry.open_artifact(&manifest).await?;
    // The size is known, so the download has a Content-Length rather than chunks; the stream
    // is cut if the bytes do not match the manifest's sha256, which the client checks too.
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("x-artifact-sha256", manifest.artifact.sha256.to_string()))
        .no_chunking(artifact.size)
        .streaming(artifact.stream))
}

/// The manifest fields a registration supplies (the model comes from the path).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFields {
    run_id: uuid::Uuid,
    algorithm: String,
    #[serde(default)]
    parameters: std::collections::BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    feature_schema: FeatureSchema,
    #[serde(default)]
    training_data: DataFingerprint,
    #[serde(default)]
    metrics: std::collections::BTreeMap<String, f64>,
    trainer_version: String,
    /// Accepted from older clients and ignored: `created_by` is the caller's identity.
    #[serde(default)]
    #[expect(dead_code, reason = "accepted from older clients and ignored")]
    created_by: Option<String>,
    #[serde(default)]
    gate: Option<GateDecision>,
    #[serde(default)]
    held_out: Option<HeldOutRule>,
    #[serde(default)]
    drift: Option<DriftProfile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    manifest: ManifestFields,
    /// sha256 of the artifact, hex, uploaded before with `PUT .../artifacts/{sha256}`.
    artifact_sha256: ArtifactDigest,
}

/// Registers a version whose artifact was uploaded before: the caller (checked before the body
/// is read) needs `publish` and is recorded as `created_by`; the registry re-reads the stored
/// artifact (sha256, size, envelope), then allocates the version and writes the manifest last;
/// answers 201 with the manifest, 409 if the artifact is not in the store.
async fn register_version(
    caller: Caller<Publish>,
    path: web::Path<ModelName>,
    body: web::Json<RegisterRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let body = body.into_inner();
    let m = body.manifest;
    let draft = NewVersion {
        model: path.into_inner(),
        run_id: m.run_id,
        algorithm: m.algorithm,
        parameters: m.parameters,
        feature_schema: m.feature_schema,
        training_data: m.training_data,
        metrics: m.metrics,
        trainer_version: m.trainer_version,
        created_by: caller.name().to_owned(),
        gate: m.gate,
        held_out: m.held_out,
        drift: m.drift,
    };
    let manifest = state
        .registry
        .register(draft, &body.artifact_sha256)
        .await?;
    state.index.remember(std::sync::Arc::new(manifest.clone()));
    retention::after_registration(&state, &manifest.model, manifest.version).await;
    Ok(HttpResponse::Created().json(manifest))
}

async fn archive_version(
    caller: Caller<Archive>,
    path: web::Path<(ModelName, ModelVersion)>,
    body: Option<web::Json<ChangeRequest>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let (model, version) = path.into_inner();
    let body = ChangeRequest::or_default(body);
    let change = body.change(caller.name());
    state
        .registry
        .archive_version(&model, version, &change)
        .await?;
    Ok(
        HttpResponse::Ok()
            .json(json!({ "model": model, "version": version, "status": "archived" })),
    )
}
