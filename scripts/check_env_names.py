#!/usr/bin/env python3
"""Check that every environment variable the deployment sets is one its binary reads.

A misspelt variable (`MODEL_VERSON=7`) is silently ignored by the binary, and the rollback it
was meant to be never happens. This check fails on it.

What the code reads is the truth recorded by the code itself: each binary's settings reader
records every name it asks for (shared_lib::settings::NameRecorder), and a test per binary runs
it down every branch (an S3 store, a Redis click store, the registry or the store as the
trainer's target, ...) and compares the names with the binary's committed `env-names.txt`
(`services/<name>/env-names.txt`, `trainer/env-names.txt`; `UPDATE_ENV_NAMES=1` rewrites them).
This script only walks the deployment and reads those files.

What the deployment sets: for every container of every rendered manifest given (multi-document
YAML, as kustomize renders it), `env[].name` plus the keys of ConfigMaps it loads with
`envFrom`; for every service of a compose file, its `environment`. The binary of a container
is its image's last path component (ml-serving/fraud:1.2 -> fraud) or compose `build.target`;
containers of other images (the S3 store) are skipped and listed.

PENDING lists names the deployment contract (issue #4) gives a binary before its code reads
them; they pass with a warning, and the warning turns into "drop it from PENDING" once the code
reads them.

Usage: check_env_names.py [--verbose] [--compose FILE]... RENDERED.yaml...
Exit status: 0 all names known, 1 unknown names, 2 usage or unreadable input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BINARIES = {
    "fraud": ROOT / "services/fraud/env-names.txt",
    "recommender": ROOT / "services/recommender/env-names.txt",
    "registry": ROOT / "services/registry/env-names.txt",
    "trainer": ROOT / "trainer/env-names.txt",
}

PENDING: dict[str, dict[str, str]] = {}


def names_read() -> dict[str, set[str]]:
    """Each binary's committed env-names.txt (kept true by its settings test)."""
    return {binary: {line.strip() for line in path.read_text().splitlines() if line.strip()}
            for binary, path in BINARIES.items()}


def binary_of(image: str | None, fallback: str | None) -> str | None:
    if image:
        last = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
        if last in BINARIES:
            return last
    return fallback if fallback in BINARIES else None


def containers_of(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from value
            else:
                yield from containers_of(value)
    elif isinstance(node, list):
        for v in node:
            yield from containers_of(v)


def manifest_settings(path: Path):
    """(where, binary, image, {name: origin}) for each container of a rendered manifest."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    config_maps = {(d["metadata"].get("namespace"), d["metadata"]["name"]): d.get("data") or {}
                   for d in docs if d.get("kind") == "ConfigMap"}
    for doc in docs:
        ns = doc["metadata"].get("namespace")
        for c in containers_of(doc.get("spec", {})):
            names = {e["name"]: "env" for e in c.get("env", [])}
            for src in c.get("envFrom", []):
                if "configMapRef" in src:
                    ref = src["configMapRef"]["name"]
                    if (ns, ref) not in config_maps:
                        raise SystemExit(f"{path}: {doc['kind']}/{doc['metadata']['name']}: "
                                         f"envFrom ConfigMap {ref} is not in the rendered output")
                    for key in config_maps[(ns, ref)]:
                        names.setdefault(src.get("prefix", "") + key, f"ConfigMap {ref}")
                else:
                    raise SystemExit(f"{path}: envFrom {sorted(src)}: keys cannot be checked; "
                                     "use env with secretKeyRef")
            where = f"{path.name}: {doc['kind']}/{doc['metadata']['name']} container {c['name']}"
            yield where, binary_of(c.get("image"), c.get("name")), c.get("image"), names


def compose_settings(path: Path):
    doc = yaml.safe_load(path.read_text())
    for name, svc in (doc.get("services") or {}).items():
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
        if svc.get("env_file"):
            raise SystemExit(f"{path}: service {name}: env_file cannot be checked; use environment")
        build = svc.get("build") or {}
        target = build.get("target") if isinstance(build, dict) else None
        binary = target if target in BINARIES else binary_of(svc.get("image"), None)
        yield f"{path.name}: service {name}", binary, svc.get("image"), {k: "environment" for k in env}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rendered", nargs="*", type=Path)
    parser.add_argument("--compose", action="append", default=[], type=Path)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if not args.rendered and not args.compose:
        parser.error("give rendered manifests and/or --compose files")

    read = names_read()
    for binary, names in read.items():
        if not names:
            print(f"check_env_names: {BINARIES[binary]} lists no variables", file=sys.stderr)
            return 2
        if args.verbose:
            print(f"{binary} reads {len(names)}: {' '.join(sorted(names))}")

    sources = [s for p in args.rendered for s in manifest_settings(p)]
    sources += [s for p in args.compose for s in compose_settings(p)]
    problems, warnings, skipped, checked = [], set(), [], 0
    for where, binary, image, names in sources:
        if binary is None:
            skipped.append(f"{where} ({image})")
            continue
        for name, origin in sorted(names.items()):
            checked += 1
            if name in read[binary]:
                continue
            if name in PENDING.get(binary, {}):
                warnings.add(f"{binary}: {name} is not read by the code yet ({PENDING[binary][name]})")
                continue
            readers = sorted(b for b, ns in read.items() if name in ns)
            hint = f"; read by {', '.join(readers)}" if readers else ""
            problems.append(f"{where}: {name} (from {origin}) is not read by {binary}{hint}")
    for binary, pending in PENDING.items():
        for name in pending:
            if name in read.get(binary, set()):
                warnings.add(f"{binary} now reads {name}: drop it from PENDING in {Path(__file__).name}")
    for w in sorted(warnings):
        print(f"warning: {w}")
    if args.verbose:
        for s in skipped:
            print(f"skipped (not one of our binaries): {s}")
    containers = sum(1 for s in sources if s[1] is not None)
    if problems:
        print(f"check_env_names: {len(problems)} unknown variable(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"check_env_names: ok: {checked} variable settings in {containers} containers/services "
          f"are read by their binaries ({len(skipped)} other containers skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
