//! Fraud classifier service: `GET /classify` and batch scoring from a random-forest model (issue #6).
//!
//! Not built yet: the binary runs the shared service skeleton (health, metrics, not ready).

pub const SERVICE: &str = "fraud";
pub const DEFAULT_PORT: u16 = 8080;
