//! The recommender service over real HTTP, with models published to an in-process S3 server.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

mod click_store;
mod drift;
mod events_auth;
mod helpers;
mod limits;
mod recommendations;
mod search;
