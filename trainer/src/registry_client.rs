//! The registry as the trainer reaches it: straight in a model store, or through the registry
//! service's HTTP API ([`RegistryClient`]).
//!
//! With `REGISTRY_URL` set (the normal case on S3), every read and write goes through the
//! registry's HTTP API with `REGISTRY_TOKEN`, sent as a bearer token on every request, the
//! champion's artifact download included: the registry is the single writer of registry
//! metadata, so the trainer needs no store credentials at all. Its credential needs the
//! scopes `read` (the champion's manifest and artifact), `publish` and `promote` (the quality
//! gate moves `production`); the registry records its identity as the actor. Without it the trainer opens
//! `MODEL_STORE` itself, which is safe for a local directory (create-new is `link(2)`), and for
//! S3 stores that honour conditional writes.
//!
//! Through the API a version is published in two calls: the artifact's bytes go up as the raw
//! body of `PUT /v1/models/{model}/artifacts/{sha256}` (no copy, no base64), then
//! `POST /v1/models/{model}/versions` registers the manifest naming that sha256. A champion's
//! artifact, read either way, is decoded as it arrives and hashed as it passes, and the model is
//! refused unless size and sha256 match the manifest (`decode_artifact_from`, as the services
//! load): the trainer never holds a champion's artifact whole beside its model.

use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::json;
use suite_models::artifact::{EncodedArtifact, ModelKind};
use suite_models::model_id::{AliasName, ModelName, ModelVersion};
use suite_storage::registry::manifest::{Manifest, NewVersion};
use suite_storage::registry::{Change, Registry};
use suite_storage::store::{ObjectStream, decode_streamed};

use crate::Error;

/// The registry, reached one way or the other: where champions are read and versions published.
#[derive(Clone)]
pub enum ModelRegistry {
    Store(Registry),
    Api(RegistryClient),
}

impl From<Registry> for ModelRegistry {
    fn from(registry: Registry) -> Self {
        Self::Store(registry)
    }
}

/// The outcome of an alias move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveOutcome {
    Moved,
    /// Someone else moved the alias first (compare-and-swap lost); nothing changed.
    Conflict(String),
}

impl ModelRegistry {
    /// The version `alias` points to, or `None` if the model or alias does not exist.
    ///
    /// # Errors
    /// Store or registry failures.
    pub async fn resolve_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
    ) -> Result<Option<ModelVersion>, Error> {
        match self {
            Self::Store(r) => match r.resolve_alias(model, alias).await {
                Ok(v) => Ok(Some(v)),
                Err(
                    suite_models::Error::UnknownAlias { .. }
                    | suite_models::Error::UnknownModel { .. },
                ) => Ok(None),
                Err(e) => Err(e.into()),
            },
            Self::Api(c) => c.resolve_alias(model, alias).await,
        }
    }

    /// A version's manifest and its model, verified (sha256, envelope, kind), if its kind is
    /// one of `kinds`.
    ///
    /// # Errors
    /// Store, registry or artifact errors; [`suite_models::Error::WrongModelKind`] for other kinds.
    pub async fn load<T: DeserializeOwned + Send + 'static>(
        &self,
        model: &ModelName,
        version: ModelVersion,
        kinds: &[ModelKind],
    ) -> Result<(Manifest, T), Error> {
        let manifest = match self {
            Self::Store(r) => r.manifest(model, version).await?,
            Self::Api(c) => c.manifest(model, version).await?,
        };
        let kind = manifest.artifact.kind;
        if !kinds.contains(&kind) {
            return Err(suite_models::Error::WrongModelKind {
                expected: kinds.first().copied().unwrap_or(kind),
                found: kind,
            }
            .into());
        }
        let loaded = match self {
            Self::Store(r) => r.load_model(&manifest, kind).await?,
            Self::Api(c) => {
                decode_streamed(c.artifact(&manifest).await?, &manifest.artifact, kind).await?
            }
        };
        Ok((manifest, loaded))
    }

    /// The registry when publishing straight into a store (tests read it back directly).
    pub fn as_store(&self) -> Option<&Registry> {
        match self {
            Self::Store(r) => Some(r),
            Self::Api(_) => None,
        }
    }

    /// Publishes a new version.
    ///
    /// # Errors
    /// Store or registry failures, invalid manifests or artifacts.
    pub async fn publish(
        &self,
        draft: NewVersion,
        artifact: EncodedArtifact,
    ) -> Result<Manifest, Error> {
        match self {
            Self::Store(r) => Ok(r
                .publish(draft, Bytes::from(artifact.bytes), Some(&artifact.digest))
                .await?),
            Self::Api(c) => c.register(&draft, artifact).await,
        }
    }

    /// Moves `alias` to `to` if it holds `expected`.
    ///
    /// # Errors
    /// Failures other than a lost compare-and-swap.
    pub async fn move_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        to: ModelVersion,
        expected: Option<ModelVersion>,
        change: &Change<'_>,
    ) -> Result<MoveOutcome, Error> {
        match self {
            Self::Store(r) => match r.move_alias(model, alias, to, expected, change).await {
                Ok(_) => Ok(MoveOutcome::Moved),
                Err(e @ suite_models::Error::AliasConflict { .. }) => {
                    Ok(MoveOutcome::Conflict(e.to_string()))
                }
                Err(e) => Err(e.into()),
            },
            Self::Api(c) => c.move_alias(model, alias, to, expected, change).await,
        }
    }
}

/// A client of the registry service's HTTP API.
#[derive(Clone)]
pub struct RegistryClient {
    base: String,
    token: SecretString,
    http: reqwest::Client,
}

