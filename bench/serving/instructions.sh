#!/usr/bin/env bash
# Instructions per request (issue #18): the HTTP floor, the fraud service, and the fraud
# service's scoring alone, counted by callgrind on the same request. Instruction counts do not
# swing with the machine's load the way wall-clock figures do, so this is the request path's
# budget; bench/serving/run.sh stays the requests-per-second figure.
#
#   bench/serving/instructions.sh      # about 3 minutes once built
#
# Method, per subject: run it under `valgrind --tool=callgrind` twice, serving N_SMALL and then
# N_LARGE identical requests over one keep-alive connection (curl, one invocation, checked to
# connect once), stop it with SIGINT, read callgrind's instruction total. (total(N_LARGE) −
# total(N_SMALL)) / (N_LARGE − N_SMALL) is what one request costs the server process, with
# start-up, model loading, the first request's one-off costs and shutdown cancelled out. Only
# the server process is counted, not curl. The fraud service runs as bench/serving/run.sh runs
# it: RUST_LOG=info (one JSON log line per request), no OTLP export, request ids, the root span
# and the metrics all on; MODEL_POLL_SECONDS is long so no reload poll lands inside a run.
# Scoring alone is bench/harness/src/bin/score_only.rs: the loaded model's probability,
# class and drift window, N times, with the same difference.
#
# Knobs (environment): ROWS (100000), TREES (100), SEED (7), N_SMALL (200), N_LARGE (1200),
# REPEATS (3; the median is reported), PORT_BASE (18700), OUT (bench/serving/last-instructions:
# logs, summary.txt and the callgrind profiles, for `callgrind_annotate OUT/callgrind-fraud-1200.out`),
# PROFILE (release; production measures the images' build: thin LTO, every crate optimised),
# BUILD (1; 0 uses the binaries of that profile already in target/).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

ROWS=${ROWS:-100000}
TREES=${TREES:-100}
SEED=${SEED:-7}
N_SMALL=${N_SMALL:-200}
N_LARGE=${N_LARGE:-1200}
REPEATS=${REPEATS:-3}
PORT_BASE=${PORT_BASE:-18700}
OUT=${OUT:-$root/bench/serving/last-instructions}
PROFILE=${PROFILE:-release}
target_dir=${CARGO_TARGET_DIR:-$root/target}

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

command -v valgrind >/dev/null || die "valgrind is needed (apt-get install valgrind)"
command -v curl >/dev/null || die "curl is needed"
((N_LARGE > N_SMALL)) || die "N_LARGE must be larger than N_SMALL"

if [[ ${BUILD:-1} != 0 ]]; then
    log "Building the $PROFILE binaries and the benchmarks' programs (bench/lib.sh build_release)."
    build_release "$PROFILE"
fi
fraud_bin=$target_dir/$PROFILE/fraud
floor_bin=$target_dir/$PROFILE/http_floor
score_bin=$target_dir/$PROFILE/score_only
trainer_bin=$target_dir/$PROFILE/trainer
for bin in "$fraud_bin" "$floor_bin" "$score_bin" "$trainer_bin"; do
    [[ -x $bin ]] || die "$bin is missing"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/fraud-instructions.XXXXXX")
mkdir -p "$OUT" && rm -f "$OUT"/*.log "$OUT"/*.out "$OUT"/summary.txt
pids=()
cleanup() {
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "Generating $ROWS fraud rows and training a $TREES-tree forest."
"$trainer_bin" generate fraud --rows "$ROWS" --seed "$SEED" --out "$work/fraud.csv" >/dev/null 2>&1
store=$work/store
env MODEL_STORE="$store" RUST_LOG=warn "$trainer_bin" train fraud --data "$work/fraud.csv" \
    --trees "$TREES" >"$OUT/train.json" 2>"$OUT/train.log" \
    || { cat "$OUT/train.log" >&2; die "trainer train fraud failed"; }
# One real transaction (the CSV's first row), in the model's feature order.
manifest=$(find "$store" -path '*/models/fraud/versions/*/manifest.json' | sort | tail -n 1)
mapfile -t features < <(grep -o '"name": *"[^"]*"' "$manifest" | sed 's/.*"\([^"]*\)"$/\1/' \
    | grep -v '^fraud$' | head -n 3)
header=$(head -n 1 "$work/fraud.csv")
first=$(sed -n 2p "$work/fraud.csv")
row=() query=()
for i in 0 1 2; do
    col=$(tr ',' '\n' <<<"$header" | grep -nx "${features[$i]}" | cut -d: -f1)
    [[ -n $col ]] || die "feature ${features[$i]} is not a column of the data"
    value=$(cut -d, -f"$col" <<<"$first")
    row+=("$value") query+=("f$((i + 1))=$value")
done
row_csv=$(IFS=,; echo "${row[*]}")
path="/classify?$(IFS='&'; echo "${query[*]}")"
log "Request: GET $path"

# callgrind's instruction total from its output file.
total_ir() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

# requests PORT N: N GETs of $path over one keep-alive connection; fails unless all are 200
# and curl connected exactly once.
requests() {
    local port=$1 n=$2 config=$work/curl-$2.cfg
    if [[ ! -f $config ]]; then
        for _ in $(seq "$n"); do
            printf 'url = "http://127.0.0.1:%s%s"\noutput = "/dev/null"\n' "$port" "$path"
        done >"$config"
    fi
    sed -i "s#127.0.0.1:[0-9]*/#127.0.0.1:$port/#" "$config"
    local out
    out=$(curl -sS --config "$config" --write-out '%{http_code} %{num_connects}\n')
    local ok connects
    ok=$(grep -c '^200 ' <<<"$out" || true)
    connects=$(awk '{ s += $2 } END { print s }' <<<"$out")
    [[ $ok == "$n" ]] || die "$ok of $n requests answered 200"
    [[ $connects == 1 ]] || die "curl connected $connects times, not once"
}

