//! A TCP proxy that can stop a chosen HTTP request, or its response, part-way, so a test can
//! kill the client at an exact point of its conversation (e.g. half-way through uploading a
//! model), or the server (half-way through sending one).
//!
//! Until [`HoldingProxy::hold`] arms it, it passes bytes both ways. Armed with a request-line
//! prefix, the first request starting with it is cut as the chosen [`Cut`] says and
//! [`HoldingProxy::is_held`] turns true. A request cut part-way is forwarded up to the cut and
//! the rest is held back (read from the client and dropped); when the client goes away, the
//! upstream connection is closed with the request unfinished, exactly what the server sees when
//! a client dies mid-request. A response cut part-way reaches the client up to the cut, and
//! then the connection closes, what a client sees when the server dies mid-response.
//! One-shot: later requests pass.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// How much of the held request reaches the server.
#[derive(Debug, Clone, Copy)]
pub enum Cut {
    /// Nothing of it.
    BeforeRequest,
    /// Its head and this share (0 to 1) of its `Content-Length` body.
    MidBody(f64),
    /// All of it; then its response's head and this share (0 to 1) of the response's
    /// `Content-Length` body reach the client, and the connection closes.
    MidResponse(f64),
}

#[derive(Default)]
struct State {
    armed: Mutex<Option<(Vec<u8>, Cut)>>,
    held: AtomicBool,
}

pub struct HoldingProxy {
    pub url: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

impl HoldingProxy {
    /// Listens on a loopback port and forwards to `upstream` (`host:port`).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("proxy listener: {e}"));
        let addr: SocketAddr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy address: {e}"));
        let state = Arc::new(State::default());
        let upstream = upstream.to_owned();
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (state, upstream) = (shared.clone(), upstream.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let _ = relay(client, server, state).await;
                    }
                });
            }
        });
        Self {
            url: format!("http://{addr}"),
            state,
            task,
        }
    }

    /// Arms the proxy: the next request whose request line starts with `request_line_prefix`
    /// (e.g. `POST /v1/models/fraud/versions`) is cut at `cut`.
    pub fn hold(&self, request_line_prefix: &str, cut: Cut) {
        self.state.held.store(false, Ordering::SeqCst);
        *self
            .state
            .armed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((request_line_prefix.as_bytes().to_vec(), cut));
    }

    /// Whether the armed request has been cut.
    pub fn is_held(&self) -> bool {
        self.state.held.load(Ordering::SeqCst)
    }
}

impl Drop for HoldingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How much of a body of `body` bytes a cut at `share` lets through: never all of it.
fn part_of(body: usize, share: f64) -> usize {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let part = (body as f64 * share.clamp(0.0, 1.0)) as usize;
    part.min(body.saturating_sub(1))
}

async fn relay(client: TcpStream, server: TcpStream, state: Arc<State>) -> std::io::Result<()> {
    let (mut client_read, client_write) = client.into_split();
    let (server_read, mut server_write) = server.into_split();
    // Set when this connection carries the request whose response is to be cut: the next
    // bytes from the server are that response (HTTP/1.1 clients send a request on a kept-alive
    // connection only once they have read the previous response).
    let cut_response: Arc<Mutex<Option<f64>>> = Arc::default();
    let back = tokio::spawn(respond(
        server_read,
        client_write,
        cut_response.clone(),
        state.clone(),
    ));
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = client_read.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        let armed = state
            .armed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some((prefix, cut)) = armed else {
            server_write.write_all(&pending).await?;
            pending.clear();
            continue;
        };
        // A request line starts the buffer or follows a CRLF.
        let start = if pending.starts_with(&prefix) {
            Some(0)
        } else {
            let mut marker = b"\r\n".to_vec();
            marker.extend_from_slice(&prefix);
            find(&pending, &marker).map(|i| i + 2)
        };
        let Some(start) = start else {
            // Keep back a request line that has only begun to arrive (a request's last bytes
            // are never held back: they end in CRLF CRLF, which no request line starts with).
            let keep = if prefix.starts_with(&pending) {
                pending.len()
            } else {
                0
            };
            let send = pending.len() - keep;
            server_write.write_all(&pending[..send]).await?;
            pending.drain(..send);
            continue;
        };
        server_write.write_all(&pending[..start]).await?;
        pending.drain(..start);
        let forward = match cut {
            Cut::MidResponse(share) => {
                *cut_response
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(share);
                *state
                    .armed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                server_write.write_all(&pending).await?;
                pending.clear();
                continue;
            }
            Cut::BeforeRequest => 0,
            Cut::MidBody(share) => {
                while find(&pending, b"\r\n\r\n").is_none() {
                    let n = client_read.read(&mut buf).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    pending.extend_from_slice(&buf[..n]);
                }
                let head_end = find(&pending, b"\r\n\r\n").unwrap_or(0) + 4;
                head_end + part_of(content_length(&pending[..head_end]), share)
            }
        };
        while pending.len() < forward {
            let n = client_read.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&buf[..n]);
        }
        server_write.write_all(&pending[..forward]).await?;
        server_write.flush().await?;
        *state
            .armed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        state.held.store(true, Ordering::SeqCst);
        // Hold: swallow the rest until the client goes away, then close upstream unfinished.
        while client_read.read(&mut buf).await.unwrap_or(0) > 0 {}
        back.abort();
        return Ok(());
    }
    let _ = server_write.shutdown().await;
    let _ = back.await;
    Ok(())
}

/// Copies the server's bytes to the client; once `cut` is set, lets the response then arriving
/// through up to the cut and closes the connection.
async fn respond(
    mut server_read: tokio::net::tcp::OwnedReadHalf,
    mut client_write: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<Mutex<Option<f64>>>,
    state: Arc<State>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut response: Vec<u8> = Vec::new();
    while let Ok(n) = server_read.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let share = *cut
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(share) = share else {
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
            continue;
        };
        response.extend_from_slice(&buf[..n]);
        let Some(at) = find(&response, b"\r\n\r\n") else {
            continue;
        };
        let head_end = at + 4;
        let through = head_end + part_of(content_length(&response[..head_end]), share);
        while response.len() < through {
            match server_read.read(&mut buf).await {
                Ok(n) if n > 0 => response.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        let through = through.min(response.len());
        let _ = client_write.write_all(&response[..through]).await;
        let _ = client_write.flush().await;
        state.held.store(true, Ordering::SeqCst);
        break;
    }
    let _ = client_write.shutdown().await;
}
