//! Training data as the trainer reads it: rating files in the MovieLens formats, the fraud
//! CSV table, Parquet (one file or Spark's part files), all from bytes already in memory.
//!
//! This crate does no I/O, so what parses untrusted training files can be fuzzed, tested and
//! reasoned about without a store, a runtime or a network: the trainer's `data::source`
//! fetches the bytes (a local path or `s3://`) into a [`Dataset`] and hands it here. The rows'
//! split keys ([`row_key`]) are computed while reading, so the held-out split needs no second
//! pass.

pub mod dataset;
pub mod error;
pub mod parquet;
pub mod ratings;
pub mod row_key;
pub mod table;

pub use dataset::{Dataset, Input};
pub use error::Error;
