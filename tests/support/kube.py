"""Small helpers for tests against the real API server."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.rest import ApiException

from msq_devstack import scenario
from msq_devstack.kube import KubeControlPlane

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION = "relayer.msq.io", "v1alpha1"


def eventually(fn: Callable[[], T], timeout: float = 60, interval: float = 0.25, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = fn()
            if result:
                return result
            last = result
        except (ApiException, AssertionError, KeyError, LookupError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"{what or 'condition'} not met in {timeout}s (last: {last!r})")


def kubectl(kube: KubeControlPlane, *args: str, input_text: str | None = None, check: bool = True) -> str:
    result = subprocess.run(
        kube.kubectl_argv(*args), input=input_text, capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result.stdout + result.stderr if not check else result.stdout


def apply_crds(kube: KubeControlPlane, api: client.ApiClient) -> None:
    scenario.apply_crds(kube.kubectl_argv(), api)


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


def secret(api: client.ApiClient, namespace: str, name: str, data: dict[str, str]) -> None:
    client.CoreV1Api(api).create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
    )
