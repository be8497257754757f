"""The Helm chart on the real API server.

- Every environment's rendering passes server-side dry-run (admission, CEL, the Prometheus Operator CRDs).
- The chart installed for real (namespace-scoped) gives the operator enough RBAC to reconcile a pool, and
  no more: the operator runs under the chart's ServiceAccount with a token the API server issued for it,
  exactly what the pod would mount, and its log shows no refused request.
- The Grafana dashboard only queries metric names a live operator and a live gateway export.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client, config

from msq_devstack.kube import KubeControlPlane
from msq_devstack.openbao import OpenBao
from msq_devstack.operator import OperatorProcess
from msq_devstack.process import ManagedProcess, free_port
from msq_devstack.redis import Redis
from msq_devstack.scenario import create_pool_secrets
from tests.support import manifests
from tests.support.chart import (
    CHART,
    KUBE_VERSION,
    VALUES_FILES,
    dashboard,
    dashboard_queries,
    exposed_metric_names,
    helm,
    kubectl,
    monitoring_crd_paths,
    promql_metric_names,
    render,
    render_text,
)
from tests.support.kube import eventually

GROUP, VERSION = "relayer.msq.io", "v1alpha1"
FORWARDER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
RELEASE = "msq"
# What a refused request looks like in Kopf's and the Kubernetes client's logs.
REFUSALS = ("Forbidden", "403", "Not enough permissions")


def _list_cr(api: client.ApiClient, namespace: str, plural: str) -> list[dict[str, Any]]:
    return client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, plural)[
        "items"
    ]  # type: ignore[no-any-return]


def _get_cr(api: client.ApiClient, namespace: str, plural: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)  # type: ignore[no-any-return]


def _ensure_namespace(api: client.ApiClient, name: str) -> None:
    try:
        client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    except client.ApiException as e:
        if e.status != 409:
            raise


@pytest.fixture(scope="module")
def api(kube: KubeControlPlane) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kube.kubeconfig))


@pytest.fixture(scope="module")
def monitoring_crds(kube: KubeControlPlane) -> None:
    # The chart's optional ServiceMonitor/PodMonitor need their CRDs, as on a cluster running the
    # Prometheus Operator; server-side apply because they exceed the client-side annotation limit.
    for path in monitoring_crd_paths():
        kubectl(kube, "apply", "--server-side", "-f", str(path))
    kubectl(
        kube,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/servicemonitors.monitoring.coreos.com",
        "crd/podmonitors.monitoring.coreos.com",
    )


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_server_side_dry_run(
    kube: KubeControlPlane, api: client.ApiClient, monitoring_crds: None, values_file: str
) -> None:
    # The environments' values name the team namespace "payments"; the release goes to msq-system.
    for ns in ("msq-system", "payments"):
        _ensure_namespace(api, ns)
    manifest = render_text(values_file, release=RELEASE, namespace="msq-system")
    objects = [d for d in yaml.safe_load_all(manifest) if d]
    out = kubectl(kube, "apply", "--dry-run=server", "-f", "-", input_text=manifest).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == len(objects), out
    assert all(line.endswith("(server dry run)") for line in lines), out


@dataclass
class Installed:
    release_namespace: str
    watched: str
    service_account: str
    operator: OperatorProcess

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.release_namespace}:{self.service_account}"


def _token_kubeconfig(kube: KubeControlPlane, path: Path, token: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "operator",
                "clusters": [
                    {
                        "name": "devstack",
                        "cluster": {"server": kube.server, "certificate-authority": str(kube.pki.ca_cert)},
                    }
                ],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [{"name": "operator", "context": {"cluster": "devstack", "user": "operator"}}],
            }
        )
    )
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def installed(
    kube: KubeControlPlane,
    api: client.ApiClient,
    openbao: OpenBao,
    redis_server: Redis,
    stack_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Installed]:
    suffix = uuid.uuid4().hex[:6]
    release_ns, watched = f"msq-op-{suffix}", f"team-{suffix}"
    for ns in (release_ns, watched):
        _ensure_namespace(api, ns)
    helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        release_ns,
        "-f",
        str(CHART / "values-local.yaml"),
        "--set-json",
        f'watchNamespaces=["{watched}"]',
        kubeconfig=kube.kubeconfig,
    )
    # Helm creates the CRDs if absent; the operator starts once they serve (as a pod would, after install).
    crds = [f"crd/{plural}.{GROUP}" for plural in ("relayerpools", "relayers", "contractpolicies")]
    kubectl(kube, "wait", "--for=condition=Established", "--timeout=60s", *crds)
    sa = f"{RELEASE}-msq-relayer-operator"
    # A token the API server issues for the chart's ServiceAccount, as the kubelet would mount it: the
    # operator authenticates as that account, so every request is authorised by the chart's RBAC alone.
    token = kubectl(kube, "create", "token", sa, "-n", release_ns, "--duration=2h").stdout.strip()
    kubeconfig = _token_kubeconfig(kube, tmp_path_factory.mktemp("chart") / "kubeconfig", token)

    create_pool_secrets(api, watched, openbao.root_token, redis_server.url, {"payments-service": "k" * 40})
    op = OperatorProcess(
        kubeconfig, stack_logs, namespaces=[watched], name=f"operator-chart-{suffix}"
    ).start()
    try:
        yield Installed(release_namespace=release_ns, watched=watched, service_account=sa, operator=op)
    finally:
        # Delete the pool while the operator still runs, so the relayers' finalizers are released.
        custom = client.CustomObjectsApi(api)
        for pool in _list_cr(api, watched, "relayerpools"):
            custom.delete_namespaced_custom_object(
                GROUP, VERSION, watched, "relayerpools", pool["metadata"]["name"]
            )
        try:
            eventually(lambda: not _list_cr(api, watched, "relayers"), timeout=60, what="relayers removed")
        finally:
            op.stop()
            helm("uninstall", RELEASE, "--namespace", release_ns, kubeconfig=kube.kubeconfig, check=False)
            for ns in (release_ns, watched):
                client.CoreV1Api(api).delete_namespace(ns)


def test_installed_chart_objects(api: client.ApiClient, installed: Installed) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    assert core.read_namespaced_service_account(installed.service_account, installed.release_namespace)
    dep = apps.read_namespaced_deployment(f"{RELEASE}-msq-relayer-operator", installed.release_namespace)
    assert dep.spec.template.spec.service_account_name == installed.service_account
    assert f"--namespace={installed.watched}" in dep.spec.template.spec.containers[0].args
    rbac = client.RbacAuthorizationV1Api(api)
    assert rbac.read_namespaced_role(f"{RELEASE}-msq-relayer-operator", installed.watched).rules
    for crd in ("relayerpools", "relayers", "contractpolicies"):
        client.ApiextensionsV1Api(api).read_custom_resource_definition(f"{crd}.{GROUP}")


def test_operator_reconciles_a_pool_under_the_chart_rbac(
    kube: KubeControlPlane, api: client.ApiClient, installed: Installed, openbao: OpenBao
) -> None:
    ns = installed.watched
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        "relayerpools",
        manifests.pool(
            "payments",
            replicas=2,
            vault_addr=openbao.addr,
            rpc_url="http://127.0.0.1:9",
            chain_id=31337,
            forwarder=FORWARDER,
        ),
    )
    relayers = eventually(
        lambda: (
            len(rs := _list_cr(api, ns, "relayers")) == 2
            and all((r.get("status") or {}).get("address") for r in rs)
            and rs
        ),
        timeout=90,
        what="two relayers with addresses",
    )
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    for r in relayers:
        name = r["metadata"]["name"]
        assert r["status"]["address"].startswith("0x")
        assert apps.read_namespaced_deployment(name, ns).spec.strategy.type == "Recreate"
        assert core.read_namespaced_service(name, ns)
        assert core.read_namespaced_secret(f"{name}-credentials", ns)
    eventually(lambda: apps.read_namespaced_deployment("payments-gateway", ns), what="gateway deployment")
    eventually(
        lambda: (_get_cr(api, ns, "relayerpools", "payments").get("status") or {}).get("selector"),
        what="pool status",
    )
    # Kopf posts events for what it did; that is the operator's create on core events at work.
    assert eventually(lambda: core.list_namespaced_event(ns).items, what="events")
    log = installed.operator.log_path.read_text()
    refused = [line for line in log.splitlines() if any(word in line for word in REFUSALS)]
    assert refused == [], "\n".join(refused)


def _can(kube: KubeControlPlane, user: str, *args: str) -> bool:
    result = kubectl(kube, "auth", "can-i", *args, "--as", user, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


def test_service_account_can_exactly_what_the_operator_needs(
    kube: KubeControlPlane, installed: Installed
) -> None:
    user, ns, own = installed.user, installed.watched, installed.release_namespace
    needed = [
        ("get", "secrets", "-n", ns),
        ("create", "secrets", "-n", ns),
        ("patch", "secrets", "-n", ns),
        ("watch", "secrets", "-n", ns),  # the watch cache (msq_operator/watch_cache.py)
        ("list", "deployments.apps", "-n", ns),
        ("patch", "configmaps", "-n", ns),
        ("patch", "services", "-n", ns),
        ("get", "deployments.apps", "-n", ns),
        ("patch", "deployments.apps", "-n", ns),
        ("watch", "relayerpools.relayer.msq.io", "-n", ns),
        ("patch", "relayerpools.relayer.msq.io", "--subresource=scale", "-n", ns),
        ("patch", "relayerpools.relayer.msq.io", "--subresource=status", "-n", ns),
        ("create", "relayers.relayer.msq.io", "-n", ns),
        ("delete", "relayers.relayer.msq.io", "-n", ns),
        ("list", "contractpolicies.relayer.msq.io", "-n", ns),
        ("create", "events", "-n", ns),
        ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
        ("list", "namespaces"),
    ]
    refused = [
        ("get", "secrets", "-n", "default"),  # another namespace
        ("get", "secrets", "-n", own),  # its own namespace is not a watched one
        ("list", "secrets", "-n", own),
        ("delete", "secrets", "-n", ns),
        ("delete", "deployments.apps", "-n", ns),  # children go by garbage collection
        ("create", "pods", "-n", ns),
        ("get", "relayerpools.relayer.msq.io", "-n", "default"),
        ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("create", "rolebindings.rbac.authorization.k8s.io", "-n", ns),
        ("get", "nodes"),
    ]
    assert [a for a in needed if not _can(kube, user, *a)] == []
    assert [a for a in refused if _can(kube, user, *a)] == []


# --- the dashboard against live metrics ---


def _gateway_config(redis_url: str) -> dict[str, object]:
    return {
        "apiVersion": "gateway.msq.io/v1",
        "kind": "GatewayConfig",
        "chain": {"chainId": 31337, "rpcUrl": "http://127.0.0.1:9"},
        "forwarder": {"address": FORWARDER, "name": "MSQForwarder"},
        "redis": {"url": redis_url, "keyPrefix": f"chart-{uuid.uuid4().hex[:6]}"},
    }


@pytest.fixture(scope="module")
def gateway_metrics(redis_server: Redis, stack_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    cfg = tmp_path_factory.mktemp("gateway") / "gateway.yaml"
    cfg.write_text(yaml.safe_dump(_gateway_config(redis_server.url)))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = ManagedProcess(
        "gateway-chart-metrics",
        [
            sys.executable,
            "-m",
            "msq_gateway.cli",
            "--config",
            str(cfg),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--watch-interval",
            "0",
        ],
        stack_logs,
    ).start()
    try:
        proc.wait_ready(lambda: httpx.get(f"{base}/healthz", timeout=1).status_code == 200, 60)
        # A refused request and a status lookup, so request counters and latency histograms have samples.
        httpx.post(f"{base}/api/v1/relay/direct", json={"to": FORWARDER, "data": "0x"}, timeout=5)
        httpx.get(f"{base}/api/v1/relay/status/none", timeout=5)
        return httpx.get(f"{base}/metrics", timeout=5).text
    finally:
        proc.stop()


def test_dashboard_queries_only_exported_metrics(installed: Installed, gateway_metrics: str) -> None:
    operator_metrics = httpx.get(installed.operator.metrics_url, timeout=5).text
    exported = exposed_metric_names(operator_metrics) | exposed_metric_names(gateway_metrics)
    # The live scrapes really are the two components (a wrong port would make this vacuous).
    assert "msq_operator_pool_replicas" in exported and "msq_gateway_requests_total" in exported
    assert "msq_gateway_request_duration_seconds_bucket" in exported
    queries = dashboard_queries(dashboard(render("values-production.yaml")))
    assert queries
    unknown = {
        q: sorted(promql_metric_names(q) - exported) for q in queries if promql_metric_names(q) - exported
    }
    assert unknown == {}


def test_kube_version_of_the_rendering_matches_the_control_plane(kube: KubeControlPlane) -> None:
    out = kubectl(kube, "version", "-o", "json").stdout
    server = yaml.safe_load(out)["serverVersion"]
    assert f"{server['major']}.{server['minor']}" == ".".join(KUBE_VERSION.split(".")[:2])
