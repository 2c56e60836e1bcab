//! The trainer's integration tests, one binary: the CLI end to end against local and S3 stores,
//! the registry service and TLS, imports from Spark and scikit-learn, and Parquet inputs.

mod fraud;
mod import;
mod one_writer;
mod parquet;
mod recommender;
mod registry_api;
mod s3_inputs;
mod support;
mod tls;
