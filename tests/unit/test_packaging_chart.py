"""The Helm chart renders valid, least-privilege, hardened objects for every environment's values."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from msq_gateway.errors import ERROR_STATUS
from tests.support.chart import (
    CHART,
    VALUES_FILES,
    alert_rules,
    by_kind,
    dashboard,
    dashboard_queries,
    helm,
    one,
    promql_metric_names,
    render,
    validate_strictly,
)

WATCHED = ('json:watchNamespaces=["team-a","team-b"]',)
# Every verb the operator may use, per (apiGroup, resource); anything else in a rendered rule is a failure.
ALLOWED = {
    ("relayer.msq.io", "relayerpools"): {"get", "list", "watch", "patch"},
    ("relayer.msq.io", "contractpolicies"): {"get", "list", "watch", "patch"},
    ("relayer.msq.io", "relayers"): {"get", "list", "watch", "create", "patch", "delete"},
    ("relayer.msq.io", "relayerpools/status"): {"patch"},
    ("relayer.msq.io", "relayers/status"): {"patch"},
    ("relayer.msq.io", "contractpolicies/status"): {"patch"},
    ("relayer.msq.io", "relayerpools/scale"): {"patch"},
    ("relayer.msq.io", "relayerpools/finalizers"): {"update"},
    ("relayer.msq.io", "relayers/finalizers"): {"update"},
    ("", "secrets"): {"get", "list", "watch", "create", "patch"},
    ("", "configmaps"): {"get", "list", "watch", "create", "patch"},
    ("", "services"): {"get", "list", "watch", "create", "patch"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch"},
    ("", "events"): {"create"},
}
DISCOVERY = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
    ("", "namespaces"): {"list", "watch"},
}


def _grants(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert "nonResourceURLs" not in rule and "resourceNames" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_helm_lint_strict(values_file: str) -> None:
    out = helm("lint", "--strict", str(CHART), "-f", str(CHART / values_file))
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_every_rendered_object_matches_the_kubernetes_1_35_schema(values_file: str) -> None:
    objs = render(values_file, include_crds=True)
    assert {o["kind"] for o in objs} >= {"ServiceAccount", "Deployment", "CustomResourceDefinition"}
    for obj in objs:
        validate_strictly(obj)


def test_strict_validation_refuses_a_misspelt_field() -> None:
    """The check above is only worth something if it rejects what the API server would prune."""
    deployment = one(render("values.yaml"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(Exception, match="securityContxt"):
        validate_strictly(deployment)
    monitor = one(render("values-production.yaml"), "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["honourLabels"] = True
    with pytest.raises(Exception, match="honourLabels"):
        validate_strictly(monitor)


def test_crds_ship_with_the_chart_and_are_the_repository_ones() -> None:
    crds = by_kind(render("values.yaml", include_crds=True), "CustomResourceDefinition")
    assert sorted(c["metadata"]["name"] for c in crds) == [
        "contractpolicies.relayer.msq.io",
        "relayerpools.relayer.msq.io",
        "relayers.relayer.msq.io",
    ]


def _leader_election_role(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operator's own Lease, in its own namespace: the only Role that is not one of the watched ones'."""
    roles = [r for r in by_kind(objs, "Role") if r["metadata"]["name"].endswith("-leader-election")]
    for r in roles:
        assert r["metadata"]["namespace"] == "msq-system"
        assert _grants(r["rules"]) == {("coordination.k8s.io", "leases"): {"get", "create", "update"}}
    return roles


