"""The scikit-learn side of bench/fraud: split a generated file, or fit and score a forest.

    python sklearn_rf.py split ALL.csv TRAIN.csv TEST.csv --test-fraction 0.2 --seed 42
    python sklearn_rf.py fit TRAIN.csv TEST.csv --trees 100 --jobs 2 --max-depth 16

`fit` prints one JSON object: train_seconds (fit only), roc_auc, pr_auc.
"""

import argparse
import json
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split


def load(path):
    with open(path) as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    label = header.index("is_fraud")
    features = [i for i in range(len(header)) if i != label]
    return header, data[:, features], data[:, label].astype(int), data


def split(args):
    with open(args.all) as f:
        header = f.readline()
        lines = f.readlines()
    labels = [int(line.rstrip().rsplit(",", 1)[1]) for line in lines]
    train, test = train_test_split(
        lines, test_size=args.test_fraction, stratify=labels, random_state=args.seed
    )
    for path, rows in ((args.train, train), (args.test, test)):
        with open(path, "w") as f:
            f.write(header)
            f.writelines(rows)


def fit(args):
    _, x_train, y_train, _ = load(args.train)
    _, x_test, y_test, _ = load(args.test)
    forest = RandomForestClassifier(
        n_estimators=args.trees,
        n_jobs=args.jobs,
        max_depth=None if args.max_depth == "none" else int(args.max_depth),
        class_weight=None if args.class_weight == "none" else args.class_weight,
        random_state=args.seed,
    )
    started = time.perf_counter()
    forest.fit(x_train, y_train)
    seconds = time.perf_counter() - started
    scores = forest.predict_proba(x_test)[:, 1]
    print(
        json.dumps(
            {
                "train_seconds": seconds,
                "roc_auc": roc_auc_score(y_test, scores),
                "pr_auc": average_precision_score(y_test, scores),
                "nodes": int(sum(t.tree_.node_count for t in forest.estimators_)),
            }
        )
    )


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("split")
    s.add_argument("all")
    s.add_argument("train")
    s.add_argument("test")
    s.add_argument("--test-fraction", type=float, default=0.2)
    s.add_argument("--seed", type=int, default=42)
    f = sub.add_parser("fit")
    f.add_argument("train")
    f.add_argument("test")
    f.add_argument("--trees", type=int, default=100)
    f.add_argument("--jobs", type=int, default=2)
    f.add_argument("--max-depth", default="16")
    f.add_argument("--class-weight", default="balanced")
    f.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    split(args) if args.command == "split" else fit(args)


if __name__ == "__main__":
    main()
