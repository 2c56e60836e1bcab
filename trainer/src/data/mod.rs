//! Input data: generators with known structure and readers of real formats.

pub mod parquet;
pub mod ratings;
pub mod source;
pub mod table;
