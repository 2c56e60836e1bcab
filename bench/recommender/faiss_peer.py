#!/usr/bin/env python3
"""The faiss-cpu peer of the search-mode benchmark (issue #16, bench/recommender/search.sh).

On the factors `bench_model --out DIR` wrote (user_factors.f32, item_factors.f32,
seen_offsets.u32, seen_items.u32, meta.json), for a fixed sample of users (user j*users/count for
j < count, the sample the service measures recall on), with seen items excluded as the service
excludes them:

- ground truth: the exact top-n by inner product over all items less each user's seen items
  (faiss.knn, brute force, n + max seen results, seen dropped); its rate is reported as the
  brute-force reference (batched; and one query per call for --flat-queries queries);
- HNSW (IndexHNSWFlat, M and efConstruction flags). By default the graph is built and searched
  with METRIC_INNER_PRODUCT on the factors as they are: on these factors (popularity-skewed
  norms) that reached recall@10 0.99 at 200k items where the extra-dimension transform to L2
  (--hnsw-metric l2-transform, kept for comparison) stayed below 0.6 at efSearch 512, and it
  builds faster;
- IVF (IndexIVFFlat with METRIC_INNER_PRODUCT, nlist round(sqrt(items)) by default, k-means
  trained on a random sample of 128 * nlist items);

and for each index a sweep of its search parameter (efSearch, nprobe): recall@n against the
ground truth, and queries per second measured two ways:
  (a) one query per search() call, 1 OpenMP thread (the analogue of the service at c=1), with
      p50/p99 latency per call in ms (Python's per-call overhead, a few microseconds, included);
  (b) the whole sample in one search() call on --threads threads (faiss's best case, the
      analogue of the service at c=32 on the same cores); best of --batch-repeats calls.
Every search asks for k = n + (the most seen items of any sampled user) results, drops the
user's seen items and keeps the first n, in both ways, so (a) and (b) return the same lists.
(faiss's HNSW keeps max(efSearch, k) candidates, but its stopping rule counts efSearch, so
efSearch values below k still give lower recalls than efSearch = k.)

Build time (s), index bytes (the size faiss.write_index writes) and the growth of the process's
resident memory are reported per index. Progress goes to stderr with timestamps; the HNSW build
adds items in chunks and logs the time per chunk, and the run extrapolates its build time to
--extrapolate-items (10M by default) from that curve, two ways (see extrapolate()).

Output: a table on stdout, JSON with --json-out, and "at recall >= R: best qps" summary lines for
each --match-recall R (repeatable), which also go to --summary-out.

    bench/.venv-faiss/bin/python bench/recommender/faiss_peer.py --factors DIR \
        [--queries 1000] [--n 10] [--threads 2] [--hnsw-m 32] [--ef-construction 40] \
        [--ef-search 16,32,...] [--nlist N] [--nprobe 1,2,...] [--match-recall 0.95 ...] \
        [--hnsw-metric ip|l2-transform] [--skip-hnsw] [--skip-ivf] [--flat-queries 100] \
        [--json-out PATH] [--summary-out PATH]
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import faiss
import numpy as np

START = time.monotonic()


def log(msg):
    print(
        f"[faiss_peer {time.strftime('%H:%M:%S')} +{time.monotonic() - START:7.1f}s] {msg}",
        file=sys.stderr,
        flush=True,
    )


def ints(text):
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--factors", required=True, help="the directory bench_model --out wrote")
    p.add_argument("--queries", type=int, default=1000, help="sampled users (default 1000)")
    p.add_argument("--n", type=int, default=10, help="results per query (default 10)")
    p.add_argument("--threads", type=int, default=2, help="OpenMP threads for builds and batches")
    p.add_argument("--hnsw-m", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=40)
    p.add_argument("--ef-search", type=ints,
                   default=ints("16,32,48,64,96,128,192,256,384,512,768,1024"))
    p.add_argument(
        "--hnsw-metric",
        choices=["ip", "l2-transform"],
        default="ip",
        help="ip: IndexHNSWFlat with METRIC_INNER_PRODUCT on the factors as they are (default, "
        "the better of the two here); l2-transform: items y -> [y, sqrt(M^2 - |y|^2)], "
        "queries q -> [q, 0], an L2 IndexHNSWFlat (the extra-dimension transform)",
    )
    p.add_argument("--hnsw-chunk", type=int, default=0,
                   help="items per add(), for progress (default max(50000, items / 20))")
    p.add_argument("--nlist", type=int, default=0, help="IVF lists (default round(sqrt(items)))")
    p.add_argument(
        "--ivf-train", type=int, default=0, help="k-means training items (default 128 * nlist)"
    )
    p.add_argument("--nprobe", type=ints, default=ints("1,2,4,8,16,32,64,128,256,384,512,768"),
                   help="nprobe values (those above nlist are skipped)")
    p.add_argument("--flat-queries", type=int, default=100,
                   help="queries for the brute-force reference one query per call (0 skips)")
    p.add_argument("--match-recall", type=float, action="append", default=None,
                   help="report the qps of the smallest setting with recall >= R "
                   "(repeatable; default 0.95 and 0.99)")
    p.add_argument("--batch-repeats", type=int, default=3)
    p.add_argument("--skip-hnsw", action="store_true")
    p.add_argument("--skip-ivf", action="store_true")
    p.add_argument("--extrapolate-items", type=int, default=10_000_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json-out")
    p.add_argument("--summary-out")
    args = p.parse_args()
    if args.match_recall is None:
        args.match_recall = [0.95, 0.99]
    return args


def rss_bytes(field="VmRSS"):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def index_bytes(index):
    """The size of the index as faiss.write_index writes it, counted without keeping a copy."""
    total = 0

    def count(chunk):
        nonlocal total
        total += len(chunk)
        return len(chunk)

    writer = faiss.PyCallbackIOWriter(count)
    faiss.write_index(index, writer)
    del writer
    return total


def load(factors):
    with open(os.path.join(factors, "meta.json")) as f:
        meta = json.load(f)
    users, items, rank = meta["users"], meta["items"], meta["rank"]

    def raw(name, dtype, shape):
        a = np.fromfile(os.path.join(factors, name), dtype=dtype)
        if a.size != math.prod(shape):
            sys.exit(f"{name}: {a.size} values, expected {shape}")
        return a.reshape(shape)

    xu = raw("user_factors.f32", "<f4", (users, rank))
    xb = raw("item_factors.f32", "<f4", (items, rank))
    offsets = raw("seen_offsets.u32", "<u4", (users + 1,)).astype(np.int64)
    seen = raw("seen_items.u32", "<u4", (int(offsets[-1]),)).astype(np.int64)
    return meta, xu, xb, offsets, seen


def keep_unseen(ids, seen_sets, n):
    """Per row: the ids in order, less -1 and the user's seen items, the first n."""
    return [
        [int(i) for i in row if i >= 0 and int(i) not in s][:n] for row, s in zip(ids, seen_sets)
    ]