impl RegistryClient {
    pub fn new(base_url: &str, token: SecretString) -> Self {
        // reqwest has no rustls provider of its own: install ring's first (once per process).
        suite_telemetry::install_tls_provider();
        Self {
            base: base_url.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(300))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Polls `GET /readyz` once a second until the registry answers 200, for at most
    /// `within`: a trainer started beside its registry (compose, a fresh namespace) waits for it
    /// instead of failing, and a registry that never comes up gives one clear error.
    ///
    /// # Errors
    /// [`Error::Registry`] (exit code 4) naming the URL, how long it waited and the last answer.
    pub async fn wait_ready(&self, within: std::time::Duration) -> Result<(), Error> {
        let started = std::time::Instant::now();
        let mut attempts = 0_u32;
        loop {
            attempts += 1;
            let last = match self
                .http
                .get(self.url("/readyz"))
                .timeout(std::time::Duration::from_secs(5))
                .send()
                .await
            {
                Ok(res) if res.status().is_success() => {
                    if attempts > 1 {
                        tracing::info!(registry = %self.base, attempts, "Registry is ready.");
                    }
                    return Ok(());
                }
                Ok(res) => format!("/readyz answered {}", res.status()),
                Err(e) => suite_models::error_chain(&e),
            };
            if started.elapsed() + std::time::Duration::from_secs(1) > within {
                return Err(Error::Registry {
                    status: None,
                    message: format!(
                        "registry at {} not ready after {} s ({attempts} attempts; \
                         REGISTRY_WAIT_SECONDS={}): {last}",
                        self.base,
                        started.elapsed().as_secs(),
                        within.as_secs()
                    ),
                });
            }
            tracing::info!(registry = %self.base, reason = %last, "Waiting for the registry.");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, Error> {
        request
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(|e| Error::Registry {
                status: None,
                message: format!("registry at {} unreachable: {e}", self.base),
            })
    }

    async fn check(response: reqwest::Response) -> Result<reqwest::Response, Error> {
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("no error message")
            .to_owned();
        Err(Error::Registry {
            status: Some(status),
            message,
        })
    }

    async fn json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, Error> {
        response.json().await.map_err(|e| Error::Registry {
            status: None,
            message: format!("unexpected registry response: {e}"),
        })
    }

    async fn resolve_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
    ) -> Result<Option<ModelVersion>, Error> {
        let res = self
            .send(
                self.http
                    .get(self.url(&format!("/v1/models/{model}/aliases/{alias}"))),
            )
            .await?;
        if res.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let record: serde_json::Value = Self::json(Self::check(res).await?).await?;
        let version = record["version"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .map(ModelVersion::new);
        Ok(version.transpose()?)
    }

    async fn manifest(&self, model: &ModelName, version: ModelVersion) -> Result<Manifest, Error> {
        let res = self
            .send(
                self.http
                    .get(self.url(&format!("/v1/models/{model}/versions/{version}"))),
            )
            .await?;
        let body: serde_json::Value = Self::json(Self::check(res).await?).await?;
        serde_json::from_value(body["manifest"].clone()).map_err(|e| Error::Registry {
            status: None,
            message: format!("unexpected manifest from the registry: {e}"),
        })
    }

    /// The artifact of `manifest`'s version as the registry sends it, unverified: the reader
    /// checks its size and sha256 as it decodes it (`decode_artifact_from`).
    async fn artifact(&self, manifest: &Manifest) -> Result<ObjectStream, Error> {
        let path = format!(
            "/v1/models/{}/versions/{}/artifact",
            manifest.model, manifest.version
        );
        let res = Self::check(self.send(self.http.get(self.url(&path))).await?).await?;
        Ok(Box::pin(futures_util::stream::try_unfold(
            res,
            |mut res| async move {
                match res.chunk().await {
                    Ok(Some(chunk)) => Ok(Some((chunk, res))),
                    Ok(None) => Ok(None),
                    Err(e) => Err(std::io::Error::other(format!(
                        "the artifact download from the registry failed: {e}"
                    ))),
                }
            },
        )))
    }

    /// Uploads the artifact (its bytes move into the request body, uncopied), then registers
    /// the version naming it.
    async fn register(
        &self,
        draft: &NewVersion,
        artifact: EncodedArtifact,
    ) -> Result<Manifest, Error> {
        let sha256 = artifact.digest.to_string();
        let upload = format!("/v1/models/{}/artifacts/{sha256}", draft.model);
        let res = self
            .send(
                self.http
                    .put(self.url(&upload))
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(artifact.bytes),
            )
            .await?;
        Self::check(res).await?;
        let mut fields = serde_json::to_value(draft).map_err(|e| Error::Training(e.to_string()))?;
        if let Some(map) = fields.as_object_mut() {
            map.remove("model");
        }
        let body = json!({ "manifest": fields, "artifact_sha256": sha256 });
        let path = format!("/v1/models/{}/versions", draft.model);
        let res = self
            .send(self.http.post(self.url(&path)).json(&body))
            .await?;
        Self::json(Self::check(res).await?).await
    }

    async fn move_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        to: ModelVersion,
        expected: Option<ModelVersion>,
        change: &Change<'_>,
    ) -> Result<MoveOutcome, Error> {
        let body = json!({
            "version": to,
            "expected_version": expected,
            "reason": change.reason,
            "actor": change.actor,
        });
        let res = self
            .send(
                self.http
                    .put(self.url(&format!("/v1/models/{model}/aliases/{alias}")))
                    .json(&body),
            )
            .await?;
        match Self::check(res).await {
            Ok(_) => Ok(MoveOutcome::Moved),
            Err(Error::Registry {
                status: Some(409),
                message,
            }) => Ok(MoveOutcome::Conflict(message)),
            Err(e) => Err(e),
        }
    }
}
