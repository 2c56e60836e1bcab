//! The `registry` binary as a container runs it: `registry healthcheck` probing its own
//! `/readyz`, and traces exported to an `https://` OTLP endpoint whose certificate comes from a
//! CA trusted only through `SSL_CERT_FILE` (rustls with the platform verifier).

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use shared_lib::testing::tls::{RecordingServer, TlsProxy};

const BIN: &str = env!("CARGO_BIN_EXE_registry");

struct Running {
    child: Child,
    port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on a free port with a local store and `extra` variables; returns once it
/// logged the port it listens on.
fn start_registry(store: &std::path::Path, extra: &[(&str, &str)]) -> Running {
    let mut child = Command::new(BIN)
        .env_clear()
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("MODEL_STORE", store)
        .env("REGISTRY_TOKEN", "binary-test-token-0123456789")
        .env("RUST_LOG", "info")
        .envs(extra.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in stdout.lines().map_while(Result::ok) {
            if !sent && line.contains("Listening.") {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let _ = tx.send(v["port"].as_u64().unwrap());
                sent = true;
            }
        }
    });
    let port = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    Running {
        child,
        port: u16::try_from(port).unwrap(),
    }
}

fn healthcheck(port: u16) -> i32 {
    Command::new(BIN)
        .arg("healthcheck")
        .env_clear()
        .env("PORT", port.to_string())
        .output()
        .unwrap()
        .status
        .code()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_0_for_a_ready_registry_and_1_for_no_server() {
    // Arrange
    let store = tempfile::tempdir().unwrap();
    let registry = start_registry(store.path(), &[]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    // Act / Assert: ready within the start-up (the store is empty)
    let port = registry.port;
    shared_lib::testing::eventually(
        "registry healthcheck exits 0",
        Duration::from_secs(10),
        || async move {
            tokio::task::spawn_blocking(move || healthcheck(port) == 0)
                .await
                .unwrap()
        },
    )
    .await;
    assert_eq!(healthcheck(closed), 1, "nothing listens on {closed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_exported_to_an_https_otlp_endpoint() {
    // Arrange: a collector behind TLS with a CA only SSL_CERT_FILE names
    let collector = RecordingServer::start().await;
    let tls = TlsProxy::start(collector.addr).await;
    let store = tempfile::tempdir().unwrap();
    let ca = tls.ca_file().to_str().unwrap().to_owned();
    let registry = start_registry(
        store.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", tls.url.as_str()),
            ("SSL_CERT_FILE", ca.as_str()),
        ],
    );
    let base = format!("http://127.0.0.1:{}", registry.port);
    shared_lib::testing::wait_until_ready(&base).await;

    // Act: requests make server spans; the batch exporter sends them within its 5 s delay
    shared_lib::telemetry::install_tls_provider();
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let res = client
            .get(format!("{base}/v1/models"))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
    }

    // Assert
    shared_lib::testing::eventually(
        "a POST /v1/traces with a body reached the collector through TLS",
        Duration::from_secs(20),
        || {
            let got = collector.received();
            async move {
                got.iter()
                    .any(|r| r.method == "POST" && r.path == "/v1/traces" && r.body_len > 0)
            }
        },
    )
    .await;
}
