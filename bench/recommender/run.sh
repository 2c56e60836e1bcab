#!/usr/bin/env bash
# The recommender benchmark (issue #7): 100k items, 50k users, rank 64, on this machine, loopback
# only. See README.md.
#
#   bench/recommender/run.sh     # about 5 minutes once built, plus any wait for a quiet machine
#
# Steps: build; generate and publish a random seeded model (bench/harness/src/bin/bench_model.rs); in-process
# measurements (bench/harness/src/bin/scan_bench.rs: streaming read, scan rate, all-users top-10); start the
# service pinned to that version; wrk -t2 -c32 and wrk -t1 -c1 over many user ids (users.lua);
# RSS; implicit's recommend for all users on the same factors (implicit_recommend.py); summary.
#
# Knobs (environment): USERS (50000), ITEMS (100000), RANK (64), SEED (7), N (10), THREADS (2),
# CONNECTIONS (32), DURATION (15), LATENCY_DURATION (10), WARMUP (3), REQUESTS (2000: single-thread
# recommend calls timed in-process), PORT (18710), LOAD_MAX (1.0) and LOAD_WAIT (900 s): before
# each measurement wait up to LOAD_WAIT seconds for the 1-minute load average to drop below
# LOAD_MAX (the load is recorded either way), at most LOAD_WAIT_TOTAL (1200 s) over the run, OUT (bench/recommender/last-run), BUILD (1; 0 uses
# the release binaries already in target/).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/bench/recommender

USERS=${USERS:-50000}
ITEMS=${ITEMS:-100000}
RANK=${RANK:-64}
SEED=${SEED:-7}
N=${N:-10}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-15}
LATENCY_DURATION=${LATENCY_DURATION:-10}
WARMUP=${WARMUP:-3}
REQUESTS=${REQUESTS:-2000}
PORT=${PORT:-18710}
LOAD_MAX=${LOAD_MAX:-1.0}
LOAD_WAIT=${LOAD_WAIT:-900}
LOAD_WAIT_TOTAL=${LOAD_WAIT_TOTAL:-1200}
OUT=${OUT:-$here/last-run}
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
if ! "$venv/bin/python" -c 'import implicit, scipy, numpy, threadpoolctl' 2>/dev/null; then
    log "Installing implicit into $venv."
    "$venv/bin/pip" install -q -r "$root/bench/als/requirements.txt" threadpoolctl
fi
py=$venv/bin/python

if [[ ${BUILD:-1} != 0 ]]; then
    log "Building the release binaries and the benchmarks' programs (bench/lib.sh build_release)."
    build_release
fi
service_bin=$target_dir/release/recommender
model_bin=$target_dir/release/bench_model
scan_bin=$target_dir/release/scan_bench
for bin in "$service_bin" "$model_bin" "$scan_bin"; do [[ -x $bin ]] || die "$bin is missing"; done

