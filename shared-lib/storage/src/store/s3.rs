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
//!
//! Streamed writes go up in parts of [`PART_BYTES`]: a body that fits in one part is a single
//! `PutObject` sent after its digest checked out; a larger one is a multipart upload completed
//! only after the digest checked out, and aborted on any failure, so nothing becomes visible.

use std::pin::Pin;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    timeout::TimeoutConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use secrecy::ExposeSecret;

use super::streaming::{ObjectRead, UploadCheck};
use super::{ConditionalWrites, ObjectKey, PutMode, S3Settings};
use crate::{BoxError, Error};

/// The part size of streamed writes: above S3's 5 MiB minimum, and the most a streamed write
/// holds in memory (plus one incoming chunk). 10,000 parts of it allow 80 GiB.
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// Where `S3Store::probe_conditional_writes` writes (below the store prefix): not a key the
/// registry reads, so a probe object left by a crash is harmless; delete it at will.
pub const PROBE_PREFIX: &str = "_probes/conditional-writes";

/// The SDK's hyper client with rustls on ring and the platform's root certificates (the
/// workspace leaves out the SDK's default client, which is rustls on aws-lc-rs). Tests that
/// talk to a store with their own `aws_sdk_s3` client use this one too.
pub fn https_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

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
            .http_client(https_client())
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
        self.get_output(key)
            .await?
            .body
            .collect()
            .await
            .map(|data| data.into_bytes())
            .map_err(|e| Error::store("get", key.as_str(), e))
    }

    /// The answer to a `GetObject` of `key`, its body not yet read: what [`S3Store::get`]
    /// collects and [`S3Store::get_stream`] streams.
    async fn get_output(&self, key: &ObjectKey) -> Result<GetObjectOutput, Error> {
        let response = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await;
        match response {
            Ok(output) => Ok(output),
            Err(e) if is_missing_object(&e) => Err(Error::ObjectNotFound {
                key: key.to_string(),
            }),
            Err(e) => Err(Error::store("get", key.as_str(), e)),
        }
    }

    pub(super) async fn exists(&self, key: &ObjectKey) -> Result<bool, Error> {
        Ok(self.head(key).await?.is_some())
    }

    /// The answer to a `HeadObject` of `key`; `None` when there is no such object.
    async fn head(&self, key: &ObjectKey) -> Result<Option<HeadObjectOutput>, Error> {
        let response = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await;
        match response {
            Ok(head) => Ok(Some(head)),
            Err(e) if is_missing_object(&e) => Ok(None),
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

    pub(super) async fn get_stream(&self, key: &ObjectKey) -> Result<ObjectRead, Error> {
        let output = self.get_output(key).await?;
        let size = output
            .content_length()
            .and_then(|len| u64::try_from(len).ok())
            .ok_or_else(|| Error::store("get", key.as_str(), "no Content-Length in the answer"))?;
        let stream = futures_util::stream::unfold(output.body, |mut body| async move {
            body.next()
                .await
                .map(|chunk| (chunk.map_err(std::io::Error::other), body))
        });
        Ok(ObjectRead {
            size,
            stream: Box::pin(stream),
        })
    }

    pub(super) async fn last_modified(
        &self,
        key: &ObjectKey,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        Ok(self.head(key).await?.and_then(|head| {
            head.last_modified()
                .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
        }))
    }

    pub(super) async fn put_stream<S>(
        &self,
        key: &ObjectKey,
        mut body: Pin<&mut S>,
        mut check: UploadCheck<'_>,
    ) -> Result<u64, Error>
    where
        S: Stream<Item = Result<Bytes, BoxError>>,
    {
        let (first, more) = next_part(&mut body, &mut check).await?;
        if !more {
            let size = check.finish()?;
            self.put(key, first, PutMode::Overwrite).await?;
            return Ok(size);
        }
        let full_key = self.full_key(key);
        let fail = |e| Error::store("put", key.as_str(), e);
        let upload_id = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full_key)
            .send()
            .await
            .map_err(|e| fail(e.into()))?
            .upload_id
            .ok_or_else(|| fail("no upload id in the answer".into()))?;
        let mut open = OpenUpload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: full_key.clone(),
            upload_id: Some(upload_id.clone()),
        };
        let result = self
            .upload_parts(&full_key, &upload_id, first, body, check)
            .await
            .map_err(|e| match e {
                PartsError::Ours(e) => e,
                PartsError::Sdk(e) => fail(e),
            });
        match result {
            Ok(_) => open.completed(),
            Err(_) => open.abort().await,
        }
        result
    }

    /// Uploads `first` and the rest of `body` as parts, then completes the upload once the
    /// digest checked out.
    async fn upload_parts<S>(
        &self,
        full_key: &str,
        upload_id: &str,
        first: Bytes,
        mut body: Pin<&mut S>,
        mut check: UploadCheck<'_>,
    ) -> Result<u64, PartsError>
    where
        S: Stream<Item = Result<Bytes, BoxError>>,
    {
        let mut parts = Vec::new();
        let (mut part, mut more) = (first, true);
        loop {
            let number = i32::try_from(parts.len() + 1).unwrap_or(i32::MAX);
            let uploaded = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(full_key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(part))
                .send()
                .await
                .map_err(|e| PartsError::Sdk(e.into()))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(uploaded.e_tag)
                    .build(),
            );
            if !more {
                break;
            }
            let next;
            (next, more) = next_part(&mut body, &mut check)
                .await
                .map_err(PartsError::Ours)?;
            if next.is_empty() {
                break;
            }
            part = next;
        }
        let size = check.finish().map_err(PartsError::Ours)?;
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(full_key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| PartsError::Sdk(e.into()))?;
        Ok(size)
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

