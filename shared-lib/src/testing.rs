//! Test harness (feature `testing`): a real S3 protocol server in the test process.
//!
//! [`TestS3`] serves `s3s-fs` (the S3 protocol over a temporary directory) on a loopback port,
//! with signature checking on, so tests reach it with the real aws-sdk-s3 client exactly as a
//! service reaches AWS or Garage. Note that s3s-fs checks `If-None-Match` and then writes in two
//! steps, so cross-client races are only truly atomic on stores that implement the check
//! atomically; within one [`crate::registry::Registry`] the write lock serialises anyway.
//! It can also misbehave on purpose: lose the response of a `PutObject` it stored, let another
//! writer win the race for a key ([`TestS3::fault_next_put`]), or ignore `If-None-Match` as
//! Garage does ([`TestS3::ignore_conditional_writes`]). [`tls::TlsProxy`] puts TLS with a
//! throwaway CA in front of any of these servers.

pub mod tls;

use std::path::PathBuf;

use secrecy::SecretString;

use crate::Error;
use crate::store::{ObjectStore, S3Credentials, S3Settings, StoreLocation};

pub const ACCESS_KEY: &str = "AKIDTESTSUITE0001";
pub const SECRET_KEY: &str = "test-secret-key-for-the-suite";
pub const REGION: &str = "us-east-1";

/// An S3 server on `127.0.0.1:<port>`, alive until dropped.
pub struct TestS3 {
    pub endpoint: String,
    root: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
    faults: Faults,
}

/// What the test S3 server does to the next `PutObject` of an armed key
/// ([`TestS3::fault_next_put`]).
#[derive(Debug, Clone)]
pub enum PutFault {
    /// Store the object, then answer 503 instead of the real response, as when a response
    /// is lost (a timeout, a proxy's 5xx): the SDK retries the same `PutObject`.
    LoseResponse,
    /// Just before the `PutObject` is served, another writer creates the key with these bytes
    /// (a race between a create-new's `HEAD` and its `PUT`).
    RacedBy(bytes::Bytes),
}

/// The faults armed on the test S3 server.
#[derive(Debug, Clone, Default)]
struct Faults(std::sync::Arc<std::sync::Mutex<FaultState>>);

#[derive(Debug, Default)]
struct FaultState {
    /// By `/bucket/key`, each fired once.
    armed: Vec<(String, PutFault)>,
    fired: usize,
    /// Act like Garage: a `PutObject` with `If-None-Match` overwrites.
    ignore_conditional_writes: bool,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The fault armed for a `PUT` of `path` (`/bucket/key`), disarmed as it fires.
    fn take(&self, method: &hyper::Method, path: &str) -> Option<PutFault> {
        if method != hyper::Method::PUT {
            return None;
        }
        let mut state = self.lock();
        let at = state.armed.iter().position(|(p, _)| p == path)?;
        state.fired += 1;
        Some(state.armed.remove(at).1)
    }
}

/// Serves one request through `service`, applying the fault armed for it, if any.
async fn serve_with_faults(
    service: s3s::service::S3Service,
    faults: Faults,
    root: PathBuf,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<s3s::HttpResponse, s3s::HttpError> {
    let path = request.uri().path().to_owned();
    // s3s-fs keeps an object as the file `<root>/<bucket>/<key>`.
    let file = root.join(path.trim_start_matches('/'));
    let fault = faults.take(request.method(), &path);
    if let Some(PutFault::RacedBy(bytes)) = &fault {
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&file, bytes).unwrap_or_else(|e| panic!("{e}"));
    }
    if request.method() == hyper::Method::PUT
        && request.headers().contains_key("if-none-match")
        && faults.lock().ignore_conditional_writes
    {
        // The header is signed, so it cannot be dropped; removing the object has the effect.
        let _ = std::fs::remove_file(&file);
    }
    let response = hyper::service::Service::call(&service, request).await?;
    if matches!(fault, Some(PutFault::LoseResponse)) && response.status().is_success() {
        let mut lost = s3s::HttpResponse::new(s3s::Body::empty());
        *lost.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
        return Ok(lost);
    }
    Ok(response)
}

