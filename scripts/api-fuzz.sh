#!/usr/bin/env bash
# API fuzzing (issue #5, part 1): schemathesis against each service's own /openapi.json, with the
# services running on freshly trained models, on loopback only.
#
#   - a virtualenv .venv-fuzz/ with a pinned schemathesis (created on first use, from PyPI);
#   - the debug binaries (the same build as the tests: no release build);
#   - the suite started as scripts/up.sh does it, in a temporary local model store on free
#     loopback ports: the registry with a generated REGISTRY_TOKEN, small generated data, the
#     trainer publishing through REGISTRY_URL, then fraud and recommender following `production`;
#   - schemathesis on each service (fraud, recommender, then the registry, whose mutations run
#     last so they cannot disturb the other two), checking: no 5xx, documented status codes,
#     documented content types, response bodies matching the documented schemas;
#   - afterwards, no service may have panicked or died.
# Exits non-zero on any failure. Bounded: each service's run is capped by API_FUZZ_TIMEOUT.
#
# Knobs: API_FUZZ_EXAMPLES (fuzzing-phase cases per operation, default 200), API_FUZZ_SEED (default
# fixed, for a reproducible CI gate; set another to explore), API_FUZZ_TIMEOUT (s per service),
# API_FUZZ_KEEP=1 keeps the temporary directory (logs, store, reports).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${API_FUZZ_EXAMPLES:-200}
SEED=${API_FUZZ_SEED:-20261123}
TIMEOUT=${API_FUZZ_TIMEOUT:-240}
MIN_CASES=500
VENV=.venv-fuzz
started=$(date +%s)

# --- tools --------------------------------------------------------------------------------------
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
    echo "api-fuzz: installing schemathesis $SCHEMATHESIS_VERSION into $VENV/" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        -c scripts/pins/api-fuzz.txt "schemathesis==$SCHEMATHESIS_VERSION"
fi
PY=$VENV/bin/python

echo "api-fuzz: building the debug binaries..." >&2
# The whole workspace's binaries, as scripts/test.sh builds them: the same feature set, so
# nothing (aws-sdk-s3 above all) is compiled a second time with other features.
cargo build --quiet --locked --workspace --bins
BIN=$PWD/target/debug

