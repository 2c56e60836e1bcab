#!/usr/bin/env python3
"""Render the subset of kustomize these manifests use, for checks where kustomize is not installed.

`kubectl apply -k` (and CI's kustomize job) use the real kustomize; this renderer exists so that
`scripts/check-deploy.sh` can validate every overlay on a machine whose package registries have no
kustomize binary. It supports exactly what manifests/ uses and fails loudly on anything else:

- `resources` (files and directories), `components` (kind: Component)
- `namespace`
- `labels` with `pairs` (metadata.labels only: `includeSelectors`/`includeTemplates` false)
- `configMapGenerator` with `literals`, `files` (`path` or `key=path`, relative to the
  kustomization) and `behavior` create/merge/replace, with kustomize's content-hash name
  suffix (unless `options.disableNameSuffixHash`), `options.labels` and `options.annotations`,
  and renaming of every reference to a generated ConfigMap
- `images` (`name`, `newName`, `newTag`, `digest`)
- `replicas` (`name`, `count`)
- `patches` holding strategic-merge patches (by `path` or inline `patch`, optional `target`)

`check-deploy.sh` compares its output with `kubectl kustomize` where kubectl is installed.

Usage: kustomize_lite.py DIR [OUT]   (multi-document YAML to OUT, or stdout)
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
from pathlib import Path

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED = {
    "apiVersion", "kind", "resources", "components", "namespace", "labels",
    "configMapGenerator", "images", "replicas", "patches",
}
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
}
# Strategic-merge keys of the list fields our patches touch (from the Kubernetes OpenAPI).
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
    "volumeMounts": "mountPath", "ports": "containerPort", "imagePullSecrets": "name",
}


class RenderError(Exception):
    pass


def load_kustomization(root: Path) -> dict:
    for name in KUSTOMIZATION_FILES:
        path = root / name
        if path.is_file():
            data = yaml.safe_load(path.read_text()) or {}
            unknown = set(data) - SUPPORTED
            if unknown:
                raise RenderError(f"{path}: unsupported fields {sorted(unknown)}")
            return data
    raise RenderError(f"{root}: no kustomization.yaml")


def read_docs(path: Path) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d or "metadata" not in d:
            raise RenderError(f"{path}: every document needs kind and metadata")
    return docs


def key_of(obj: dict) -> tuple:
    return (obj["kind"], obj["metadata"].get("name"))


def config_map_hash(data: dict) -> str:
    """kustomize's name suffix: sha256 of Go's json.Marshal of {data, kind, name}, 10 hex
    characters with some letters swapped so the suffix never reads as a word. kustomize looks
    the name up as one field called "metadata/name", finds nothing and hashes "" instead; we
    do the same, so our suffixes equal its suffixes (check-deploy.sh compares them)."""
    encoded = json.dumps(
        {"data": data, "kind": "ConfigMap", "name": ""},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        encoded = encoded.replace(char, escaped)
    digest = hashlib.sha256(encoded.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def parse_literals(literals: list[str], where: str) -> dict:
    data = {}
    for lit in literals:
        if "=" not in lit:
            raise RenderError(f"{where}: literal {lit!r} is not KEY=VALUE")
        k, v = lit.split("=", 1)
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
        data[k.strip()] = v
    return data


class Render:
    """The objects of one kustomization, plus the ConfigMaps it generated (name -> data)."""

    def __init__(self) -> None:
        self.objects: list[dict] = []
        self.generated: dict[str, dict] = {}  # base name -> generated ConfigMap object
        self.unhashed: set[str] = set()  # generated with options.disableNameSuffixHash

    def find(self, kind: str, name: str) -> dict | None:
        for o in self.objects:
            if key_of(o) == (kind, name):
                return o
        return None


def build(root: Path, kustomization: dict | None = None, is_component: bool = False,
          parent: Render | None = None) -> Render:
    root = root.resolve()
    k = kustomization if kustomization is not None else load_kustomization(root)
    kind = k.get("kind", "Kustomization")
    if is_component != (kind == "Component"):
        raise RenderError(f"{root}: kind {kind} used as {'component' if is_component else 'resource'}")
    out = parent if is_component else Render()
    for res in k.get("resources", []):
        path = (root / res).resolve()
        if path.is_dir():
            sub = build(path)
            for o in sub.objects:
                if out.find(*key_of(o)):
                    raise RenderError(f"{root}: {key_of(o)} defined twice")
                out.objects.append(o)
            out.generated.update(sub.generated)
            out.unhashed |= sub.unhashed
        elif path.is_file():
            for o in read_docs(path):
                if out.find(*key_of(o)):
                    raise RenderError(f"{root}: {key_of(o)} defined twice")
                out.objects.append(o)
        else:
            raise RenderError(f"{root}: resource {res} not found")
    for comp in k.get("components", []):
        build((root / comp).resolve(), is_component=True, parent=out)
    for gen in k.get("configMapGenerator", []):
        generate_config_map(out, gen, root)
    for patch in k.get("patches", []):
        apply_patch(out, patch, root)
    for rep in k.get("replicas", []):
        found = [o for o in out.objects if o["metadata"]["name"] == rep["name"]
                 and o["kind"] in ("Deployment", "StatefulSet", "ReplicaSet")]
        if not found:
            raise RenderError(f"{root}: replicas: no workload named {rep['name']}")
        for o in found:
            o["spec"]["replicas"] = rep["count"]
    for image in k.get("images", []):
        set_image(out.objects, image)
    for label in k.get("labels", []):
        if label.get("includeSelectors") or label.get("includeTemplates"):
            raise RenderError(f"{root}: labels: only metadata labels are supported")
        for o in out.objects:
            o["metadata"].setdefault("labels", {}).update(label["pairs"])
    if "namespace" in k:
        for o in out.objects:
            if o["kind"] not in CLUSTER_SCOPED:
                o["metadata"]["namespace"] = k["namespace"]
    return out


def read_files(files: list[str], root: Path, where: str) -> dict:
    data = {}
    for entry in files:
        key, _, rel = entry.rpartition("=")
        path = (root / rel).resolve()
        if not path.is_relative_to(root):
            raise RenderError(f"{where}: file {rel} is outside {root}")
        if not path.is_file():
            raise RenderError(f"{where}: file {rel} not found")
        key = key or path.name
        if key in data:
            raise RenderError(f"{where}: key {key} given twice")
        data[key] = path.read_text()
    return data


def generate_config_map(out: Render, gen: dict, root: Path) -> None:
    unknown = set(gen) - {"name", "literals", "files", "behavior", "options"}
    if unknown:
        raise RenderError(f"{root}: configMapGenerator {gen.get('name')}: unsupported {sorted(unknown)}")
    name = gen["name"]
    where = f"{root}: {name}"
    data = parse_literals(gen.get("literals", []), where)
    for key, value in read_files(gen.get("files", []), root, where).items():
        if key in data:
            raise RenderError(f"{where}: key {key} given twice")
        data[key] = value
    options = gen.get("options") or {}
    unknown = set(options) - {"labels", "annotations", "disableNameSuffixHash"}
    if unknown:
        raise RenderError(f"{where}: options: unsupported {sorted(unknown)}")
    behavior = gen.get("behavior", "create")
    existing = out.generated.get(name)
    if behavior == "create":
        if existing is not None:
            raise RenderError(f"{root}: ConfigMap {name} already generated (use behavior: merge)")
        metadata: dict = {"name": name}
        for field in ("labels", "annotations"):
            if options.get(field):
                metadata[field] = dict(options[field])
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
        out.objects.append(obj)
        out.generated[name] = obj
        if options.get("disableNameSuffixHash"):
            out.unhashed.add(name)
    elif behavior in ("merge", "replace"):
        if existing is None:
            raise RenderError(f"{root}: ConfigMap {name}: behavior {behavior} but no base to merge")
        if options:
            raise RenderError(f"{where}: options are supported with behavior create only")
        existing["data"] = {**existing["data"], **data} if behavior == "merge" else data
    else:
        raise RenderError(f"{root}: ConfigMap {name}: unknown behavior {behavior}")


def strategic_merge(base, patch, field: str | None = None):
    if isinstance(patch, dict) and isinstance(base, dict):
        if patch.get("$patch") == "replace":
            return {k: v for k, v in patch.items() if k != "$patch"}
        merged = dict(base)
        for k, v in patch.items():
            if k.startswith("$"):
                raise RenderError(f"unsupported patch directive {k}")
            if v is None:
                merged.pop(k, None)
            elif k in merged:
                merged[k] = strategic_merge(merged[k], v, k)
            else:
                merged[k] = copy.deepcopy(v)
        return merged
    if isinstance(patch, list) and isinstance(base, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        merged = [copy.deepcopy(b) for b in base]
        for item in patch:
            if not isinstance(item, dict) or key not in item:
                raise RenderError(f"patch list {field} items need {key}")
            deleting = item.get("$patch") == "delete"
            idx = next((i for i, b in enumerate(merged) if b.get(key) == item[key]), None)
            if deleting:
                if idx is not None:
                    merged.pop(idx)
            elif idx is None:
                merged.append(copy.deepcopy(item))
            else:
                merged[idx] = strategic_merge(merged[idx], item, None)
        return merged
    return copy.deepcopy(patch)


def apply_patch(out: Render, spec: dict, root: Path) -> None:
    unknown = set(spec) - {"path", "patch", "target"}
    if unknown:
        raise RenderError(f"{root}: patches: unsupported {sorted(unknown)}")
    text = (root / spec["path"]).read_text() if "path" in spec else spec["patch"]
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    for doc in docs:
        if isinstance(doc, list):
            raise RenderError(f"{root}: JSON6902 patches are not supported here; use strategic merge")
        target = spec.get("target") or {"kind": doc.get("kind"), "name": doc["metadata"]["name"]}
        unknown = set(target) - {"kind", "name"}
        if unknown:
            raise RenderError(f"{root}: patch target: unsupported {sorted(unknown)}")
        matches = [o for o in out.objects
                   if ("kind" not in target or o["kind"] == target["kind"])
                   and ("name" not in target or o["metadata"]["name"] == target["name"])]
        if not matches:
            raise RenderError(f"{root}: patch target {target} matches nothing")
        patch = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}
        patch["metadata"] = {k: v for k, v in doc.get("metadata", {}).items() if k != "name"}
        if not patch["metadata"]:
            del patch["metadata"]
        for o in matches:
            merged = strategic_merge(o, patch)
            o.clear()
            o.update(merged)


def _image_parts(image: str) -> tuple[str, str, str]:
    name, digest = (image.split("@", 1) + [""])[:2]
    last = name.rsplit("/", 1)[-1]
    tag = ""
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    return name, tag, digest


def set_image(objects: list[dict], spec: dict) -> None:
    def visit(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    for c in value:
                        name, tag, digest = _image_parts(c.get("image", ""))
                        if name == spec["name"]:
                            new = spec.get("newName", name)
                            if "digest" in spec:
                                c["image"] = f"{new}@{spec['digest']}"
                            elif "newTag" in spec:
                                c["image"] = f"{new}:{spec['newTag']}"
                            else:
                                c["image"] = new + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
                else:
                    visit(value)
        elif isinstance(node, list):
            for v in node:
                visit(v)
    for o in objects:
        visit(o)


def rename_config_map_refs(objects: list[dict], renames: dict[str, str]) -> None:
    def visit(node, parent_key=None):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("configMapRef", "configMapKeyRef", "configMap") and isinstance(value, dict):
                    if value.get("name") in renames:
                        value["name"] = renames[value["name"]]
                visit(value, key)
        elif isinstance(node, list):
            for v in node:
                visit(v, parent_key)
    for o in objects:
        if o["kind"] != "ConfigMap":
            visit(o)


def finish(out: Render) -> list[dict]:
    renames = {}
    for name, obj in out.generated.items():
        if name in out.unhashed:
            continue
        suffixed = f"{name}-{config_map_hash(obj['data'])}"
        obj["metadata"]["name"] = suffixed
        renames[name] = suffixed
    rename_config_map_refs(out.objects, renames)
    return out.objects


def render(root: Path, kustomization: dict | None = None) -> list[dict]:
    return finish(build(root, kustomization))


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        objects = render(Path(argv[1]))
    except (RenderError, OSError, yaml.YAMLError, KeyError) as e:
        print(f"kustomize_lite: {argv[1]}: {e}", file=sys.stderr)
        return 1
    text = yaml.safe_dump_all(objects, sort_keys=False)
    if len(argv) == 3:
        Path(argv[2]).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
