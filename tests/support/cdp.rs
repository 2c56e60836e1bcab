//! A small Chrome DevTools Protocol client, so a browser test can click: headless Chromium
//! with a remote-debugging port, its page's WebSocket (RFC 6455 by hand: masked text frames
//! out, unmasked frames in; a few commands need nothing more), and `Runtime.evaluate`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Headless Chromium and a WebSocket to its one page.
pub struct Browser {
    child: tokio::process::Child,
    ws: TcpStream,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium (a fresh profile, a `width`×`height` window) on `about:blank`.
    ///
    /// # Panics
    /// When Chromium does not start or does not open its DevTools port within 30 s.
    pub async fn launch(width: u32, height: u32) -> Self {
        let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let child = tokio::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("chromium: {e} (apt-get install chromium)"));
        // Port 0: Chromium picks a free port and writes it to DevToolsActivePort.
        let port = wait_for_port(profile.path()).await;
        shared_lib::telemetry::install_tls_provider();
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("DevTools /json/list: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let page = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap_or_else(|| panic!("no page target: {targets}"))
            .to_owned();
        let ws = connect(&page).await;
        Self {
            child,
            ws,
            next_id: 0,
            _profile: profile,
        }
    }

    /// Sends a command and returns its result (events in between are skipped).
    ///
    /// # Errors
    /// The protocol's error object, when the command fails.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        send_text(&mut self.ws, message.as_bytes()).await;
        loop {
            let reply: Value = serde_json::from_slice(&receive(&mut self.ws).await)
                .unwrap_or_else(|e| panic!("DevTools sent something that is not JSON: {e}"));
            if reply["id"] == id {
                return match reply.get("error") {
                    Some(error) => Err(error.clone()),
                    None => Ok(reply["result"].clone()),
                };
            }
        }
    }

    /// Loads `url` in the page.
    ///
    /// # Panics
    /// When the page cannot navigate.
    pub async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }))
            .await
            .unwrap_or_else(|e| panic!("Page.navigate {url}: {e}"));
    }

    /// The value of a JavaScript expression in the page, or why there is none (it threw, or the
    /// page is between documents).
    ///
    /// # Errors
    /// The exception or protocol error.
    pub async fn eval(&mut self, expression: &str) -> Result<Value, Value> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        match result.get("exceptionDetails") {
            Some(exception) => Err(exception.clone()),
            None => Ok(result["result"]["value"].clone()),
        }
    }

    /// Waits until `expression` is true in the page (it may navigate meanwhile).
    ///
    /// # Panics
    /// After 15 s, showing the page's text.
    pub async fn wait_until(&mut self, expression: &str) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if self.eval(expression).await == Ok(Value::Bool(true)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let text = self
            .eval("document.body ? document.body.innerText : ''")
            .await;
        panic!("{expression} never became true; the page says: {text:?}");
    }

    /// A PNG of the viewport.
    ///
    /// # Panics
    /// When the capture fails.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        use base64::Engine as _;
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await
            .unwrap_or_else(|e| panic!("Page.captureScreenshot: {e}"));
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn wait_for_port(profile: &Path) -> u16 {
    let file = profile.join("DevToolsActivePort");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(text) = tokio::fs::read_to_string(&file).await
            && let Some(port) = text.lines().next().and_then(|l| l.trim().parse().ok())
        {
            return port;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Chromium did not open its DevTools port within 30 s");
}

/// The WebSocket handshake to `ws://host:port/path`.
async fn connect(url: &str) -> TcpStream {
    let rest = url
        .strip_prefix("ws://")
        .unwrap_or_else(|| panic!("not a ws:// URL: {url}"));
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut ws = TcpStream::connect(host)
        .await
        .unwrap_or_else(|e| panic!("{host}: {e}"));
    let request = format!(
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    ws.write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(ws.read_u8().await.unwrap_or_else(|e| panic!("{e}")));
    }
    let head = String::from_utf8_lossy(&head);
    assert!(
        head.starts_with("HTTP/1.1 101"),
        "WebSocket refused: {head}"
    );
    ws
}

/// One masked text frame (a client must mask).
async fn send_text(ws: &mut TcpStream, payload: &[u8]) {
    let mut frame = vec![0x81];
    let len = payload.len();
    if len < 126 {
        frame.push(0x80 | u8::try_from(len).unwrap_or(0));
    } else if let Ok(len) = u16::try_from(len) {
        frame.push(0x80 | 126);
        frame.extend(len.to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend((len as u64).to_be_bytes());
    }
    let mask: [u8; 4] = uuid::Uuid::new_v4().as_bytes()[..4]
        .try_into()
        .unwrap_or([1, 2, 3, 4]);
    frame.extend(mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    ws.write_all(&frame).await.unwrap_or_else(|e| panic!("{e}"));
}

/// The next whole message (fragments joined; pings and pongs skipped).
async fn receive(ws: &mut TcpStream) -> Vec<u8> {
    let mut message = Vec::new();
    loop {
        let mut head = [0u8; 2];
        ws.read_exact(&mut head)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0f);
        let mut len = u64::from(head[1] & 0x7f);
        if len == 126 {
            len = u64::from(ws.read_u16().await.unwrap_or_else(|e| panic!("{e}")));
        } else if len == 127 {
            len = ws.read_u64().await.unwrap_or_else(|e| panic!("{e}"));
        }
        let mask = if head[1] & 0x80 != 0 {
            let mut m = [0u8; 4];
            ws.read_exact(&mut m)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            Some(m)
        } else {
            None
        };
        let mut payload = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        ws.read_exact(&mut payload)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(m) = mask {
            payload
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b ^= m[i % 4]);
        }
        match opcode {
            0x8 => panic!("DevTools closed the WebSocket"),
            0x9 | 0xA => continue,
            _ => message.extend(payload),
        }
        if fin {
            return message;
        }
    }
}
