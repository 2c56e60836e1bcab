#!/usr/bin/env bash
# cargo-fuzz targets (issue #5, part 3), each run for a bounded time; exits non-zero on a crash
# (a panic, an assertion in the target, a timeout or an out-of-memory).
#
#   scripts/fuzz.sh                      every target, FUZZ_SECONDS (default 30) each
#   scripts/fuzz.sh artifact_decoder     one target
#   FUZZ_SECONDS=600 scripts/fuzz.sh     a longer hunt
#
# Targets (fuzz/fuzz_targets/): artifact_decoder, manifest_parser, query_features,
# rating_readers. The crate fuzz/ has a [workspace] of its own and a target directory of its own
# (fuzz/target), so it never touches the workspace's build. Each target starts from the seeds
# committed in fuzz/seeds/<target>/ plus what earlier local runs found (fuzz/corpus/<target>/,
# not committed). A crash leaves its input in fuzz/artifacts/<target>/; replay it with
#   cd fuzz && cargo +nightly fuzz run -s none <target> artifacts/<target>/<file>
#
# Toolchain: cargo-fuzz passes rustc flags that only nightly accepts. The nightly toolchain is
# used when rustup has one; otherwise the pinned stable with RUSTC_BOOTSTRAP=1 (same flags; a
# machine here cannot download a toolchain). Sanitizer: none by default (FUZZ_SANITIZER to
# change): the project forbids unsafe code, so AddressSanitizer would mostly re-check the
# dependencies' unsafe code at twice the build time and a fraction of the executions, and it
# needs a real nightly.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${FUZZ_SECONDS:-30}
SANITIZER=${FUZZ_SANITIZER:-none}
CARGO_FUZZ_VERSION=0.13.2
ALL_TARGETS=(artifact_decoder manifest_parser query_features rating_readers)
targets=("$@")
((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")
export PATH="$HOME/.cargo/bin:$PATH"
started=$(date +%s)

if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION..." >&2
    # Built with the pinned stable toolchain; cargo-fuzz itself needs no nightly.
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet
fi

if rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=(+nightly)
else
    echo "fuzz: no nightly toolchain; using $(rustc --version) with RUSTC_BOOTSTRAP=1" >&2
    toolchain=()
    export RUSTC_BOOTSTRAP=1
fi

cd fuzz
echo "fuzz: building ${targets[*]} (sanitizer: $SANITIZER)..." >&2
build_started=$(date +%s)
for t in "${targets[@]}"; do
    cargo "${toolchain[@]}" fuzz build --sanitizer "$SANITIZER" "$t"
done
echo "fuzz: built in $(($(date +%s) - build_started)) s" >&2

failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
    log=$(mktemp)
    echo >&2
    echo "fuzz: === $t, ${SECONDS_EACH} s ===" >&2
    rc=0
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a 2 GiB allocation is a bug
    # (the readers and decoders must refuse absurd sizes, not try them). The first corpus
    # directory receives new inputs; the seeds are read only.
    cargo "${toolchain[@]}" fuzz run --sanitizer "$SANITIZER" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    if ((rc != 0)); then
        tail -60 "$log" >&2
        crash=$(grep -o 'artifacts/[^ ]*' "$log" | tail -1 || true)
        echo "fuzz: $t FAILED (exit $rc); input: fuzz/${crash:-artifacts/$t/}" >&2
        if [[ -n $crash && -f $crash ]]; then
            echo "fuzz: input as base64: $(base64 -w0 "$crash" | head -c 4000)" >&2
        fi
        failed+=("$t")
        summary+=("$t: CRASH after ${runs:-?} runs (fuzz/${crash:-?})")
    else
        summary+=("$t: ${runs:-?} runs, coverage ${cov:-?}, no crash")
    fi
    rm -f "$log"
done

echo >&2
printf 'fuzz: %s\n' "${summary[@]}" >&2
echo "fuzz: finished in $(($(date +%s) - started)) s" >&2
if ((${#failed[@]})); then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: passed"
