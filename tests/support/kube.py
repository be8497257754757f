"""Helpers for tests against the real control plane (the session fixture `kube`).

from tests.support.kube import apply_crds, eventually, kubectl, namespace_fixture

namespace = namespace_fixture("pools")        # a fresh namespace per test, deleted afterwards

def test_x(kube: KubeControlPlane, namespace: str) -> None:
    apply_crds(kube)
    ...
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from msq_devstack import scenario
from msq_devstack.kube import KubeControlPlane

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"
GROUP = "relayer.msq.io"
VERSION = "v1alpha1"


def eventually(fn: Callable[[], T], timeout: float = 60, interval: float = 0.25, what: str = "") -> T:
    """Call `fn` until it returns something truthy (API errors and failed asserts count as "not yet")."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = fn()
            if result:
                return result
        except (ApiException, AssertionError, subprocess.CalledProcessError, KeyError, LookupError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"{what or 'condition'} not met in {timeout}s (last error: {last})")


def api_client(kube: KubeControlPlane) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kube.kubeconfig))


class KubectlError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout}\nstderr: {self.stderr}"


def kubectl(
    kube: KubeControlPlane, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run kubectl against the control plane; with check=False the caller inspects returncode/stderr."""
    argv = kube.kubectl_argv(*args)
    result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
    return result


def namespace_fixture(prefix: str) -> Callable[..., Iterator[str]]:
    """A function-scoped fixture yielding a fresh namespace `<prefix>-<random>`, deleted after the test.

    Bind it to the fixture name in the test module: `namespace = namespace_fixture("crds")`.
    """

    @pytest.fixture
    def _namespace(kube: KubeControlPlane) -> Iterator[str]:
        api = api_client(kube)
        core = client.CoreV1Api(api)
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        try:
            yield name
        finally:
            try:
                core.delete_namespace(name)
            except ApiException as e:
                if e.status != 404:
                    raise
            api.close()

    return _namespace


def crd_names() -> list[str]:
    return sorted(yaml.safe_load(p.read_text())["metadata"]["name"] for p in CRD_DIR.glob("*.yaml"))


def apply_crds(kube: KubeControlPlane, timeout: float = 60) -> None:
    """Install (or update) every CRD of crds/ and wait until each is Established and discoverable."""
    api = api_client(kube)
    try:
        scenario.apply_crds(kube.kubectl_argv(), api, timeout)
    finally:
        api.close()
    plurals = {n.split(".", 1)[0] for n in crd_names()}

    # kubectl resolves names (kubectl get rp, kubectl explain) through discovery, which lags a moment.
    def discoverable() -> bool:
        out = kubectl(kube, "api-resources", f"--api-group={GROUP}", "-o", "name").stdout
        return plurals <= {line.split(".", 1)[0] for line in out.split()}

    eventually(discoverable, timeout=timeout)


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def get_cr(api: client.ApiClient, namespace: str, plural: str, name: str) -> dict[str, Any]:
    return custom(api).get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)  # type: ignore[no-any-return]


def list_cr(api: client.ApiClient, namespace: str, plural: str, selector: str = "") -> list[dict[str, Any]]:
    return custom(api).list_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        plural,  # type: ignore[no-any-return]
        label_selector=selector,
    )["items"]


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


@pytest.fixture(scope="module")
def crds_api(kube: KubeControlPlane) -> client.ApiClient:
    """A module's API client, with the CRDs installed. Import it into the module to use it as `api`."""
    a = api_client(kube)
    apply_crds(kube)
    return a


def pool_namespace_fixture(prefix: str) -> Callable[..., str]:
    """A module-scoped fixture: a namespace `<prefix>-<random>` holding the Secrets a pool made by
    `msq_devstack.scenario.pool_manifest` refers to (Vault token, Redis URL, one gateway API key)."""

    @pytest.fixture(scope="module")
    def _namespace(api: client.ApiClient, openbao: Any, redis_server: Any) -> str:
        ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
        client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        scenario.create_pool_secrets(
            api, ns, openbao.root_token, redis_server.url, {"payments-service": "k" * 40}
        )
        return ns

    return _namespace