# --- the suite, as scripts/up.sh starts it ------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/api-fuzz.XXXXXX")
pids=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ((${#pids[@]})); then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
    if [[ ${API_FUZZ_KEEP:-0} == 1 || $rc != 0 ]]; then
        echo "api-fuzz: logs, store and reports kept in $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export MODEL_STORE=$work/models RUST_LOG=${RUST_LOG:-warn}
mkdir -p "$work/logs" "$MODEL_STORE"
# Three free loopback ports, so a suite started by scripts/up.sh (8080-8082) is left alone.
read -r REGISTRY_PORT FRAUD_PORT RECOMMENDER_PORT < <("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
REGISTRY_TOKEN=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
export REGISTRY_TOKEN

start() { # name port binary [env...]
    local name=$1 port=$2 binary=$3
    shift 3
    env PORT="$port" HOST=127.0.0.1 "$@" "$BIN/$binary" >"$work/logs/$name.log" 2>&1 &
    pids+=($!)
}
wait_ready() { # name url
    for _ in $(seq 1 600); do
        if curl -fsS "$2/readyz" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "api-fuzz: $1 did not become ready:" >&2
    tail -20 "$work/logs/$1.log" >&2
    exit 1
}

REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT
FRAUD_URL=http://127.0.0.1:$FRAUD_PORT
RECOMMENDER_URL=http://127.0.0.1:$RECOMMENDER_PORT
start registry "$REGISTRY_PORT" registry
wait_ready registry "$REGISTRY_URL"
export REGISTRY_URL

echo "api-fuzz: training small models and publishing them through the registry..." >&2
"$BIN/trainer" generate fraud --rows 5000 --seed 7 --out "$work/fraud.csv" >/dev/null
"$BIN/trainer" generate ratings --users 300 --items 200 --rank 4 --density 0.05 --noise 0.3 --seed 7 \
    --out "$work/ratings.tsv" >/dev/null
# Two fraud versions, so the registry's compare/archive/alias operations have something to chew on.
for trees in 10 12; do
    "$BIN/trainer" train fraud --data "$work/fraud.csv" --trees "$trees" \
        >>"$work/logs/train-fraud.json" 2>>"$work/logs/trainer.log"
done
"$BIN/trainer" train recommender --ratings "$work/ratings.tsv" \
    >"$work/logs/train-recommender.json" 2>>"$work/logs/trainer.log"

start fraud "$FRAUD_PORT" fraud MODEL_POLL_SECONDS=5
start recommender "$RECOMMENDER_PORT" recommender MODEL_POLL_SECONDS=5
wait_ready fraud "$FRAUD_URL"
wait_ready recommender "$RECOMMENDER_URL"

# --- schemathesis -------------------------------------------------------------------------------
# Flags (schemathesis 4.32.5, `schemathesis run --help`):
#   --checks          the four conformance checks of issue #5: no 5xx, documented status code,
#                     documented content type, body valid against the documented schema.
#                     Deliberately not negative_data_rejection / positive_data_acceptance: those
#                     judge how strictly a service validates (e.g. unknown query parameters are
#                     ignored on purpose for the drop-in /classify), not whether it is correct.
#   --mode all        valid and invalid (negative) inputs.
#   --phases          examples (the document's examples), coverage (boundary values of every
#                     parameter, deterministic) and fuzzing (random cases, -n per operation).
#                     No stateful phase: the documents declare no links.
#   --max-examples    cases per operation in the fuzzing phase; operations without inputs
#                     (/healthz, /metrics, ...) yield one case whatever -n is.
#   --seed            reproducible runs; API_FUZZ_SEED explores others.
#   --generation-database none   no .hypothesis/ directory in the checkout.
#   --workers 1       one thread: with 2, hypothesis (6.x on CPython 3.11) raced in its lambda-source
#                     cache (KeyError in linecache, "AST constructor recursion depth mismatch").
#   --request-timeout a hung request fails the run rather than the CI job's clock.
#   -H Authorization  the registry's token, so registrations, alias moves, rollbacks and
#                     archivals run their real code instead of stopping at 401.
#   --config-file     dictionaries of ids that exist (below); the cache (crash records) goes to
#                     the temporary directory instead of .schemathesis/ in the checkout.
# Ids that do not exist (random model names, versions, user and item ids) are not false
# positives here: every such operation documents its 404/400, and the recommender answers
# unknown users with its documented cold-start result. But purely random ids almost never hit
# a real model, version or user, so the code behind the 404 would go untested: each service's
# config binds its id parameters to a dictionary of ids that exist, used for half of the
# generated values (probability 0.5); the other half stay random.
users=$(cut -f1 "$work/ratings.tsv" | sort -u | head -5 | sed 's/.*/"&"/' | paste -sd,)
items=$(cut -f2 "$work/ratings.tsv" | sort -u | head -5 | sed 's/.*/"&"/' | paste -sd,)
cat >"$work/fraud.toml" <<EOT
[cache]
directory = "$work/schemathesis-cache"
[dictionaries.keys]
values = ["c-42", "7", "card-0001"]
[parameters]
"query.card_id" = { dictionary = "keys", probability = 0.5 }
"query.user_id" = { dictionary = "keys", probability = 0.5 }
EOT
cat >"$work/recommender.toml" <<EOT
[cache]
directory = "$work/schemathesis-cache"
[dictionaries.users]
values = [$users]
[dictionaries.items]
values = [$items]
[parameters]
"path.user_id" = { dictionary = "users", probability = 0.5 }
"query.user_id" = { dictionary = "users", probability = 0.5 }
"path.item_id" = { dictionary = "items", probability = 0.5 }
EOT
cat >"$work/registry.toml" <<EOT
[cache]
directory = "$work/schemathesis-cache"
[dictionaries.models]
values = ["fraud", "recommender"]
[dictionaries.versions]
values = [1, 2]
[dictionaries.aliases]
values = ["production"]
[parameters]
"path.model" = { dictionary = "models", probability = 0.5 }
"path.version" = { dictionary = "versions", probability = 0.5 }
"path.alias" = { dictionary = "aliases", probability = 0.5 }
"query.a" = { dictionary = "versions", probability = 0.5 }
"query.b" = { dictionary = "versions", probability = 0.5 }
EOT
# hypothesis keeps its caches (.hypothesis/) in the working directory unless told otherwise.
export HYPOTHESIS_STORAGE_DIRECTORY=$work/hypothesis
fuzz() { # name url [extra schemathesis args...]
    local name=$1 url=$2
    shift 2
    echo >&2
    echo "api-fuzz: === $name ($url/openapi.json) ===" >&2
    local rc=0
    timeout --signal=INT --kill-after=20 "$TIMEOUT" \
        "$VENV/bin/schemathesis" --config-file "$work/$name.toml" run "$url/openapi.json" \
        --url "$url" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --mode all \
        --phases examples,coverage,fuzzing \
        --max-examples "$EXAMPLES" \
        --seed "$SEED" \
        --generation-database none \
        --workers 1 \
        --request-timeout 10 \
        --no-color \
        --report ndjson --report-ndjson-path "$work/$name.ndjson" \
        --report junit --report-junit-path "$work/$name.junit.xml" \
        --report-dir "$work/reports" \
        "$@" || rc=$?
    local cases
    cases=$(count_cases "$work/$name.ndjson")
    echo "api-fuzz: $name: $cases generated cases (schemathesis exit $rc)" >&2
    summary+=("$name: $cases cases, exit $rc")
    if ((rc != 0)); then failed=1; fi
    if ((cases < MIN_CASES)); then
        echo "api-fuzz: $name: fewer than $MIN_CASES cases; raise API_FUZZ_EXAMPLES" >&2
        failed=1
    fi
}
count_cases() { # ndjson report -> number of test cases schemathesis generated and sent
    "$PY" - "$1" <<'EOF'
import json, sys
cases = set()
try:
    lines = open(sys.argv[1]).read().splitlines()
except OSError:
    lines = []
for line in lines:
    event = json.loads(line)
    for value in event.values():
        if isinstance(value, dict) and value.get("recorder"):
            for case_id in value["recorder"].get("cases", {}):
                cases.add(case_id)
print(len(cases))
EOF
}

failed=0
summary=()
fuzz fraud "$FRAUD_URL"
fuzz recommender "$RECOMMENDER_URL"
fuzz registry "$REGISTRY_URL" -H "Authorization: Bearer $REGISTRY_TOKEN"

# --- the services must have survived it ---------------------------------------------------------
for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
        echo "api-fuzz: a service (pid ${pids[$i]}) died during the run" >&2
        failed=1
    fi
done
if grep -l "panicked" "$work"/logs/{registry,fraud,recommender}.log >&2; then
    echo "api-fuzz: a service panicked (logs above are kept)" >&2
    grep -h -A3 "panicked" "$work"/logs/{registry,fraud,recommender}.log | head -40 >&2
    failed=1
fi

echo >&2
printf 'api-fuzz: %s\n' "${summary[@]}" >&2
echo "api-fuzz: finished in $(($(date +%s) - started)) s" >&2
if ((failed)); then
    echo "api-fuzz: FAILED" >&2
    exit 1
fi
echo "api-fuzz: passed"
