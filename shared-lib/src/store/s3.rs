//! The S3 backend, through aws-sdk-s3 without aws-config (no STS/SSO crates to build).
//!
//! Create-new is a `HEAD` followed by `PutObject` with `If-None-Match: *`. Stores that honour
//! the header (AWS, MinIO, s3s) make it atomic; on stores that ignore it (Garage) the `HEAD`
//! still catches every non-concurrent duplicate and the registry service, as the single
//! writer, serialises the concurrent ones. [`S3Store::probe_conditional_writes`] finds out
//! which kind of store this is.
//!
//! A create-new `PutObject` refused with 412/409 is checked before it is reported as
//! [`Error::ObjectExists`]: the SDK retries a `PUT` whose response was lost (a timeout, a 5xx
//! from a proxy), and if the first attempt had stored the object, the retry is refused by our
//! own write. When the key holds exactly the bytes sent, the write succeeded.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    timeout::TimeoutConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use secrecy::ExposeSecret;

use super::{ConditionalWrites, ObjectKey, PutMode, S3Settings};
use crate::Error;

/// Where [`S3Store::probe_conditional_writes`] writes (below the store prefix): not a key the
/// registry reads, so a probe object left by a crash is harmless; delete it at will.
pub const PROBE_PREFIX: &str = "_probes/conditional-writes";

#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: Option<ObjectKey>,
}

