//! Memory benchmark of the registry's artifact uploads and downloads (issue 13, item 1).
//!
//! Starts the real registry binary (path in the first argument) on a local store in a
//! temporary directory, and measures its resident memory from `/proc/<pid>/status` around each
//! phase: the peak (`VmHWM`, reset through `/proc/<pid>/clear_refs` before each phase) minus
//! the resident size (`VmRSS`) before it.
//!
//! 1. four concurrent unauthenticated uploads declaring 200 MB each: all must get 401, and the
//!    peak may grow by less than 16 MiB;
//! 2. one authenticated upload of a 250 MB artifact, then its registration: peak growth under
//!    64 MiB, and the version must be registered with the right digest;
//! 3. the download of that artifact: peak growth under 64 MiB, bytes hashed on arrival.
//!
//! Bodies are generated on the fly (a valid envelope header, then a pseudo-random payload), so
//! nothing of their size is kept on disk or in memory. Each run starts a fresh registry; the
//! figures printed are the median of `--runs` runs (default 3). With `--s3` the store is an S3
//! server (s3s-fs, in this process) instead of a local directory, so uploads take the
//! multipart path. Exits non-zero when a bound is exceeded. Run through
//! `scripts/bench-registry-memory.sh`.

#![allow(clippy::print_stdout, clippy::unwrap_used)] // A command-line benchmark.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "bench-token-0123456789";
const UNAUTHENTICATED_BYTES: u64 = 200 * 1000 * 1000;
const AUTHENTICATED_BYTES: u64 = 250 * 1000 * 1000;
const CHUNK: usize = 64 * 1024;
/// The envelope header before the payload (see `envelope_head`).
const HEAD_LEN: u64 = 76;

#[derive(Debug, Clone, Copy)]
struct Figures {
    unauthenticated_mib: f64,
    upload_mib: f64,
    download_mib: f64,
    upload_secs: f64,
    download_secs: f64,
    unauthenticated_bytes_sent: u64,
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let binary = args
        .next()
        .expect("usage: bench_memory <registry binary> [--runs N]");
    let (mut runs, mut s3) = (3usize, false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).expect("--runs N"),
            "--s3" => s3 = true,
            other => panic!("unknown argument {other}"),
        }
    }
    println!(
        "store: {}",
        if s3 {
            "S3 (s3s-fs in the bench process)"
        } else {
            "local directory"
        }
    );
    let mut all = Vec::new();
    for run in 1..=runs {
        let test_s3 = if s3 {
            Some(shared_lib::testing::TestS3::start().await)
        } else {
            None
        };
        let figures = run_once(&binary, test_s3.as_ref()).await;
        println!(
            "run {run}: 4x200 MB unauthenticated +{:.1} MiB ({} bytes accepted by the socket in all); \
             250 MB upload+register +{:.1} MiB in {:.1} s; download +{:.1} MiB in {:.1} s",
            figures.unauthenticated_mib,
            figures.unauthenticated_bytes_sent,
            figures.upload_mib,
            figures.upload_secs,
            figures.download_mib,
            figures.download_secs,
        );
        all.push(figures);
    }
    let median = |f: fn(&Figures) -> f64| {
        let mut v: Vec<f64> = all.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let unauth = median(|f| f.unauthenticated_mib);
    let upload = median(|f| f.upload_mib);
    let download = median(|f| f.download_mib);
    println!("median of {runs} runs (peak RSS growth of the registry):");
    println!("  4 concurrent unauthenticated 200 MB uploads: +{unauth:.1} MiB (bound 16 MiB)");
    println!("  authenticated 250 MB upload + registration:  +{upload:.1} MiB (bound 64 MiB)");
    println!("  its download:                                +{download:.1} MiB (bound 64 MiB)");
    if unauth >= 16.0 || upload >= 64.0 || download >= 64.0 {
        println!("FAILED: a bound was exceeded");
        std::process::exit(1);
    }
}

