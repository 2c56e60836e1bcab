"""Top-N for all users with `implicit`'s `recommend`, on the factors `bench_model` wrote.

Usage: implicit_recommend.py --factors DIR [--n 10] [--threads 2] [--blas-threads 1,2]
                             [--repeats 1] [--ours FILE]

Loads the raw little-endian factors and seen-item CSR, sets them on
`implicit.cpu.als.AlternatingLeastSquares(factors=rank)`, then times
`model.recommend(np.arange(users), user_items, N=n, filter_already_liked_items=True)` with
`num_threads=threads` (implicit's own thread pool over batches of 100 users), once for each
BLAS thread count in `--blas-threads` (implicit advises 1 BLAS thread; its batches call BLAS from
`threads` threads), and reports the fastest as `recommend_all_seconds`. With `--ours` (u32 users x n
from scan_bench) it reports how many users got exactly the same top-n list, and the mean overlap.
Prints one JSON object.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_info, threadpool_limits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--factors", required=True)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blas-threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--ours")
    a = ap.parse_args()

    import implicit
    from implicit.cpu.als import AlternatingLeastSquares

    meta = json.load(open(os.path.join(a.factors, "meta.json")))
    users, items, rank = meta["users"], meta["items"], meta["rank"]

    def load(name, dtype, shape):
        arr = np.fromfile(os.path.join(a.factors, name), dtype=dtype)
        return arr.reshape(shape) if shape else arr

    uf = load("user_factors.f32", "<f4", (users, rank))
    itf = load("item_factors.f32", "<f4", (items, rank))
    offsets = load("seen_offsets.u32", "<u4", None).astype(np.int64)
    seen = load("seen_items.u32", "<u4", None).astype(np.int32)
    user_items = sp.csr_matrix(
        (np.ones(len(seen), dtype=np.float32), seen, offsets), shape=(users, items)
    )

    model = AlternatingLeastSquares(factors=rank, num_threads=a.threads, random_state=0)
    model.user_factors = np.ascontiguousarray(uf)
    model.item_factors = np.ascontiguousarray(itf)

    runs = {}
    blas = {}
    ids = None
    for blas_threads in [int(b) for b in a.blas_threads.split(",")]:
        with threadpool_limits(limits=blas_threads, user_api="blas"):
            blas[blas_threads] = [
                {k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                for p in threadpool_info()
            ]
            # Warm-up on a few users (loads the code paths, not the answer).
            model.recommend(np.arange(min(users, 256)), user_items[: min(users, 256)], N=a.n)
            times = []
            for _ in range(a.repeats):
                t = time.perf_counter()
                ids, _scores = model.recommend(
                    np.arange(users), user_items, N=a.n, filter_already_liked_items=True
                )
                times.append(time.perf_counter() - t)
            runs[blas_threads] = times
    best_blas = min(runs, key=lambda b: min(runs[b]))

    report = {
        "implicit_version": implicit.__version__,
        "numpy": np.__version__,
        "threads": a.threads,
        "blas": blas[best_blas],
        "best_blas_threads": best_blas,
        "runs_by_blas_threads": {str(b): t for b, t in runs.items()},
        "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
        "users": users,
        "items": items,
        "rank": rank,
        "n": a.n,
        "recommend_all_seconds": min(runs[best_blas]),
    }
    if a.ours:
        ours = np.fromfile(a.ours, dtype="<u4").reshape(users, a.n).astype(np.int64)
        theirs = ids.astype(np.int64)
        report["same_list_users"] = int((ours == theirs).all(axis=1).sum())
        overlap = [len(set(o) & set(t)) for o, t in zip(ours, theirs)]
        report["mean_overlap_at_n"] = float(np.mean(overlap)) / a.n
        # Seen items must never be recommended.
        leaked = 0
        for u in range(0, users, max(1, users // 2000)):
            s = set(seen[offsets[u] : offsets[u + 1]].tolist())
            leaked += len(s & set(theirs[u].tolist()))
        report["implicit_seen_items_recommended_sampled"] = leaked
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