impl S3Store {
    pub fn new(settings: &S3Settings) -> Self {
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .force_path_style(settings.force_path_style)
            // Third-party stores vary in checksum support; send and check them only when required.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            // Fail fast when the store is down, so callers fall back to what they have.
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        config = match &settings.credentials {
            Some(c) => config.credentials_provider(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.expose_secret().to_owned(),
                c.session_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned()),
                None,
                "model-store-settings",
            )),
            None => config.allow_no_auth(),
        };
        Self {
            client: Client::from_conf(config.build()),
            bucket: settings.bucket.clone(),
            prefix: settings.prefix.clone(),
        }
    }

    pub fn describe(&self) -> String {
        match &self.prefix {
            Some(prefix) => format!("s3://{}/{prefix}", self.bucket),
            None => format!("s3://{}", self.bucket),
        }
    }

    fn full_key(&self, key: &ObjectKey) -> String {
        match &self.prefix {
            Some(prefix) => format!("{prefix}/{key}"),
            None => key.to_string(),
        }
    }

    /// Reads one object by its key (below the store prefix, if any), for inputs
    /// that are not in a model store, e.g. training data at `s3://bucket/key`.
    ///
    /// # Errors
    /// [`Error::ObjectNotFound`], [`Error::Store`].
    pub async fn get_object(&self, key: &ObjectKey) -> Result<Bytes, Error> {
        self.get(key).await
    }

    pub(super) async fn get(&self, key: &ObjectKey) -> Result<Bytes, Error> {
        let response = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await;
        match response {
            Ok(output) => output
                .body
                .collect()
                .await
                .map(|data| data.into_bytes())
                .map_err(|e| Error::store("get", key.as_str(), e)),
            Err(e) if is_missing_object(&e) => Err(Error::ObjectNotFound {
                key: key.to_string(),
            }),
            Err(e) => Err(Error::store("get", key.as_str(), e)),
        }
    }

    pub(super) async fn exists(&self, key: &ObjectKey) -> Result<bool, Error> {
        let response = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await;
        match response {
            Ok(_) => Ok(true),
            Err(e) if is_missing_object(&e) => Ok(false),
            Err(e) => Err(Error::store("head", key.as_str(), e)),
        }
    }

    pub(super) async fn put(
        &self,
        key: &ObjectKey,
        bytes: Bytes,
        mode: PutMode,
    ) -> Result<(), Error> {
        let exists = || Error::ObjectExists {
            key: key.to_string(),
        };
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .body(ByteStream::from(bytes.clone()));
        if mode == PutMode::CreateNew {
            if self.exists(key).await? {
                return Err(exists());
            }
            request = request.if_none_match("*");
        }
        match request.send().await {
            Ok(_) => Ok(()),
            // 412: the object exists; 409: another conditional write to it is under way.
            Err(e) if mode == PutMode::CreateNew && is_refused_create(&e) => {
                if self.holds(key, &bytes).await? {
                    tracing::info!(%key, "A create-only write was refused on retry, and the store holds exactly its bytes: the first attempt succeeded.");
                    Ok(())
                } else {
                    Err(exists())
                }
            }
            Err(e) => Err(Error::store("put", key.as_str(), e)),
        }
    }

    /// True when `key` holds exactly `bytes` (see the module doc: a retried create-new).
    async fn holds(&self, key: &ObjectKey, bytes: &Bytes) -> Result<bool, Error> {
        match self.get(key).await {
            Ok(stored) => Ok(stored == *bytes),
            // 409 without an object: another writer's conditional write is still under way.
            Err(Error::ObjectNotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// See [`super::ObjectStore::probe_conditional_writes`].
    pub(super) async fn probe_conditional_writes(&self) -> Result<ConditionalWrites, Error> {
        let key = ObjectKey::parse(PROBE_PREFIX)?.join(&uuid::Uuid::new_v4().to_string())?;
        let answer = self.probe_at(&key).await;
        if let Err(e) = self.delete(&key).await {
            tracing::warn!(%key, error = %crate::error_chain(&e), "Could not delete the conditional-write probe object.");
        }
        let answer = answer?;
        tracing::info!(store = %self.describe(), ?answer, "Probed the store for conditional writes.");
        Ok(answer)
    }

    async fn probe_at(&self, key: &ObjectKey) -> Result<ConditionalWrites, Error> {
        let fail = |e| Error::store("probe", key.as_str(), e);
        self.raw_create(key, "first").await.map_err(fail)?;
        match self.raw_create(key, "second").await {
            Ok(()) => Ok(ConditionalWrites::Ignored),
            Err(e) if is_refused_create(&e) => Ok(ConditionalWrites::Honoured),
            Err(e) => Err(fail(e)),
        }
    }

    /// One `PutObject` with `If-None-Match: *` and nothing else: no `HEAD`, no retry check.
    async fn raw_create(
        &self,
        key: &ObjectKey,
        body: &'static str,
    ) -> Result<(), SdkError<aws_sdk_s3::operation::put_object::PutObjectError>> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .if_none_match("*")
            .body(ByteStream::from_static(body.as_bytes()))
            .send()
            .await
            .map(|_| ())
    }

    /// `DeleteObject`; S3 answers 204 for a missing key too, and a 404 is taken the same way.
    pub(super) async fn delete(&self, key: &ObjectKey) -> Result<(), Error> {
        let response = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await;
        match response {
            Ok(_) => Ok(()),
            Err(e) if is_missing_object(&e) => Ok(()),
            Err(e) => Err(Error::store("delete", key.as_str(), e)),
        }
    }

    pub(super) async fn list(&self, prefix: &ObjectKey) -> Result<Vec<ObjectKey>, Error> {
        let (keys, _) = self.list_pages(prefix, None).await?;
        Ok(keys)
    }

    pub(super) async fn list_folders(&self, prefix: &ObjectKey) -> Result<Vec<String>, Error> {
        let (_, folders) = self.list_pages(prefix, Some("/")).await?;
        Ok(folders)
    }

    /// Lists every page below `prefix/`; returns keys (relative to the store prefix) and, with a
    /// delimiter, the names of the child folders.
    async fn list_pages(
        &self,
        prefix: &ObjectKey,
        delimiter: Option<&str>,
    ) -> Result<(Vec<ObjectKey>, Vec<String>), Error> {
        let full_prefix = format!("{}/", self.full_key(prefix));
        let strip = match &self.prefix {
            Some(p) => format!("{p}/"),
            None => String::new(),
        };
        let mut keys = Vec::new();
        let mut folders = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full_prefix);
            if let Some(d) = delimiter {
                request = request.delimiter(d);
            }
            if let Some(t) = &token {
                request = request.continuation_token(t);
            }
            let page = request
                .send()
                .await
                .map_err(|e| Error::store("list", prefix.as_str(), e))?;
            for object in page.contents() {
                if let Some(key) = object.key().and_then(|k| k.strip_prefix(&strip))
                    && let Ok(key) = ObjectKey::parse(key)
                {
                    keys.push(key);
                }
            }
            for common in page.common_prefixes() {
                if let Some(name) = common
                    .prefix()
                    .and_then(|p| p.strip_prefix(&full_prefix))
                    .map(|p| p.trim_end_matches('/'))
                    .filter(|p| !p.is_empty())
                {
                    folders.push(name.to_owned());
                }
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        keys.sort();
        folders.sort();
        Ok((keys, folders))
    }
}

/// A conditional `PutObject` refused: 412 `PreconditionFailed` (the object exists) or 409
/// `ConditionalRequestConflict` (another conditional write of it is under way).
fn is_refused_create<E>(err: &SdkError<E>) -> bool {
    matches!(status_of(err), Some(412 | 409))
}

fn status_of<E>(err: &SdkError<E>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// A 404 that means "no such key", not "no such bucket" (a misconfiguration to report).
fn is_missing_object<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    status_of(err) == Some(404)
        && err.as_service_error().and_then(|e| e.code()) != Some("NoSuchBucket")
}