def recall(got, exact):
    vals = [len(set(g) & set(e)) / len(e) for g, e in zip(got, exact) if e]
    return float(np.mean(vals)) if vals else 1.0


def measure(index, xq, k, seen_sets, exact, n, threads, repeats):
    """(a) one query per call on 1 thread, (b) the whole sample per call on `threads` threads."""
    nq = len(xq)
    faiss.omp_set_num_threads(1)
    for i in range(min(50, nq)):  # warm-up
        index.search(xq[i : i + 1], k)
    lat = np.empty(nq)
    ids = np.empty((nq, k), dtype=np.int64)
    wall = time.perf_counter()
    for i in range(nq):
        t = time.perf_counter()
        _, ids[i : i + 1] = index.search(xq[i : i + 1], k)
        lat[i] = time.perf_counter() - t
    wall = time.perf_counter() - wall
    single = keep_unseen(ids, seen_sets, n)

    faiss.omp_set_num_threads(threads)
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        _, bids = index.search(xq, k)
        best = min(best, time.perf_counter() - t)
    batch = keep_unseen(bids, seen_sets, n)
    r_single, r_batch = recall(single, exact), recall(batch, exact)
    return {
        "recall": r_single,
        "recall_batch": r_batch,
        "qps_1thread_single_query": nq / wall,
        "p50_ms_single_query": float(np.percentile(lat, 50) * 1e3),
        "p99_ms_single_query": float(np.percentile(lat, 99) * 1e3),
        "qps_threads_batch": nq / best,
    }


