#!/usr/bin/env bash
# The dashboards with real data (issue #17, part 3): runs the registry, fraud and recommender
# binaries on a temporary local store, a real Prometheus (Debian's `prometheus`) scraping them
# every 5 s, and a short load with events a dashboard should show; then evaluates every query
# of manifests/components/dashboards/*.json through Prometheus's HTTP API and plots the panels
# (bench/dashboards/plot.py) into manifests/dashboards.png. Grafana is not packaged for Debian,
# so this is a plot of the same queries' results, not a Grafana screenshot.
#
#   bench/dashboards/plot.sh     # about 4 minutes once built
#
# The run, in seconds from the start of the load:
#   0-120  recommender: wrk -t1 -c1 over the 2,000 users; A/B 20 % to v2, shadow v2
#   0-60   fraud: wrk -t1 -c2 over real transactions; A/B 20 % to v2, shadow v2
#   ~30    the trainer publishes fraud v3 and production moves to it (a publish, an alias move,
#          a reload)
#   60-120 fraud: the same load with `f1` drawn from its top fifth only (feature drift)
#   ~80    production of fraud is rolled back (an alias move, a reload)
#
# Knobs (environment): PORT_BASE (18700: prometheus, registry +1, fraud +2, recommender +3),
# OUT (bench/dashboards/last-run: logs and the raw wrk output), PNG (manifests/dashboards.png),
# BUILD (1: cargo build the debug binaries; 0: use those already built), BIN_DIR (the binaries;
# default $CARGO_TARGET_DIR/debug, or a copy of them where checkouts share a target directory).
# Debug binaries: the latencies in the picture are a debug build's on a shared machine, not a
# benchmark (bench/serving has that).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

PORT_BASE=${PORT_BASE:-18700}
OUT=${OUT:-$root/bench/dashboards/last-run}
PNG=${PNG:-$root/manifests/dashboards.png}
target_dir=${CARGO_TARGET_DIR:-$root/target}
BIN_DIR=${BIN_DIR:-$target_dir/debug}
venv=$root/bench/.venv-dashboards
token=plot-token-0123456789

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

# ---------------------------------------------------------------- tools -----------------------
for tool in wrk prometheus; do
    if ! command -v $tool >/dev/null; then
        log "Installing $tool."
        apt-get update -qq && apt-get install -y -qq $tool >/dev/null
    fi
done
command -v curl >/dev/null || die "curl is needed"
if [[ ! -x $venv/bin/python ]]; then
    log "Creating $venv."
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    log "Installing matplotlib into $venv."
    timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check \
        -c scripts/pins/dashboards-plot.txt -r bench/dashboards/requirements.txt
fi
if [[ ${BUILD:-1} != 0 ]]; then
    log "Building the debug binaries."
    cargo build -q --locked -p registry -p fraud -p recommender -p trainer --bins
fi
for bin in registry fraud recommender trainer; do
    [[ -x $BIN_DIR/$bin ]] || die "$BIN_DIR/$bin is missing"
done

