#!/usr/bin/env bash
# The search-mode benchmark (issue #16): the exact f32 scan against the int8 scan on one large
# generated catalogue, through the service over loopback. See README.md ("Search modes").
#
#   bench/recommender/search.sh      # about 10 minutes at 1M items once built
#
# Steps: build; generate and publish one model (bench/harness/src/bin/bench_model.rs, item norms skewed by
# popularity); then for each mode: start the service with RECOMMEND_SEARCH=mode, read its
# /v1/models (recall@10 measured at load, bytes of factors held), RSS; REPEATS runs of
# wrk -t1 -c1 (requests/s and p99 at c=1, bytes read per request from the service's own counter
# recommender_factor_bytes_read_total); one wrk -t2 -c32 run; stop it. Summary: medians per
# mode, int8/exact ratios, and the issue's targets.
#
# Knobs (environment): USERS (20000), ITEMS (1000000), RANK (64), SEED (7), NORM_SKEW (0.1),
# N (10), OVERSAMPLE (10), REPEATS (3), DURATION (10), CONC_DURATION (10), CONNECTIONS (32),
# THREADS (2), PORT (18720), MODES ("exact int8"), SCORING_WAIT_MS (10000), OUT (bench/recommender/last-search),
# BUILD (1; 0 uses the release binaries already in target/).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/bench/recommender

