#!/usr/bin/env bash
# The fraud-service benchmark (issue #6): our service against the classic Flask + gunicorn +
# scikit-learn service and against an HTTP floor (actix-web, same query parsing, constant answer),
# all three in one run on this machine, one after another, on loopback. See README.md.
#
#   bench/serving/run.sh     # about 2 minutes once built and once bench/.venv exists
#
# Knobs (environment): ROWS (100000), TREES (100), SEED (7), THREADS (2), CONNECTIONS (32),
# DURATION (15, seconds), LATENCY_DURATION (10, seconds; 0 skips the 1-connection run),
# WARMUP (3, seconds), PORT_BASE (18600: flask +1, floor +2, ours +3), FRAUD_RUST_LOG (info),
# OUT (bench/serving/last-run: raw wrk output, server logs, summary.txt), BUILD (1; 0 uses the
# release binaries already in target/, e.g. while a teammate's half-edited crate does not build).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

ROWS=${ROWS:-100000}
TREES=${TREES:-100}
SEED=${SEED:-7}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-15}
LATENCY_DURATION=${LATENCY_DURATION:-10}
WARMUP=${WARMUP:-3}
PORT_BASE=${PORT_BASE:-18600}
FRAUD_RUST_LOG=${FRAUD_RUST_LOG:-info}
OUT=${OUT:-$root/bench/serving/last-run}
target_dir=${CARGO_TARGET_DIR:-$root/target}
venv=$root/bench/.venv

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

# ---------------------------------------------------------------- tools -----------------------
if ! command -v wrk >/dev/null; then
    log "Installing wrk."
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
command -v curl >/dev/null || die "curl is needed"
if [[ ! -x $venv/bin/python ]]; then
    log "Creating $venv."
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import flask, gunicorn, sklearn, numpy' 2>/dev/null; then
    log "Installing the classic service's packages into $venv."
    "$venv/bin/pip" install -q -r bench/serving/requirements.txt
fi

if [[ ${BUILD:-1} != 0 ]]; then
    log "Building the release binaries and the benchmarks' programs (bench/lib.sh build_release)."
    build_release
fi
fraud_bin=$target_dir/release/fraud
floor_bin=$target_dir/release/http_floor
trainer_bin=$target_dir/release/trainer
for bin in "$fraud_bin" "$floor_bin" "$trainer_bin"; do [[ -x $bin ]] || die "$bin is missing"; done

