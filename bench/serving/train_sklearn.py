"""Trains the classic service's model on the same CSV as our trainer, and pickles it.

    python train_sklearn.py --data fraud.csv --features f_a,f_b,f_c --out model.pkl

`--features` names the feature columns in the order the service passes them as f1, f2, f3
(run.sh takes them from our published model's manifest, so both models see the same columns
in the same order); the label is the one remaining column unless `--label` names it.
Prints one JSON line: rows, features, label, trees, total nodes, pickle bytes, fit seconds.
"""

import argparse
import csv
import json
import os
import pickle
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--features", required=True, help="comma-separated, in f1.. order")
    parser.add_argument("--label", help="default: the one column that is not a feature")
    parser.add_argument("--out", required=True)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    features = [name for name in args.features.split(",") if name]
    with open(args.data, newline="") as f:
        header = next(csv.reader(f))
    missing = [name for name in features if name not in header]
    if missing:
        raise SystemExit(f"feature column(s) {missing} not in the CSV header {header}")
    label = args.label
    if label is None:
        rest = [name for name in header if name not in features]
        if len(rest) != 1:
            raise SystemExit(f"cannot tell the label among {rest}; pass --label")
        label = rest[0]

    table = np.loadtxt(args.data, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    x = table[:, [header.index(name) for name in features]]
    y = table[:, header.index(label)].astype(np.int64)

    started = time.monotonic()
    # The classic service's model: scikit-learn's defaults, 100 fully grown trees.
    clf = RandomForestClassifier(n_estimators=args.trees, random_state=args.seed)
    clf.fit(x, y)
    fit_seconds = time.monotonic() - started

    with open(args.out, "wb") as f:
        pickle.dump(clf, f)
    print(
        json.dumps(
            {
                "rows": int(x.shape[0]),
                "features": features,
                "label": label,
                "trees": len(clf.estimators_),
                "nodes": int(sum(t.tree_.node_count for t in clf.estimators_)),
                "max_depth": int(max(t.tree_.max_depth for t in clf.estimators_)),
                "pickle_bytes": os.path.getsize(args.out),
                "fit_seconds": round(fit_seconds, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
