# Helpers shared by the HTTP benchmarks (bench/serving/run.sh, bench/recommender/run.sh); sourced.

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# stop_pid PID: SIGTERM, up to 10 s to exit, then SIGKILL.
stop_pid() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

to_ms() { # wrk's 812.00us / 1.23ms / 2.01s / 1.00m -> milliseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}

wait_ok() { # url seconds: until the URL answers 2xx, or fail after that many seconds
    local deadline=$((SECONDS + $2))
    until curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
    ok = (op == ">=") ? (v >= t) : (op == "<=") ? (v <= t) : (v < t)
    print ((v != "n/a" && ok) ? "met" : "MISSED") }'; }

# build_release [profile]: the release binaries, built the one way scripts/up.sh and
# docker/Dockerfile build them (the four packages together, so features resolve alike), plus the
# benchmarks' own programs (package bench-harness: normal dependencies only, no test features).
# After scripts/up.sh this compiles bench-harness alone. The profile is `release` unless named
# (`production`: what the images serve). Binaries land in $target_dir/<profile>/.
build_release() {
    cargo build --profile "${1:-release}" --locked -q \
        -p trainer -p registry -p fraud -p recommender -p bench-harness
}