# server_run NAME N PORT READY_PATTERN CMD...: the server under callgrind, N requests, SIGINT;
# prints its instruction total.
server_run() {
    local name=$1 n=$2 port=$3 ready=$4
    shift 4
    local file=$OUT/callgrind-$name-$n.out log=$OUT/$name-$n.log
    PORT=$port valgrind --tool=callgrind --callgrind-out-file="$file" "$@" >"$log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    local deadline=$((SECONDS + 300))
    until grep -q "$ready" "$log" && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "$name exited before it was ready"; }
        ((SECONDS < deadline)) || die "$name was not ready within 300 s"
        sleep 0.5
    done
    sleep 1 # let the listener's accept of the probe connection settle
    requests "$port" "$n"
    kill -INT "$pid"
    wait "$pid" || true
    [[ -s $file ]] || die "$name under callgrind wrote no profile"
    total_ir "$file"
}

# script_run N: scoring alone, N rows.
score_run() {
    local file=$OUT/callgrind-score-$1.out
    MODEL_STORE=$store RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$file" \
        "$score_bin" "$1" "$row_csv" >"$OUT/score-$1.log" 2>&1 || die "score_only failed"
    total_ir "$file"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
per_request() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.0f", (b - a) / n }'; }

declare -A result spread
measure() { # NAME RUNNER ARGS...: REPEATS differences, median and range
    local name=$1
    shift
    local values=() small large
    for r in $(seq "$REPEATS"); do
        small=$("$@" "$N_SMALL")
        large=$("$@" "$N_LARGE")
        values+=("$(per_request "$small" "$large" $((N_LARGE - N_SMALL)))")
        log "$name, round $r: ${values[-1]} instructions per request"
    done
    result[$name]=$(printf '%s\n' "${values[@]}" | median)
    spread[$name]="$(printf '%s\n' "${values[@]}" | sort -n | head -n 1)-$(printf '%s\n' "${values[@]}" | sort -n | tail -n 1)"
}

floor_runner() { server_run floor "$1" $((PORT_BASE + 1)) "" "$floor_bin"; }
# (The variables go before valgrind: run through `env`, the service would be exec'd natively.)
fraud_runner() {
    MODEL_STORE=$store RUST_LOG=info MODEL_POLL_SECONDS=86400 HOST=127.0.0.1 \
        server_run fraud "$1" $((PORT_BASE + 2)) "Model loaded" "$fraud_bin"
}

measure floor floor_runner
measure fraud fraud_runner
measure scoring score_run

floor=${result[floor]} fraud=${result[fraud]} scoring=${result[scoring]}
overhead=$((fraud - floor - scoring))
{
    echo "instructions per request (callgrind; median of $REPEATS, range; N $N_SMALL -> $N_LARGE; $TREES trees; profile $PROFILE)"
    printf '  %-34s %10s  (%s)\n' "HTTP floor (http_floor)" "$floor" "${spread[floor]}"
    printf '  %-34s %10s  (%s)\n' "fraud service, GET /classify" "$fraud" "${spread[fraud]}"
    printf '  %-34s %10s  (%s)\n' "scoring alone (score_only)" "$scoring" "${spread[scoring]}"
    printf '  %-34s %10s\n' "service - floor - scoring" "$overhead"
    echo "ratios"
    echo "  fraud service / floor:                 $(ratio "$fraud" "$floor")"
    echo "  (service - floor - scoring) / floor:   $(ratio "$overhead" "$floor")" \
        "(target <= 0.50: $(verdict "$(ratio "$overhead" "$floor")" "<=" 0.50))"
} | tee "$OUT/summary.txt"
