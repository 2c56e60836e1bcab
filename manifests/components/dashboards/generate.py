#!/usr/bin/env python3
"""Write the Grafana dashboards of the suite (fraud.json, recommender.json, registry.json).

The JSON files beside this script are its output, committed so that kustomize can put them into
ConfigMaps; edit this script, run it, and commit both (scripts/check-deploy.sh fails when they
differ). Every query names only metrics the services export, with their real labels: the e2e
test `tests/e2e/dashboards.rs` scrapes the running binaries and checks each query against them
and with promtool.

Conventions:
- every metric carries the constant label `service` (shared-lib's `Metrics::new`); with the
  Prometheus Operator the ServiceMonitor's target label `service` (the Kubernetes Service, named
  like the binary) has the same value, so `service="fraud"` selects the fraud pods either way;
- `$datasource` picks the Prometheus, `$namespace` (all by default) the namespaces;
- `$__rate_interval` in rates, as Grafana recommends for a scrape interval it knows;
- the registry's publishes and alias moves are annotations on all three dashboards.

Usage: generate.py [DIR]   (default: the directory of this script)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
ERRORS = 'outcome=~"server_error|client_error"'
AGREE = 'result="agree"'
COMPARED = 'result=~"agree|disagree"'
NOT_COMPARED = 'result=~"dropped|failed"'


def sel(service: str, *more: str) -> str:
    return "{" + ", ".join([f'service="{service}"', 'namespace=~"$namespace"', *more]) + "}"


def target(expr: str, legend: str = "", ref: str = "A", **extra) -> dict:
    t = {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend or "__auto"}
    t.update(extra)
    return t


def timeseries(title: str, description: str, targets: list[dict], unit: str,
               thresholds: list[tuple[str, float | None]] | None = None, bars: bool = False,
               max_value: float | None = None) -> dict:
    defaults: dict = {"unit": unit, "custom": {"drawStyle": "bars" if bars else "line",
                                               "fillOpacity": 60 if bars else 10,
                                               "showPoints": "never", "spanNulls": False}}
    if max_value is not None:
        defaults["max"] = max_value
    if thresholds:
        defaults["thresholds"] = {"mode": "absolute", "steps": [
            {"color": color, "value": value} for color, value in thresholds]}
        defaults["custom"]["thresholdsStyle"] = {"mode": "dashed"}
    return {"type": "timeseries", "title": title, "description": description,
            "datasource": DATASOURCE, "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom",
                                   "calcs": ["lastNotNull", "max"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def table(title: str, description: str, targets: list[dict]) -> dict:
    return {"type": "table", "title": title, "description": description,
            "datasource": DATASOURCE, "targets": targets,
            "fieldConfig": {"defaults": {}, "overrides": []},
            "options": {"showHeader": True},
            "transformations": [{"id": "organize", "options": {
                "excludeByName": {"Time": True, "Value": True}}}]}


def serving_panels(service: str, key: str) -> list[dict]:
    """The panels every model server shares (fraud, recommender)."""
    s = lambda *more: sel(service, *more)  # noqa: E731
    answered = s('variant!=""')  # requests a model answered (not /metrics, /healthz, ...)
    return [
        timeseries(
            "Requests per second by variant and version",
            "Requests a model answered, by A/B variant (a, b) and model version.",
            [target(f"sum by (variant, version) (rate(http_requests_total{answered}[{RATE}]))",
                    "{{variant}} v{{version}}")],
            "reqps"),
        timeseries(
            "Latency p50 and p99 by variant and version",
            "From the request-duration histogram (100 µs to 2.5 s buckets); the alert's "
            "objective is p99 under 100 ms.",
            [target("histogram_quantile(0.5, sum by (le, variant, version) "
                    f"(rate(http_request_duration_seconds_bucket{answered}[{RATE}])))",
                    "p50 {{variant}} v{{version}}", "A"),
             target("histogram_quantile(0.99, sum by (le, variant, version) "
                    f"(rate(http_request_duration_seconds_bucket{answered}[{RATE}])))",
                    "p99 {{variant}} v{{version}}", "B")],
            "s", thresholds=[("green", None), ("red", 0.1)]),
        timeseries(
            "Error ratio",
            "Share of all requests answered with 5xx (server_error; the alert fires over 1 %) "
            "and with 4xx (client_error: bad input, unknown ids).",
            [target(f'sum by (outcome) (rate(http_requests_total{s(ERRORS)}[{RATE}])) '
                    f"/ ignoring (outcome) group_left sum(rate(http_requests_total{s()}[{RATE}]))",
                    "{{outcome}}")],
            "percentunit", thresholds=[("green", None), ("red", 0.01)]),
        table(
            "Serving now: version and sha256 per variant",
            "model_info: the loaded version and artifact digest of each slot (a, b, shadow), "
            "with the number of pods serving it.",
            [target(f"count by (model, variant, version, sha256) (model_info{s()})", "",
                    instant=True, range=False, format="table")]),
        timeseries(
            "Pods serving each version",
            "Pods with each version loaded, per slot: a rollout or an alias move shows as a "
            "step from one version to the next.",
            [target(f"count by (variant, version) (model_info{s()})",
                    "{{variant}} v{{version}}")],
            "short"),
        timeseries(
            "Model reloads by slot and result",
            "Load attempts: loaded (a new version serves), cached (from the last-good cache "
            "while the store is unreachable), failed (the old version keeps serving; "
            "GET /v1/models says why).",
            [target(f"sum by (slot, result) (increase(model_reloads_total{s()}[{RATE}]))",
                    "{{slot}} {{result}}")],
            "short", bars=True),
        timeseries(
            "A/B split: actual share vs configured",
            f"Share of requests assigned to each variant (ab_assignments_total, sticky per "
            f"{key}) against ab_configured_share (AB_PERCENT_B); the alert fires 5 points "
            "apart.",
            [target(f"sum by (variant) (rate(ab_assignments_total{s()}[{RATE}])) / ignoring "
                    f"(variant) group_left sum(rate(ab_assignments_total{s()}[{RATE}]))",
                    "actual {{variant}}", "A"),
             target(f"max by (variant) (ab_configured_share{s()})",
                    "configured {{variant}}", "B")],
            "percentunit", max_value=1),
        timeseries(
            "Shadow agreement",
            "Share of shadow comparisons where the shadow version answered as the served one "
            "(the alert fires under 80 %), and the share of all shadow submissions not "
            "compared: dropped (SHADOW_CONCURRENCY full) or failed.",
            [target(f'sum(rate(shadow_comparisons_total{s(AGREE)}[{RATE}])) '
                    f'/ sum(rate(shadow_comparisons_total{s(COMPARED)}[{RATE}]))',
                    "agreement", "A"),
             target(f"sum by (result) (rate(shadow_comparisons_total{s(NOT_COMPARED)}[{RATE}])) "
                    f"/ ignoring (result) group_left sum(rate(shadow_comparisons_total{s()}[{RATE}]))",
                    "{{result}}", "B")],
            "percentunit"),
    ]


def fraud_panels() -> list[dict]:
    s = lambda *more: sel("fraud", *more)  # noqa: E731
    return [
        timeseries(
            "Score drift (PSI) by version and variant",
            "Population Stability Index of the last 10,000 requests' scores against the "
            "version's held-out rows; over 0.25 for 15 minutes fires ModelScoreDrift.",
            [target(f"max by (version, variant) (model_score_psi{s()})",
                    "{{variant}} v{{version}}")],
            "short", thresholds=[("green", None), ("orange", 0.1), ("red", 0.25)]),
        timeseries(
            "Feature drift (PSI) by feature",
            "PSI of each input feature over the last 10,000 requests against the held-out "
            "rows; over 0.25 for 15 minutes fires ModelFeatureDrift.",
            [target(f"max by (version, feature) (model_feature_psi{s()})",
                    "{{feature}} v{{version}}")],
            "short", thresholds=[("green", None), ("orange", 0.1), ("red", 0.25)]),
        timeseries(
            "Mean fraud score by variant and version",
            "Mean predicted probability of fraud (prediction_score histogram): a quick look "
            "at what the PSI measures.",
            [target(f"sum by (variant, version) (rate(prediction_score_sum{s()}[{RATE}])) / "
                    f"sum by (variant, version) (rate(prediction_score_count{s()}[{RATE}]))",
                    "{{variant}} v{{version}}")],
            "percentunit"),
    ]


def recommender_panels() -> list[dict]:
    s = lambda *more: sel("recommender", *more)  # noqa: E731
    return [
        timeseries(
            "Top-item score drift (PSI) by version and variant",
            "Population Stability Index of the score of the #1 item in the last 10,000 answers "
            "served from the model against the version's held-out users; over 0.25 for 15 "
            "minutes fires ModelScoreDrift. Set from 1,000 answers, every 256.",
            [target(f"max by (version, variant) (model_score_psi{s()})",
                    "{{variant}} v{{version}}")],
            "short", thresholds=[("green", None), ("orange", 0.1), ("red", 0.25)]),
        timeseries(
            "Cold-start share by version",
            "Share of cold-start answers (users the model does not know, without clicks: "
            "popular items or none) in the last 10,000 answers of each version. No alert: "
            "it follows new visitors more than the model; a jump after a new version means "
            "the version knows fewer of the users who come.",
            [target(f"max by (version) (recommender_cold_start_share{s()})", "v{{version}}")],
            "percentunit", max_value=1),
    ]


def registry_panels() -> list[dict]:
    s = lambda *more: sel("registry", *more)  # noqa: E731
    api = s('route!~"/metrics|/healthz|/readyz"')
    return [
        timeseries(
            "Requests per second by route and outcome",
            "The registry API and page (probes and /metrics left out).",
            [target(f"sum by (route, outcome) (rate(http_requests_total{api}[{RATE}]))",
                    "{{route}} {{outcome}}")],
            "reqps"),
        timeseries(
            "Latency p50 and p99 by route",
            "From the request-duration histogram; uploads of large artifacts are the slow "
            "ones.",
            [target("histogram_quantile(0.5, sum by (le, route) "
                    f"(rate(http_request_duration_seconds_bucket{api}[{RATE}])))",
                    "p50 {{route}}", "A"),
             target("histogram_quantile(0.99, sum by (le, route) "
                    f"(rate(http_request_duration_seconds_bucket{api}[{RATE}])))",
                    "p99 {{route}}", "B")],
            "s"),
        timeseries(
            "Error ratio",
            "Share of requests answered with 5xx (the store failed) and 4xx (conflicts, "
            "unknown versions, refused credentials).",
            [target(f'sum by (outcome) (rate(http_requests_total{s(ERRORS)}[{RATE}])) '
                    f"/ ignoring (outcome) group_left sum(rate(http_requests_total{s()}[{RATE}]))",
                    "{{outcome}}")],
            "percentunit", thresholds=[("green", None), ("red", 0.01)]),
        timeseries(
            "Age of the newest version per model",
            "Time since each model's last publish (registry_last_publish_timestamp_seconds); "
            "TrainerNotPublishing fires past two hourly schedule periods.",
            [target(f"time() - max by (model) (registry_last_publish_timestamp_seconds{s()})",
                    "{{model}}")],
            "s", thresholds=[("green", None), ("red", 7200)]),
        timeseries(
            "Alias moves by model and alias",
            "Promotions and rollbacks made through the registry (registry_alias_moves_total).",
            [target(f"sum by (model, alias) (increase(registry_alias_moves_total{s()}[{RATE}]))",
                    "{{model}} {{alias}}")],
            "short", bars=True),
        timeseries(
            "Refused credentials by reason and scope",
            "Requests refused for their credential (missing, unknown, insufficient scope).",
            [target(f"sum by (reason, scope) (rate(registry_auth_refusals_total{s()}[{RATE}]))",
                    "{{reason}} {{scope}}")],
            "reqps"),
        timeseries(
            "Manifests skipped by the last index rebuild",
            "Corrupt or foreign manifests the registry left out of its index at start-up; "
            "above 0 needs a look at the log.",
            [target(f"max(registry_manifests_skipped{s()})", "skipped")],
            "short", thresholds=[("green", None), ("red", 1)]),
    ]


def annotations() -> list[dict]:
    reg = sel("registry")
    return [
        {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
         "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
         "name": "Annotations & Alerts", "type": "dashboard"},
        {"name": "Registry publishes", "datasource": DATASOURCE, "enable": True,
         "iconColor": "blue", "step": "60s",
         # The gauge holds the newest version's creation time: it changes on each publish.
         "expr": f"sum by (model) (changes(registry_last_publish_timestamp_seconds{reg}[2m])) > 0",
         "titleFormat": "Published a version of {{model}}", "tagKeys": "model", "textFormat": ""},
        {"name": "Registry alias moves", "datasource": DATASOURCE, "enable": True,
         "iconColor": "orange", "step": "60s",
         # The counter is born at 1 with the first move of each alias after a registry
         # start: that move is not marked (a clause for the birth also fires wherever
         # Prometheus itself has no older data, e.g. for its first retention period).
         "expr": f"sum by (model, alias) (changes(registry_alias_moves_total{reg}[2m])) > 0",
         "titleFormat": "{{alias}} of {{model}} moved", "tagKeys": "model,alias",
         "textFormat": ""},
    ]


def templating(service: str) -> dict:
    ns_query = f'label_values(http_requests_total{{service="{service}"}}, namespace)'
    return {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource",
         "query": "prometheus", "current": {}, "hide": 0, "includeAll": False, "multi": False,
         "refresh": 1, "regex": ""},
        {"name": "namespace", "label": "Namespace", "type": "query", "datasource": DATASOURCE,
         "definition": ns_query, "query": {"query": ns_query, "refId": "namespace"},
         "includeAll": True, "allValue": ".*", "multi": True, "refresh": 2, "sort": 1,
         "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "hide": 0},
    ]}


def layout(panels: list[dict]) -> list[dict]:
    for i, p in enumerate(panels):
        p["id"] = i + 1
        p["gridPos"] = {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)}
    return panels


def dashboard(service: str, title: str, description: str, panels: list[dict]) -> dict:
    return {
        "uid": f"ml-serving-{service}",
        "title": title,
        "description": description + " Generated by manifests/components/dashboards/"
                                     "generate.py: edit that, not this file.",
        "tags": ["ml-serving", service],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "utc",
        "annotations": {"list": annotations()},
        "templating": templating(service),
        "panels": layout(panels),
        "links": [],
    }


def dashboards() -> dict[str, dict]:
    return {
        "fraud.json": dashboard(
            "fraud", "ML serving: fraud",
            "The fraud classifier: traffic and latency per variant and version, errors, the "
            "versions loaded, reloads, the A/B split, shadow agreement and drift (PSI).",
            serving_panels("fraud", "card id") + fraud_panels()),
        "recommender.json": dashboard(
            "recommender", "ML serving: recommender",
            "The recommender: traffic and latency per variant and version, errors, the versions "
            "loaded, reloads, the A/B split, shadow agreement, drift of the top item's score "
            "(PSI) and the cold-start share.",
            serving_panels("recommender", "user id") + recommender_panels()),
        "registry.json": dashboard(
            "registry", "ML serving: registry",
            "The model registry: API traffic, latency and errors, the age of each model's "
            "newest version, alias moves, refused credentials and the index rebuild.",
            registry_panels()),
    }


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    for name, board in dashboards().items():
        (out / name).write_text(json.dumps(board, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
