#!/usr/bin/env bash
# Registry start-up at many versions on Garage: seconds from process start until /readyz is 200.
#
#   scripts/bench-registry-startup.sh [REGISTRY_BINARY...]
#
# Starts a private Garage (scripts/garage.sh, on GARAGE_S3_PORT, default 3930), seeds VERSIONS
# (default 10000) versions of one model with the `seed_manifests` example of the registry
# crate, then starts each registry binary given (default: this tree's debug build) RUNS times
# (default 3) on that store and prints each time, the median and the manifests it indexed.
# To compare with an older registry, build it from that commit and pass both binaries.
# Debug builds are what the suite's tests run; the store round trips dominate either way.
set -euo pipefail
cd "$(dirname "$0")/.."

versions=${VERSIONS:-10000}
runs=${RUNS:-3}
port=${REGISTRY_PORT:-18930}
target=${CARGO_TARGET_DIR:-target}
export CARGO_TARGET_DIR=$target

work=$(mktemp -d)
cleanup() {
    [[ -n ${registry_pid:-} ]] && kill "$registry_pid" 2>/dev/null
    scripts/garage.sh stop "$work/garage"
    rm -rf "$work"
}
trap cleanup EXIT

cargo build -q -p registry --bin registry --example seed_manifests
# Copies: a parallel build in a shared target directory must not swap a binary mid-run.
cp "$target/debug/examples/seed_manifests" "$work/seed_manifests"
if [[ $# -eq 0 ]]; then
    cp "$target/debug/registry" "$work/registry"
    set -- "$work/registry"
fi

eval "$(GARAGE_S3_PORT=${GARAGE_S3_PORT:-3930} scripts/garage.sh start "$work/garage")"
export MODEL_STORE="s3://$E2E_S3_BUCKET/bench" S3_ENDPOINT_URL=$E2E_S3_ENDPOINT \
    AWS_REGION=$E2E_S3_REGION AWS_ACCESS_KEY_ID=$E2E_S3_ACCESS_KEY_ID \
    AWS_SECRET_ACCESS_KEY=$E2E_S3_SECRET_ACCESS_KEY
"$work/seed_manifests" "$versions"

for binary in "$@"; do
    times=()
    for _ in $(seq 1 "$runs"); do
        started=$(date +%s.%N)
        HOST=127.0.0.1 PORT=$port RUST_LOG=info "$binary" >"$work/registry.log" 2>&1 &
        registry_pid=$!
        until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do
            if ! kill -0 "$registry_pid" 2>/dev/null; then
                echo "$binary exited; its log:" >&2
                tail -20 "$work/registry.log" >&2
                exit 1
            fi
            if awk -v s="$started" -v n="$(date +%s.%N)" 'BEGIN { exit !(n - s > 900) }'; then
                echo "$binary not ready after 900 s" >&2
                exit 1
            fi
            sleep 0.05
        done
        ready=$(date +%s.%N)
        kill "$registry_pid"
        wait "$registry_pid" 2>/dev/null || true
        registry_pid=
        times+=("$(awk -v s="$started" -v r="$ready" 'BEGIN { printf "%.2f", r - s }')")
        indexed=$(grep -o '"manifests":[0-9]*' "$work/registry.log" | head -1 | cut -d: -f2)
    done
    median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    echo "$binary: $versions versions on Garage, ${indexed:-?} manifests indexed; ready after ${times[*]} s; median $median s"
done
