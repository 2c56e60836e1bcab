//! Artifact uploads over raw HTTP: the token and the length are checked before the body is
//! read, so a client that declares 200 MB and sends almost none of it gets its answer at once
//! (a server reading the body first would wait for it, and the test would time out).

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TOKEN, TestApp, registration, spawn_app};

/// What a raw request got back: the status and the JSON body.
struct RawAnswer {
    status: u16,
    body: Value,
}

/// Sends `head` (request line and headers, without the blank line) and `body_prefix`, then
/// reads the answer; fails if none comes within 5 s.
async fn raw_request(app: &TestApp, head: &str, body_prefix: &[u8]) -> RawAnswer {
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(format!("{head}\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream.write_all(body_prefix).await.unwrap();
    let read = async {
        let mut answer = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            // A reset after the answer (the server closes a connection it will not read) is
            // the end, like EOF.
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if complete(&answer) {
                break;
            }
        }
        answer
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("no answer within 5 s: the server is waiting for the body");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    RawAnswer {
        status: head[9..12].parse().unwrap(),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

/// True once `answer` holds the headers and as many body bytes as its Content-Length says.
fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .is_some_and(|len| body.len() >= len)
}

fn put_head(sha256: &str, extra: &str) -> String {
    format!(
        "PUT /v1/models/fraud/artifacts/{sha256} HTTP/1.1\r\n\
         Content-Type: application/octet-stream{extra}"
    )
}

const TWO_HUNDRED_MB: u64 = 200 * 1000 * 1000;

/// The envelope header of a fraud artifact whose payload is `payload_len` bytes, as
/// `encode_artifact` writes it: a map of magic, format version, kind, then the payload as a
/// bin32. What a real upload starts with, so a server that reads before it checks the token
/// would go on reading.
fn envelope_head(payload_len: u32) -> Vec<u8> {
    let mut head = vec![0x84];
    for (key, value) in [("magic", "ml-suite-model"), ("format_version", "")] {
        head.push(0xa0 + key.len() as u8);
        head.extend_from_slice(key.as_bytes());
        if value.is_empty() {
            head.push(0x01);
        } else {
            head.push(0xa0 + value.len() as u8);
            head.extend_from_slice(value.as_bytes());
        }
    }
    for text in ["kind", "fraud-random-forest", "payload"] {
        head.push(0xa0 + text.len() as u8);
        head.extend_from_slice(text.as_bytes());
    }
    head.push(0xc6);
    head.extend_from_slice(&payload_len.to_be_bytes());
    head
}

/// The first 64 KiB of a valid artifact of 200 MB.
fn start_of_a_large_artifact() -> Vec<u8> {
    let mut start = envelope_head((TWO_HUNDRED_MB as u32) - 76);
    assert_eq!(start.len(), 76);
    start.resize(64 * 1024, 0);
    start
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hand_made_envelope_head_is_what_the_registry_accepts() {
    let app = spawn_app(&[]).await;
    let mut artifact = envelope_head(70_000);
    artifact.resize(artifact.len() + 70_000, 7);
    let sha = shared_lib::artifact::ArtifactDigest::of(&artifact).to_string();
    let res = app.upload("fraud", &sha, artifact).await;
    assert_eq!(res.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_upload_is_refused_before_its_body_is_read() {
    // Arrange
    let app = spawn_app(&[]).await;
    let sha = registration(1.0).artifact.digest.to_string();
    let cases = [
        ("", "bearer token is required"),
        (
            "\r\nAuthorization: Bearer not-the-token-at-all",
            "not valid",
        ),
    ];
    for (auth, needle) in cases {
        // Act: declare 200 MB, send the first 64 KiB of it.
        let head = put_head(&sha, &format!("{auth}\r\nContent-Length: {TWO_HUNDRED_MB}"));
        let answer = raw_request(&app, &head, &start_of_a_large_artifact()).await;
        // Assert
        assert_eq!(answer.status, 401, "{needle}: {}", answer.body);
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message}");
    }
    assert_eq!(app.artifact_objects("fraud").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_limit_is_refused_from_its_content_length_before_its_body() {
    let app = spawn_app(&[("MAX_UPLOAD_BYTES", "1000000")]).await;
    let sha = registration(1.0).artifact.digest.to_string();
    let head = put_head(
        &sha,
        &format!("\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {TWO_HUNDRED_MB}"),
    );
    let answer = raw_request(&app, &head, b"").await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], "payload_too_large");
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit of 1000000 bytes")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_without_a_length_is_refused_with_411() {
    let app = spawn_app(&[]).await;
    let sha = registration(1.0).artifact.digest.to_string();
    let head = put_head(
        &sha,
        &format!("\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked"),
    );
    let answer = raw_request(&app, &head, b"5\r\nhello\r\n0\r\n\r\n").await;
    assert_eq!(answer.status, 411, "{}", answer.body);
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Content-Length")
    );
}

/// About 11 MB: more than one 8 MiB part, so the S3 store behind the registry takes the
/// multipart path, and the download streams with its length and digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_part_artifact_uploads_registers_and_downloads_byte_for_byte() {
    // Arrange
    let app = spawn_app(&[]).await;
    let mut reg = registration(1.0);
    reg.artifact = shared_lib::artifact::encode_artifact(
        shared_lib::artifact::ModelKind::FraudRandomForest,
        &(0..1_200_000).map(f64::from).collect::<Vec<_>>(),
    )
    .unwrap();
    reg["artifact_sha256"] = reg.artifact.digest.to_string().into();
    // Act
    let res = app.register("fraud", &reg).await;
    // Assert
    assert_eq!(res.status(), 201);
    let manifest: Value = res.json().await.unwrap();
    assert_eq!(manifest["artifact"]["size"], reg.artifact.size());
    let download = app
        .get_authorized("/v1/models/fraud/versions/1/artifact")
        .await;
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.headers()["content-length"],
        reg.artifact.size().to_string().as_str()
    );
    let bytes = download.bytes().await.unwrap();
    assert!(
        bytes.as_ref() == reg.artifact.bytes.as_slice(),
        "bytes differ"
    );
}
