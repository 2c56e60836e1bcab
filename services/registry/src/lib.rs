//! Model registry service: versions, aliases, rollback and history over HTTP; the single writer of registry metadata on S3 (issue #8).
//!
//! Not built yet: the binary runs the shared service skeleton (health, metrics, not ready).

pub const SERVICE: &str = "registry";
pub const DEFAULT_PORT: u16 = 8082;
