"""Collect the benchmark outputs into one JSON summary with the ratios."""
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])


def load(name):
    return json.loads((out / f"{name}.json").read_text().strip().splitlines()[-1])


def wall(name):
    return float((out / f"{name}.wall").read_text())


ir, ip = load("implicit-rust"), load("implicit-py")
er, es = load("explicit-rust"), load("explicit-spark")
summary = {
    "implicit": {
        "data": load("implicit-gen"),
        "rust_train_seconds": ir["metrics"]["train_seconds"],
        "implicit_fit_seconds": ip["fit_seconds"],
        "time_ratio_rust_over_implicit": ir["metrics"]["train_seconds"] / ip["fit_seconds"],
        "rust_ndcg_at_10": ir["metrics"]["ndcg_at_k"],
        "rust_precision_at_10": ir["metrics"]["precision_at_k"],
        "popularity_ndcg_at_10": ir["popularity_baseline"]["ndcg_at_k"],
        "implicit_ndcg_at_10_own_definition": ip["ndcg_at_10_implicit_definition"],
        "rust_process_wall_seconds": wall("implicit-rust"),
        "implicit_process_wall_seconds": wall("implicit-py"),
    },
    "explicit": {
        "data": load("explicit-gen"),
        "rust_train_seconds": er["metrics"]["train_seconds"],
        "spark_fit_seconds": es["fit_seconds"],
        "speedup_spark_over_rust": es["fit_seconds"] / er["metrics"]["train_seconds"],
        "rust_rmse": er["metrics"]["rmse"],
        "spark_rmse": es["rmse"],
        "test_rows": er["test_rows"],
        "spark_scored_test_rows": es["scored_test_rows"],
        "rust_process_wall_seconds": wall("explicit-rust"),
        "spark_process_wall_seconds": wall("explicit-spark"),
        "wall_speedup": wall("explicit-spark") / wall("explicit-rust"),
    },
}
print(json.dumps(summary, indent=2))