/// A multipart upload that is aborted unless it completed: inline on failure, and from a
/// spawned task when the upload's future is dropped half-way.
struct OpenUpload {
    client: Client,
    bucket: String,
    key: String,
    /// `None` once completed or aborted.
    upload_id: Option<String>,
}

impl OpenUpload {
    fn completed(&mut self) {
        self.upload_id = None;
    }

    async fn abort(&mut self) {
        if let Some(upload_id) = self.upload_id.take() {
            abort_upload(&self.client, &self.bucket, &self.key, &upload_id).await;
        }
    }
}

impl Drop for OpenUpload {
    fn drop(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime
                    .spawn(async move { abort_upload(&client, &bucket, &key, &upload_id).await });
            }
            Err(_) => {
                tracing::warn!(%key, %upload_id, "Could not abort a multipart upload; a lifecycle rule must remove it.");
            }
        }
    }
}

async fn abort_upload(client: &Client, bucket: &str, key: &str, upload_id: &str) {
    let aborted = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await;
    if let Err(e) = aborted {
        tracing::warn!(%key, %upload_id, error = %crate::error_chain(&e), "Could not abort a multipart upload; a lifecycle rule must remove it.");
    }
}

enum PartsError {
    Ours(Error),
    Sdk(crate::BoxError),
}

/// Reads the next part (at least [`PART_BYTES`], or what is left) from `body`; the flag says
/// whether the body may have more.
async fn next_part<S>(
    body: &mut Pin<&mut S>,
    check: &mut UploadCheck<'_>,
) -> Result<(Bytes, bool), Error>
where
    S: Stream<Item = Result<Bytes, BoxError>>,
{
    let mut part = BytesMut::new();
    while part.len() < PART_BYTES {
        match body.next().await {
            Some(chunk) => {
                let chunk = check.take(chunk)?;
                if part.is_empty() && chunk.len() >= PART_BYTES {
                    return Ok((chunk, true));
                }
                if part.capacity() == 0 {
                    part.reserve(PART_BYTES + chunk.len());
                }
                part.extend_from_slice(&chunk);
            }
            None => return Ok((part.freeze(), false)),
        }
    }
    Ok((part.freeze(), true))
}

fn status_of<E>(err: &SdkError<E>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// A 404 that means "no such key", not "no such bucket" (a misconfiguration to report).
fn is_missing_object<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    status_of(err) == Some(404)
        && err.as_service_error().and_then(|e| e.code()) != Some("NoSuchBucket")
}