USERS=${USERS:-20000}
ITEMS=${ITEMS:-1000000}
RANK=${RANK:-64}
SEED=${SEED:-7}
NORM_SKEW=${NORM_SKEW:-0.1}
N=${N:-10}
OVERSAMPLE=${OVERSAMPLE:-10}
REPEATS=${REPEATS:-3}
DURATION=${DURATION:-10}
CONC_DURATION=${CONC_DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PORT=${PORT:-18720}
MODES=${MODES:-exact int8}
# A scan of 1M items takes tens of milliseconds: at c=32 requests queue for a scoring permit
# longer than the default 100 ms, and would be refused with 503 rather than measured.
SCORING_WAIT_MS=${SCORING_WAIT_MS:-10000}
OUT=${OUT:-$here/last-search}
target_dir=${CARGO_TARGET_DIR:-$root/target}

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v curl >/dev/null || die "curl is needed"
py=python3

if [[ ${BUILD:-1} != 0 ]]; then
    log "Building the release binaries and the benchmarks' programs (bench/lib.sh build_release)."
    build_release
fi
service_bin=$target_dir/release/recommender
model_bin=$target_dir/release/bench_model
for bin in "$service_bin" "$model_bin"; do [[ -x $bin ]] || die "$bin is missing"; done

work=$(mktemp -d "${TMPDIR:-/tmp}/recommender-search.XXXXXX")
mkdir -p "$OUT" && rm -f "$OUT"/*.txt "$OUT"/*.json "$OUT"/*.log "$OUT"/*.tsv
pids=()
cleanup() {
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

json() { "$py" -c 'import json,sys; v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v=v[int(k)] if k.isdigit() else v[k]
print(f"{v:.6g}" if isinstance(v, float) else v)' "$@"; }
status_kib() { awk -v f="$2" '$1 == f ":" {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
counter() { curl -fsS --max-time 5 "$1/metrics" | awk '$1 ~ /^recommender_factor_bytes_read_total/ {print $2}'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
wrk_requests() { awk '/requests in/ {print $1}' "$1"; }
# Successful (2xx) requests per second: wrk's own rate counts 503s too.
wrk_rps() { awk '/requests in/ { n = $1; t = $4; sub(/s,$/, "", t) } /Non-2xx/ { bad = $NF }
    END { printf "%.2f", (n - bad) / t }' "$1"; }
wrk_p99() { to_ms "$(awk '$1 == "99%" {print $2}' "$1")"; }
wrk_errors() { awk '/Non-2xx|Socket errors/ {print}' "$1"; }

# ---------------------------------------------------------------- model -----------------------
store=$work/store
log "Generating and publishing: $USERS users x $ITEMS items, rank $RANK, norm skew $NORM_SKEW (seed $SEED)."
t0=$SECONDS
"$model_bin" --store "$store" --out "$work/factors" --users "$USERS" --items "$ITEMS" --rank "$RANK" \
    --seed "$SEED" --norm-skew "$NORM_SKEW" >"$OUT/model.json" 2>"$OUT/model.log" \
    || { cat "$OUT/model.log" >&2; die "bench_model failed"; }
rm -rf "$work/factors"
version=$(json "$OUT/model.json" version)
log "Published version $version in $((SECONDS - t0))s."

base=http://127.0.0.1:$PORT
printf 'mode\tready_s\trss_mib\tfactor_mib\trecall_at_10\trecall_users\trun\treq_s_c1\tp99_ms_c1\tbytes_per_req\n' >"$OUT/runs.tsv"
for mode in $MODES; do
    curl -s -o /dev/null --max-time 1 "$base/" 2>/dev/null && die "port $PORT is taken"
    log "[$mode] Starting the service (RECOMMEND_SEARCH=$mode)."
    env -u OTEL_EXPORTER_OTLP_ENDPOINT MODEL_STORE="$store" MODEL_VERSION="$version" HOST=127.0.0.1 \
        PORT="$PORT" RUST_LOG=warn SCORING_WAIT_MS="$SCORING_WAIT_MS" RECOMMEND_SEARCH="$mode" RECOMMEND_OVERSAMPLE="$OVERSAMPLE" \
        "$service_bin" >"$OUT/service-$mode.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    t0=$SECONDS
    wait_ok "$base/readyz" 600 || die "the service did not get ready (see $OUT/service-$mode.log)"
    ready=$((SECONDS - t0))
    curl -fsS "$base/v1/models" >"$OUT/models-$mode.json"
    got_mode=$(json "$OUT/models-$mode.json" slots.0.details.mode) || die "no search details: stale binary?"
    [[ $got_mode == "$mode" ]] || die "asked for $mode, the service reports $got_mode"
    recall=$(json "$OUT/models-$mode.json" slots.0.details.recall_at_10)
    recall_users=$(json "$OUT/models-$mode.json" slots.0.details.recall_users)
    factor_mib=$(mib $(($(json "$OUT/models-$mode.json" slots.0.details.item_factor_bytes) / 1024)))
    curl -fsS --max-time 10 "$base/v1/users/u42/recommendations?n=$N" >"$OUT/u42-$mode.json"
    # Warm-up: a few seconds at c=1.
    timeout 40 wrk -t1 -c1 -d3s -s "$here/users.lua" "$base" -- "$USERS" "$N" >/dev/null
    rss=$(mib "$(status_kib "$pid" VmRSS)")
    log "[$mode] Ready in ${ready}s, RSS $rss MiB, factors $factor_mib MiB, recall@10 $recall."
    for run in $(seq 1 "$REPEATS"); do
        before=$(counter "$base")
        timeout $((DURATION + 30)) wrk -t1 -c1 -d"${DURATION}s" --timeout 5s --latency \
            -s "$here/users.lua" "$base" -- "$USERS" "$N" >"$OUT/wrk-$mode-c1-$run.txt"
        after=$(counter "$base")
        requests=$(wrk_requests "$OUT/wrk-$mode-c1-$run.txt")
        bytes=$(awk -v a="$after" -v b="$before" -v r="$requests" 'BEGIN { printf "%.0f", (a - b) / r }')
        rps=$(wrk_rps "$OUT/wrk-$mode-c1-$run.txt")
        p99=$(wrk_p99 "$OUT/wrk-$mode-c1-$run.txt")
        errors=$(wrk_errors "$OUT/wrk-$mode-c1-$run.txt")
        [[ -z $errors ]] || log "[$mode] run $run: $errors"
        log "[$mode] c=1 run $run: $rps req/s, p99 $p99 ms, $bytes bytes/request."
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$ready" "$rss" "$factor_mib" "$recall" \
            "$recall_users" "$run" "$rps" "$p99" "$bytes" >>"$OUT/runs.tsv"
    done
    timeout $((CONC_DURATION + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${CONC_DURATION}s" --timeout 5s \
        --latency -s "$here/users.lua" "$base" -- "$USERS" "$N" >"$OUT/wrk-$mode-c$CONNECTIONS.txt"
    errors=$(wrk_errors "$OUT/wrk-$mode-c$CONNECTIONS.txt")
    [[ -z $errors ]] || log "[$mode] c=$CONNECTIONS: $errors"
    printf '%s\t%s\t%s\n' "$mode" "$(wrk_rps "$OUT/wrk-$mode-c$CONNECTIONS.txt")" \
        "$(wrk_p99 "$OUT/wrk-$mode-c$CONNECTIONS.txt")" >>"$OUT/concurrent.tsv"
    rss_after=$(mib "$(status_kib "$pid" VmRSS)")
    log "[$mode] c=$CONNECTIONS: $(wrk_rps "$OUT/wrk-$mode-c$CONNECTIONS.txt") req/s; RSS after $rss_after MiB."
    stop_pid "$pid"
done

# ---------------------------------------------------------------- summary ---------------------
col() { awk -F'\t' -v m="$1" -v c="$2" 'NR > 1 && $1 == m {print $c}' "$OUT/runs.tsv"; }
{
    echo "# Search modes: $ITEMS items x rank $RANK, $USERS users, norm skew $NORM_SKEW, n=$N, oversample $OVERSAMPLE"
    echo "# medians of $REPEATS runs of ${DURATION}s at c=1 (range in brackets); c=$CONNECTIONS one run of ${CONC_DURATION}s"
    printf '%-6s %10s %22s %18s %12s %14s %10s %10s %12s %8s\n' mode recall@10 "req/s c=1" "p99 ms c=1" \
        "bytes/req" "req/s c=$CONNECTIONS" "RSS MiB" "factors" "ready s" users
    for mode in $MODES; do
        rps=$(col "$mode" 8 | median); p99=$(col "$mode" 9 | median); bytes=$(col "$mode" 10 | median)
        rps_range="[$(col "$mode" 8 | sort -g | head -1)-$(col "$mode" 8 | sort -g | tail -1)]"
        p99_range="[$(col "$mode" 9 | sort -g | head -1)-$(col "$mode" 9 | sort -g | tail -1)]"
        conc=$(awk -F'\t' -v m="$mode" '$1 == m {print $2}' "$OUT/concurrent.tsv")
        printf '%-6s %10s %22s %18s %12s %14s %10s %10s %12s %8s\n' "$mode" "$(col "$mode" 5 | head -1)" \
            "$rps $rps_range" "$p99 $p99_range" "$bytes" "$conc" "$(col "$mode" 3 | head -1)" \
            "$(col "$mode" 4 | head -1)" "$(col "$mode" 2 | head -1)" "$(col "$mode" 6 | head -1)"
    done
    if [[ " $MODES " == *" exact "* && " $MODES " == *" int8 "* ]]; then
        e_rps=$(col exact 8 | median); i_rps=$(col int8 8 | median)
        e_bytes=$(col exact 10 | median); i_bytes=$(col int8 10 | median)
        recall=$(col int8 5 | head -1)
        echo
        echo "int8 / exact: req/s at c=1 $(ratio "$i_rps" "$e_rps")x (target >= 3), bytes per request $(ratio "$i_bytes" "$e_bytes") (target <= 0.3), recall@10 $recall (target >= 0.99)"
        echo "targets: recall $(verdict "$recall" ">=" 0.99), bytes $(verdict "$(ratio "$i_bytes" "$e_bytes")" "<=" 0.3), req/s $(verdict "$(ratio "$i_rps" "$e_rps")" ">=" 3)"
    fi
    echo "loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/summary.txt"
