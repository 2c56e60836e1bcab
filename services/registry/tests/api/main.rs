//! The registry service over real HTTP, with an in-process S3 server as its store.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

mod aliases;
mod auth;
mod binary;
mod console;
mod helpers;
mod retention;
mod startup;
mod uploads;
mod versions;
