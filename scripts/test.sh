#!/usr/bin/env bash
# The one command that runs every test: formatting and lints, unit and integration tests (an
# in-process S3 server), and the end-to-end tests against Garage, which it installs on first
# use (cargo install, ~10-15 minutes once) and starts on loopback for the run. The registry
# page test needs Chromium (`apt-get install chromium`; .ci/run installs it), the hot-reload
# fault test wrk (`apt-get install wrk`; .ci/run installs it), the click-store tests
# redis-server (`apt-get install redis-server`; .ci/run installs it), started here on a private
# port. API fuzzing uses a
# virtualenv it creates (.venv-fuzz); the fuzz targets need cargo-fuzz (installed on first use)
# and build once into fuzz/target (about 10 minutes the first time).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/garage.sh install
garage_dir=$(mktemp -d)
redis_dir=$(mktemp -d)
trap 'scripts/garage.sh stop "$garage_dir"; scripts/redis.sh stop "$redis_dir"; rm -rf "$garage_dir" "$redis_dir"' EXIT
# Ports of their own, so a Garage or Redis you run by hand on 3900 or 6379 is left alone.
eval "$(GARAGE_S3_PORT=${GARAGE_S3_PORT:-3910} scripts/garage.sh start "$garage_dir")"
eval "$(REDIS_PORT=${REDIS_PORT:-6390} scripts/redis.sh start "$redis_dir")"

scripts/check-deploy.sh
cargo fmt --all --check
# Supply chain (deny.toml): licences, banned crates, crates.io only. Advisories need the
# RustSec database download, which CI cannot make: run `cargo deny check advisories` by hand.
CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qF "cargo-deny $CARGO_DENY_VERSION"; then
    echo "Installing cargo-deny $CARGO_DENY_VERSION (first time only; about 5 minutes)..." >&2
    cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked --quiet
fi
cargo deny --log-level error check licenses bans sources
cargo clippy --workspace --all-targets --locked -- -D warnings
# Doc comments: a broken or private intra-doc link, or stray HTML, fails like a lint.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
# The fault tests (tests/e2e/faults.rs) run the real binaries from target/debug: build them.
cargo build --workspace --bins --locked
# No service binary may reach the benchmark and test models (suite-models als::synthetic).
scripts/check-no-test-code.sh --synthetic-only target/debug/{fraud,recommender,registry,trainer}
# The quick start itself: scripts/up.sh on those debug binaries, one request per service, Ctrl-C.
scripts/up-smoke.sh
cargo nextest run --workspace --locked --run-ignored all --no-fail-fast
# Schemathesis against each running service (>= 500 cases each), then each cargo-fuzz
# target for a bounded time. Both exit non-zero on any 5xx, schema violation, panic or crash.
scripts/api-fuzz.sh
FUZZ_SECONDS=${FUZZ_SECONDS:-20} scripts/fuzz.sh
