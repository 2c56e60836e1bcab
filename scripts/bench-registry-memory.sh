#!/usr/bin/env bash
# Memory benchmark of the registry's streamed artifact uploads and downloads (issue 13, item 1).
#
# Builds the registry binary and the bench_memory example, then runs it: it starts the real
# binary on a local store in a temporary directory and reads the registry's VmRSS/VmHWM from
# /proc/<pid>/status around 4 concurrent unauthenticated 200 MB uploads (must be 401, peak
# growth < 16 MiB), one authenticated 250 MB upload + registration and its download (each
# < 64 MiB). Bodies are generated on the fly; nothing of their size is written to disk except
# the artifact the registry stores (removed with the temporary store). Prints each run and the
# median of 3; exits non-zero when a bound is exceeded. Linux only (/proc, clear_refs).
#
# With --s3 the registry's store is an S3 server (s3s-fs, run inside the bench process) rather
# than a local directory, so uploads take the multipart path (8 MiB parts).
#
# usage: scripts/bench-registry-memory.sh [--release] [--runs N] [--s3]
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
cargo_profile=()
runs=3
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --release) profile=release; cargo_profile=(--release) ;;
        --runs) runs="$2"; shift ;;
        --s3) extra=(--s3) ;;
        *) echo "usage: $0 [--release] [--runs N] [--s3]" >&2; exit 2 ;;
    esac
    shift
done

cargo build "${cargo_profile[@]}" -p registry --bin registry --example bench_memory
target="${CARGO_TARGET_DIR:-target}/$profile"
echo "bench-registry-memory: $target/registry, $runs runs" >&2
"$target/examples/bench_memory" "$target/registry" --runs "$runs" "${extra[@]}"
