//! Input data: generators with known structure (in `fraud` and `recommender`), the readers of
//! real formats (the `suite-data` crate, re-exported here), and fetching the bytes they read.

pub use suite_data::{parquet, ratings, table};
pub mod source;