# ---------------------------------------------------------------- cleanup ---------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/fraud-bench.XXXXXX")
mkdir -p "$OUT" && rm -f "$OUT"/wrk-*.txt "$OUT"/summary.txt
pids=()
cleanup() {
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- data and models -------------
log "Generating $ROWS fraud rows."
"$trainer_bin" generate fraud --rows "$ROWS" --seed "$SEED" --out "$work/fraud.csv" \
    >"$OUT/generate.json" 2>"$OUT/generate.log"
store=$work/store
log "Training our $TREES-tree forest and publishing it to a temporary local store."
timeout 1800 env MODEL_STORE="$store" RUST_LOG=warn \
    "$trainer_bin" train fraud --data "$work/fraud.csv" --trees "$TREES" \
    >"$OUT/train-ours.json" 2>"$OUT/train-ours.log" \
    || { cat "$OUT/train-ours.log" >&2; die "trainer train fraud failed"; }
manifest=$(find "$store" -path '*/models/fraud/versions/*/manifest.json' | sort | tail -n 1)
[[ -n $manifest ]] || die "no fraud manifest in $store"
cp "$manifest" "$OUT/manifest.json"
features=$("$venv/bin/python" -c '
import json, sys
print(",".join(f["name"] for f in json.load(open(sys.argv[1]))["feature_schema"]["features"]))
' "$manifest")
[[ $(tr ',' '\n' <<<"$features" | wc -l) == 3 ]] || die "expected 3 features, got: $features"

log "Training scikit-learn's RandomForestClassifier(n_estimators=$TREES) on the same file."
timeout 1800 "$venv/bin/python" bench/serving/train_sklearn.py --data "$work/fraud.csv" \
    --features "$features" --trees "$TREES" --out "$work/model.pkl" >"$OUT/train-sklearn.json"

# One real transaction (the CSV's first row) as the query, the same URL for all three servers.
query=$("$venv/bin/python" -c '
import csv, sys
with open(sys.argv[1], newline="") as f:
    rows = csv.reader(f)
    header = next(rows)
    row = next(rows)
names = sys.argv[2].split(",")
print("&".join(f"f{i + 1}={row[header.index(n)]}" for i, n in enumerate(names)))
' "$work/fraud.csv" "$features")
path="/classify?$query"
log "Query: $path"

# ---------------------------------------------------------------- measuring -------------------
rss_mib() { # VmRSS of a process and its children, MiB
    local total=0 kb pid
    for pid in "$1" $(pgrep -P "$1" || true); do
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${kb:-0}))
    done
    awk -v kb="$total" 'BEGIN { printf "%.1f", kb / 1024 }'
}
cpu_ticks() { # user + system CPU ticks of a process (all threads) and its children
    local total=0 pid
    for pid in "$1" $(pgrep -P "$1" || true); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
clk_tck=$(getconf CLK_TCK)
port_free() { ! curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null; }

declare -A rps p50 p99 c1p50 c1p99 rss_idle rss_load errors body cpu_us
# wrk_run name tag threads connections seconds: runs wrk against $base$path into $OUT.
wrk_run() {
    local name=$1 tag=$2 t=$3 c=$4 d=$5
    local file="$OUT/wrk-$name-$tag.txt"
    timeout $((d + 30)) wrk -t"$t" -c"$c" -d"${d}s" --timeout 5s --latency "$base$path" >"$file"
    printf 'loadavg before: %s\n' "$load_before" >>"$file"
}
measure() { # name pid
    local name=$1 pid=$2 file
    body[$name]=$(curl -fsS --max-time 5 "$base$path" | tr -d '[:space:]')
    [[ ${body[$name]} =~ ^\[[01]\]$ ]] || die "$name answered ${body[$name]:-nothing} to $path"
    rss_idle[$name]=$(rss_mib "$pid")
    log "$name: answers ${body[$name]}, RSS $(rss_mib "$pid") MiB; warming up ${WARMUP}s."
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    wrk_run "$name" warmup "$THREADS" "$CONNECTIONS" "$WARMUP"
    log "$name: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s (loadavg $load_before)."
    local ticks
    ticks=$(cpu_ticks "$pid")
    wrk_run "$name" load "$THREADS" "$CONNECTIONS" "$DURATION"
    ticks=$(($(cpu_ticks "$pid") - ticks))
    file="$OUT/wrk-$name-load.txt"
    # The server's own CPU time per answered request: what each request costs, apart from wrk.
    cpu_us[$name]=$(awk -v t="$ticks" -v hz="$clk_tck" '/ requests in / {
        if ($1 > 0) printf "%.1f", t / hz * 1e6 / $1 }' "$file")
    rps[$name]=$(awk '/^Requests\/sec:/ {print $2}' "$file")
    p50[$name]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$file")")
    p99[$name]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$file")")
    errors[$name]=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10}
                         END {print n + 0}' "$file")
    rss_load[$name]=$(rss_mib "$pid")
    if ((LATENCY_DURATION > 0)); then
        log "$name: wrk -t1 -c1 -d${LATENCY_DURATION}s."
        load_before=$(cut -d' ' -f1-3 /proc/loadavg)
        wrk_run "$name" c1 1 1 "$LATENCY_DURATION"
        file="$OUT/wrk-$name-c1.txt"
        c1p50[$name]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$file")")
        c1p99[$name]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$file")")
    fi
    log "$name: ${rps[$name]} req/s, p50 ${p50[$name]} ms, p99 ${p99[$name]} ms, errors ${errors[$name]}."
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# (a) the classic service: Flask + scikit-learn under gunicorn, 2 sync workers.
port=$((PORT_BASE + 1)); base=http://127.0.0.1:$port
port_free "$port" || die "port $port is taken"
MODEL_PATH=$work/model.pkl "$venv/bin/gunicorn" -w 2 -k sync -b "127.0.0.1:$port" \
    --chdir "$root/bench/serving" flask_app:app >"$OUT/flask.log" 2>&1 &
