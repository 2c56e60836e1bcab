#!/usr/bin/env bash
# Garage, a production S3-compatible store, single-node on loopback for end-to-end tests.
#
#   scripts/garage.sh install          build and install garage 2.5.0 if it is not on PATH
#   scripts/garage.sh start DIR        start it with data in DIR; prints `export …` lines
#   scripts/garage.sh stop DIR         stop the instance started in DIR
#
# Ports: GARAGE_S3_PORT (default 3900), +1 for RPC, +3 for admin. Loopback only.
set -euo pipefail

GARAGE_VERSION=2.5.0
ACCESS_KEY=GK0123456789abcdef01234567
SECRET_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
BUCKET=models
S3_PORT=${GARAGE_S3_PORT:-3900}

export PATH="$HOME/.cargo/bin:$PATH"

install() {
    if command -v garage >/dev/null && garage --version 2>&1 | grep -q "$GARAGE_VERSION"; then
        return
    fi
    echo "Installing garage $GARAGE_VERSION (first time only; about 10-15 minutes on 2 cores)..." >&2
    # Only the sqlite metadata engine: fewer crates to build than the defaults.
    cargo install garage --version "$GARAGE_VERSION" --locked \
        --no-default-features --features bundled-libs,sqlite >&2
}

start() {
    local dir=$1
    mkdir -p "$dir/meta" "$dir/data"
    dir=$(cd "$dir" && pwd)
    cat >"$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$((S3_PORT + 1))"
rpc_public_addr = "127.0.0.1:$((S3_PORT + 1))"
rpc_secret = "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3_PORT"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$((S3_PORT + 3))"
TOML
    GARAGE_DEFAULT_ACCESS_KEY=$ACCESS_KEY GARAGE_DEFAULT_SECRET_KEY=$SECRET_KEY \
        GARAGE_DEFAULT_BUCKET=$BUCKET RUST_LOG=warn \
        nohup garage -c "$dir/garage.toml" server --single-node --default-bucket \
        >"$dir/garage.log" 2>&1 &
    echo $! >"$dir/garage.pid"
    # Ready when the bucket answers (an unsigned request is refused with 403 once it exists).
    for _ in $(seq 1 120); do
        if garage -c "$dir/garage.toml" bucket info "$BUCKET" >/dev/null 2>&1; then
            cat <<ENV
export E2E_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export E2E_S3_REGION=garage
export E2E_S3_BUCKET=$BUCKET
export E2E_S3_ACCESS_KEY_ID=$ACCESS_KEY
export E2E_S3_SECRET_ACCESS_KEY=$SECRET_KEY
ENV
            return
        fi
        if ! kill -0 "$(cat "$dir/garage.pid")" 2>/dev/null; then
            echo "garage exited; its log:" >&2
            cat "$dir/garage.log" >&2
            exit 1
        fi
        sleep 0.5
    done
    echo "garage did not become ready in 60 s; its log:" >&2
    cat "$dir/garage.log" >&2
    exit 1
}

stop() {
    local pidfile=$1/garage.pid
    if [[ -f $pidfile ]]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    fi
}

case ${1:-} in
    install) install ;;
    start) start "${2:?usage: garage.sh start DIR}" ;;
    stop) stop "${2:?usage: garage.sh stop DIR}" ;;
    *) echo "usage: $0 install | start DIR | stop DIR" >&2; exit 2 ;;
esac
