#!/usr/bin/env python3
"""Check that every environment variable the deployment sets is one its binary reads.

A misspelt variable (`MODEL_VERSON=7`) is silently ignored by the binary, and the rollback it
was meant to be never happens. This check fails on it.

What the code reads is extracted from the Rust sources, per binary:
- string literals passed to the settings readers of shared-lib/src/settings.rs
  (`optional_string`, `string_or`, `parse_or`, `optional`, `required`, `first_string(&[..])`),
  to helpers called as `helper(&mut env, "NAME", ..)`, as `Some("NAME")` legacy names given to a
  `from_env`, `std::iter::once("NAME")` (a name list for `first_string`),
  `std::env::var("NAME")`, and clap's `#[arg(env = "NAME")]`; test code is skipped;
- a binary reads what its own crate reads, plus what the shared-lib items it uses read: a
  shared-lib item (an `impl`, struct, fn, ...) is used if the crate, or a used item, names it.
  So the registry does not "read" MODEL_VERSION just because shared-lib has a reader for it.

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
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BINARIES = {
    "fraud": ROOT / "services/fraud/src",
    "recommender": ROOT / "services/recommender/src",
    "registry": ROOT / "services/registry/src",
    "trainer": ROOT / "trainer/src",
}
SHARED = ROOT / "shared-lib/src"

PENDING: dict[str, dict[str, str]] = {}

NAME = r'"([A-Z][A-Z0-9_]*)"'
READERS = r"(?:optional_string|string_or|parse_or|optional|required)"
READ_PATTERNS = [
    re.compile(r"\." + READERS + r"\s*(?:::\s*<[^()]*?>\s*)?\(\s*" + NAME),
    re.compile(r"\b\w+\s*\(\s*&?\s*(?:mut\s+)?env\s*,\s*" + NAME),
    re.compile(r"\bfrom_env\s*\([^;]*?Some\s*\(\s*" + NAME + r"\s*\)", re.S),
    re.compile(r"\benv::var(?:_os)?\s*\(\s*" + NAME),
    # a list of names built for first_string: std::iter::once("MODEL_VERSION").chain(legacy)
    re.compile(r"\biter::once\s*\(\s*" + NAME),
    re.compile(r"\benv\s*=\s*" + NAME),
]
FIRST_STRING = re.compile(r"\.first_string\s*\(\s*&\s*\[([^\]]*)\]", re.S)
ITEM_HEAD = [
    re.compile(r"^\s*impl\b(?:\s*<[^{]*?>)?\s+(?:[\w:]+(?:<[^{]*?>)?\s+for\s+)?(?:[\w]+::)*(\w+)"),
    re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+|const\s+|unsafe\s+)*fn\s+(\w+)"),
    re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:struct|enum|trait|type|const|static|union)\s+(\w+)"),
]


def strip_comments(text: str) -> str:
    """Blanks out comments, keeping string and char literals (so "s3://x" survives)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            out.append(" ")
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + len(hashes) + 2)
            end = n if end < 0 else end + 1 + len(hashes)
            out.append(text[i:end])
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif c == "'" and re.match(r"'(?:\\.|[^\\'])'", text[i:i + 12]):
            m = re.match(r"'(?:\\.[^']*|[^\\'])'", text[i:])
            out.append(m.group(0))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def blank_strings(text: str) -> str:
    # re.S: a string may continue over a line break (`"...\<newline>..."`).
    return re.sub(r'"(?:\\.|[^"\\])*"', lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', text,
                  flags=re.S)


def split_items(text: str) -> list[str]:
    """Top-level items of a (comment-free) file; #[cfg(test)] items are dropped."""
    shadow = blank_strings(text)
    items, depth, start = [], 0, 0
    for i, c in enumerate(shadow):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                items.append(text[start:i + 1])
                start = i + 1
        elif c == ";" and depth == 0:
            items.append(text[start:i + 1])
            start = i + 1
    return [it for it in items if not re.search(r"#\[cfg\(test\)\]", it.split("{", 1)[0])]


def item_name(item: str) -> str | None:
    head = re.sub(r"#\[[^\]]*\]", " ", item.split("{", 1)[0])
    head = "\n".join(l for l in head.splitlines() if l.strip())
    for pat in ITEM_HEAD:
        m = pat.search(head.replace("\n", " "))
        if m:
            return m.group(1)
    return None


def reads_in(text: str) -> set[str]:
    names = set()
    for pat in READ_PATTERNS:
        names.update(pat.findall(text))
    for group in FIRST_STRING.findall(text):
        names.update(re.findall(NAME, group))
    return names


def identifiers(text: str) -> set[str]:
    return set(re.findall(r"\b[A-Za-z_]\w*\b", blank_strings(text)))


def rust_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.rs") if "tests" not in p.relative_to(root).parts[:-1])


def shared_items() -> list[tuple[str | None, set[str], set[str]]]:
    items = []
    for path in rust_files(SHARED):
        if path.name == "testing.rs":
            continue
        for item in split_items(strip_comments(path.read_text())):
            items.append((item_name(item), reads_in(item), identifiers(item)))
    return items


def names_read() -> dict[str, set[str]]:
    shared = shared_items()
    result = {}
    for binary, src in BINARIES.items():
        own_reads, mentioned = set(), set()
        for path in rust_files(src):
            for item in split_items(strip_comments(path.read_text())):
                own_reads |= reads_in(item)
                mentioned |= identifiers(item)
        used, changed = set(), True
        while changed:
            changed = False
            for idx, (name, _, ids) in enumerate(shared):
                if idx not in used and name and name in mentioned:
                    used.add(idx)
                    mentioned |= ids
                    changed = True
        result[binary] = own_reads | set().union(*(shared[i][1] for i in used))
    return result


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
            print(f"check_env_names: found no variables read by {binary}: the extractor is broken",
                  file=sys.stderr)
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
