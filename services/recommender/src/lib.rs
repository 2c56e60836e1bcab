//! Recommender service: ALS recommendations, similar items and real-time fold-in (issue #7).
//!
//! Not built yet: the binary runs the shared service skeleton (health, metrics, not ready).

pub const SERVICE: &str = "recommender";
pub const DEFAULT_PORT: u16 = 8081;
