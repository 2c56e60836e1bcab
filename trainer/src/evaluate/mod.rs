//! Held-out evaluation metrics.
