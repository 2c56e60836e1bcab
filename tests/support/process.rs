//! The real binaries as child processes: a clean environment, their JSON logs kept for the
//! assertions, and the signals Kubernetes sends (SIGTERM on a rollout, SIGKILL on an OOM kill
//! or a node loss).

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// The path of a workspace binary (`fraud`, `recommender`, `registry`, `trainer`), from the
/// profile directory this test was built into (`target/debug/deps/<test>` → `target/debug`),
/// or from `E2E_BIN_DIR` when set: a copy of this checkout's binaries, where several checkouts
/// share one `CARGO_TARGET_DIR` and another's build can replace `target/debug/registry`
/// between this one's build and its test.
///
/// # Panics
/// When it has not been built: `scripts/test.sh` runs `cargo build --workspace --bins` first.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("test executable: {e}"));
    let profile = match std::env::var_os("E2E_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => exe
            .parent()
            .and_then(std::path::Path::parent)
            .unwrap_or_else(|| panic!("no profile directory above {}", exe.display()))
            .to_path_buf(),
    };
    let path = profile.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A running binary. Killed (SIGKILL) when dropped.
pub struct Proc {
    name: String,
    child: Child,
    /// Every line it wrote to stdout or stderr, in order of arrival.
    lines: Arc<Mutex<Vec<String>>>,
    /// Its stdout alone (the trainer's result is its stdout).
    stdout: Arc<Mutex<Vec<String>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn collect(stream: impl AsyncRead + Unpin + Send + 'static, sinks: Vec<Arc<Mutex<Vec<String>>>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            for sink in &sinks {
                lock(sink).push(line.clone());
            }
        }
    });
}

impl Proc {
    /// Starts workspace binary `name` with `args` and only `env` (plus `PATH`) in its
    /// environment.
    ///
    /// # Panics
    /// When it cannot be started.
    pub fn spawn(name: &str, args: &[&str], env: &[(String, String)]) -> Self {
        Self::spawn_program(&binary(name), args, env)
    }

    /// As [`Proc::spawn`], for any program (e.g. `wrk` from `PATH`).
    ///
    /// # Panics
    /// When it cannot be started.
    pub fn spawn_program(
        program: &std::path::Path,
        args: &[&str],
        env: &[(String, String)],
    ) -> Self {
        let name = program
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut child = Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            collect(out, vec![lines.clone(), stdout.clone()]);
        }
        if let Some(err) = child.stderr.take() {
            collect(err, vec![lines.clone()]);
        }
        Self {
            name,
            child,
            lines,
            stdout,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child
            .id()
            .unwrap_or_else(|| panic!("{} has already exited", self.name))
    }

    /// Everything it has written so far.
    pub fn output(&self) -> Vec<String> {
        lock(&self.lines).clone()
    }

    /// Its stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        lock(&self.stdout).clone()
    }

    /// Its JSON log records so far (lines that are not JSON objects are skipped).
    pub fn logs(&self) -> Vec<serde_json::Value> {
        lock(&self.lines)
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(serde_json::Value::is_object)
            .collect()
    }

    /// The last `n` lines of output, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let lines = lock(&self.lines);
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Waits for the first log record matching `matches`.
    ///
    /// # Panics
    /// When none arrives within `timeout` or the process exits first.
    pub async fn wait_for_log(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(record) = self.logs().into_iter().find(|r| matches(r)) {
                return record;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers drain the pipes before looking one last time.
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some(record) = self.logs().into_iter().find(|r| matches(r)) {
                    return record;
                }
                panic!(
                    "{} exited ({status}) before logging {what}:\n{}",
                    self.name,
                    self.tail(40)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not log {what} within {timeout:?}:\n{}",
                self.name,
                self.tail(40)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `signal` (`TERM`, `KILL`, …) with the `kill` command.
    ///
    /// # Panics
    /// When `kill` fails.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap_or_else(|e| panic!("kill -{signal}: {e}"));
        assert!(status.success(), "kill -{signal} {} failed", self.name);
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for it to exit.
    ///
    /// # Panics
    /// When it is still running after `timeout`.
    pub async fn wait(&mut self, timeout: Duration) -> ExitStatus {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => {
                let status = status.unwrap_or_else(|e| panic!("wait for {}: {e}", self.name));
                // The pipes close with the process; give the readers a moment to finish.
                tokio::time::sleep(Duration::from_millis(50)).await;
                status
            }
            Err(_) => panic!(
                "{} still running after {timeout:?}:\n{}",
                self.name,
                self.tail(40)
            ),
        }
    }
}

/// A service binary listening on a loopback port it picked (`PORT=0`).
pub struct Service {
    pub proc: Proc,
    pub url: String,
    pub client: reqwest::Client,
}

impl Service {
    /// Starts service binary `name` with `env` on `127.0.0.1:0` and waits until it listens
    /// (not until it is ready: a model server without a model listens but is not ready).
    ///
    /// # Panics
    /// When it does not start listening within 30 s.
    pub async fn start(name: &str, env: &[(String, String)]) -> Self {
        let mut env = env.to_vec();
        env.extend([
            ("HOST".to_owned(), "127.0.0.1".to_owned()),
            ("PORT".to_owned(), "0".to_owned()),
        ]);
        let mut proc = Proc::spawn(name, &[], &env);
        let listening = proc
            .wait_for_log("Listening.", Duration::from_secs(30), |r| {
                r["message"] == "Listening."
            })
            .await;
        let port = listening["port"]
            .as_u64()
            .unwrap_or_else(|| panic!("no port in {listening}"));
        shared_lib::telemetry::install_tls_provider();
        Self {
            proc,
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        }
    }

    /// Starts it and waits until `/readyz` answers 200.
    pub async fn start_ready(name: &str, env: &[(String, String)]) -> Self {
        let service = Self::start(name, env).await;
        shared_lib::testing::wait_until_ready(&service.url).await;
        service
    }

    /// `GET path`.
    ///
    /// # Panics
    /// When the request fails at the HTTP level (no response).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The status of `GET path`.
    pub async fn status(&self, path: &str) -> u16 {
        self.get(path).await.status().as_u16()
    }

    /// `GET path`, expecting 200 and JSON.
    ///
    /// # Panics
    /// On another status or a body that is not JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let res = self.get(path).await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The sum of metric `name`'s samples whose labels include `labels`.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self
            .get("/metrics")
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
        shared_lib::testing::metric_sum(&text, name, labels)
    }

    /// The `X-Model-Version` of a 200 answer to `GET path`.
    ///
    /// # Panics
    /// On another status or no such header.
    pub async fn served_version(&self, path: &str) -> String {
        let res = self.get(path).await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.headers()["x-model-version"]
            .to_str()
            .unwrap_or_default()
            .to_owned()
    }
}
