#!/usr/bin/env python3
"""Check that the images the pipeline builds are the images everything else names.

Each deployment file can be valid alone and still not fit the others: an overlay renames an
image so that CI's `images:` entry matches nothing and pods pull a placeholder; compose tags
`:dev` while the docs tag `:latest`; the Dockerfile builds with `--bin` and unifies features with
the test crate. This check reads them all and fails on any disagreement:

1. the images built: `.gitlab-ci.yml`'s build-images matrix (TARGET), the final stages of
   docker/Dockerfile (`FROM runtime AS <name>`, ENTRYPOINT /usr/local/bin/<name>), and the
   IMAGES list of scripts/deploy-kustomization.sh are the same set; CI pushes
   `$CI_REGISTRY_IMAGE/$TARGET:$CI_COMMIT_SHA` and the deploy jobs write and apply
   scripts/deploy-kustomization.sh "$OVERLAY" "$CI_REGISTRY_IMAGE" "$CI_COMMIT_SHA";
2. every container image of every rendered kustomization (base, overlays) is
   `ml-serving/<built>:dev`, so the deploy wrapper's `name: ml-serving/<built>` matches it
   (optional components may also run a listed third-party image, e.g. the trial Redis);
3. every container image of every rendered deploy wrapper (what CI applies) is exactly
   `<prefix>/<built>:<tag>` for the prefix and tag it was written with, and all four appear;
4. compose: every service with a `build.target` is a built target, tagged
   `ml-serving/<target>:dev`;
5. docs and comments (README.md, docker/README.md, manifests/README.md, docker/Dockerfile):
   every `ml-serving/<name>[:tag]` names a built image, with tag `dev`;
6. docker/Dockerfile's dependency step (`cargo chef cook`) and build step (`cargo build`) both
   select exactly the packages scripts/up.sh builds, with `-p`, and never `--bin`/`--workspace`.

Usage: check_images.py --prefix P --tag T --deploy RENDERED.yaml... --render RENDERED.yaml...
Exit status: 0 consistent, 1 disagreements (each printed), 2 usage.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

import yaml

LOCAL_TAG = "dev"
LOCAL_PREFIX = "ml-serving"
# Images of others that optional components deploy for trials (manifests/components/*), with
# an explicit registry and tag; allowed only in component renders.
THIRD_PARTY = re.compile(r"^docker\.io/library/redis:[\w.-]+$")
problems: list[str] = []


def problem(msg: str) -> None:
    problems.append(msg)
    print(f"  image check: {msg}", file=sys.stderr)


def ci_targets(ci: dict) -> list[str]:
    job = ci.get("build-images") or {}
    matrix = (job.get("parallel") or {}).get("matrix") or []
    targets = [t for entry in matrix for t in (entry.get("TARGET") or [])]
    script = "\n".join(job.get("script") or [])
    if "$CI_REGISTRY_IMAGE/$TARGET:$CI_COMMIT_SHA" not in script:
        problem(".gitlab-ci.yml build-images does not push $CI_REGISTRY_IMAGE/$TARGET:$CI_COMMIT_SHA")
    return targets


def ci_deploy(ci: dict) -> None:
    deploy = ci.get(".deploy") or {}
    script = "\n".join(deploy.get("script") or [])
    want = 'scripts/deploy-kustomization.sh "$OVERLAY" "$CI_REGISTRY_IMAGE" "$CI_COMMIT_SHA"'
    if want not in script:
        problem(f".gitlab-ci.yml .deploy does not run: {want}")
    if 'kubectl apply -k ".deploy/$OVERLAY"' not in script:
        problem('.gitlab-ci.yml .deploy does not apply what the script wrote '
                '(kubectl apply -k ".deploy/$OVERLAY")')
    if "images:" in script:
        problem(".gitlab-ci.yml .deploy writes its own images: list (use scripts/deploy-kustomization.sh)")


def dockerfile_targets(text: str) -> list[str]:
    targets = re.findall(r"^FROM\s+runtime\s+AS\s+([\w-]+)\s*$", text, re.M | re.I)
    for t in targets:
        if not re.search(rf'^ENTRYPOINT\s+\["/usr/local/bin/{re.escape(t)}"\]', text, re.M):
            problem(f"docker/Dockerfile target {t} does not run /usr/local/bin/{t}")
    return targets


def joined_runs(text: str) -> list[str]:
    """RUN instructions with their continuation lines joined."""
    text = re.sub(r"\\\n", " ", text)
    return [line[4:] for line in text.splitlines() if line.startswith("RUN ")]


def cargo_packages(command: str, where: str) -> list[str] | None:
    words = shlex.split(command)
    if "--bin" in words or "--workspace" in words or "--all" in words:
        problem(f"{where}: selects binaries or the workspace ({command.strip()}); use -p per package")
    packages = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-p", "--package")]
    return packages or None


def dockerfile_packages(text: str) -> dict[str, list[str] | None]:
    found: dict[str, list[str] | None] = {}
    for run in joined_runs(text):
        for step in run.split("&&"):
            for key in ("cargo chef cook", "cargo build"):
                if step.strip().startswith(key):
                    found[key] = cargo_packages(step, f"docker/Dockerfile `{key}`")
    for key in ("cargo chef cook", "cargo build"):
        if key not in found:
            problem(f"docker/Dockerfile: no `{key}` step")
    return found


def up_sh_packages(text: str) -> list[str]:
    for line in text.splitlines():
        if line.strip().startswith("cargo build"):
            return cargo_packages(line, "scripts/up.sh") or []
    problem("scripts/up.sh: no `cargo build` line")
    return []


def container_images(path: Path) -> list[tuple[str, str]]:
    out = []
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue

        def visit(node, doc=doc):
            if isinstance(node, dict):
                for key in ("containers", "initContainers"):
                    for c in node.get(key) or []:
                        if isinstance(c, dict) and "image" in c:
                            where = f"{doc['kind']}/{doc['metadata']['name']}/{c.get('name')}"
                            out.append((where, c["image"]))
                for v in node.values():
                    visit(v)
            elif isinstance(node, list):
                for v in node:
                    visit(v)

        visit(doc)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", required=True, help="IMAGE_PREFIX the deploy wrappers were written with")
    ap.add_argument("--tag", required=True, help="TAG the deploy wrappers were written with")
    ap.add_argument("--deploy", nargs="*", default=[], help="renders of scripts/deploy-kustomization.sh output")
    ap.add_argument("--render", nargs="*", default=[], help="renders of the base and overlays")
    args = ap.parse_args(argv)

    ci = yaml.safe_load(Path(".gitlab-ci.yml").read_text())
    dockerfile = Path("docker/Dockerfile").read_text()
    built_ci = ci_targets(ci)
    ci_deploy(ci)
    built_df = dockerfile_targets(dockerfile)
    m = re.search(r'^IMAGES="([^"]*)"', Path("scripts/deploy-kustomization.sh").read_text(), re.M)
    built_script = m.group(1).split() if m else []
    built = set(built_ci)
    print(f"images built by CI: {', '.join(sorted(built)) or 'none'}")
    for name, got in (("docker/Dockerfile targets", built_df),
                      ("scripts/deploy-kustomization.sh IMAGES", built_script)):
        if set(got) != built:
            problem(f"{name} {sorted(got)} differ from the CI build matrix {sorted(built)}")

    # 6. The Dockerfile builds what scripts/up.sh builds, with -p in both steps.
    want = up_sh_packages(Path("scripts/up.sh").read_text())
    for step, pkgs in dockerfile_packages(dockerfile).items():
        if pkgs is None:
            problem(f"docker/Dockerfile `{step}` does not select packages with -p "
                    f"(scripts/up.sh: {' '.join('-p ' + p for p in want)})")
        elif sorted(pkgs) != sorted(want):
            problem(f"docker/Dockerfile `{step}` builds {sorted(pkgs)}, scripts/up.sh {sorted(want)}")
    if set(want) != built:
        problem(f"scripts/up.sh builds {sorted(want)}, CI builds images {sorted(built)}")

    # 2. Base and overlays: the local name, which the wrapper's entries match.
    local = re.compile(rf"^{LOCAL_PREFIX}/([\w-]+):{LOCAL_TAG}$")
    for path in map(Path, args.render):
        for where, image in container_images(path):
            if path.name.startswith("component-") and THIRD_PARTY.match(image):
                continue
            m = local.match(image)
            if not m or m.group(1) not in built:
                problem(f"{path.name}: {where}: image {image} is not {LOCAL_PREFIX}/<built image>:{LOCAL_TAG} "
                        "(overlays must not rename images: CI's deploy wrapper would not match them)")

    # 3. What CI applies: only images the pipeline pushed, all of them.
    pushed = {f"{args.prefix}/{name}:{args.tag}" for name in built}
    for path in map(Path, args.deploy):
        seen = set()
        for where, image in container_images(path):
            seen.add(image)
            if image not in pushed:
                problem(f"{path.name}: {where}: deploys {image}, which the pipeline does not build "
                        f"(it pushes {args.prefix}/<{'|'.join(sorted(built))}>:{args.tag})")
        if missing := pushed - seen:
            problem(f"{path.name}: no container runs {', '.join(sorted(missing))}")
        if seen <= pushed:
            print(f"{path.name}: {len(seen)} distinct images, each one the pipeline builds")

    # 4. Compose.
    compose = yaml.safe_load(Path("docker/compose.yaml").read_text())
    for name, svc in (compose.get("services") or {}).items():
        build = svc.get("build")
        if not build:
            continue
        target = build.get("target")
        if target not in built:
            problem(f"docker/compose.yaml {name}: build target {target} is not a built image")
        if svc.get("image") != f"{LOCAL_PREFIX}/{target}:{LOCAL_TAG}":
            problem(f"docker/compose.yaml {name}: image {svc.get('image')}, "
                    f"want {LOCAL_PREFIX}/{target}:{LOCAL_TAG}")

    # 5. Docs and comments.
    ref = re.compile(rf"(?<![\w./$-]){LOCAL_PREFIX}/([a-z][\w-]*)(?::([\w.$-]+))?")
    for doc in ("README.md", "docker/README.md", "manifests/README.md", "docker/Dockerfile"):
        for lineno, line in enumerate(Path(doc).read_text().splitlines(), 1):
            for m in ref.finditer(line):
                name, tag = m.group(1), m.group(2)
                if name not in built:
                    problem(f"{doc}:{lineno}: {m.group(0)} is not an image the pipeline builds")
                elif tag is None and re.search(r"(-t|--tag|image:|docker run|docker pull)\s+$", line[:m.start()]):
                    problem(f"{doc}:{lineno}: {m.group(0)} without a tag means :latest; local images are :{LOCAL_TAG}")
                elif tag is not None and tag != LOCAL_TAG:
                    problem(f"{doc}:{lineno}: {m.group(0)}: local images are tagged :{LOCAL_TAG}")

    if problems:
        print(f"image check: {len(problems)} disagreement(s)", file=sys.stderr)
        return 1
    print("image check: CI, Dockerfile, deploy wrapper, manifests, compose and docs agree")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
