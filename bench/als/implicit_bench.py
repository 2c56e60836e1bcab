"""Time the `implicit` package's CPU ALS (conjugate gradient) on a train/test TSV pair.

Confidence is passed precomputed as 1 + alpha * count with implicit's own alpha left at 1.0,
which is the same objective as `trainer --feedback implicit --alpha ALPHA` (implicit multiplies
the matrix by its alpha and uses the value itself as the confidence).
"""
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.evaluation import ranking_metrics_at_k

train_path, test_path = sys.argv[1], sys.argv[2]
factors, iterations, reg, alpha, threads = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])


def load(path, users, items):
    u, i, v = [], [], []
    for line in open(path):
        a, b, c = line.split("\t")[:3]
        u.append(users.setdefault(a, len(users)))
        i.append(items.setdefault(b, len(items)))
        v.append(float(c))
    return np.array(u), np.array(i), np.array(v, dtype=np.float32)


users, items = {}, {}
tu, ti, tv = load(train_path, users, items)
eu, ei, ev = load(test_path, users, items)
shape = (len(users), len(items))
train = sp.csr_matrix((1.0 + alpha * tv, (tu, ti)), shape=shape, dtype=np.float32)
train.sum_duplicates()
test = sp.csr_matrix((np.ones_like(ev), (eu, ei)), shape=shape, dtype=np.float32)

model = AlternatingLeastSquares(factors=factors, iterations=iterations, regularization=reg,
                                alpha=1.0, num_threads=threads, random_state=42)
start = time.perf_counter()
model.fit(train, show_progress=False)
fit_seconds = time.perf_counter() - start
metrics = ranking_metrics_at_k(model, train, test, K=10, show_progress=False, num_threads=threads)
print(json.dumps({"system": "implicit", "fit_seconds": fit_seconds, "nnz": int(train.nnz),
                  "ndcg_at_10_implicit_definition": float(metrics["ndcg"]),
                  "precision_at_10_implicit_definition": float(metrics["precision"])}))
