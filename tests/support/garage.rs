//! A Garage of a test's own, for faults that take the store away: the shared one on
//! `E2E_S3_ENDPOINT` serves the other tests and must stay up.
//!
//! Started by `scripts/garage.sh` exactly as the suite's Garage is, on ports no one else uses;
//! [`PrivateGarage::kill`] is a real SIGKILL of the process, and [`PrivateGarage::restart`]
//! starts it again on the same data directory and ports.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use shared_lib::store::{ObjectKey, S3Credentials, S3Settings};

pub struct PrivateGarage {
    dir: tempfile::TempDir,
    port: u16,
    /// `E2E_S3_*` as `scripts/garage.sh start` printed them.
    exports: Vec<(String, String)>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/garage.sh")
}

/// An S3 port whose RPC (+1) and admin (+3) neighbours are free too, below the kernel's
/// ephemeral range. A port from `bind(0)` lies inside that range, where any client connection
/// of the tests running in parallel can take it between this check and Garage binding it:
/// Garage then panicked with "Address already in use" on its RPC port, once in a full run.
fn free_port_block() -> u16 {
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let (low, high) = (10_000u16, ephemeral_from.saturating_sub(4).max(10_100));
    // A random start, so that private Garages started at once by parallel tests (separate
    // processes under nextest) rarely try the same block.
    let start = uuid::Uuid::new_v4().as_u128();
    let span = u128::from(high - low);
    for i in 0..500u128 {
        #[allow(clippy::cast_possible_truncation)]
        let port = low + ((start.wrapping_add(i * 7_919)) % span) as u16;
        if [0, 1, 3]
            .iter()
            .all(|d| TcpListener::bind(("127.0.0.1", port + d)).is_ok())
        {
            return port;
        }
    }
    panic!("no free block of loopback ports below {high} for a private Garage");
}

fn refuses(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

impl PrivateGarage {
    /// Starts a fresh single-node Garage; returns when its bucket answers.
    ///
    /// # Panics
    /// When `scripts/garage.sh start` fails (Garage not installed: run `scripts/garage.sh
    /// install`, as `scripts/test.sh` does).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let mut garage = Self {
            dir,
            port: free_port_block(),
            exports: Vec::new(),
        };
        garage.exports = garage.run_start();
        garage
    }

    fn run_start(&self) -> Vec<(String, String)> {
        let output = std::process::Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(self.dir.path())
            .env("GARAGE_S3_PORT", self.port.to_string())
            .output()
            .unwrap_or_else(|e| panic!("scripts/garage.sh start: {e}"));
        assert!(
            output.status.success(),
            "scripts/garage.sh start failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn var(&self, name: &str) -> String {
        self.exports
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("scripts/garage.sh printed no {name}"))
    }

    /// The environment of a service whose model store is this Garage under `prefix`.
    pub fn service_env(&self, prefix: &str) -> Vec<(String, String)> {
        crate::store_env(&self.settings(prefix))
    }

    /// S3 settings for this Garage under `prefix`.
    pub fn settings(&self, prefix: &str) -> S3Settings {
        S3Settings {
            bucket: self.var("E2E_S3_BUCKET"),
            prefix: Some(ObjectKey::parse(prefix).unwrap_or_else(|e| panic!("{e}"))),
            endpoint: Some(self.var("E2E_S3_ENDPOINT")),
            region: self.var("E2E_S3_REGION"),
            force_path_style: true,
            credentials: Some(S3Credentials {
                access_key_id: self.var("E2E_S3_ACCESS_KEY_ID"),
                secret_access_key: SecretString::from(self.var("E2E_S3_SECRET_ACCESS_KEY")),
                session_token: None,
            }),
        }
    }

    /// SIGKILLs the Garage process; returns once its S3 port refuses connections.
    ///
    /// # Panics
    /// When there is no pid file or the port still answers after 10 s.
    pub fn kill(&self) {
        let pid = std::fs::read_to_string(self.dir.path().join("garage.pid"))
            .unwrap_or_else(|e| panic!("garage.pid: {e}"));
        let status = std::process::Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .unwrap_or_else(|e| panic!("kill: {e}"));
        assert!(status.success(), "kill -KILL {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !refuses(self.port) {
            assert!(
                Instant::now() < deadline,
                "Garage still answers after SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts it again on the same data and ports; returns when the bucket answers.
    pub fn restart(&self) {
        let exports = self.run_start();
        assert_eq!(
            exports, self.exports,
            "Garage came back with other settings"
        );
    }
}

impl Drop for PrivateGarage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}
