//! shared-lib's integration tests, one binary: the HTTP pieces in a real server, and publishers
//! sharing only a local directory.

mod http;
mod local_concurrency;
