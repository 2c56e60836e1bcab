#!/usr/bin/env bash
# Redis on loopback for the tests of the shared click store (CLICKS_URL).
#
#   scripts/redis.sh start DIR        start redis-server on REDIS_PORT (default 6390) with its
#                                     pid and log in DIR; prints an `export E2E_REDIS_URL=…` line
#   scripts/redis.sh stop DIR         stop the instance started in DIR
#
# No persistence, loopback only. redis-server comes from Debian (`apt-get install redis-server`;
# .ci/run installs it). Tests that kill Redis start one of their own (tests/support/redis.rs).
set -euo pipefail

PORT=${REDIS_PORT:-6390}

start() {
    local dir=$1
    command -v redis-server >/dev/null || {
        echo "redis-server is not installed: apt-get install redis-server" >&2
        exit 1
    }
    if redis-cli -p "$PORT" ping >/dev/null 2>&1; then
        echo "port $PORT already answers as Redis: stop that one or set REDIS_PORT" >&2
        exit 1
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir"
    for _ in $(seq 1 100); do
        if redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG; then
            echo "export E2E_REDIS_URL=redis://127.0.0.1:$PORT"
            return
        fi
        sleep 0.1
    done
    echo "redis-server did not answer on port $PORT in 10 s; its log:" >&2
    cat "$dir/redis.log" >&2
    exit 1
}

stop() {
    local pidfile=$1/redis.pid
    if [[ -f $pidfile ]]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    fi
}

case ${1:-} in
    start) start "${2:?usage: redis.sh start DIR}" ;;
    stop) stop "${2:?usage: redis.sh stop DIR}" ;;
    *) echo "usage: $0 start DIR | stop DIR" >&2; exit 2 ;;
esac
