#!/usr/bin/env bash
# The search-mode benchmark (issue #16): the exact f32 scan, the int8 scan and the ann index
# (HNSW graph by default, IVF with ANN_INDEX=ivf) on one large generated catalogue, through the service over loopback. See README.md
# ("Search modes").
#
#   bench/recommender/search.sh      # about 10 minutes at 1M items once built
#
# Steps: build; generate and publish one model (bench/harness/src/bin/bench_model.rs, item norms skewed by
# popularity, factors planted around TOPICS centres, with the ann index when MODES has ann); then for each mode: start the service with RECOMMEND_SEARCH=mode, read its
# /v1/models (recall@10 measured at load, bytes of factors held), RSS and the load's peak (VmHWM once ready); REPEATS runs of
# wrk -t1 -c1 (requests/s and p99 at c=1, bytes read per request from the service's own counter
# recommender_factor_bytes_read_total); one wrk -t2 -c32 run; stop it. Summary: medians per
# mode, int8/exact ratios, and the issue's targets.
#
# Knobs (environment): USERS (20000), ITEMS (1000000), RANK (64), SEED (7), NORM_SKEW (0.1),
# TOPICS (1000; 0 = uniform factors), TOPIC_NOISE (1.0), ANN_INDEX (hnsw or ivf), ANN_DEGREE (32,
# hnsw), ANN_EF_CONSTRUCTION (64, hnsw), ANN_LISTS (1 = √items, ivf), ANN_SWEEP (probes to time
# in-process after the build, one thread, e.g. "20,40,80"; empty: none),
# ANN_TARGET_RECALL (0.96: the issue asks 0.95 of the service, which measures it on other
# users than the trainer tunes on; tuned to 0.95, the service measured 0.948), N (10),
# OVERSAMPLE (10), REPEATS (3), DURATION (10), CONC_DURATION (10), CONNECTIONS (32),
# THREADS (2), PORT (18720), MODES ("exact int8 ann"), SCORING_WAIT_MS (10000), OUT (bench/recommender/last-search),
# BUILD (1; 0 uses the release binaries already in target/), CACHE (0; 1 gives each mode's service
# a fresh MODEL_CACHE_DIR, so the load peak includes copying the artifact into the last-good cache).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/bench/recommender

USERS=${USERS:-20000}
ITEMS=${ITEMS:-1000000}
RANK=${RANK:-64}
SEED=${SEED:-7}
NORM_SKEW=${NORM_SKEW:-0.1}
TOPICS=${TOPICS:-1000}
TOPIC_NOISE=${TOPIC_NOISE:-1.0}
ANN_INDEX=${ANN_INDEX:-hnsw}
ANN_DEGREE=${ANN_DEGREE:-32}
ANN_EF_CONSTRUCTION=${ANN_EF_CONSTRUCTION:-64}
ANN_LISTS=${ANN_LISTS:-1}
ANN_SWEEP=${ANN_SWEEP:-}
ANN_TARGET_RECALL=${ANN_TARGET_RECALL:-0.96}
N=${N:-10}
OVERSAMPLE=${OVERSAMPLE:-10}
REPEATS=${REPEATS:-3}
DURATION=${DURATION:-10}
CONC_DURATION=${CONC_DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PORT=${PORT:-18720}
MODES=${MODES:-exact int8 ann}
# A scan of 1M items takes tens of milliseconds: at c=32 requests queue for a scoring permit
# longer than the default 100 ms, and would be refused with 503 rather than measured.
SCORING_WAIT_MS=${SCORING_WAIT_MS:-10000}
CACHE=${CACHE:-0}
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
floor_bin=$target_dir/release/http_floor
for bin in "$service_bin" "$model_bin" "$floor_bin"; do [[ -x $bin ]] || die "$bin is missing"; done

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
# The index bench_model built: kind and its parameters.
ann_index_line() {
    case $(json "$OUT/model.json" ann.params.index) in
        hnsw) echo "HNSW, degree $(json "$OUT/model.json" ann.params.degree), efConstruction $(json "$OUT/model.json" ann.params.ef_construction), ef $(json "$OUT/model.json" ann.probe)" ;;
        *) echo "IVF, $(json "$OUT/model.json" ann.params.lists) lists, probe $(json "$OUT/model.json" ann.probe)" ;;
    esac
}

