//! Held-out evaluation metrics.

pub mod classification;
pub mod ranking;
