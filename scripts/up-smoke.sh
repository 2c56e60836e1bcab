#!/usr/bin/env bash
# A smoke run of scripts/up.sh on the debug binaries already built (cargo build --bins): it
# comes up on a fresh data directory (training the first models), each service answers one
# request, Ctrl-C (SIGINT to up.sh's process group, as a terminal sends it) stops it, and no
# process it started is left. Ports UP_SMOKE_PORT..+2 (default 18180..18182), so a suite you
# run by hand on 8080-8082 is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${UP_BIN_DIR:-${CARGO_TARGET_DIR:-target}/debug}
for b in registry fraud recommender trainer; do
    [[ -x $bin/$b ]] || { echo "up-smoke: $bin/$b is missing: run cargo build --bins first" >&2; exit 1; }
done
base=${UP_SMOKE_PORT:-18180}
data=$(mktemp -d)
log=$data/up.log
children=

# Job control: up.sh gets a process group of its own and SIGINT at its default (a background
# job of a script would otherwise start with SIGINT ignored, and could not be Ctrl-C'd).
set -m
UP_BIN_DIR=$bin DATA_DIR=$data/suite MODEL_STORE=$data/suite/models \
    REGISTRY_PORT=$base FRAUD_PORT=$((base + 1)) RECOMMENDER_PORT=$((base + 2)) \
    scripts/up.sh >"$log" 2>&1 &
up=$!
set +m

fail() {
    echo "up-smoke: FAILED: $*" >&2
    echo "--- up.sh output:" >&2
    cat "$log" >&2
    for f in "$data"/suite/logs/*.log; do
        [[ -f $f ]] && { echo "--- $f (tail):" >&2; tail -20 "$f" >&2; }
    done
    kill -KILL -- "-$up" ${children:-} 2>/dev/null || true
    exit 1
}

# Up: up.sh prints its banner once every service is ready (training included, a few minutes).
for _ in $(seq 1 1200); do
    grep -q "The suite is up" "$log" && break
    kill -0 "$up" 2>/dev/null || fail "up.sh exited before the suite was up"
    sleep 0.5
done
grep -q "The suite is up" "$log" || fail "not up within 10 minutes"

# One request per service.
check() { # name url expected-substring
    local body
    body=$(curl -fsS --max-time 10 "$2") || fail "$1: $2 did not answer 2xx"
    [[ $body == *"$3"* ]] || fail "$1: $2 answered $body, expected it to contain $3"
    echo "up-smoke: $1 ok: $2" >&2
}
check registry "http://127.0.0.1:$base/v1/models" '"fraud"'
check fraud "http://127.0.0.1:$((base + 1))/classify?f1=2500&f2=100&f3=0" '['
user=$(head -1 "$data/suite/ratings.tsv" | cut -f1)
check recommender "http://127.0.0.1:$((base + 2))/v1/users/$user/recommendations?n=3" '"items"'

# The processes up.sh started (its children, and whatever shares its process group), before
# stopping it: the registry, fraud and recommender services.
children=$({ pgrep -P "$up"; pgrep -g "$up"; } | grep -vx "$up" | sort -u | tr '\n' ' ' || true)
(($(wc -w <<<"$children") >= 3)) || fail "expected up.sh's three services, found: $children"

# Ctrl-C, then up.sh must exit within the services' drain time, leaving nothing behind.
kill -INT -- "-$up"
for _ in $(seq 1 600); do
    kill -0 "$up" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$up" 2>/dev/null && fail "up.sh still running 60 s after Ctrl-C"
wait "$up" || true
left=()
for pid in $children; do
    kill -0 "$pid" 2>/dev/null && left+=("$pid")
done
if pgrep -g "$up" >/dev/null || ((${#left[@]})); then
    ps -o pid,pgid,args -p "${left[*]:-0}" >&2 || true
    fail "processes left after Ctrl-C: ${left[*]} $(pgrep -g "$up" | tr '\n' ' ')"
fi
echo "up-smoke: Ctrl-C stopped up.sh and its services (${children% }); nothing left" >&2
rm -rf "$data"
echo "up-smoke: passed"