# ---------------------------------------------------------------- model -----------------------
store=$work/store
ann_args=()
if [[ " $MODES " == *" ann "* ]]; then
    case $ANN_INDEX in
        hnsw) ann_args=(--ann-graph "$ANN_DEGREE" --ann-ef-construction "$ANN_EF_CONSTRUCTION") ;;
        ivf) ann_args=(--ann-lists "$ANN_LISTS") ;;
        *) die "ANN_INDEX=$ANN_INDEX: hnsw or ivf" ;;
    esac
    ann_args+=(--ann-target-recall "$ANN_TARGET_RECALL" --ann-oversample "$OVERSAMPLE")
    [[ -n $ANN_SWEEP ]] && ann_args+=(--ann-sweep "$ANN_SWEEP")
fi
log "Generating and publishing: $USERS users x $ITEMS items, rank $RANK, norm skew $NORM_SKEW, $TOPICS topics (seed $SEED)${ann_args[0]:+, ann index $ANN_INDEX}."
t0=$SECONDS
"$model_bin" --store "$store" --out "$work/factors" --users "$USERS" --items "$ITEMS" --rank "$RANK" \
    --seed "$SEED" --norm-skew "$NORM_SKEW" --topics "$TOPICS" --topic-noise "$TOPIC_NOISE" "${ann_args[@]}" \
    >"$OUT/model.json" 2>"$OUT/model.log" \
    || { cat "$OUT/model.log" >&2; die "bench_model failed"; }
[[ ${PEER:-faiss} == faiss ]] || rm -rf "$work/factors" # kept for section "peer: faiss-cpu"
version=$(json "$OUT/model.json" version)
log "Published version $version in $((SECONDS - t0))s."
if [[ " $MODES " == *" ann "* ]]; then
    log "ann index: $(ann_index_line), recall@10 $(json "$OUT/model.json" ann.recall_at_10), built in $(json "$OUT/model.json" ann.build_seconds)s."
fi

base=http://127.0.0.1:$PORT
printf 'mode\tready_s\trss_mib\tfactor_mib\trecall_at_10\trecall_users\trun\treq_s_c1\tp99_ms_c1\tbytes_per_req\tload_peak_mib\n' >"$OUT/runs.tsv"
for mode in $MODES; do
    curl -s -o /dev/null --max-time 1 "$base/" 2>/dev/null && die "port $PORT is taken"
    log "[$mode] Starting the service (RECOMMEND_SEARCH=$mode)."
    cache_env=()
    [[ $CACHE == 1 ]] && cache_env=(MODEL_CACHE_DIR="$work/cache-$mode")
    env -u OTEL_EXPORTER_OTLP_ENDPOINT MODEL_STORE="$store" MODEL_VERSION="$version" HOST=127.0.0.1 \
        "${cache_env[@]}" PORT="$PORT" RUST_LOG=warn SCORING_WAIT_MS="$SCORING_WAIT_MS" RECOMMEND_SEARCH="$mode" RECOMMEND_OVERSAMPLE="$OVERSAMPLE" \
        "$service_bin" >"$OUT/service-$mode.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    t0=$SECONDS
    wait_ok "$base/readyz" 600 || die "the service did not get ready (see $OUT/service-$mode.log)"
    ready=$((SECONDS - t0))
    # The load's peak: the process's high-water mark of resident memory once it is ready.
    peak=$(mib "$(status_kib "$pid" VmHWM)")
    if [[ $CACHE == 1 ]]; then
        compgen -G "$work/cache-$mode/*/*.msgpack" >/dev/null || die "[$mode] the cache holds no artifact"
    fi
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
    log "[$mode] Ready in ${ready}s (load peak $peak MiB), RSS $rss MiB, factors $factor_mib MiB, recall@10 $recall."
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
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$ready" "$rss" "$factor_mib" "$recall" \
            "$recall_users" "$run" "$rps" "$p99" "$bytes" "$peak" >>"$OUT/runs.tsv"
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

