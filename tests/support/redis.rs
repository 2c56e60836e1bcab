//! Redis for the tests: the suite's shared one, and one of a test's own to kill.
//!
//! `scripts/test.sh` starts a `redis-server` on a private loopback port (`scripts/redis.sh`) and
//! exports `E2E_REDIS_URL`; [`shared_url`] reads it. A test that takes Redis away starts a
//! [`PrivateRedis`] instead: Debian's `redis-server` on a free port, no persistence,
//! [`PrivateRedis::kill`] a real SIGKILL and [`PrivateRedis::restart`] a new process on the same
//! port.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The URL of the Redis `scripts/test.sh` started.
///
/// # Panics
/// When `E2E_REDIS_URL` is not set: run the tests through `scripts/test.sh`.
pub fn shared_url() -> String {
    std::env::var("E2E_REDIS_URL").unwrap_or_else(|_| {
        panic!("E2E_REDIS_URL is not set: start Redis with scripts/redis.sh or run scripts/test.sh")
    })
}

/// A key prefix no other test uses, for `CLICKS_KEY_PREFIX`.
pub fn unique_prefix(test: &str) -> String {
    format!("test:{test}:{}:", uuid::Uuid::new_v4().simple())
}

pub struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

impl PrivateRedis {
    /// Starts `redis-server` on a free loopback port; returns when it accepts connections.
    ///
    /// # Panics
    /// When `redis-server` is not installed (`apt-get install redis-server`) or does not start.
    pub fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            child: None,
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: connections drop at once, as when a Redis pod is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .unwrap_or_else(|e| panic!("kill redis-server: {e}"));
            child
                .wait()
                .unwrap_or_else(|e| panic!("wait for redis-server: {e}"));
        }
    }

    /// Starts it again on the same port (empty: no persistence).
    ///
    /// # Panics
    /// When it does not accept connections within 10 s.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start redis-server (apt-get install redis-server): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
