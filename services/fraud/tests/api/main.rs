//! The fraud service over real HTTP, with models published to an in-process S3 server.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

mod classify;
mod drift;
mod helpers;
mod imported;
mod reload;
mod routing;