# ---------------------------------------------------------------- peer: faiss-cpu -------------
# faiss_peer.py on the same factors and the same query users (the sample the service measures
# recall on), THREADS threads, the same N: faiss HNSW (inner product) and IVF (IndexIVFFlat,
# inner product) swept over efSearch and nprobe; recall@N against the exact answer and queries/s
# one query per call on 1 thread and the whole sample per call on THREADS threads. Writes
# $OUT/faiss.json and $OUT/faiss.txt (its table); its summary lines go to summary.txt after the
# summary. Knobs: PEER (faiss; none skips), PEER_QUERIES (1000), PEER_MATCH (recalls to match,
# "0.95 0.99"), PEER_ARGS (more flags for faiss_peer.py, e.g. --skip-hnsw; see its --help).
# The HNSW build takes minutes at 1M items and hours at 10M on 2 threads (README.md).
PEER=${PEER:-faiss}
if [[ $PEER == faiss ]]; then
    peer_venv=$root/bench/.venv-faiss
    if [[ ! -x $peer_venv/bin/python ]]; then
        log "[faiss] Creating $peer_venv."
        python3 -m venv "$peer_venv"
    fi
    if ! "$peer_venv/bin/python" -c 'import faiss, numpy' 2>/dev/null; then
        log "[faiss] Installing faiss-cpu into $peer_venv."
        timeout 600 "$peer_venv/bin/pip" install -q --disable-pip-version-check \
            -r "$here/requirements-faiss.txt"
    fi
    match_args=()
    peer_match=${PEER_MATCH:-0.95 0.99}
    # The recall the service's ann mode measured, so the summary compares at the same recall.
    if [[ -s $OUT/models-ann.json ]]; then
        peer_match+=" $(json "$OUT/models-ann.json" slots.0.details.recall_at_10)"
    fi
    for r in $peer_match; do match_args+=(--match-recall "$r"); done
    log "[faiss] faiss_peer.py on $ITEMS items, $THREADS threads (progress in $OUT/faiss.log)."
    # shellcheck disable=SC2086 # PEER_ARGS is a list of flags
    "$peer_venv/bin/python" "$here/faiss_peer.py" --factors "$work/factors" --n "$N" \
        --threads "$THREADS" --queries "${PEER_QUERIES:-1000}" "${match_args[@]}" ${PEER_ARGS:-} \
        --json-out "$OUT/faiss.json" --summary-out "$work/faiss-summary.txt" \
        >"$OUT/faiss.txt" 2>"$OUT/faiss.log" || { tail -20 "$OUT/faiss.log" >&2; die "faiss_peer.py failed"; }
    rm -rf "$work/factors"
    log "[faiss] Done: $OUT/faiss.txt, $OUT/faiss.json."
elif [[ $PEER != none ]]; then
    die "PEER=$PEER: faiss or none"
fi

# ---------------------------------------------------------------- HTTP floor ------------------
# The ann target's yardstick: p99 at c=1 of the HTTP floor (actix-web, parse a query, answer a
# constant; bench/harness/src/bin/http_floor.rs), on this machine in this run.
log "[floor] p99 at c=1 of the HTTP floor."
PORT="$PORT" "$floor_bin" >"$OUT/floor.log" 2>&1 &
pid=$!
pids+=("$pid")
wait_ok "$base/healthz" 30 || die "the HTTP floor did not start (see $OUT/floor.log)"
floor_url="$base/classify?f1=1&f2=2&f3=3"
timeout 40 wrk -t1 -c1 -d3s "$floor_url" >/dev/null
for run in $(seq 1 "$REPEATS"); do
    timeout $((DURATION + 30)) wrk -t1 -c1 -d"${DURATION}s" --latency "$floor_url" >"$OUT/wrk-floor-c1-$run.txt"
    echo "$(wrk_p99 "$OUT/wrk-floor-c1-$run.txt")" >>"$OUT/floor-p99.txt"
done
stop_pid "$pid"
floor_p99=$(median <"$OUT/floor-p99.txt")
log "[floor] p99 at c=1: $floor_p99 ms (median of $REPEATS)."