# ---------------------------------------------------------------- cleanup ---------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/dashboards-plot.XXXXXX")
mkdir -p "$OUT" && rm -f "$OUT"/*.txt "$OUT"/*.log
pids=()
cleanup() {
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
port_free() { ! curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null; }
for p in 0 1 2 3; do port_free $((PORT_BASE + p)) || die "port $((PORT_BASE + p)) is taken"; done

prom=http://127.0.0.1:$PORT_BASE
registry=http://127.0.0.1:$((PORT_BASE + 1))
fraud=http://127.0.0.1:$((PORT_BASE + 2))
recommender=http://127.0.0.1:$((PORT_BASE + 3))

# ---------------------------------------------------------------- prometheus and registry -----
# Prometheus first, so that it sees every series appear (the alias-move annotation counts the
# first move of a registry's life by its counter appearing).
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 5s
  evaluation_interval: 5s
scrape_configs:
  - job_name: ml-serving
    static_configs:
      - targets: ['127.0.0.1:$((PORT_BASE + 1))', '127.0.0.1:$((PORT_BASE + 2))', '127.0.0.1:$((PORT_BASE + 3))']
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$PORT_BASE" >"$OUT/prometheus.log" 2>&1 &
pids+=($!)
wait_ok "$prom/-/ready" 60 || die "Prometheus did not start (see $OUT/prometheus.log)"
begin=$(date +%s)

store=$work/store
common=(env -i PATH="$PATH" MODEL_STORE="$store" HOST=127.0.0.1 RUST_LOG=warn)
"${common[@]}" PORT=$((PORT_BASE + 1)) REGISTRY_TOKEN=$token "$BIN_DIR/registry" >"$OUT/registry.log" 2>&1 &
pids+=($!)
wait_ok "$registry/readyz" 60 || die "the registry did not start (see $OUT/registry.log)"
publish=(env REGISTRY_URL="$registry" REGISTRY_TOKEN=$token RUST_LOG=warn)
move() { # model alias version expected
    curl -fsS -o /dev/null -X PUT -H "authorization: Bearer $token" -H 'content-type: application/json' \
        -d "{\"version\": $3, \"expected_version\": $4, \"reason\": \"plot.sh\"}" \
        "$registry/v1/models/$1/aliases/$2"
}
alias_of() { curl -fsS "$registry/v1/models/$1/aliases/$2" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["version"])'; }

# ---------------------------------------------------------------- models ----------------------
log "Training fraud v1 and v2, recommender v1 and v2 (published through the registry)."
"$BIN_DIR/trainer" generate fraud --rows 20000 --seed 7 --out "$work/fraud.csv" >/dev/null
"$BIN_DIR/trainer" generate ratings --users 2000 --items 3000 --density 0.01 --out "$work/ratings.tsv" >/dev/null
for trees in 8 12; do
    "${publish[@]}" "$BIN_DIR/trainer" train fraud --data "$work/fraud.csv" --trees $trees >>"$OUT/train.txt" 2>&1
done
for rank in 8 12; do
    "${publish[@]}" "$BIN_DIR/trainer" train recommender --ratings "$work/ratings.tsv" --rank $rank \
        --iterations 3 --max-rmse 100 >>"$OUT/train.txt" 2>&1
done
for model in fraud recommender; do
    now=$(alias_of $model production)
    [[ $now == 1 ]] || move $model production 1 "$now"
done

# The generated users' recommendation paths.
cut -f1 "$work/ratings.tsv" | sort -un | sed 's|.*|/v1/users/&/recommendations?n=10|' >"$work/users.txt"
# Real transactions as /classify paths, and the same with f1 from its top fifth (drift).
manifest=$(curl -fsS "$registry/v1/models/fraud/versions/1")
"$venv/bin/python" - "$work/fraud.csv" "$manifest" "$work" <<'PY'
import csv, json, sys
names = [f["name"] for f in json.loads(sys.argv[2])["manifest"]["feature_schema"]["features"]]
with open(sys.argv[1], newline="") as f:
    rows = [[r[n] for n in names] for r in csv.DictReader(f)]
top = sorted(float(r[0]) for r in rows)[len(rows) * 4 // 5]
path = lambda r: "/classify?" + "&".join(f"f{i + 1}={v}" for i, v in enumerate(r))
with open(f"{sys.argv[3]}/normal.txt", "w") as out:
    out.writelines(path(r) + "\n" for r in rows)
with open(f"{sys.argv[3]}/shifted.txt", "w") as out:
    out.writelines(path(r) + "\n" for r in rows if float(r[0]) >= top)
PY

serving=(MODEL_VERSION=production MODEL_VERSION_B=2 AB_PERCENT_B=20 MODEL_VERSION_SHADOW=2 MODEL_POLL_SECONDS=2)
"${common[@]}" PORT=$((PORT_BASE + 2)) "${serving[@]}" "$BIN_DIR/fraud" >"$OUT/fraud.log" 2>&1 &
pids+=($!)
"${common[@]}" PORT=$((PORT_BASE + 3)) "${serving[@]}" SCORING_WAIT_MS=1000 "$BIN_DIR/recommender" >"$OUT/recommender.log" 2>&1 &
pids+=($!)
wait_ok "$fraud/readyz" 120 || die "fraud did not get ready (see $OUT/fraud.log)"
wait_ok "$recommender/readyz" 120 || die "the recommender did not get ready (see $OUT/recommender.log)"

# ---------------------------------------------------------------- the run ---------------------
start=$(date +%s)
log "Load for 120 s."
wrk -t1 -c1 -d120s -s bench/dashboards/rows.lua "$recommender" -- "$work/users.txt" >"$OUT/wrk-recommender.txt" &
rec_wrk=$!
wrk -t1 -c2 -d60s -s bench/dashboards/rows.lua "$fraud" -- "$work/normal.txt" >"$OUT/wrk-fraud-normal.txt" &
fraud_wrk=$!
sleep 30
log "Publishing fraud v3 and moving production to it."
"${publish[@]}" "$BIN_DIR/trainer" train fraud --data "$work/fraud.csv" --trees 16 --seed 11 >>"$OUT/train.txt" 2>&1
now=$(alias_of fraud production)
[[ $now == 3 ]] || move fraud production 3 "$now"
wait "$fraud_wrk"
log "Fraud traffic with f1 shifted to its top fifth."
wrk -t1 -c2 -d60s -s bench/dashboards/rows.lua "$fraud" -- "$work/shifted.txt" >"$OUT/wrk-fraud-shifted.txt" &
fraud_wrk=$!
sleep 20
log "Rolling production of fraud back."
curl -fsS -o /dev/null -X POST -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"reason": "plot.sh: drift"}' "$registry/v1/models/fraud/aliases/production/rollback"
wait "$fraud_wrk" "$rec_wrk"
sleep 10
end=$(date +%s)

# ---------------------------------------------------------------- the picture -----------------
log "Evaluating the dashboards' queries over the run and plotting them."
"$venv/bin/python" bench/dashboards/plot.py "$prom" "$start" "$end" 5 20s \
    manifests/components/dashboards "$PNG" \
    "The dashboards' queries on Prometheus 2.42 scraping debug binaries every 5 s under a 2-minute load (bench/dashboards/plot.sh)"
for f in "$OUT"/wrk-*.txt; do
    log "$(basename "$f"): $(awk '/requests in/ {print $1, "requests"} /Non-2xx/ {print "non-2xx:", $NF}' "$f" | paste -sd' ')"
done
log "Prometheus up since $((start - begin)) s before the load; wrote $PNG."
