#!/bin/sh
# Fails when a binary carries shared-lib's `testing` feature (an in-process S3 server and other
# test helpers): it turns on suite-telemetry's `testing` feature, which compiles in a start-up
# warning holding the marker below. Also fails when a binary carries suite-models' generated
# models (`als::synthetic`, benchmark and test data): no service may call them, so the linker
# leaves them out. Their symbols (`...3als9synthetic...`), or their source path in a panic
# location (which survives inlining), in a binary mean a service reached them. A binary without
# suite-models symbols (stripped) cannot be checked and fails too.
#
#   scripts/check-no-test-code.sh target/release/fraud target/release/registry ...
#   scripts/check-no-test-code.sh --synthetic-only target/debug/fraud ...
#
# docker/Dockerfile runs it on the four release binaries it builds. scripts/test.sh runs the
# synthetic check alone on the debug binaries of its workspace build, which carry the testing
# feature by design (the fault tests drive them).
set -eu
MARKER=ML-SERVING-TESTING-FEATURE-COMPILED-IN
testing_check=1
if [ "${1:-}" = --synthetic-only ]; then testing_check=0; shift; fi
[ $# -gt 0 ] || { echo "usage: $0 [--synthetic-only] BINARY..." >&2; exit 2; }
bad=0
for bin in "$@"; do
    [ -f "$bin" ] || { echo "check-no-test-code: no such binary: $bin" >&2; exit 2; }
    if [ $testing_check = 1 ] && grep -q "$MARKER" "$bin"; then
        echo "check-no-test-code: $bin was built with shared-lib's testing feature (build with -p, as docker/Dockerfile does)" >&2
        bad=1
    elif ! grep -q '12suite_models' "$bin"; then
        echo "check-no-test-code: $bin has no suite-models symbols (stripped?), so it cannot be checked" >&2
        bad=1
    elif grep -q -e '3als9synthetic' -e 'models/src/als/synthetic.rs' "$bin"; then
        echo "check-no-test-code: $bin carries suite-models' synthetic models (als::synthetic): a service calls them" >&2
        bad=1
    else
        echo "check-no-test-code: $bin: no synthetic models$([ $testing_check = 1 ] && echo ", no testing feature")"
    fi
done
exit $bad
