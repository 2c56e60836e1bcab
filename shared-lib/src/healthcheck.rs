//! `<binary> healthcheck`: probe this service's own `/readyz` and exit 0 (ready) or 1.
//!
//! The images are distroless (no shell, no curl), so a container engine's health check
//! (`docker compose`'s `healthcheck: test: [CMD, /usr/local/bin/fraud, healthcheck]`) needs the
//! binary itself to ask. It reads the same `PORT` the server listens on and talks plain
//! HTTP/1.0 to 127.0.0.1 with std only: no runtime, no TLS, nothing to configure.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::settings::Env;

/// The first argument that selects the health check.
pub const COMMAND: &str = "healthcheck";

/// True when the process was started as `<binary> healthcheck`.
pub fn requested() -> bool {
    std::env::args().nth(1).as_deref() == Some(COMMAND)
}

/// Runs the health check of a server listening on `PORT` (default `default_port`): prints one
/// line to stderr and returns the exit code: 0 when `/readyz` answers 200, else 1.
pub fn run(env: Env, default_port: u16) -> i32 {
    let mut env = env;
    let port: u16 = env.parse_or("PORT", default_port);
    let timeout = Duration::from_secs(env.parse_or("HEALTHCHECK_TIMEOUT_SECONDS", 3_u64));
    let outcome = probe_readyz(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), timeout);
    // The one line a container engine keeps as the check's output.
    match outcome {
        Ok(()) => {
            eprintln!("healthcheck: 127.0.0.1:{port}/readyz ready");
            0
        }
        Err(reason) => {
            eprintln!("healthcheck: 127.0.0.1:{port}/readyz not ready: {reason}");
            1
        }
    }
}

/// `GET /readyz` at `addr`; `Ok` only for a 200.
///
/// # Errors
/// A sentence saying what went wrong: no connection, a timeout, or the status answered.
pub fn probe_readyz(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("socket: {e}"))?;
    stream
        .write_all(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0_u8; 256];
    // Only the status line matters; stop reading once it is complete.
    while !head.contains(&b'\n') && head.len() < 4096 {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let status_line = line.lines().next().unwrap_or_default().trim();
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(_) => Err(format!("answered {status_line:?}")),
        None => Err("no HTTP answer".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve_once(answer: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0_u8; 512];
            let n = s.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"GET /readyz "));
            s.write_all(answer.as_bytes()).unwrap();
        });
        addr
    }

    #[test]
    fn a_200_is_ready_anything_else_is_not() {
        let cases = [
            ("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", true),
            ("HTTP/1.1 503 Service Unavailable\r\n\r\n", false),
            ("HTTP/1.1 404 Not Found\r\n\r\n", false),
            ("garbage", false),
        ];
        for (answer, ready) in cases {
            let outcome = probe_readyz(serve_once(answer), Duration::from_secs(2));
            assert_eq!(outcome.is_ok(), ready, "{answer:?} -> {outcome:?}");
        }
    }

    #[test]
    fn nothing_listening_is_not_ready() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let outcome = probe_readyz(addr, Duration::from_secs(1));
        assert!(outcome.unwrap_err().starts_with("connect:"));
    }
}
