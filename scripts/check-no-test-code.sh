#!/bin/sh
# Fails when a binary carries shared-lib's `testing` feature (an in-process S3 server and other
# test helpers): it turns on suite-telemetry's `testing` feature, which compiles in a start-up
# warning holding the marker below.
#
#   scripts/check-no-test-code.sh target/release/fraud target/release/registry ...
#
# docker/Dockerfile runs it on the four release binaries it builds; scripts/check-deploy.sh
# runs it on binaries built with the Dockerfile's own cargo command line.
set -eu
MARKER=ML-SERVING-TESTING-FEATURE-COMPILED-IN
[ $# -gt 0 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
bad=0
for bin in "$@"; do
    [ -f "$bin" ] || { echo "check-no-test-code: no such binary: $bin" >&2; exit 2; }
    if grep -q "$MARKER" "$bin"; then
        echo "check-no-test-code: $bin was built with shared-lib's testing feature (build with -p, as docker/Dockerfile does)" >&2
        bad=1
    else
        echo "check-no-test-code: $bin: no testing feature"
    fi
done
exit $bad
