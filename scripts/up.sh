#!/usr/bin/env bash
# One command to run the whole suite on embedded defaults:
#   - a local directory as the model store (MODEL_STORE, default .data/models; s3://... works too,
#     with the usual S3 variables),
#   - the registry, then the first fraud and recommender models trained on generated data and
#     published through the registry (skipped when `production` already exists: a second run
#     reuses what is there),
#   - the fraud and recommender services following `production`.
# Prints the URLs and a few curl commands; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_DIR=${DATA_DIR:-.data}
export MODEL_STORE=${MODEL_STORE:-$DATA_DIR/models}
REGISTRY_PORT=${REGISTRY_PORT:-8082}
FRAUD_PORT=${FRAUD_PORT:-8080}
RECOMMENDER_PORT=${RECOMMENDER_PORT:-8081}
export RUST_LOG=${RUST_LOG:-warn}
mkdir -p "$DATA_DIR/logs"

# UP_BIN_DIR: run the binaries already built there (scripts/up-smoke.sh points it at the debug
# build) instead of building release ones.
if [[ -n ${UP_BIN_DIR:-} ]]; then
    BIN=$UP_BIN_DIR
else
    echo "Building (release)..." >&2
    cargo build --release --quiet -p trainer -p registry -p fraud -p recommender
    BIN=target/release
fi

# A registry token for this installation, created once.
if [[ ! -s $DATA_DIR/registry-token ]]; then
    od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$DATA_DIR/registry-token"
    chmod 600 "$DATA_DIR/registry-token"
fi
export REGISTRY_TOKEN
REGISTRY_TOKEN=$(cat "$DATA_DIR/registry-token")

pids=()
stopping=0
stop() {
    stopping=1
    trap - INT TERM EXIT
    if ((${#pids[@]})); then
        echo >&2
        echo "Stopping..." >&2
        kill -TERM "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
trap stop INT TERM EXIT

wait_ready() { # name url
    for _ in $(seq 1 600); do
        if curl -fsS "$2/readyz" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "$1 did not become ready; see $DATA_DIR/logs/$1.log" >&2
    exit 1
}

start() { # name port binary [env...]
    local name=$1 port=$2 binary=$3
    shift 3
    env PORT="$port" HOST=127.0.0.1 "$@" "$BIN/$binary" >"$DATA_DIR/logs/$name.log" 2>&1 &
    pids+=($!)
}

start registry "$REGISTRY_PORT" registry
REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT
wait_ready registry "$REGISTRY_URL"
export REGISTRY_URL

has_production() { curl -fsS "$REGISTRY_URL/v1/models/$1/aliases/production" >/dev/null 2>&1; }

if has_production fraud; then
    echo "fraud: production exists; reusing it." >&2
else
    echo "fraud: generating 50,000 transactions and training a 100-tree forest..." >&2
    "$BIN/trainer" generate fraud --rows 50000 --seed 7 --out "$DATA_DIR/fraud.csv" >/dev/null
    "$BIN/trainer" train fraud --data "$DATA_DIR/fraud.csv" >"$DATA_DIR/logs/train-fraud.json" 2>>"$DATA_DIR/logs/trainer.log"
fi
if has_production recommender; then
    echo "recommender: production exists; reusing it." >&2
else
    echo "recommender: generating ratings and training ALS..." >&2
    "$BIN/trainer" generate ratings --users 2000 --items 1000 --rank 8 --density 0.05 --noise 0.3 --seed 7 \
        --out "$DATA_DIR/ratings.tsv" >/dev/null
    "$BIN/trainer" train recommender --ratings "$DATA_DIR/ratings.tsv" \
        >"$DATA_DIR/logs/train-recommender.json" 2>>"$DATA_DIR/logs/trainer.log"
fi

start fraud "$FRAUD_PORT" fraud MODEL_POLL_SECONDS=5
start recommender "$RECOMMENDER_PORT" recommender MODEL_POLL_SECONDS=5
FRAUD_URL=http://127.0.0.1:$FRAUD_PORT
RECOMMENDER_URL=http://127.0.0.1:$RECOMMENDER_PORT
wait_ready fraud "$FRAUD_URL"
wait_ready recommender "$RECOMMENDER_URL"

user=$(head -1 "$DATA_DIR/ratings.tsv" 2>/dev/null | cut -f1 || true)
cat <<EOT

The suite is up (model store: $MODEL_STORE; logs in $DATA_DIR/logs).
  registry     $REGISTRY_URL      (web page at /; token in $DATA_DIR/registry-token)
  fraud        $FRAUD_URL
  recommender  $RECOMMENDER_URL

Try:
  curl '$FRAUD_URL/classify?f1=2500&f2=100&f3=0'
  curl -X POST $FRAUD_URL/v1/classify -H 'content-type: application/json' \\
       -d '{"instances": [[2500, 100, 0], {"txn_amount": 12, "amount_spent_past_mo": 900, "txns_same_merchant": 9}]}'
  curl '$RECOMMENDER_URL/v1/users/${user:-1}/recommendations?n=5'
  curl '$RECOMMENDER_URL/v1/items/1/similar?n=5'
  curl $REGISTRY_URL/v1/models
  curl $REGISTRY_URL/v1/models/fraud/versions

Ctrl-C stops everything.
EOT
wait -n "${pids[@]}" || true
if ((!stopping)); then
    echo "A service exited; see $DATA_DIR/logs. Stopping the others." >&2
fi
