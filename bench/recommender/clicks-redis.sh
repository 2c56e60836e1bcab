#!/usr/bin/env bash
# What keeping clicks in Redis costs a recommendation (issue #14): single-user requests at c=1
# with CLICKS_URL set against the in-memory store, in the same run, on a small catalogue (10k
# items) so that the Redis round trip is not hidden behind the scan.
#
#   bench/recommender/clicks-redis.sh      # build (release), then ROUNDS paired rounds; summary
#
# Each round starts the service twice on the same model, once per store (which goes first
# alternates), gives every 10th user CLICKED clicks (so both stores serve the same fold-ins),
# warms up, then `wrk -t1 -c1 -d${DURATION}s --latency` over known users
# (bench/recommender/users.lua). Reported per store: p50 and p99 (median and range over
# rounds); the paired p99 ratio redis / memory and difference; and Redis round trips per
# request (recommender_clicks_round_trips_total{operation="read"} over wrk's request count).
# Targets: p99 ratio <= 1.3 and difference <= 0.3 ms. Needs wrk, curl, python3 and
# redis-server (started here on a private port, no persistence).
#
# Knobs: USERS (10000), ITEMS (10000), RANK (64), SEED (7), N (10), CLICKED (3), DURATION (10),
# ROUNDS (3), PORT (18730), REDIS_PORT (18731), OUT (${TMPDIR:-/tmp}/bench-clicks-redis),
# BUILD (1; 0 uses the release binaries already in target/).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
source "$root/bench/lib.sh"

USERS=${USERS:-10000}
ITEMS=${ITEMS:-10000}
RANK=${RANK:-64}
SEED=${SEED:-7}
N=${N:-10}
CLICKED=${CLICKED:-3}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18730}
REDIS_PORT=${REDIS_PORT:-18731}
OUT=${OUT:-${TMPDIR:-/tmp}/bench-clicks-redis}
target_dir=${CARGO_TARGET_DIR:-$root/target}

for tool in wrk curl python3 redis-server redis-cli; do
    command -v "$tool" >/dev/null || die "$tool is needed (apt-get install wrk curl redis-server)"
done
if [[ ${BUILD:-1} != 0 ]]; then
    log "Building the release binaries and the benchmarks' programs (bench/lib.sh build_release)."
    build_release
fi
service_bin=$target_dir/release/recommender
model_bin=$target_dir/release/bench_model
for bin in "$service_bin" "$model_bin"; do [[ -x $bin ]] || die "$bin is missing"; done

