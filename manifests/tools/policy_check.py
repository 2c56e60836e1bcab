#!/usr/bin/env python3
"""The deployment rules a schema cannot check, on rendered manifests (multi-document YAML).

Every pod: non-root, seccomp RuntimeDefault, no service-account token; every container:
read-only root filesystem, no privilege escalation, all capabilities dropped, requests and
limits for cpu and memory, a writable /tmp from an emptyDir. Every server (Deployment or
StatefulSet): probes on /readyz and /healthz, a 30 s grace period, a PodDisruptionBudget;
model servers are Deployments with an HPA; the registry, the single writer, is a StatefulSet
of exactly one replica with a headless governing Service (never a Deployment: even with
Recreate, a Deployment can run a second pod while the first is cut off on a partitioned node).
Every CronJob: Forbid, restartPolicy Never, a deadline.
Every workload's pods: selected by a default-deny NetworkPolicy (Ingress and Egress, no rules)
and by a NetworkPolicy that says what they may do.

Usage: policy_check.py RENDERED.yaml...   Exit status 1 lists every violation.
"""

import sys
from pathlib import Path

import yaml


SERVERS = ("Deployment", "StatefulSet")
# Servers of others that optional components deploy for trials (no HTTP API of ours): the
# security rules hold for them, probes may be of any kind, and they are not model servers.
THIRD_PARTY = ("redis-clicks",)


def pod_spec(doc):
    if doc["kind"] in SERVERS:
        return doc["spec"]["template"]["spec"]
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def pod_labels(doc):
    if doc["kind"] in ("Deployment", "StatefulSet"):
        return doc["spec"]["template"].get("metadata", {}).get("labels", {})
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"].get("metadata", {}).get("labels", {})
    return {}


def selects(policy, labels):
    """Whether a NetworkPolicy's podSelector selects pods with these labels."""
    selector = policy["spec"].get("podSelector", {})
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        value, values = labels.get(e["key"]), e.get("values", [])
        if not {"In": value in values, "NotIn": value not in values, "Exists": value is not None,
                "DoesNotExist": value is None}[e["operator"]]:
            return False
    return True


def check_network_policies(d, name, policies):
    labels = pod_labels(d)
    chosen = [p for p in policies if selects(p, labels)]
    deny = [p for p in chosen if {"Ingress", "Egress"} <= set(p["spec"].get("policyTypes", []))
            and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    allow = [p for p in chosen if p["spec"].get("ingress") or p["spec"].get("egress")]
    bad = []
    if not deny:
        bad.append(f"{name}: no default-deny NetworkPolicy (Ingress and Egress, no rules) selects its pods")
    if not allow:
        bad.append(f"{name}: no NetworkPolicy says what its pods may reach or be reached by")
    return bad


def check(docs, where):
    bad = []
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    for d in docs:
        spec = pod_spec(d)
        if spec is None:
            continue
        name = f"{where}: {d['kind']}/{d['metadata']['name']}"
        bad += check_network_policies(d, name, list(by_kind.get("NetworkPolicy", {}).values()))
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            bad.append(f"{name}: pod needs runAsNonRoot and seccomp RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            bad.append(f"{name}: automountServiceAccountToken must be false")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            cname = f"{name} container {c['name']}"
            sc = c.get("securityContext", {})
            if not (sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
                    and sc.get("capabilities", {}).get("drop") == ["ALL"]):
                bad.append(f"{cname}: needs readOnlyRootFilesystem, no privilege escalation, drop ALL")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(part, {})):
                    bad.append(f"{cname}: resources.{part} needs cpu and memory")
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            if "emptyDir" not in volumes.get(mounts.get("/tmp"), {}):
                bad.append(f"{cname}: /tmp must be an emptyDir")
            if d["kind"] in SERVERS and d["metadata"]["name"] in THIRD_PARTY:
                if not (c.get("readinessProbe") and c.get("livenessProbe")):
                    bad.append(f"{cname}: needs a readinessProbe and a livenessProbe")
            elif d["kind"] in SERVERS:
                if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                    bad.append(f"{cname}: readinessProbe must GET /readyz")
                if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
                    bad.append(f"{cname}: livenessProbe must GET /healthz")
        if d["kind"] in SERVERS and d["metadata"]["name"] not in THIRD_PARTY:
            dep = d["metadata"]["name"]
            if spec.get("terminationGracePeriodSeconds") != 30:
                bad.append(f"{name}: terminationGracePeriodSeconds must be 30 (25 s drain)")
            if dep not in by_kind.get("PodDisruptionBudget", {}):
                bad.append(f"{name}: no PodDisruptionBudget")
            if dep == "registry":
                bad += registry_rules(d, name, by_kind)
            elif d["kind"] != "Deployment":
                bad.append(f"{name}: model servers are Deployments")
            elif dep not in by_kind.get("HorizontalPodAutoscaler", {}):
                bad.append(f"{name}: model servers need an HPA")
        if d["kind"] == "CronJob":
            job = d["spec"]["jobTemplate"]["spec"]
            if d["spec"].get("concurrencyPolicy") != "Forbid" or spec.get("restartPolicy") != "Never" \
                    or "activeDeadlineSeconds" not in job or "backoffLimit" not in job:
                bad.append(f"{name}: needs Forbid, restartPolicy Never, backoffLimit, activeDeadlineSeconds")
    return bad


def registry_rules(d, name, by_kind):
    """The single writer: a StatefulSet of one (at most one pod per identity, even across a
    node partition), governed by a headless Service, and not autoscaled."""
    bad = []
    if d["kind"] != "StatefulSet":
        bad.append(f"{name}: the single writer must be a StatefulSet (a Deployment can run two pods)")
        return bad
    if d["spec"].get("replicas") != 1:
        bad.append(f"{name}: the single writer needs exactly 1 replica")
    governing = by_kind.get("Service", {}).get(d["spec"].get("serviceName"))
    if governing is None or governing["spec"].get("clusterIP") != "None":
        bad.append(f"{name}: serviceName must name a headless Service in the same render")
    if d["metadata"]["name"] in by_kind.get("HorizontalPodAutoscaler", {}):
        bad.append(f"{name}: the single writer must not be autoscaled")
    return bad


def main(paths):
    bad, count = [], 0
    for p in paths:
        docs = [d for d in yaml.safe_load_all(Path(p).read_text()) if d]
        count += sum(1 for d in docs if pod_spec(d) is not None)
        bad += check(docs, Path(p).name)
    for b in bad:
        print(f"  {b}", file=sys.stderr)
    if bad:
        print(f"policy_check: {len(bad)} violation(s)", file=sys.stderr)
        return 1
    print(f"policy_check: ok: {count} workloads in {len(paths)} renders follow the rules")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) if len(sys.argv) > 1 else 2)