impl TestS3 {
    /// Starts the server. Must be called inside a Tokio runtime.
    ///
    /// # Panics
    /// When the temporary directory or the loopback listener cannot be created.
    pub async fn start() -> Self {
        let root = tempfile::tempdir().expect("temporary directory for the test S3 server");
        let fs = s3s_fs::FileSystem::new(root.path())
            .unwrap_or_else(|e| panic!("s3s-fs over {}: {e:?}", root.path().display()));
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback listener for the test S3 server");
        let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
        let faults = Faults::default();
        let (armed, dir) = (faults.clone(), root.path().to_path_buf());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (service, armed, dir) = (service.clone(), armed.clone(), dir.clone());
                let handler = hyper::service::service_fn(move |request| {
                    serve_with_faults(service.clone(), armed.clone(), dir.clone(), request)
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), handler)
                    .await;
                });
            }
        });
        Self {
            endpoint,
            root,
            task,
            faults,
        }
    }

    /// Arms `fault` for the next `PutObject` of `key` (the full key in `bucket`, with any
    /// store prefix).
    pub fn fault_next_put(&self, bucket: &str, key: &str, fault: PutFault) {
        self.faults
            .lock()
            .armed
            .push((format!("/{bucket}/{key}"), fault));
    }

    /// How many armed faults have fired.
    pub fn faults_fired(&self) -> usize {
        self.faults.lock().fired
    }

    /// From now on, act like Garage: `If-None-Match` on `PutObject` is ignored (overwrites).
    pub fn ignore_conditional_writes(&self) {
        self.faults.lock().ignore_conditional_writes = true;
    }

    /// Creates a bucket (a directory, for s3s-fs) and returns settings to reach it.
    ///
    /// # Panics
    /// When the directory cannot be created.
    pub fn bucket(&self, name: &str, prefix: Option<&str>) -> S3Settings {
        std::fs::create_dir_all(self.bucket_dir(name)).expect("bucket directory");
        S3Settings {
            bucket: name.to_owned(),
            prefix: prefix.map(|p| crate::store::ObjectKey::parse(p).expect("valid prefix")),
            endpoint: Some(self.endpoint.clone()),
            region: REGION.to_owned(),
            force_path_style: true,
            credentials: Some(S3Credentials {
                access_key_id: ACCESS_KEY.to_owned(),
                secret_access_key: SecretString::from(SECRET_KEY),
                session_token: None,
            }),
        }
    }

    /// An object store on a fresh bucket.
    ///
    /// # Errors
    /// As [`ObjectStore::open`].
    pub async fn store(&self, bucket: &str) -> Result<ObjectStore, Error> {
        ObjectStore::open(&StoreLocation::S3(self.bucket(bucket, Some("suite")))).await
    }

    /// The environment of a service whose model store is `bucket` (created) under `prefix`,
    /// listening on a free loopback port: `MODEL_STORE`, the S3 variables, `HOST`, `PORT=0`.
    pub fn service_env(&self, bucket: &str, prefix: Option<&str>) -> Vec<(String, String)> {
        self.bucket(bucket, None);
        let store = match prefix {
            Some(prefix) => format!("s3://{bucket}/{prefix}"),
            None => format!("s3://{bucket}"),
        };
        [
            ("MODEL_STORE", store),
            ("S3_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", "0".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Where the server keeps a bucket's objects, for tests that damage them on purpose.
    pub fn bucket_dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// How many multipart uploads are open (created, neither completed nor aborted). s3s-fs
    /// has no `ListMultipartUploads`; it keeps one `.upload-<id>.json` per open upload.
    ///
    /// # Panics
    /// When the server's directory cannot be read.
    pub fn open_multipart_uploads(&self) -> usize {
        std::fs::read_dir(self.root.path())
            .expect("the test S3 server's directory")
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with(".upload-") && name.ends_with(".json")
            })
            .count()
    }

    /// Stops serving: new connections are refused, as in a store outage.
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// Waits until the service at `base_url` (`http://host:port`) answers `GET /readyz` with 200.
///
/// # Panics
/// When it is not ready within 10 s.
pub async fn wait_until_ready(base_url: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let address = base_url.trim_start_matches("http://").trim_end_matches('/');
    while !answers_ready(address).await {
        assert!(
            std::time::Instant::now() < deadline,
            "{base_url} did not become ready within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Polls `check` every 50 ms until it is true.
///
/// # Panics
/// When it is still false after `timeout`; the message names `what`.
pub async fn eventually<F, Fut>(what: &str, timeout: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {timeout:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The sum of the samples of Prometheus metric `name` (in the text format `metrics`) whose
/// labels include every `key="value"` given.
pub fn metric_sum(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |sum, v| sum + v) // not `sum()`: an empty f64 sum is -0, printed "-0"
}

/// One plain HTTP/1.1 `GET /readyz`; true for a 200.
async fn answers_ready(address: &str) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
        return false;
    };
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).await.is_ok() && &status == b"HTTP/1.1 200"
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The fraud service's inputs, in order.
pub const FRAUD_FEATURES: [&str; 3] = ["txn_amount", "amount_spent_past_mo", "txns_same_merchant"];

/// A one-split fraud forest: `txn_amount` above `cut` scores `high`, else `low`.
pub fn threshold_fraud_model(cut: f64, low: f32, high: f32) -> crate::models::forest::FraudModel {
    use crate::models::forest::{FlatTree, FraudModel, LEAF};
    FraudModel {
        feature_names: FRAUD_FEATURES.map(String::from).to_vec(),
        trees: vec![FlatTree {
            feature: vec![0, LEAF, LEAF],
            threshold: vec![cut, 0.0, 0.0],
            left: vec![1, 0, 0],
            right: vec![2, 0, 0],
            value: vec![0.0, low, high],
        }],
        threshold: 0.5,
    }
}

/// A fraud version's draft as the trainer would publish it (the schema of [`FRAUD_FEATURES`],
/// ROC AUC 0.9), by `actor`.
///
/// # Panics
/// Never: the model name is valid.
pub fn fraud_draft(actor: &str) -> crate::registry::manifest::NewVersion {
    use crate::registry::manifest::{FeatureSchema, FeatureSpec, FeatureType, NewVersion};
    NewVersion {
        model: crate::model_id::ModelName::parse("fraud").unwrap_or_else(|e| panic!("{e}")),
        run_id: uuid::Uuid::new_v4(),
        algorithm: "random_forest".into(),
        parameters: std::collections::BTreeMap::new(),
        feature_schema: FeatureSchema {
            features: FRAUD_FEATURES
                .iter()
                .map(|n| FeatureSpec {
                    name: (*n).into(),
                    dtype: FeatureType::Float,
                    min: Some(0.0),
                    max: None,
                })
                .collect(),
        },
        training_data: Default::default(),
        metrics: std::collections::BTreeMap::from([("roc_auc".into(), 0.9)]),
        trainer_version: actor.into(),
        created_by: actor.into(),
        gate: None,
        held_out: None,
        drift: None,
    }
}

/// An implicit ALS recommender version's draft, by `actor`.
///
/// # Panics
/// Never: the model name is valid.
pub fn recommender_draft(actor: &str) -> crate::registry::manifest::NewVersion {
    crate::registry::manifest::NewVersion {
        model: crate::model_id::ModelName::parse("recommender").unwrap_or_else(|e| panic!("{e}")),
        run_id: uuid::Uuid::new_v4(),
        algorithm: "als-implicit".into(),
        parameters: std::collections::BTreeMap::new(),
        feature_schema: Default::default(),
        training_data: Default::default(),
        metrics: std::collections::BTreeMap::new(),
        trainer_version: actor.into(),
        created_by: actor.into(),
        gate: None,
        held_out: None,
        drift: None,
    }
}

/// Publishes `model` as the next version of `recommender` in `registry`, by `actor`.
///
/// # Panics
/// When the model cannot be encoded or the registry refuses it.
pub async fn publish_recommender(
    registry: &crate::registry::Registry,
    model: &crate::models::als::AlsModel,
    actor: &str,
) -> crate::registry::manifest::Manifest {
    let artifact =
        crate::artifact::encode_artifact(crate::artifact::ModelKind::RecommenderAls, model)
            .unwrap_or_else(|e| panic!("{e}"));
    registry
        .publish(
            recommender_draft(actor),
            bytes::Bytes::from(artifact.bytes),
            Some(&artifact.digest),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Checks that `names`, every variable a binary's settings reader asked for (recorded with
/// [`crate::settings::NameRecorder`] over probes that take each branch), equal the binary's
/// committed `file` (one name per line), which `scripts/check_env_names.py` reads. With
/// `UPDATE_ENV_NAMES=1` the file is rewritten instead.
///
/// # Panics
/// When they differ, listing the names added and dropped; when the file cannot be read.
pub fn assert_env_names(file: &std::path::Path, names: &std::collections::BTreeSet<String>) {
    let text: String = names.iter().map(|n| format!("{n}\n")).collect();
    if std::env::var_os("UPDATE_ENV_NAMES").is_some_and(|v| v == "1") {
        std::fs::write(file, &text).expect("write the env-names file");
        return;
    }
    let committed = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_ENV_NAMES=1 writes it)", file.display()));
    let committed: std::collections::BTreeSet<String> =
        committed.lines().map(str::to_owned).collect();
    let added: Vec<_> = names.difference(&committed).collect();
    let dropped: Vec<_> = committed.difference(names).collect();
    assert!(
        added.is_empty() && dropped.is_empty(),
        "{} is stale: the code now also reads {added:?} and no longer reads {dropped:?}; \
         rerun this test with UPDATE_ENV_NAMES=1 and commit the file",
        file.display()
    );
}