def extrapolate(progress, target):
    """The HNSW build time at `target` items, two ways, from the cumulative times per chunk:
    a power law t = a * n^b through the later half of the chunks (the pessimistic one: on a
    loaded machine b runs high), and a per-item insertion cost growing as c(n) = a + b ln n
    (HNSW's walk is about log n hops) fitted to the chunks after the first and integrated from
    the items built to `target`."""
    pts = [(n, t) for n, t in progress if n > 0 and t > 0]
    if len(pts) < 3:
        return None
    later = pts[len(pts) // 2 :]
    b, log_a = np.polyfit(np.log([p[0] for p in later]), np.log([p[1] for p in later]), 1)
    n_cur, t_cur = pts[-1]
    power = t_cur * (target / n_cur) ** b
    mids, costs = [], []
    for (n0, t0), (n1, t1) in zip(pts, pts[1:]):
        mids.append(math.log((n0 + n1) / 2))
        costs.append((t1 - t0) / (n1 - n0))
    slope, icpt = np.polyfit(mids, costs, 1)

    def integral(n):  # of icpt + slope * ln(x) dx, 0..n
        return icpt * n + slope * (n * math.log(n) - n)

    marginal = t_cur + integral(target) - integral(n_cur)
    return {
        "items": target,
        "power_law_seconds": float(power),
        "power_law_exponent": float(b),
        "log_cost_seconds": float(marginal),
        "log_cost_per_item_us": [float(icpt * 1e6), float(slope * 1e6)],
    }


def build_hnsw(args, xb):
    items, d = xb.shape
    if args.hnsw_metric == "l2-transform":
        # Maximum inner product as nearest neighbour in L2 (Bachrach et al. 2014): with
        # M = max |y|, y' = [y, sqrt(M^2 - |y|^2)] all have norm M and q' = [q, 0], so
        # |q' - y'|^2 = |q|^2 + M^2 - 2 q.y orders items as q.y does.
        norms2 = np.einsum("ij,ij->i", xb, xb)
        m2 = float(norms2.max())
        base = np.empty((items, d + 1), dtype=np.float32)
        base[:, :d] = xb
        base[:, d] = np.sqrt(np.maximum(m2 - norms2, 0.0))
        del norms2
        index = faiss.IndexHNSWFlat(d + 1, args.hnsw_m, faiss.METRIC_L2)
    else:
        # The graph built and searched with inner product itself (faiss's METRIC_INNER_PRODUCT
        # HNSW, the "ip-NSW" of Morozov & Babenko 2018): no extra dimension.
        base = xb
        index = faiss.IndexHNSWFlat(d, args.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = args.ef_construction
    faiss.omp_set_num_threads(args.threads)
    chunk = args.hnsw_chunk or max(50_000, items // 20)
    progress = [(0, 0.0)]
    t0 = time.perf_counter()
    for start in range(0, items, chunk):
        index.add(base[start : start + chunk])
        el = time.perf_counter() - t0
        progress.append((index.ntotal, el))
        prev_n, prev_t = progress[-2]
        log(
            f"HNSW: {index.ntotal}/{items} items in {el:.1f}s "
            f"({(index.ntotal - prev_n) / max(el - prev_t, 1e-9):.0f} items/s for this chunk)"
        )
    seconds = time.perf_counter() - t0
    del base
    return index, seconds, progress


def query_vectors(args, xq):
    if args.hnsw_metric == "l2-transform":
        # q -> [q, 0]. (Scaling q would change nothing: HNSW's search only compares distances
        # from one query, and those keep their order under any positive scale of q.)
        return np.ascontiguousarray(np.hstack([xq, np.zeros((len(xq), 1), dtype=np.float32)]))
    return xq


def best_at(settings, key, r, param):
    """The cheapest setting (smallest efSearch or nprobe) with recall >= r, and its rate: the
    rate falls as the parameter grows, so this is the best one, without picking the luckiest
    of several noisy measurements."""
    ok = sorted((s for s in settings if s["recall"] >= r), key=lambda s: s[param])
    if not ok:
        return None
    s = ok[0]
    out = {"qps": s[key], param: s[param], "recall": s["recall"]}
    if key == "qps_1thread_single_query":
        out["p99_ms"] = s["p99_ms_single_query"]
    return out


def main():
    args = parse_args()
    log(f"faiss {faiss.__version__} ({faiss.SIMDConfig.get_level_name()}), numpy {np.__version__}, "
        f"{args.threads} threads; loading {args.factors}")
    meta, xu, xb, offsets, seen = load(args.factors)
    users, items, rank = meta["users"], meta["items"], meta["rank"]
    count = min(args.queries, users)
    sample = [j * users // count for j in range(count)]
    xq = np.ascontiguousarray(xu[sample])
    seen_sets = [set(seen[offsets[u] : offsets[u + 1]].tolist()) for u in sample]
    max_seen = max((len(s) for s in seen_sets), default=0)
    k = args.n + max_seen
    n = args.n
    log(f"{users} users x {items} items, rank {rank}; {count} queries, k = {n} + {max_seen} (seen)")

    faiss.omp_set_num_threads(args.threads)
    # faiss 1.15 scans without BLAS below 128000 queries; its BLAS path (the threshold of older
    # versions, 20) is about 3x faster for this batch. Back to the default afterwards.
    blas_threshold = faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = 20
    t = time.perf_counter()
    _, gt = faiss.knn(xq, xb, k, metric=faiss.METRIC_INNER_PRODUCT)
    gt_seconds = time.perf_counter() - t
    faiss.cvar.distance_compute_blas_threshold = blas_threshold
    exact = keep_unseen(gt, seen_sets, n)
    log(f"ground truth (brute force) in {gt_seconds:.1f}s")
    # The brute-force reference (recall 1): the batch rate is the ground truth's; one query per
    # call on 1 thread, on the first --flat-queries queries (a full scan each).
    flat = {"recall": 1.0, "qps_threads_batch": count / gt_seconds}
    if args.flat_queries > 0:
        faiss.omp_set_num_threads(1)
        lat = []
        for i in range(min(args.flat_queries, count)):
            t = time.perf_counter()
            faiss.knn(xq[i : i + 1], xb, k, metric=faiss.METRIC_INNER_PRODUCT)
            lat.append(time.perf_counter() - t)
        flat["queries_single"] = len(lat)
        flat["qps_1thread_single_query"] = len(lat) / sum(lat)
        flat["p99_ms_single_query"] = float(np.percentile(lat, 99) * 1e3)
        log(f"brute force: {flat['qps_1thread_single_query']:.1f} q/s one query per call, "
            f"{flat['qps_threads_batch']:.1f} q/s batched")

    result = {
        "faiss_version": faiss.__version__,
        "simd": faiss.SIMDConfig.get_level_name(),
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "factors": os.path.abspath(args.factors),
        "users": users,
        "items": items,
        "rank": rank,
        "norm_skew": meta.get("norm_skew"),
        "queries": count,
        "n": n,
        "k_searched": k,
        "threads": args.threads,
        "ground_truth_seconds": gt_seconds,
        "flat": flat,
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
    }
    summary = []

    def report(name, param, label, info, settings):
        print(f"\n# faiss {name}: {info}")
        print(f"{label:>8} {'recall@' + str(n):>10} {'q/s 1 thr 1 q':>14} {'p50 ms':>8} "
              f"{'p99 ms':>8} {f'q/s {args.threads} thr batch':>18}")
        for s in settings:
            print(f"{s[param]:>8} {s['recall']:>10.4f} {s['qps_1thread_single_query']:>14.1f} "
                  f"{s['p50_ms_single_query']:>8.3f} {s['p99_ms_single_query']:>8.3f} "
                  f"{s['qps_threads_batch']:>18.1f}")
        sys.stdout.flush()
        matched = []
        for r in args.match_recall:
            one = best_at(settings, "qps_1thread_single_query", r, param)
            many = best_at(settings, "qps_threads_batch", r, param)
            matched.append({"recall_at_least": r, "best_qps_1thread_single_query": one,
                            "best_qps_threads_batch": many})
            if one is None:
                best = max(s["recall"] for s in settings)
                line = f"faiss {name} at recall@{n} >= {r}: not reached (best recall {best:.4f})"
            else:
                line = (
                    f"faiss {name} at recall@{n} >= {r}: {label} {one[param]} (recall "
                    f"{one['recall']:.4f}): {one['qps']:.1f} q/s one query per call on 1 thread "
                    f"(p99 {one['p99_ms']:.3f} ms), {many['qps']:.1f} q/s batched on "
                    f"{args.threads} threads"
                )
            summary.append(line)
        return matched

    if not args.skip_hnsw:
        log(f"HNSW ({args.hnsw_metric}), M {args.hnsw_m}, efConstruction {args.ef_construction}: building")
        rss0 = rss_bytes()
        index, build_s, progress = build_hnsw(args, xb)
        rss_growth = rss_bytes() - rss0
        nbytes = index_bytes(index)
        est = extrapolate(progress, args.extrapolate_items)
        log(f"HNSW built in {build_s:.1f}s, {nbytes / 2**20:.1f} MiB, RSS +{rss_growth / 2**20:.1f} MiB"
            + (f"; at {est['items']} items about {est['log_cost_seconds']:.0f}s (cost per item "
               f"~ a + b ln n) to {est['power_law_seconds']:.0f}s (t ~ n^{est['power_law_exponent']:.2f})"
               if est else ""))
        q = query_vectors(args, xq)
        settings = []
        for ef in args.ef_search:
            index.hnsw.efSearch = ef
            s = {"ef_search": ef}
            s.update(measure(index, q, k, seen_sets, exact, n, args.threads, args.batch_repeats))
            settings.append(s)
            log(f"HNSW efSearch {ef}: recall {s['recall']:.4f}, {s['qps_1thread_single_query']:.0f} q/s "
                f"single, {s['qps_threads_batch']:.0f} q/s batch")
        info = (f"IndexHNSWFlat {args.hnsw_metric}, M {args.hnsw_m}, efConstruction "
                f"{args.ef_construction}; build {build_s:.1f}s on {args.threads} threads, index "
                f"{nbytes / 2**20:.1f} MiB, RSS +{rss_growth / 2**20:.1f} MiB; k {k}")
        matched = report("HNSW", "ef_search", "efSearch", info, settings)
        build_line = f"faiss HNSW build: {build_s:.1f}s for {items} items on {args.threads} threads"
        if est:
            build_line += (
                f"; extrapolated to {est['items']} items: {est['log_cost_seconds'] / 60:.0f} min "
                f"(insertion cost ~ a + b ln n) to {est['power_law_seconds'] / 60:.0f} min (t ~ "
                f"n^{est['power_law_exponent']:.2f}), fitted to this build's chunks")
        summary.insert(len(summary) - len(args.match_recall), build_line)
        result["hnsw"] = {
            "index": "IndexHNSWFlat",
            "variant": args.hnsw_metric,
            "M": args.hnsw_m,
            "ef_construction": args.ef_construction,
            "build_seconds": build_s,
            "index_bytes": nbytes,
            "rss_growth_bytes": rss_growth,
            "build_progress": progress,
            "extrapolated_build": est,
            "settings": settings,
            "matched": matched,
        }
        del index, q

    if not args.skip_ivf:
        nlist = args.nlist or max(1, round(math.sqrt(items)))
        ntrain = min(items, args.ivf_train or 128 * nlist)
        log(f"IVF: nlist {nlist}, training k-means on {ntrain} random items")
        rss0 = rss_bytes()
        faiss.omp_set_num_threads(args.threads)
        rng = np.random.default_rng(args.seed)
        train = xb[np.sort(rng.choice(items, size=ntrain, replace=False))]
        index = faiss.index_factory(rank, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        t = time.perf_counter()
        index.train(train)
        train_s = time.perf_counter() - t
        del train
        log(f"IVF trained in {train_s:.1f}s; adding")
        t = time.perf_counter()
        index.add(xb)
        add_s = time.perf_counter() - t
        rss_growth = rss_bytes() - rss0
        nbytes = index_bytes(index)
        log(f"IVF added in {add_s:.1f}s, {nbytes / 2**20:.1f} MiB, RSS +{rss_growth / 2**20:.1f} MiB")
        settings = []
        for nprobe in args.nprobe:
            if nprobe > nlist:
                continue
            index.nprobe = nprobe
            s = {"nprobe": nprobe}
            s.update(measure(index, xq, k, seen_sets, exact, n, args.threads, args.batch_repeats))
            settings.append(s)
            log(f"IVF nprobe {nprobe}: recall {s['recall']:.4f}, {s['qps_1thread_single_query']:.0f} q/s "
                f"single, {s['qps_threads_batch']:.0f} q/s batch")
        info = (f"IndexIVFFlat inner product, nlist {nlist} (k-means on {ntrain} items); train "
                f"{train_s:.1f}s + add {add_s:.1f}s on {args.threads} threads, index "
                f"{nbytes / 2**20:.1f} MiB, RSS +{rss_growth / 2**20:.1f} MiB; k {k}")
        matched = report("IVF", "nprobe", "nprobe", info, settings)
        summary.insert(len(summary) - len(args.match_recall),
                       f"faiss IVF build: train {train_s:.1f}s + add {add_s:.1f}s = "
                       f"{train_s + add_s:.1f}s for {items} items on {args.threads} threads")
        result["ivf"] = {
            "index": "IndexIVFFlat",
            "metric": "inner_product",
            "nlist": nlist,
            "train_items": ntrain,
            "train_seconds": train_s,
            "add_seconds": add_s,
            "build_seconds": train_s + add_s,
            "index_bytes": nbytes,
            "rss_growth_bytes": rss_growth,
            "settings": settings,
            "matched": matched,
        }
        del index

    line = (f"faiss brute force (recall 1): {flat['qps_threads_batch']:.1f} q/s batched on "
            f"{args.threads} threads")
    if "qps_1thread_single_query" in flat:
        line += (f"; {flat['qps_1thread_single_query']:.1f} q/s one query per call on 1 thread "
                 f"(p99 {flat['p99_ms_single_query']:.2f} ms, {flat['queries_single']} queries)")
    summary.append(line)
    result["peak_rss_bytes"] = rss_bytes("VmHWM")
    result["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    summary.insert(0, f"# faiss-cpu {faiss.__version__} peer: {items} items x rank {rank}, {count} "
                      f"queries, recall@{n} against exact (seen items excluded), threads {args.threads}")
    result["summary"] = summary
    print()
    print("\n".join(summary))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    if args.summary_out:
        with open(args.summary_out, "w") as f:
            f.write("\n".join(summary) + "\n")
    log("done")


if __name__ == "__main__":
    main()