pids+=($!)
wait_ok "$base/healthz" 120 || die "the Flask service did not start (see $OUT/flask.log)"
measure flask "${pids[-1]}"
stop_pid "${pids[-1]}"

# (b) the HTTP floor: actix-web, parse the query, answer [0].
port=$((PORT_BASE + 2)); base=http://127.0.0.1:$port
port_free "$port" || die "port $port is taken"
PORT=$port "$floor_bin" >"$OUT/floor.log" 2>&1 &
pids+=($!)
wait_ok "$base/healthz" 30 || die "the HTTP floor did not start (see $OUT/floor.log)"
measure floor "${pids[-1]}"
stop_pid "${pids[-1]}"

# (c) our fraud service, following the `production` alias of the local store.
port=$((PORT_BASE + 3)); base=http://127.0.0.1:$port
port_free "$port" || die "port $port is taken"
env -u OTEL_EXPORTER_OTLP_ENDPOINT MODEL_STORE="$store" MODEL_VERSION=production \
    HOST=127.0.0.1 PORT="$port" RUST_LOG="$FRAUD_RUST_LOG" "$fraud_bin" >"$OUT/fraud.log" 2>&1 &
pids+=($!)
wait_ok "$base/readyz" 120 || die "the fraud service did not get ready (see $OUT/fraud.log)"
measure fraud "${pids[-1]}"
stop_pid "${pids[-1]}"

load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- summary ---------------------
ours_flask=$(ratio "${rps[fraud]}" "${rps[flask]}")
ours_floor=$(ratio "${rps[fraud]}" "${rps[floor]}")
p99_ratio=$(ratio "${p99[fraud]}" "${p99[floor]}")
rss_max=$(awk -v a="${rss_idle[fraud]}" -v b="${rss_load[fraud]}" 'BEGIN { print (a > b ? a : b) }')
{
    echo "fraud-service benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)," \
        "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); loadavg at start" \
        "$load_start, at end $load_end"
    echo "load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency on $path" \
        "(wrk and the server share the same cores)"
    echo "our model: $("$venv/bin/python" -c 'import json,sys; m=json.load(open(sys.argv[1]));
print(m["algorithm"], m["parameters"])' "$OUT/manifest.json" 2>/dev/null || echo '?');" \
        "scikit-learn: $(cat "$OUT/train-sklearn.json")"
    echo
    row() { printf '%-34s %11s %9s %9s %10s %10s %7s %8s %8s %10s\n' "$@"; }
    row server 'req/s' 'p50 ms' 'p99 ms' 'c1 p50 ms' 'c1 p99 ms' errors 'RSS MiB' 'RSS load' 'CPU us/req'
    for name in flask floor fraud; do
        case $name in
            flask) label='(a) Flask+gunicorn(2 sync)+sklearn' ;;
            floor) label='(b) HTTP floor (actix-web)' ;;
            fraud) label='(c) fraud service (ours)' ;;
        esac
        row "$label" "${rps[$name]}" "${p50[$name]}" "${p99[$name]}" "${c1p50[$name]:--}" \
            "${c1p99[$name]:--}" "${errors[$name]}" "${rss_idle[$name]}" "${rss_load[$name]}" \
            "${cpu_us[$name]}"
    done
    echo
    echo "ours / flask req/s:   $ours_flask   (target >= 100: $(verdict "$ours_flask" '>=' 100))"
    echo "ours / floor req/s:   $ours_floor   (issue #18's target >= 0.70: $(verdict "$ours_floor" '>=' 0.7))"
    echo "ours / floor p99:     $p99_ratio   (target <= 1.5: $(verdict "$p99_ratio" '<=' 1.5))"
    echo "server CPU per request, ours / floor: $(ratio "${cpu_us[fraud]}" "${cpu_us[floor]}")" \
        "(not a target: what our middleware, metrics and scoring cost beyond the floor)"
    echo "ours RSS, model loaded / after load: ${rss_idle[fraud]} / ${rss_load[fraud]} MiB" \
        "(target < 40: $(verdict "$rss_max" '<' 40))"
} | tee "$OUT/summary.txt"
log "Raw wrk output, server logs and summary.txt are in $OUT."