def test_watched_namespaces_get_a_role_each_and_no_cluster_wide_access() -> None:
    objs = render("values.yaml", sets=WATCHED)
    assert len(_leader_election_role(objs)) == 1
    objs = [o for o in objs if not o["metadata"]["name"].endswith("-leader-election")]
    roles = by_kind(objs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    bindings = by_kind(objs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    sa = one(objs, "ServiceAccount")
    for b in bindings:
        assert b["subjects"] == [
            {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "msq-system"}
        ]
        assert b["roleRef"]["kind"] == "Role"
    for r in roles:
        assert _grants(r["rules"]) == ALLOWED
    # The one cluster-wide grant is Kopf's read-only view of CRDs and namespaces.
    (cluster_role,) = by_kind(objs, "ClusterRole")
    assert _grants(cluster_role["rules"]) == DISCOVERY
    args = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "run"
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]
    assert "--all-namespaces" not in args


def test_cluster_wide_uses_a_cluster_role_with_the_same_rules() -> None:
    objs = render("values.yaml")
    assert len(_leader_election_role(objs)) == 1
    objs = [o for o in objs if not o["metadata"]["name"].endswith("-leader-election")]
    assert not by_kind(objs, "Role") and not by_kind(objs, "RoleBinding")
    roles = {r["metadata"]["name"]: r for r in by_kind(objs, "ClusterRole")}
    assert _grants(roles["msq-msq-relayer-operator"]["rules"]) == ALLOWED
    assert _grants(roles["msq-msq-relayer-operator-discovery"]["rules"]) == DISCOVERY
    binding = one(objs, "ClusterRoleBinding", "operator")
    assert binding["roleRef"]["name"] == "msq-msq-relayer-operator"
    args = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" in args


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_no_wildcards_and_no_secret_deletes(values_file: str) -> None:
    objs = render(values_file)
    for role in by_kind(objs, "Role") + by_kind(objs, "ClusterRole"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (role["metadata"]["name"], rule)
        grants = _grants(role["rules"])
        # list and watch feed the watch cache (msq_operator/watch_cache.py); nothing deletes or replaces one.
        assert not grants.get(("", "secrets"), set()) & {"delete", "deletecollection", "update"}
        assert not any(
            r in grants for r in [("", "pods"), ("rbac.authorization.k8s.io", "clusterrolebindings")]
        )


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_operator_deployment_is_hardened(values_file: str) -> None:
    dep = one(render(values_file), "Deployment")
    spec = dep["spec"]
    # Two pods, one acting (leader election), kept through drains by a PodDisruptionBudget.
    assert spec["replicas"] == 2 and spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    args = spec["template"]["spec"]["containers"][0]["args"]
    assert "--leader-elect" in args
    pdb = one(render(values_file), "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pod["containers"]
    assert c["command"] == ["msq-operator"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert f"--liveness-port={ports['health']}" in c["args"]
    assert f"--metrics-port={ports['metrics']}" in c["args"]
    assert c["resources"]["requests"] and c["resources"]["limits"]
    assert c["image"] == "ghcr.io/msq/msq-relayer:0.1.0"
    assert pod["serviceAccountName"] == one(render(values_file), "ServiceAccount")["metadata"]["name"]


def test_image_digest_pins_the_image() -> None:
    digest = "sha256:" + "ab" * 32
    dep = one(render("values-production.yaml", sets=(f"image.digest={digest}",)), "Deployment")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == f"ghcr.io/msq/msq-relayer@{digest}"


def test_monitoring_and_dashboard_are_toggles() -> None:
    plain = render("values.yaml")
    assert not by_kind(plain, "ServiceMonitor") and not by_kind(plain, "PodMonitor")
    assert not [c for c in by_kind(plain, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    objs = render(
        "values.yaml",
        sets=(
            "metrics.serviceMonitor.enabled=true",
            "metrics.gatewayPodMonitor.enabled=true",
            "dashboard.enabled=true",
            "dashboard.namespace=monitoring",
        ),
    )
    monitor = one(objs, "ServiceMonitor")
    service = one(objs, "Service", "-metrics")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    # The operator's series carry the namespace of the pool they describe.
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
    pods = one(objs, "PodMonitor")
    assert pods["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
    assert pods["spec"]["namespaceSelector"] == {"any": True}
    cm = one(objs, "ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    on_disk = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    assert dashboard(objs) == on_disk


def test_gateway_pod_monitor_follows_the_watched_namespaces() -> None:
    objs = render("values.yaml", sets=(*WATCHED, "metrics.gatewayPodMonitor.enabled=true"))
    assert one(objs, "PodMonitor")["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


def test_dashboard_covers_pools_relayers_queue_balances_gateway_and_transactions() -> None:
    dash = dashboard(render("values-production.yaml"))
    names = set().union(*(promql_metric_names(q) for q in dashboard_queries(dash)))
    for needed in (
        "msq_operator_pool_replicas",
        "msq_operator_pool_queue_depth",
        "msq_operator_relayer_balance_wei",
        "msq_operator_relayer_pending_transactions",
        "msq_gateway_request_duration_seconds_bucket",
        "msq_gateway_requests_total",
        "msq_gateway_relayed_transactions_total",
    ):
        assert needed in names
    assert all(n.startswith(("msq_operator_", "msq_gateway_")) for n in names), names


def test_promql_metric_name_extraction() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, route) (rate(msq_gateway_request_duration_seconds_bucket"
        '{namespace=~"$namespace", code!="ok"}[$__rate_interval]))) / ignoring(x) msq_other_total * 1e18'
    )
    assert promql_metric_names(expr) == {"msq_gateway_request_duration_seconds_bucket", "msq_other_total"}


def _policies(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in by_kind(objs, "NetworkPolicy")}


@pytest.mark.parametrize("values_file", ["values-staging.yaml", "values-production.yaml"])
def test_network_policies_fence_relayers(values_file: str) -> None:
    objs = render(values_file)
    policies = _policies(objs)
    ingress = policies[("payments", "msq-msq-relayer-operator-relayer-ingress")]["spec"]
    egress = policies[("payments", "msq-msq-relayer-operator-relayer-egress")]["spec"]
    relayer_pods = {
        "app.kubernetes.io/component": "relayer",
        "app.kubernetes.io/managed-by": "msq-relayer-operator",
    }
    assert ingress["podSelector"]["matchLabels"] == relayer_pods
    assert egress["podSelector"]["matchLabels"] == relayer_pods
    api_rule = ingress["ingress"][0]
    assert api_rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    gateway_peer, operator_peer = api_rule["from"]
    # A bare podSelector means the policy's own namespace: only the pool's neighbour gateways.
    assert gateway_peer == {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/component": "gateway",
                "app.kubernetes.io/managed-by": "msq-relayer-operator",
            }
        }
    }
    operator_pod = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert operator_peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "msq-system"}
    assert operator_peer["podSelector"]["matchLabels"].items() <= operator_pod.items()
    # Whatever else may reach relayers (metrics scraping) only gets the metrics port.
    for rule in ingress["ingress"][1:]:
        assert rule["ports"] == [{"port": 8081, "protocol": "TCP"}]
    ports = sorted((p["port"], p["protocol"]) for rule in egress["egress"] for p in rule["ports"])
    assert ports == [(53, "TCP"), (53, "UDP"), (443, "TCP"), (6379, "TCP"), (8080, "TCP"), (8200, "TCP")]
    assert all(rule["to"] for rule in egress["egress"])  # an empty `to` would mean anywhere


def test_network_policy_egress_from_values_and_default_namespace() -> None:
    objs = render(
        "values.yaml",
        sets=(
            "networkPolicy.enabled=true",
            "networkPolicy.egress.vault.cidrs={10.1.0.0/16}",
            "networkPolicy.egress.redis.cidrs={10.2.0.5/32}",
            "networkPolicy.egress.rpc.cidrs={203.0.113.0/24}",
            "networkPolicy.egress.rpc.ports={8545}",
            "networkPolicy.dns.enabled=false",
        ),
    )
    policies = _policies(objs)
    assert {ns for ns, _ in policies} == {"msq-system"}  # no watch list: the release namespace
    egress = policies[("msq-system", "msq-msq-relayer-operator-relayer-egress")]["spec"]["egress"]
    cidrs = {r["to"][0]["ipBlock"]["cidr"]: r["ports"] for r in egress if "ipBlock" in r["to"][0]}
    assert cidrs == {
        "10.1.0.0/16": [{"port": 8200, "protocol": "TCP"}],
        "10.2.0.5/32": [{"port": 6379, "protocol": "TCP"}],
        "203.0.113.0/24": [{"port": 8545, "protocol": "TCP"}],
    }
    assert not any(p["port"] == 53 for r in egress for p in r["ports"])


def test_network_policies_refuse_to_render_without_a_vault_destination() -> None:
    with pytest.raises(ValueError, match=r"networkPolicy\.egress\.vault needs cidrs or peers"):
        render("values.yaml", sets=("networkPolicy.enabled=true",), check=False)


def test_network_policies_land_in_every_watched_namespace() -> None:
    objs = render("values-staging.yaml", sets=WATCHED)
    assert sorted({ns for ns, _ in _policies(objs)}) == ["team-a", "team-b"]


def test_chart_crds_are_byte_for_byte_the_repository_crds() -> None:
    """crds/ is the single source of truth. The chart's crds/ is a symlink to it; should anyone replace the
    link with copies, this fails as soon as a copy differs."""
    repo_crds = CHART.parents[1] / "crds"
    chart_crds = CHART / "crds"
    repo_files = sorted(p.name for p in repo_crds.glob("*.yaml"))
    assert repo_files and sorted(p.name for p in chart_crds.glob("*.yaml")) == repo_files
    for name in repo_files:
        assert (chart_crds / name).read_bytes() == (repo_crds / name).read_bytes(), name


def _alert_rules() -> list[dict[str, Any]]:
    return alert_rules(render("values-production.yaml"))


def test_alert_rules_are_a_toggle_and_each_says_what_it_means() -> None:
    assert not by_kind(render("values.yaml"), "PrometheusRule")
    rules = _alert_rules()
    assert {r["alert"] for r in rules} >= {
        "MsqRelayerNotReady",
        "MsqRelayerLowBalance",
        "MsqPoolNotReady",
        "MsqPoolQueueAboveTarget",
        "MsqGatewayNoRoutableRelayer",
        "MsqGatewayServerErrors",
    }
    for r in rules:
        assert r["for"] and r["labels"]["severity"] in ("warning", "critical"), r
        assert r["annotations"]["summary"] and r["annotations"]["description"], r
        assert all(n.startswith(("msq_operator_", "msq_gateway_")) for n in promql_metric_names(r["expr"]))
    runbook = (CHART.parents[1] / "docs" / "operations.md").read_text()
    assert [r["alert"] for r in rules if r["alert"] not in runbook] == []


def test_server_error_alert_covers_every_5xx_code_of_the_gateway() -> None:
    expr = next(r["expr"] for r in _alert_rules() if r["alert"] == "MsqGatewayServerErrors")
    codes = set(re.search(r'code=~"([^"]+)"', expr).group(1).split("|"))  # type: ignore[union-attr]
    # not_ready is /readyz telling kubelet to wait, which MsqGatewayNoRoutableRelayer already covers.
    assert codes == {c for c, status in ERROR_STATUS.items() if status >= 500} - {"not_ready"}


def test_one_operator_without_leader_election_and_never_two() -> None:
    docs = render(sets=("leaderElection.enabled=false", "replicaCount=1"))
    spec = one(docs, "Deployment")["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    assert "--leader-elect" not in spec["template"]["spec"]["containers"][0]["args"]
    assert not by_kind(docs, "PodDisruptionBudget")
    with pytest.raises(ValueError, match=r"needs leaderElection\.enabled"):
        render(sets=("leaderElection.enabled=false",), check=False)
