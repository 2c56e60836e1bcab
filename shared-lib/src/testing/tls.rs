//! A TLS-terminating proxy with a certificate from a throwaway CA, to test `https://` clients
//! (the trainer's `REGISTRY_URL`, OTLP export) against a plain-HTTP server in the test.
//!
//! The CA is generated per proxy (rcgen), so nothing on the machine trusts it: a client
//! connects only when told to trust [`TlsProxy::ca_file`] (e.g. `SSL_CERT_FILE`, which the
//! platform verifier reads on Linux), and a client that ignored certificates would be caught
//! by the test that expects a refusal without it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// `https://localhost:<port>` in front of a plain TCP server; alive until dropped.
pub struct TlsProxy {
    /// `https://localhost:<port>` (the certificate names `localhost` and `127.0.0.1`).
    pub url: String,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    ca_file: tempfile::NamedTempFile,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    /// Listens on a loopback port and forwards each connection, decrypted, to `upstream`.
    ///
    /// # Panics
    /// When the certificate or the listener cannot be made (a broken test machine).
    #[allow(clippy::unwrap_used, clippy::missing_panics_doc)]
    pub async fn start(upstream: SocketAddr) -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ml-serving test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();

        let config = ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A refused handshake (an untrusting client) just ends the connection.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });

        let ca_pem = ca_cert.pem();
        let ca_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(ca_file.path(), &ca_pem).unwrap();
        Self {
            url: format!("https://localhost:{port}"),
            ca_pem,
            ca_file,
            task,
        }
    }

    /// A PEM file holding the CA certificate (for `SSL_CERT_FILE`).
    pub fn ca_file(&self) -> &Path {
        self.ca_file.path()
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request a [`RecordingServer`] received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub body_len: usize,
}

/// A plain HTTP/1.1 server on a loopback port that answers every request `200` with an empty
/// body and records what it got: a stand-in for an OTLP/HTTP collector.
pub struct RecordingServer {
    pub addr: SocketAddr,
    pub requests: Arc<std::sync::Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingServer {
    /// # Panics
    /// When no loopback port can be bound.
    #[allow(clippy::unwrap_used, clippy::missing_panics_doc)]
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve_connection(tcp, Arc::clone(&log)));
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    /// What was received so far.
    pub fn received(&self) -> Vec<Recorded> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_connection(
    mut tcp: tokio::net::TcpStream,
    log: Arc<std::sync::Mutex<Vec<Recorded>>>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0_u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        };
        let head = String::from_utf8_lossy(buf.get(..head_end).unwrap_or_default()).into_owned();
        let mut words = head.split_whitespace();
        let method = words.next().unwrap_or_default().to_owned();
        let path = words.next().unwrap_or_default().to_owned();
        let body_len = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < head_end + body_len {
            let mut chunk = [0_u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        }
        buf.drain(..head_end + body_len);
        if let Ok(mut log) = log.lock() {
            log.push(Recorded {
                method,
                path,
                body_len,
            });
        }
        if tcp
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    }
}