# ---------------------------------------------------------------- cleanup ---------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/recommender-bench.XXXXXX")
mkdir -p "$OUT" && rm -f "$OUT"/*.txt "$OUT"/*.json "$OUT"/*.log
pids=()
cleanup() {
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers ---------------------
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
declare -A load_at
# wait_quiet phase: wait (bounded) for a quiet machine, record the load the phase started at.
waited=0
wait_quiet() {
    local left=$((LOAD_WAIT_TOTAL - waited)) l start=$SECONDS
    ((left < LOAD_WAIT)) || left=$LOAD_WAIT
    local deadline=$((SECONDS + (left > 0 ? left : 0)))
    while l=$(cut -d' ' -f1 /proc/loadavg); awk -v l="$l" -v m="$LOAD_MAX" 'BEGIN { exit !(l >= m) }'; do
        if ((SECONDS >= deadline)); then
            log "load $l still >= $LOAD_MAX after the wait; measuring $1 anyway."
            break
        fi
        log "load $l >= $LOAD_MAX; waiting before $1."
        sleep 20
    done
    waited=$((waited + SECONDS - start))
    load_at[$1]=$(loadavg)
    log "$1: loadavg ${load_at[$1]}"
}
status_kib() { awk -v f="$2" '$1 == f ":" {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
clk_tck=$(getconf CLK_TCK)
json() { "$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); v=d
for k in sys.argv[2].split("."): v=v[int(k)] if k.isdigit() else v[k]
print(f"{v:.6g}" if isinstance(v, float) else v)' "$@"; }

load_start=$(loadavg)

# ---------------------------------------------------------------- model -----------------------
store=$work/store
factors=$work/factors
log "Generating and publishing the model: $USERS users x $ITEMS items, rank $RANK (seed $SEED)."
"$model_bin" --store "$store" --out "$factors" --users "$USERS" --items "$ITEMS" --rank "$RANK" \
    --seed "$SEED" >"$OUT/model.json" 2>"$OUT/model.log" || { cat "$OUT/model.log" >&2; die "bench_model failed"; }
version=$(json "$OUT/model.json" version)
log "Published version $version ($(json "$OUT/model.json" artifact_bytes) artifact bytes)."

# ---------------------------------------------------------------- in-process ------------------
wait_quiet scan
log "In-process: streaming read, $REQUESTS single-thread recommends, all users on $THREADS threads."
"$scan_bin" --store "$store" --version "$version" --requests "$REQUESTS" --threads "$THREADS" \
    --n "$N" --top-out "$work/ours-top.u32" >"$OUT/scan.json" 2>"$OUT/scan.log" \
    || { cat "$OUT/scan.log" >&2; die "scan_bench failed"; }
load_at[scan_end]=$(loadavg)

# ---------------------------------------------------------------- service ---------------------
base=http://127.0.0.1:$PORT
curl -s -o /dev/null --max-time 1 "$base/" 2>/dev/null && die "port $PORT is taken"
log "Starting the service on $base (MODEL_VERSION=$version)."
env -u OTEL_EXPORTER_OTLP_ENDPOINT MODEL_STORE="$store" MODEL_VERSION="$version" HOST=127.0.0.1 \
    PORT="$PORT" RUST_LOG=warn "$service_bin" >"$OUT/service.log" 2>&1 &
pid=$!
pids+=("$pid")
t0=$SECONDS
wait_ok "$base/readyz" 300 || die "the service did not get ready (see $OUT/service.log)"
ready_seconds=$((SECONDS - t0))
answer=$(curl -fsS --max-time 5 "$base/v1/users/u42/recommendations?n=$N")
count=$("$py" -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["strategy"]=="als", d; print(len(d["items"]))' "$answer") \
    || die "unexpected answer: $answer"
((count == N)) || die "expected $N items, got $count"
rss_idle=$(mib "$(status_kib "$pid" VmRSS)")
log "Ready in ${ready_seconds}s, RSS $rss_idle MiB; u42 -> $count items."

wrk_run() { # tag threads connections seconds
    timeout $(($4 + 30)) wrk -t"$2" -c"$3" -d"${4}s" --timeout 5s --latency -s "$here/users.lua" \
        "$base" -- "$USERS" "$N" >"$OUT/wrk-$1.txt"
}
wait_quiet load
wrk_run warmup "$THREADS" "$CONNECTIONS" "$WARMUP"
ticks=$(cpu_ticks "$pid")
wrk_run load "$THREADS" "$CONNECTIONS" "$DURATION"
ticks=$(($(cpu_ticks "$pid") - ticks))
load_at[load_end]=$(loadavg)
rss_load=$(mib "$(status_kib "$pid" VmRSS)")
f=$OUT/wrk-load.txt
rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
errors=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$f")
cpu_ms=$(awk -v t="$ticks" -v hz="$clk_tck" '/ requests in / { if ($1 > 0) printf "%.3f", t / hz * 1e3 / $1 }' "$f")
log "c=$CONNECTIONS: $rps req/s, p50 $p50 ms, p99 $p99 ms, errors $errors, server CPU $cpu_ms ms/request."

if ((LATENCY_DURATION > 0)); then
    wait_quiet c1
    wrk_run c1 1 1 "$LATENCY_DURATION"
    load_at[c1_end]=$(loadavg)
    f=$OUT/wrk-c1.txt
    c1rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
    c1p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
    c1p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
    c1errors=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$f")
    log "c=1: $c1rps req/s, p50 $c1p50 ms, p99 $c1p99 ms, errors $c1errors."
fi
rss_hwm=$(mib "$(status_kib "$pid" VmHWM)")
stop_pid "$pid"

# ---------------------------------------------------------------- implicit --------------------
# OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are unset for this command alone (they pin an old kernel
# and slow a current OpenBLAS; see the env notes); the kernel OpenBLAS then picks is recorded.
wait_quiet implicit
log "implicit: recommend for all $USERS users, N=$N, $THREADS threads."
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$py" "$here/implicit_recommend.py" \
    --factors "$factors" --n "$N" --threads "$THREADS" --blas-threads 1,2 --ours "$work/ours-top.u32" \
    >"$OUT/implicit.json" 2>"$OUT/implicit.log" || { cat "$OUT/implicit.log" >&2; die "implicit failed"; }
load_at[implicit_end]=$(loadavg)
load_end=$(loadavg)

# ---------------------------------------------------------------- summary ---------------------
s=$OUT/scan.json
ours_all=$(json "$s" all_users_seconds)
theirs_all=$(json "$OUT/implicit.json" recommend_all_seconds)
all_ratio=$(ratio "$ours_all" "$theirs_all")
scan_pct=$(json "$s" scan_pct_of_stream)
{
    echo "recommender benchmark (issue #7), $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)," \
        "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)," \
        "L3 $(lscpu | awk -F': +' '/^L3 cache/ {print $2}')"
    echo "model: $USERS users x $ITEMS items, rank $RANK, $(json "$OUT/model.json" seen_items) seen items," \
        "version $version, artifact $(json "$OUT/model.json" artifact_bytes) bytes; N=$N"
    echo "loadavg: start $load_start; scan ${load_at[scan]} -> ${load_at[scan_end]};" \
        "c=$CONNECTIONS ${load_at[load]} -> ${load_at[load_end]}; c=1 ${load_at[c1]:-} -> ${load_at[c1_end]:-};" \
        "implicit ${load_at[implicit]} -> ${load_at[implicit_end]}; end $load_end"
    echo
    echo "HTTP (wrk and the service share the 2 cores; users.lua cycles over all $USERS user ids)"
    echo "  wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s: $rps req/s, p50 $p50 ms, p99 $p99 ms, errors $errors," \
        "server CPU $cpu_ms ms/request"
    echo "  wrk -t1 -c1 -d${LATENCY_DURATION}s:  ${c1rps:-} req/s, p50 ${c1p50:-} ms, p99 ${c1p99:-} ms, errors ${c1errors:-}"
    echo "  RSS: ready $rss_idle MiB, after load $rss_load MiB, peak (VmHWM) $rss_hwm MiB; ready after ${ready_seconds}s"
    echo
    echo "scan (in-process, single thread)"
    echo "  bytes of item factors per request: $(json "$s" bytes_per_request)"
    echo "  streaming read of those bytes: $(json "$s" stream_gbps) GB/s (best of 10);" \
        "256 MiB buffer (beyond L3): $(json "$s" stream_dram_gbps) GB/s"
    echo "  recommend: mean $(json "$s" recommend_mean_ms) ms, p50 $(json "$s" recommend_p50_ms) ms," \
        "p99 $(json "$s" recommend_p99_ms) ms over $(json "$s" recommend_requests) users" \
        "-> $(json "$s" scan_gbps) GB/s = ${scan_pct} % of the streaming read"
    echo "  dot products only (no top-n): $(json "$s" dot_only_ms) ms -> $(json "$s" dot_only_gbps) GB/s"
    echo
    echo "all users top-$N, $THREADS threads"
    echo "  ours (ServingAls::recommend_many, the batched scan): ${ours_all} s"
    echo "  implicit $(json "$OUT/implicit.json" implicit_version) recommend: ${theirs_all} s" \
        "(fastest of BLAS threads 1 and 2: $(json "$OUT/implicit.json" best_blas_threads);" \
        "runs by BLAS threads $(json "$OUT/implicit.json" runs_by_blas_threads); OpenBLAS kernel" \
        "$("$py" -c 'import json,sys; print(*{b["architecture"] for b in json.load(open(sys.argv[1]))["blas"] if b["internal_api"] == "openblas"})' "$OUT/implicit.json"))"
    echo "  ours / implicit: $all_ratio x the time; identical top-$N lists for" \
        "$(json "$OUT/implicit.json" same_list_users) of $USERS users, mean overlap $(json "$OUT/implicit.json" mean_overlap_at_n)"
    echo "  ours one user at a time (ServingAls::recommend): $(json "$s" one_by_one_all_users_seconds) s," \
        "$(json "$s" batch_mismatched_users) users whose lists differ from the batched ones"
    echo
    echo "targets"
    echo "  >= 1000 req/s at c=$CONNECTIONS:      $rps  $(verdict "$rps" '>=' 1000)"
    echo "  p99 < 5 ms at c=1:               ${c1p99:-n/a}  $(verdict "${c1p99:-n/a}" '<' 5)"
    echo "  scan >= 50 % of streaming read:  $scan_pct  $(verdict "$scan_pct" '>=' 50)"
    echo "  all users no slower than implicit (ratio <= 1): $all_ratio  $(verdict "$all_ratio" '<=' 1)"
} | tee "$OUT/summary.txt"
log "Raw outputs (wrk, scan.json, implicit.json, logs) and summary.txt are in $OUT."