work=$(mktemp -d "${TMPDIR:-/tmp}/clicks-redis-bench.XXXXXX")
mkdir -p "$OUT" && rm -f "$OUT"/*.txt "$OUT"/*.json "$OUT"/*.log
pids=()
cleanup() {
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

quantile_ms() { to_ms "$(awk -v q="$2" '$1 == q {print $2}' "$1")"; }
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }
requests() { awk '/requests in/ {print $1}' "$1"; }
read_trips() {
    curl -fsS "$base/metrics" | awk '/^recommender_clicks_round_trips_total/ && /operation="read"/ {print $NF}' | head -1
}

log "Publishing a random model: $USERS users x $ITEMS items, rank $RANK (seed $SEED)."
"$model_bin" --store "$work/store" --out "$work/factors" --users "$USERS" --items "$ITEMS" \
    --rank "$RANK" --seed "$SEED" >"$OUT/model.json" 2>"$OUT/model.log" \
    || { cat "$OUT/model.log" >&2; die "bench_model failed"; }
version=$(field "$OUT/model.json" version)

redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && die "port $REDIS_PORT is taken"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --dir "$work" --logfile "$work/redis.log"
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis_url=redis://127.0.0.1:$REDIS_PORT

base=http://127.0.0.1:$PORT
# One measurement: store (memory|redis), round.
measure() {
    local store=$1 round=$2 extra=()
    [[ $store == redis ]] && extra=(CLICKS_URL="$redis_url" CLICKS_KEY_PREFIX="bench:$round:")
    curl -s -o /dev/null --max-time 1 "$base/" 2>/dev/null && die "port $PORT is taken"
    env -u OTEL_EXPORTER_OTLP_ENDPOINT MODEL_STORE="$work/store" MODEL_VERSION="$version" \
        HOST=127.0.0.1 PORT="$PORT" RUST_LOG=warn "${extra[@]}" "$service_bin" \
        >"$OUT/service-$store-$round.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_ok "$base/readyz" 300 || die "the service did not get ready (see $OUT/service-$store-$round.log)"
    local u events
    events=$(python3 -c 'import json,sys; print(json.dumps({"events": [{"item_id": f"i{7 * k + 1}"} for k in range(int(sys.argv[1]))]}))' "$CLICKED")
    for ((u = 0; u < USERS; u += 10)); do
        printf 'url = "%s/v1/users/u%d/events"\noutput = "/dev/null"\n' "$base" "$u"
    done >"$work/click-urls"
    # 503 (Redis slower than CLICKS_TIMEOUT_MS on a busy machine) is retried, as clients should.
    curl -fsS --retry 5 --retry-delay 1 --parallel --parallel-max 8 -K "$work/click-urls" -X POST \
        -H 'content-type: application/json' -d "$events" || die "posting clicks failed"
    local answer
    answer=$(curl -fsS "$base/v1/users/u0/recommendations?n=$N")
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["strategy"]=="fold_in" and d["clicks_available"], d' \
        "$answer" || die "u0's clicks were not used: $answer"
    wrk -t1 -c1 -d2s -s "$root/bench/recommender/users.lua" "$base" -- "$USERS" "$N" >/dev/null
    local before after
    before=$(read_trips); before=${before:-0}
    wrk -t1 -c1 -d"${DURATION}s" --latency -s "$root/bench/recommender/users.lua" "$base" \
        -- "$USERS" "$N" >"$OUT/wrk-$store-$round.txt"
    after=$(read_trips); after=${after:-0}
    grep -q "Non-2xx" "$OUT/wrk-$store-$round.txt" && die "non-2xx answers (see $OUT/wrk-$store-$round.txt)"
    stop_pid "$pid"
    local reqs trips
    reqs=$(requests "$OUT/wrk-$store-$round.txt")
    trips=$(awk -v a="$after" -v b="$before" -v r="$reqs" 'BEGIN { printf "%.3f", (a - b) / r }')
    printf '%s %s %s %s %s %s %s\n' "$round" "$store" "$(quantile_ms "$OUT/wrk-$store-$round.txt" 50%)" \
        "$(quantile_ms "$OUT/wrk-$store-$round.txt" 99%)" "$reqs" "$trips" \
        "$(cut -d' ' -f1 /proc/loadavg)" >>"$OUT/runs.txt"
    log "round $round, $store: p50 $(quantile_ms "$OUT/wrk-$store-$round.txt" 50%) ms, p99 $(quantile_ms "$OUT/wrk-$store-$round.txt" 99%) ms, $reqs requests, $trips Redis reads per request"
}

for round in $(seq "$ROUNDS"); do
    if ((round % 2)); then order=(memory redis); else order=(redis memory); fi
    for store in "${order[@]}"; do measure "$store" "$round"; done
done

python3 - "$OUT/runs.txt" "$ITEMS" "$RANK" >"$OUT/summary.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for r, store, p50, p99, reqs, trips, load in rows:
    by.setdefault(store, {}).setdefault("p50", []).append(float(p50))
    by[store].setdefault("p99", []).append(float(p99))
    by[store].setdefault("trips", []).append(float(trips))
    by[store].setdefault("rps", []).append(float(reqs))
    by[store].setdefault("load", []).append(float(load))
def show(v, fmt="{:.3f}"):
    return f"{fmt.format(statistics.median(v))} (range {fmt.format(min(v))}-{fmt.format(max(v))})"
m, r = by["memory"], by["redis"]
ratios = [b / a for a, b in zip(m["p99"], r["p99"])]
diffs = [b - a for a, b in zip(m["p99"], r["p99"])]
print(f"{len(ratios)} paired rounds, {sys.argv[2]} items x rank {sys.argv[3]}, single-user GET at c=1; medians")
for name, s in (("memory", m), ("redis", r)):
    print(f"{name:7s} p50 {show(s['p50'])} ms, p99 {show(s['p99'])} ms, loadavg {show(s['load'], '{:.2f}')}")
ratio, diff = statistics.median(ratios), statistics.median(diffs)
print(f"p99 redis / memory: {show(ratios, '{:.2f}')} x  target <= 1.3: {'met' if ratio <= 1.3 else 'MISSED'}")
print(f"p99 redis - memory: {show(diffs)} ms  target <= 0.3 ms: {'met' if diff <= 0.3 else 'MISSED'}")
print(f"Redis round trips per request: {show(r['trips'], '{:.3f}')} (memory: {show(m['trips'], '{:.3f}')})")
PY
cat "$OUT/summary.txt"
