#!/usr/bin/env bash
# Fraud forest benchmark: our trainer against scikit-learn's RandomForestClassifier on the same
# generated data and the same held-out rows. See README.md. Knobs: ROWS, TREES, THREADS,
# MAX_DEPTH (a number or "none"), CLASS_WEIGHT (balanced|none), SEED; BUILD=0 reuses the last
# release build.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ROWS=${ROWS:-100000}
TREES=${TREES:-100}
THREADS=${THREADS:-2}
MAX_DEPTH=${MAX_DEPTH:-16}
CLASS_WEIGHT=${CLASS_WEIGHT:-balanced}
SEED=${SEED:-42}
work="$root/target/bench-fraud"
venv="$root/bench/.venv"
mkdir -p "$work"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -c 'import sklearn' 2>/dev/null || "$venv/bin/pip" install -q scikit-learn

if [ "${BUILD:-1}" != 0 ]; then
    (cd "$root" && source bench/lib.sh && build_release)
fi
trainer="$root/target/release/trainer"

RUST_LOG=warn "$trainer" generate fraud --rows "$ROWS" --seed "$SEED" --out "$work/all.csv" >"$work/generate.json"
"$venv/bin/python" "$here/sklearn_rf.py" split "$work/all.csv" "$work/train.csv" "$work/test.csv" \
    --test-fraction 0.2 --seed "$SEED"

# --no-publish: nothing is written to the store; MODEL_STORE only keeps .data/ out of the repo.
MODEL_STORE="$work/store" RUST_LOG=warn "$trainer" train fraud \
    --data "$work/train.csv" --test-data "$work/test.csv" --no-publish \
    --trees "$TREES" --threads "$THREADS" --max-depth "$MAX_DEPTH" \
    --class-weight "$CLASS_WEIGHT" --seed "$SEED" >"$work/ours.json"
"$venv/bin/python" "$here/sklearn_rf.py" fit "$work/train.csv" "$work/test.csv" \
    --trees "$TREES" --jobs "$THREADS" --max-depth "$MAX_DEPTH" \
    --class-weight "$CLASS_WEIGHT" --seed "$SEED" >"$work/sklearn.json"

"$venv/bin/python" - "$work" "$ROWS" "$TREES" "$THREADS" "$MAX_DEPTH" "$CLASS_WEIGHT" <<'PY'
import json, sys
work, rows, trees, threads, depth, cw = sys.argv[1:]
ours = json.load(open(f"{work}/ours.json"))
sk = json.load(open(f"{work}/sklearn.json"))
o_t, s_t = ours["train_seconds"], sk["train_seconds"]
o_auc, s_auc = ours["metrics"]["roc_auc"], sk["roc_auc"]
print(f"rows={rows} (train {ours['data']['train_rows']}, test {ours['data']['test_rows']}) "
      f"trees={trees} threads={threads} max_depth={depth} class_weight={cw}")
print(f"{'':10} {'train s':>9} {'ROC AUC':>8} {'PR AUC':>8} {'nodes':>8}")
print(f"{'ours':10} {o_t:9.3f} {o_auc:8.4f} {ours['metrics']['pr_auc']:8.4f} {ours['nodes']:8d}")
print(f"{'sklearn':10} {s_t:9.3f} {s_auc:8.4f} {sk['pr_auc']:8.4f} {sk['nodes']:8d}")
print(f"speed-up (sklearn time / ours): {s_t / o_t:.2f}x   AUC difference (ours - sklearn): {o_auc - s_auc:+.4f}")
PY
