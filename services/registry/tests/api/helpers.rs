//! `spawn_app` and request builders.

use registry::Settings;
use serde_json::{Value, json};
use shared_lib::artifact::{EncodedArtifact, ModelKind, encode_artifact};
use shared_lib::settings::Env;
use shared_lib::testing::TestS3;

/// The legacy `REGISTRY_TOKEN`: identity `admin`, every scope.
pub const TOKEN: &str = "test-token-0123456789";

/// The identities of [`credentials_file`], each with the one scope its name says, plus
/// `trainer` (read, publish, promote). Each one's token is [`token_of`] its name.
pub const IDENTITIES: [(&str, &str); 5] = [
    ("reader", "read"),
    ("publisher", "publish"),
    ("promoter", "promote"),
    ("archivist", "archive"),
    ("trainer", "read,publish,promote"),
];

pub fn token_of(identity: &str) -> String {
    format!("{identity}-token-0123456789")
}

/// A credentials file holding [`IDENTITIES`] (hashes, as an operator writes it).
pub fn credentials_file() -> tempfile::NamedTempFile {
    use sha2::Digest as _;
    let mut text = String::from("# identity scopes sha256(token)\n");
    for (identity, scopes) in IDENTITIES {
        let hash = hex::encode(sha2::Sha256::digest(token_of(identity).as_bytes()));
        text.push_str(&format!("{identity}\t{scopes}\t{hash}\n"));
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    _s3: TestS3,
    _credentials: tempfile::NamedTempFile,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub async fn spawn_app(extra: &[(&str, &str)]) -> TestApp {
    let s3 = TestS3::start().await;
    let credentials = credentials_file();
    let mut env = s3.service_env("registry-models", Some("reg"));
    env.push(("REGISTRY_TOKEN".to_owned(), TOKEN.to_owned()));
    env.push((
        "REGISTRY_CREDENTIALS_FILE".to_owned(),
        credentials.path().to_str().unwrap().to_owned(),
    ));
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let app = registry::build(&Settings::from_env(Env::from_pairs(env)).unwrap())
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    shared_lib::telemetry::install_tls_provider();
    let test_app = TestApp {
        address,
        client: reqwest::Client::new(),
        _s3: s3,
        _credentials: credentials,
        server,
    };
    shared_lib::testing::wait_until_ready(&test_app.address).await;
    test_app
}

/// A registration: a small valid artifact and the JSON body that names it. Derefs to the body,
/// so a test edits it in place (`reg["manifest"]["gate"] = ...`).
pub struct Registration {
    pub artifact: EncodedArtifact,
    pub body: Value,
}

impl std::ops::Deref for Registration {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.body
    }
}

impl std::ops::DerefMut for Registration {
    fn deref_mut(&mut self) -> &mut Value {
        &mut self.body
    }
}

/// A registration of a small valid artifact; `seed` varies the bytes.
pub fn registration(seed: f64) -> Registration {
    let artifact = encode_artifact(ModelKind::FraudRandomForest, &vec![seed; 8]).unwrap();
    let body = json!({
        "manifest": {
            "run_id": uuid::Uuid::new_v4(),
            "algorithm": "random_forest",
            "metrics": {"roc_auc": 0.9 + seed / 100.0},
            "trainer_version": "test",
            "created_by": "tester"
        },
        "artifact_sha256": artifact.digest.to_string(),
    });
    Registration { artifact, body }
}

impl TestApp {
    /// The registry's store, read directly (as a serving pod would).
    pub async fn store(&self) -> shared_lib::store::ObjectStore {
        shared_lib::store::ObjectStore::open(&shared_lib::store::StoreLocation::S3(
            self._s3.bucket("registry-models", Some("reg")),
        ))
        .await
        .unwrap()
    }

    /// How many artifact objects the store holds for `model`.
    pub async fn artifact_objects(&self, model: &str) -> usize {
        let prefix =
            shared_lib::store::ObjectKey::parse(&format!("models/{model}/artifacts")).unwrap();
        self.store().await.list(&prefix).await.unwrap().len()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// GET with the admin token (artifact downloads need a `read` credential).
    pub async fn get_authorized(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let res = self.get(path).await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }

    /// Uploads the artifact, then registers the version; returns the registration's answer
    /// (or the upload's, if that failed).
    pub async fn register(&self, model: &str, reg: &Registration) -> reqwest::Response {
        let uploaded = self
            .upload(
                model,
                &reg.artifact.digest.to_string(),
                reg.artifact.bytes.clone(),
            )
            .await;
        if uploaded.status() != 201 {
            return uploaded;
        }
        self.register_json(model, &reg.body).await
    }

    /// `PUT /v1/models/{model}/artifacts/{sha256}` with `bytes`, authenticated.
    pub async fn upload(&self, model: &str, sha256: &str, bytes: Vec<u8>) -> reqwest::Response {
        self.client
            .put(self.url(&format!("/v1/models/{model}/artifacts/{sha256}")))
            .bearer_auth(TOKEN)
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    /// `POST /v1/models/{model}/versions` with `body`, authenticated.
    pub async fn register_json(&self, model: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/v1/models/{model}/versions")))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn move_alias(&self, model: &str, alias: &str, body: &Value) -> reqwest::Response {
        self.client
            .put(self.url(&format!("/v1/models/{model}/aliases/{alias}")))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// The error body's message, asserting the status.
/// The message of an error answer with `status`, after checking its `code` is the one the README
/// gives that status.
pub async fn error_message(res: reqwest::Response, status: u16) -> String {
    assert_eq!(res.status(), status);
    let body: Value = res.json().await.unwrap();
    let code = match status {
        400 | 422 => "invalid_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        410 => "version_deleted",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        503 => "unavailable",
        other => panic!("no error code is promised for {other}: {body}"),
    };
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}
