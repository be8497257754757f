"""The Helm chart as tests see it: rendered by the pinned helm, validated against real schemas, and the
metric names its Grafana dashboard refers to."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from msq_devstack import tools
from msq_devstack.kube import KubeControlPlane

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "msq-relayer-operator"
VALUES_FILES = ["values.yaml", "values-local.yaml", "values-staging.yaml", "values-production.yaml"]
# kubernetes-validate ships schemas per minor version; 1.35 is the version of the control plane the
# integration tests run (tools/kube) and the client-go the helm binary is built with.
KUBE_VERSION = "1.35.0"
MONITORING_GROUP = "monitoring.coreos.com"


def helm(*args: str, check: bool = True, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [tools.helm(), *args]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def render(
    values_file: str | None = "values.yaml",
    *,
    release: str = "msq",
    namespace: str = "msq-system",
    sets: tuple[str, ...] = (),
    include_crds: bool = False,
    check: bool = True,
) -> list[dict[str, Any]]:
    args = ["template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    if values_file:
        args += ["-f", str(CHART / values_file)]
    for s in sets:
        args += ["--set-json" if s.startswith("json:") else "--set", s.removeprefix("json:")]
    if include_crds:
        args.append("--include-crds")
    out = helm(*args, check=check)
    if out.returncode != 0:
        raise ValueError(out.stderr)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def render_text(values_file: str, *, release: str, namespace: str, sets: tuple[str, ...] = ()) -> str:
    args = ["template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    args += ["-f", str(CHART / values_file), "--include-crds"]
    for s in sets:
        args += ["--set", s]
    return helm(*args).stdout


def monitoring_crd_paths() -> list[Path]:
    """The Prometheus Operator CRDs tools/helm/build.sh fetched from the Go module proxy."""
    return sorted((Path(tools.helm()).parent / "monitoring-crds").glob("*.yaml"))


@cache
def _monitoring_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in monitoring_crd_paths():
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD's structural schema as JSON Schema that, like kubernetes-validate's strict mode, refuses
    fields the schema does not declare (the API server would silently prune them)."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        props = node.get("properties")
        if props is not None and not node.get("x-kubernetes-preserve-unknown-fields"):
            node.setdefault("additionalProperties", False)
        for sub in (props or {}).values():
            walk(sub)
        for key in ("items", "additionalProperties"):
            walk(node.get(key))
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(key) or []:
                walk(sub)

    walk(out)
    # metadata is checked by the API server itself, not by the CRD's schema.
    out.setdefault("properties", {})["metadata"] = {"type": "object"}
    return out


def validate_strictly(obj: dict[str, Any]) -> None:
    """Raises if `obj` does not match the Kubernetes 1.35 schema of its kind (strict: no unknown fields)."""
    if obj["apiVersion"].split("/")[0] == MONITORING_GROUP:
        schema = _monitoring_schemas()[(obj["apiVersion"], obj["kind"])]
        jsonschema.Draft7Validator(_strict(schema)).validate(obj)
        return
    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [o for o in by_kind(objs, kind) if o["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, (
        f"expected one {kind} *{name_suffix}, got {[o['metadata']['name'] for o in found]}"
    )
    return found[0]


def dashboard(objs: list[dict[str, Any]]) -> dict[str, Any]:
    cm = one(objs, "ConfigMap", "-dashboard")
    return json.loads(next(iter(cm["data"].values())))  # type: ignore[no-any-return]


# --- metric names ---

# PromQL words that are not metric names: functions, aggregations, keywords.
_NOT_METRICS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (label matchers, ranges, strings and grouping clauses removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, regexes)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # dashboard variables
    text = re.sub(r"(?<![A-Za-z0-9_:.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", " ", text)  # numbers
    names = set()
    for m in _IDENT.finditer(text):
        word = m.group(0)
        rest = text[m.end() :].lstrip()
        if rest.startswith("(") or word.lower() in _NOT_METRICS:
            continue  # a function or aggregation call, or a keyword
        names.add(word)
    return names


def alert_rule_groups(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return one(objs, "PrometheusRule")["spec"]["groups"]  # type: ignore[no-any-return]


def alert_rules(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for group in alert_rule_groups(objs) for r in group["rules"]]


def dashboard_queries(dash: dict[str, Any]) -> list[str]:
    exprs = []
    for panel in dash["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            exprs += [t["expr"] for t in inner.get("targets", []) if t.get("expr")]
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", query.strip())
            exprs.append(m.group(1) if m else query)
    return exprs


def exposed_metric_names(exposition: str) -> set[str]:
    """Every series name a Prometheus text exposition can produce, including those of labelled metrics
    that have no samples yet (derived from their TYPE lines)."""
    names: set[str] = set()
    suffixes = {
        "counter": ["", "_total", "_created"],
        "gauge": [""],
        "histogram": ["_bucket", "_sum", "_count", "_created"],
        "summary": ["", "_sum", "_count", "_created"],
        "info": ["_info"],
        "untyped": [""],
    }
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.update(name + s for s in suffixes.get(kind, [""]))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


# --- the real API server (own helpers: the shared ones in tests/support/kube.py are in flux) ---


def kubectl(
    kube: KubeControlPlane, *args: str, input_text: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        kube.kubectl_argv(*args), input=input_text, capture_output=True, text=True, timeout=180
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result
