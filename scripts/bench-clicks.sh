#!/usr/bin/env bash
# Click-ingestion benchmark (issue #13, item 3): does a flood of clicks for new users slow down
# single-user recommendations, and does memory stay under the documented cap?
#
#   scripts/bench-clicks.sh                 # build (release), then RUNS runs; prints a summary
#   BUILD=0 SERVICE_BIN=/tmp/recommender-baseline scripts/bench-clicks.sh   # another binary
#
# Each run, on a fresh service (embedded defaults: local model store, EVENT_USERS etc. unset):
#   1. idle: `wrk -t1 -c1 -d${DURATION}s --latency` of GET /v1/users/{u}/recommendations (known
#      users in turn, bench/recommender/users.lua) -> idle p99;
#   2. loaded: bench-harness's event_poster posts RATE events/s, each for a new random user; after
#      PREFILL seconds (enough to fill EVENT_USERS=100000, so every new user evicts one) the
#      same wrk run again -> loaded p99; the poster reports the rate it achieved;
#   3. the service's VmHWM (peak RSS) against the documented cap: its RSS once idle plus the
#      click store's bound, EVENT_USERS x (300 + 16 x EVENTS_PER_USER) bytes (README, "Real-time
#      clicks and scoring limits").
# Needs only wrk, curl and python3 (standard library). Results: $OUT/summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source "$root/bench/lib.sh"

USERS=${USERS:-20000}
ITEMS=${ITEMS:-20000}
RANK=${RANK:-32}
SEED=${SEED:-7}
N=${N:-10}
RATE=${RATE:-5000}
PREFILL=${PREFILL:-22}
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
PORT=${PORT:-18720}
OUT=${OUT:-${TMPDIR:-/tmp}/bench-clicks}
target_dir=${CARGO_TARGET_DIR:-$root/target}
SERVICE_BIN=${SERVICE_BIN:-$target_dir/release/recommender}
# The defaults the service uses when the variables are unset (services/recommender/src/settings.rs).
EVENT_USERS=100000
EVENTS_PER_USER=50

command -v wrk >/dev/null || die "wrk is needed (apt-get install wrk)"
command -v curl >/dev/null || die "curl is needed"
if [[ ${BUILD:-1} != 0 ]]; then
    log "Building the release binaries and the benchmarks' programs (bench/lib.sh build_release)."
    build_release
fi
model_bin=$target_dir/release/bench_model
poster_bin=$target_dir/release/event_poster
for bin in "$SERVICE_BIN" "$model_bin" "$poster_bin"; do [[ -x $bin ]] || die "$bin is missing"; done