async fn run_once(binary: &str, s3: Option<&shared_lib::testing::TestS3>) -> Figures {
    let store = std::env::temp_dir().join(format!("registry-bench-{}", uuid::Uuid::new_v4()));
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let store_env = match s3 {
        Some(s3) => s3.service_env("bench-models", None),
        None => vec![("MODEL_STORE".to_owned(), store.display().to_string())],
    };
    let mut child = Registry(
        Command::new(binary)
            .envs(store_env)
            .env("REGISTRY_TOKEN", TOKEN)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    wait_until_ready(&address, &mut child.0).await;
    let pid = child.0.id();

    // 1. Four concurrent unauthenticated 200 MB uploads.
    let baseline = reset_peak(pid);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let address = address.clone();
            tokio::spawn(async move { unauthenticated_upload(&address).await })
        })
        .collect();
    let mut sent = 0;
    for task in tasks {
        let (status, bytes) = task.await.unwrap();
        assert_eq!(status, 401, "an unauthenticated upload was not refused");
        sent += bytes;
    }
    let unauthenticated_mib = growth(pid, baseline);

    // 2. One authenticated 250 MB upload, then its registration.
    let payload = AUTHENTICATED_BYTES - HEAD_LEN;
    let digest = hex(&hash_artifact(payload));
    let baseline = reset_peak(pid);
    let started = Instant::now();
    let (status, answer) = upload(&address, &digest, payload).await;
    assert_eq!(status, 201, "upload: {answer}");
    let body = format!(
        r#"{{"manifest": {{"run_id": "{}", "algorithm": "bench", "trainer_version": "bench"}}, "artifact_sha256": "{digest}"}}"#,
        uuid::Uuid::new_v4()
    );
    let (status, answer) = request(
        &address,
        &format!(
            "POST /v1/models/bench/versions HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}",
            body.len()
        ),
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "registration: {answer}");
    assert!(
        answer.contains(&digest),
        "the manifest names another digest"
    );
    let upload_secs = started.elapsed().as_secs_f64();
    let upload_mib = growth(pid, baseline);

    // 3. Its download.
    let baseline = reset_peak(pid);
    let started = Instant::now();
    let (size, downloaded) = download(&address).await;
    assert_eq!(size, AUTHENTICATED_BYTES);
    assert_eq!(downloaded, digest, "the download differs from the upload");
    let download_secs = started.elapsed().as_secs_f64();
    let download_mib = growth(pid, baseline);

    drop(child);
    if s3.is_none() {
        std::fs::remove_dir_all(&store).unwrap();
    }
    Figures {
        unauthenticated_mib,
        upload_mib,
        download_mib,
        upload_secs,
        download_secs,
        unauthenticated_bytes_sent: sent,
    }
}

/// A port free a moment ago; good enough for a benchmark run by hand.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_until_ready(address: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the registry exited: {status}");
        }
        if TcpStream::connect(address).await.is_ok() {
            let (status, _) = request(address, "GET /readyz HTTP/1.1", b"").await;
            if status == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the registry was not ready within 30 s");
}

/// A field of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Resets the peak (`VmHWM`) to the current resident size; returns that size in KiB.
fn reset_peak(pid: u32) -> u64 {
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/clear_refs"))
        .and_then(|mut f| f.write_all(b"5"))
        .expect("resetting VmHWM through /proc/<pid>/clear_refs (Linux 4.0 or later)");
    status_kib(pid, "VmRSS:")
}

/// Peak growth since `baseline` (KiB), in MiB.
fn growth(pid: u32, baseline: u64) -> f64 {
    let peak = status_kib(pid, "VmHWM:");
    peak.saturating_sub(baseline) as f64 / 1024.0
}

/// The envelope header of a fraud artifact whose payload is `payload_len` bytes, as
/// `shared_lib::artifact::encode_artifact` writes it (a MessagePack map; the payload last).
fn envelope_head(payload_len: u64) -> Vec<u8> {
    let mut head = vec![0x84];
    let text = |s: &str, head: &mut Vec<u8>| {
        head.push(0xa0 + u8::try_from(s.len()).unwrap());
        head.extend_from_slice(s.as_bytes());
    };
    text("magic", &mut head);
    text("ml-suite-model", &mut head);
    text("format_version", &mut head);
    head.push(0x01);
    text("kind", &mut head);
    text("fraud-random-forest", &mut head);
    text("payload", &mut head);
    head.push(0xc6);
    head.extend_from_slice(&u32::try_from(payload_len).unwrap().to_be_bytes());
    assert_eq!(head.len() as u64, HEAD_LEN);
    head
}

