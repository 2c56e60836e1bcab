//! The end-to-end tests, one binary: the real binaries against Garage and Redis, faults
//! survived, the registry's page in Chromium, and the dashboards' queries.

mod dashboards;
mod faults;
mod garage;
mod redis;
mod registry_page;