# ---------------------------------------------------------------- summary ---------------------
col() { awk -F'\t' -v m="$1" -v c="$2" 'NR > 1 && $1 == m {print $c}' "$OUT/runs.tsv"; }
{
    echo "# Search modes: $ITEMS items x rank $RANK, $USERS users, norm skew $NORM_SKEW, n=$N, oversample $OVERSAMPLE"
    echo "# medians of $REPEATS runs of ${DURATION}s at c=1 (range in brackets); c=$CONNECTIONS one run of ${CONC_DURATION}s"
    printf '%-6s %10s %22s %18s %12s %14s %10s %10s %12s %8s %14s\n' mode recall@10 "req/s c=1" "p99 ms c=1" \
        "bytes/req" "req/s c=$CONNECTIONS" "RSS MiB" "factors" "ready s" users "load peak MiB"
    for mode in $MODES; do
        rps=$(col "$mode" 8 | median); p99=$(col "$mode" 9 | median); bytes=$(col "$mode" 10 | median)
        rps_range="[$(col "$mode" 8 | sort -g | head -1)-$(col "$mode" 8 | sort -g | tail -1)]"
        p99_range="[$(col "$mode" 9 | sort -g | head -1)-$(col "$mode" 9 | sort -g | tail -1)]"
        conc=$(awk -F'\t' -v m="$mode" '$1 == m {print $2}' "$OUT/concurrent.tsv")
        printf '%-6s %10s %22s %18s %12s %14s %10s %10s %12s %8s %14s\n' "$mode" "$(col "$mode" 5 | head -1)" \
            "$rps $rps_range" "$p99 $p99_range" "$bytes" "$conc" "$(col "$mode" 3 | head -1)" \
            "$(col "$mode" 4 | head -1)" "$(col "$mode" 2 | head -1)" "$(col "$mode" 6 | head -1)" \
            "$(col "$mode" 11 | head -1)"
    done
    if [[ " $MODES " == *" exact "* && " $MODES " == *" int8 "* ]]; then
        e_rps=$(col exact 8 | median); i_rps=$(col int8 8 | median)
        e_bytes=$(col exact 10 | median); i_bytes=$(col int8 10 | median)
        recall=$(col int8 5 | head -1)
        echo
        echo "int8 / exact: req/s at c=1 $(ratio "$i_rps" "$e_rps")x (target >= 3), bytes per request $(ratio "$i_bytes" "$e_bytes") (target <= 0.3), recall@10 $recall (target >= 0.99)"
        echo "targets: recall $(verdict "$recall" ">=" 0.99), bytes $(verdict "$(ratio "$i_bytes" "$e_bytes")" "<=" 0.3), req/s $(verdict "$(ratio "$i_rps" "$e_rps")" ">=" 3)"
    fi
    if [[ " $MODES " == *" ann "* ]]; then
        a_rps=$(col ann 8 | median); a_bytes=$(col ann 10 | median)
        echo
        a_p99=$(col ann 9 | median)
        if [[ " $MODES " == *" exact "* ]]; then
            e_rps=$(col exact 8 | median); e_bytes=$(col exact 10 | median)
            echo "ann / exact: req/s at c=1 $(ratio "$a_rps" "$e_rps")x, bytes per request $(ratio "$a_bytes" "$e_bytes")"
        fi
        echo "ann recall@10 $(col ann 5 | head -1) (target >= 0.95: $(verdict "$(col ann 5 | head -1)" ">=" 0.95))"
        echo "ann p99 at c=1: $a_p99 ms, HTTP floor's $floor_p99 ms: $(ratio "$a_p99" "$floor_p99")x (target <= 50: $(verdict "$(ratio "$a_p99" "$floor_p99")" "<=" 50))"
        if [[ -s $OUT/faiss.json ]]; then
            a_recall=$(col ann 5 | head -1)
            a_conc=$(awk -F'\t' '$1 == "ann" {print $2}' "$OUT/concurrent.tsv")
            "$py" - "$OUT/faiss.json" "$a_recall" "$a_rps" "$a_conc" "$THREADS" <<'PY'
import json, sys
peer, recall, c1, conc, threads = json.load(open(sys.argv[1])), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
for name in ("hnsw", "ivf"):
    if name not in peer:
        continue
    m = [x for x in peer[name]["matched"] if abs(x["recall_at_least"] - recall) < 1e-9]
    one = m[0]["best_qps_1thread_single_query"] if m else None
    many = m[0]["best_qps_threads_batch"] if m else None
    if not one:
        print(f"faiss {name.upper()} does not reach recall {recall:.4f} in its sweep")
        continue
    verdict = lambda ours, theirs: "met" if ours >= theirs else "MISSED"
    print(f"ann / faiss {name.upper()} at recall >= {recall:.4f}: c=1 {c1:.1f} / {one['qps']:.1f} q/s "
          f"(1 thread, one query per call) = {c1 / one['qps']:.2f}x; c=32 {conc:.1f} / {many['qps']:.1f} q/s "
          f"({threads} threads, batched) = {conc / many['qps']:.2f}x"
          + (f" (target >= 1: {verdict(conc, many['qps'])})" if name == "hnsw" else ""))
PY
        fi
        echo "ann index: $(ann_index_line), trainer's recall@10 $(json "$OUT/model.json" ann.recall_at_10), build $(json "$OUT/model.json" ann.build_seconds) s (with the probe's tuning)"
        "$py" -c 'import json,sys
for s in json.load(open(sys.argv[1]))["ann_sweep"]:
    us = s["micros_per_query"]
    print("ann in-process, 1 thread, probe %d: recall@10 %.4f, %.0f q/s (%.1f us a query)" % (s["probe"], s["recall_at_10"], 1e6 / us, us))' "$OUT/model.json"
    fi
    echo "loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/summary.txt"
# The faiss peer's lines (section "peer: faiss-cpu") after the summary.
if [[ -s $work/faiss-summary.txt ]]; then echo; cat "$work/faiss-summary.txt"; fi | tee -a "$OUT/summary.txt"