/// The artifact's bytes, chunk by chunk: the header, then a xorshift payload.
struct ArtifactBody {
    head: Option<Vec<u8>>,
    left: u64,
    state: u64,
}

impl ArtifactBody {
    fn new(payload_len: u64) -> Self {
        Self {
            head: Some(envelope_head(payload_len)),
            left: payload_len,
            state: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn next_chunk(&mut self, buf: &mut Vec<u8>) -> bool {
        buf.clear();
        if let Some(head) = self.head.take() {
            buf.extend_from_slice(&head);
            return true;
        }
        if self.left == 0 {
            return false;
        }
        let n = (CHUNK as u64).min(self.left) as usize;
        while buf.len() < n {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            buf.extend_from_slice(&self.state.to_le_bytes());
        }
        buf.truncate(n);
        self.left -= n as u64;
        true
    }
}

fn hash_artifact(payload_len: u64) -> Vec<u8> {
    let mut body = ArtifactBody::new(payload_len);
    let mut hasher = Sha256::new();
    let mut buf = Vec::with_capacity(CHUNK);
    while body.next_chunk(&mut buf) {
        hasher.update(&buf);
    }
    hasher.finalize().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Declares a 200 MB upload without a token and sends its body until the server answers or
/// stops taking it; returns the status and how many body bytes the socket accepted.
async fn unauthenticated_upload(address: &str) -> (u16, u64) {
    let payload = UNAUTHENTICATED_BYTES - HEAD_LEN;
    let mut stream = TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    let head = format!(
        "PUT /v1/models/bench/artifacts/{} HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {UNAUTHENTICATED_BYTES}\r\n\r\n",
        "0".repeat(64)
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let sent = std::sync::atomic::AtomicU64::new(0);
    let send = async {
        let mut body = ArtifactBody::new(payload);
        let mut buf = Vec::with_capacity(CHUNK);
        while body.next_chunk(&mut buf) {
            if writer.write_all(&buf).await.is_err() {
                break;
            }
            sent.fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let mut answer = Vec::new();
    {
        // Send until the answer's head has come (as curl stops sending on an early answer)
        // or the server stops taking the body, whichever is first.
        let receive = async {
            let mut buf = [0u8; 4096];
            while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::select! {
            () = receive => {}
            () = send => {}
        }
    }
    if status_of(&answer).is_none() {
        let _ =
            tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut answer)).await;
    }
    let sent = sent.into_inner();
    let status = status_of(&answer)
        .unwrap_or_else(|| panic!("no answer to an unauthenticated upload ({sent} bytes sent)"));
    (status, sent)
}

/// Uploads the artifact of `payload_len` payload bytes with the token; returns status and
/// answer.
async fn upload(address: &str, digest: &str, payload_len: u64) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "PUT /v1/models/bench/artifacts/{digest} HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        payload_len + HEAD_LEN
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut body = ArtifactBody::new(payload_len);
    let mut buf = Vec::with_capacity(CHUNK);
    while body.next_chunk(&mut buf) {
        stream.write_all(&buf).await.unwrap();
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    (status_of(&answer).unwrap(), text)
}

/// Downloads v1 of `bench`, hashing on arrival; returns the size and the sha256.
async fn download(address: &str) -> (u64, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "GET /v1/models/bench/versions/1/artifact HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut header = Vec::new();
    let mut size = 0u64;
    let mut in_body = false;
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        if in_body {
            hasher.update(&buf[..n]);
            size += n as u64;
            continue;
        }
        header.extend_from_slice(&buf[..n]);
        if let Some(end) = header.windows(4).position(|w| w == b"\r\n\r\n") {
            assert_eq!(status_of(&header), Some(200), "download answer");
            let rest = header[end + 4..].to_vec();
            hasher.update(&rest);
            size += rest.len() as u64;
            in_body = true;
        }
    }
    (size, hex(&hasher.finalize()))
}

/// A small request with `Connection: close`; returns status and the whole answer.
async fn request(address: &str, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!("{head}\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    (status_of(&answer).unwrap_or(0), text)
}

fn status_of(answer: &[u8]) -> Option<u16> {
    std::str::from_utf8(answer.get(9..12)?).ok()?.parse().ok()
}

/// The registry process, stopped when dropped: also when a check above panics, so a failed
/// run leaves no registry behind (holding the terminal's output open).
struct Registry(Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
