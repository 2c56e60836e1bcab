#!/usr/bin/env python3
"""Plot the Grafana dashboards' panels from a real Prometheus (bench/dashboards/plot.sh runs it).

Every panel of manifests/components/dashboards/*.json is drawn from its own queries, evaluated
through Prometheus's HTTP API over the run (`query_range`; the table panel with `query` at the
end), with the dashboard variables substituted as Grafana would: `$namespace` by its "All" value
and `$__rate_interval` by four scrape intervals. The registry's publish and alias-move
annotations are drawn as vertical lines where each annotation query's count rises.

Usage: plot.py PROMETHEUS_URL START END STEP RATE_INTERVAL DASHBOARD_DIR OUT.png [TITLE]
"""

from __future__ import annotations

import io
import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

BOARDS = ("fraud.json", "recommender.json", "registry.json")
COLUMNS = 4
ANNOTATION_COLORS = {"Registry publishes": "tab:blue", "Registry alias moves": "tab:orange"}


def api(base: str, path: str, params: dict) -> list[dict]:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as res:
        body = json.load(res)
    if body.get("status") != "success":
        raise RuntimeError(f"{url}: {body}")
    return body["data"]["result"]


def substitute(expr: str, board: dict, rate: str) -> str:
    values = {"__rate_interval": rate, "__interval": rate, "__range": "1h"}
    for var in board["templating"]["list"]:
        if var.get("includeAll") and var.get("allValue"):
            values[var["name"]] = var["allValue"]
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    if "$" in expr:
        raise ValueError(f"a variable is left in {expr}")
    return expr


def legend(fmt: str, labels: dict) -> str:
    if not fmt or fmt == "__auto":
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value"
    out = fmt
    for k, v in labels.items():
        out = out.replace("{{" + k + "}}", v)
    return out


def rises(series: list[tuple[float, float]], step: float) -> list[float]:
    """The times an annotation query's count rises: a new event entered its window. (Grafana
    draws the whole stretch of steps with a value as one region; two events within one window
    would be one region there, two lines here.)"""
    marks, last_t, last_v = [], None, 0.0
    for t, v in series:
        if last_t is None or t - last_t > step * 1.5 or v > last_v:
            marks.append(t)
        last_t, last_v = t, v
    return marks


def draw_panel(ax, panel: dict, board: dict, ctx: dict, marks: list[tuple[float, str]]) -> None:
    ax.set_title(panel["title"], fontsize=9)
    unit = panel["fieldConfig"]["defaults"].get("unit", "")
    if panel["type"] == "table":
        rows = []
        for t in panel["targets"]:
            for r in api(ctx["url"], "/api/v1/query",
                         {"query": substitute(t["expr"], board, ctx["rate"]), "time": ctx["end"]}):
                m = r["metric"]
                rows.append([m.get("variant", ""), "v" + m.get("version", ""),
                             m.get("sha256", "")[:16] + "…", r["value"][1]])
        ax.axis("off")
        if rows:
            table = ax.table(cellText=sorted(rows), colLabels=["variant", "version", "sha256", "pods"],
                             loc="center", cellLoc="left")
            table.auto_set_font_size(False)
            table.set_fontsize(8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center")
        return
    plotted = 0
    for t in panel["targets"]:
        expr = substitute(t["expr"], board, ctx["rate"])
        for r in api(ctx["url"], "/api/v1/query_range",
                     {"query": expr, "start": ctx["start"], "end": ctx["end"], "step": ctx["step"]}):
            xs = [float(v[0]) - ctx["start"] for v in r["values"]]
            ys = [float(v[1]) for v in r["values"]]
            ys = [y if y == y and abs(y) != float("inf") else float("nan") for y in ys]
            style = "--" if t["refId"] == "B" and "configured" in t.get("legendFormat", "") else "-"
            ax.plot(xs, ys, style, linewidth=1.2, label=legend(t.get("legendFormat", ""), r["metric"]))
            plotted += 1
    for color_value in panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", []):
        if color_value.get("value") is not None:
            ax.axhline(color_value["value"], color=color_value["color"], linestyle=":", linewidth=1)
    for when, name in marks:
        ax.axvline(when, color=ANNOTATION_COLORS.get(name, "grey"), linewidth=0.9, alpha=0.6)
    ax.set_xlim(0, ctx["end"] - ctx["start"])
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.set_ylabel(unit, fontsize=7)
    if plotted:
        ax.legend(fontsize=6, loc="best", ncol=2 if plotted > 4 else 1)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def main(argv: list[str]) -> int:
    if len(argv) not in (8, 9):
        print(__doc__, file=sys.stderr)
        return 2
    url, start, end, step, rate, boards_dir, out = argv[1:8]
    title = argv[8] if len(argv) == 9 else ""
    ctx = {"url": url, "start": float(start), "end": float(end), "step": float(step), "rate": rate}
    boards = [json.loads((Path(boards_dir) / name).read_text()) for name in BOARDS]
    rows = sum(-(-len(b["panels"]) // COLUMNS) for b in boards)
    fig = plt.figure(figsize=(5.2 * COLUMNS, 2.9 * rows + 0.8))
    grid = fig.add_gridspec(rows, COLUMNS, hspace=0.55, wspace=0.25, top=1 - 1.3 / (2.9 * rows + 0.8),
                            bottom=0.03, left=0.04, right=0.99)
    row = 0
    for board in boards:
        marks = []
        for a in board["annotations"]["list"]:
            if "expr" not in a:
                continue
            expr = substitute(a["expr"], board, rate)
            for r in api(url, "/api/v1/query_range",
                         {"query": expr, "start": start, "end": end, "step": step}):
                series = [(float(v[0]), float(v[1])) for v in r["values"]]
                marks += [(t - ctx["start"], a["name"]) for t in rises(series, ctx["step"])]
        for i, panel in enumerate(board["panels"]):
            ax = fig.add_subplot(grid[row + i // COLUMNS, i % COLUMNS])
            draw_panel(ax, panel, board, ctx, marks)
            if i == 0:
                ax.annotate(f"{board['title']}  (seconds since the start; lines: registry "
                            "publishes blue, alias moves orange)", xy=(0, 1.22),
                            xycoords="axes fraction", fontsize=11, fontweight="bold")
        row += -(-len(board["panels"]) // COLUMNS)
    if title:
        fig.suptitle(title, fontsize=12)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    # A palette of 128 colours keeps the picture small enough to commit.
    Image.open(buf).convert("RGB").quantize(colors=128).save(out, optimize=True)
    print(f"{out}: {Path(out).stat().st_size // 1024} KiB, {rows} rows of panels")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