work=$(mktemp -d "${TMPDIR:-/tmp}/clicks-bench.XXXXXX")
mkdir -p "$OUT" && rm -f "$OUT"/*.txt "$OUT"/*.json "$OUT"/*.log
pids=()
cleanup() {
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

status_kib() { awk -v f="$2" '$1 == f ":" {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
p99_ms() { to_ms "$(awk '$1 == "99%" {print $2}' "$1")"; }
p50_ms() { to_ms "$(awk '$1 == "50%" {print $2}' "$1")"; }
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }

log "Publishing a random model: $USERS users x $ITEMS items, rank $RANK (seed $SEED)."
"$model_bin" --store "$work/store" --out "$work/factors" --users "$USERS" --items "$ITEMS" \
    --rank "$RANK" --seed "$SEED" >"$OUT/model.json" 2>"$OUT/model.log" \
    || { cat "$OUT/model.log" >&2; die "bench_model failed"; }
version=$(field "$OUT/model.json" version)
store_cap_bytes=$((EVENT_USERS * (300 + 16 * EVENTS_PER_USER)))

base=http://127.0.0.1:$PORT
wrk_run() { # output file
    wrk -t1 -c1 -d"${DURATION}s" --latency -s "$root/bench/recommender/users.lua" "$base" \
        -- "$USERS" "$N" >"$1"
    grep -q "Non-2xx" "$1" && log "warning: non-2xx answers in $1"
    return 0
}

for run in $(seq "$RUNS"); do
    curl -s -o /dev/null --max-time 1 "$base/" 2>/dev/null && die "port $PORT is taken"
    env -u OTEL_EXPORTER_OTLP_ENDPOINT MODEL_STORE="$work/store" MODEL_VERSION="$version" \
        HOST=127.0.0.1 PORT="$PORT" RUST_LOG=warn "$SERVICE_BIN" >"$OUT/service-$run.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    wait_ok "$base/readyz" 300 || die "the service did not get ready (see $OUT/service-$run.log)"
    curl -fsS -o /dev/null "$base/v1/users/u1/recommendations?n=$N" || die "no answer for u1"
    # Warm-up, then idle.
    wrk -t1 -c1 -d2s -s "$root/bench/recommender/users.lua" "$base" -- "$USERS" "$N" >/dev/null
    rss_idle_kib=$(status_kib "$pid" VmRSS)
    load_idle=$(cut -d" " -f1 /proc/loadavg)
    wrk_run "$OUT/idle-$run.txt"
    idle=$(p99_ms "$OUT/idle-$run.txt")
    # Loaded: the poster runs through the prefill and the measurement.
    "$poster_bin" --url "$base" --rate "$RATE" --seconds $((PREFILL + DURATION + 2)) \
        --items "$ITEMS" >"$OUT/poster-$run.json" 2>"$OUT/poster-$run.log" &
    poster=$!
    sleep "$PREFILL"
    wrk_run "$OUT/loaded-$run.txt"
    wait "$poster" || die "the poster failed (see $OUT/poster-$run.log)"
    loaded=$(p99_ms "$OUT/loaded-$run.txt")
    load_loaded=$(cut -d" " -f1 /proc/loadavg)
    rate=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["accepted_per_second"]))' "$OUT/poster-$run.json")
    hwm_kib=$(status_kib "$pid" VmHWM)
    cap_kib=$((rss_idle_kib + store_cap_bytes / 1024))
    stop_pid "$pid"
    printf '%s %s %s %s %s %s %s %s %s %s %s\n' "$run" "$idle" "$loaded" "$(ratio "$loaded" "$idle")" "$rate" \
        "$(mib "$hwm_kib")" "$(mib "$cap_kib")" "$load_idle" "$load_loaded" \
        "$(p50_ms "$OUT/idle-$run.txt")" "$(p50_ms "$OUT/loaded-$run.txt")" >>"$OUT/runs.txt"
    log "run $run: idle p99 $idle ms, loaded p99 $loaded ms, $rate events/s accepted, VmHWM $(mib "$hwm_kib") MiB (cap $(mib "$cap_kib") MiB), loadavg $load_idle / $load_loaded"
done

python3 - "$OUT/runs.txt" "$SERVICE_BIN" "$RATE" >"$OUT/summary.txt" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
cols = {name: [float(r[i]) for r in rows] for i, name in
        enumerate(["run", "idle", "loaded", "ratio", "rate", "hwm", "cap", "load_idle", "load_loaded", "p50_idle", "p50_loaded"])}
def show(name, unit, fmt="{:.3f}"):
    v = cols[name]
    return f"{fmt.format(statistics.median(v))} {unit} (range {fmt.format(min(v))}-{fmt.format(max(v))})"
print(f"binary: {sys.argv[2]}; {len(rows)} runs; medians")
print(f"idle p99 (c=1):       {show('idle', 'ms')}")
print(f"loaded p99 (c=1):     {show('loaded', 'ms')}")
ratio = statistics.median(cols['ratio'])
print(f"idle p50 / loaded p50: {show('p50_idle', 'ms')} / {show('p50_loaded', 'ms')}")
print(f"loaded / idle:        {show('ratio', 'x', '{:.2f}')}  target <= 2x: {'met' if ratio <= 2 else 'MISSED'}")
print(f"events accepted/s:    {show('rate', '/s', '{:.0f}')} (target {sys.argv[3]}/s)")
over = [h > c for h, c in zip(cols['hwm'], cols['cap'])]
print(f"VmHWM:                {show('hwm', 'MiB', '{:.1f}')}")
cpus = __import__("os").cpu_count()
print(f"1-min loadavg:        idle {show('load_idle', '', '{:.2f}')}, loaded {show('load_loaded', '', '{:.2f}')} on {cpus} CPUs (other work skews p99)")
print(f"documented cap:       {show('cap', 'MiB', '{:.1f}')}  under it in every run: {'yes' if not any(over) else 'NO'}")
EOF
cat "$OUT/summary.txt"
