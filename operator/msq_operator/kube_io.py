"""Kubernetes I/O: apply rendered objects only when they differ from what the server holds.

Server-side apply with one field manager makes the operator the owner of exactly the fields it renders; the
read-and-compare first means a steady pool causes no write calls at all. With a `WatchCache` (the running
operator has one) the compare and the lists read the watched copies, so a steady pool causes no read calls
either; `get` always asks the server.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from kubernetes import client, config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from msq_operator.watch_cache import WatchCache

FIELD_MANAGER = "msq-operator"


def is_subset(desired: Any, live: Any) -> bool:
    """True when every field of `desired` is present with the same value in `live` (server defaults and
    fields owned by others may add more)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and is_subset(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, v) for d, v in zip(desired, live, strict=True))
        )
    if (isinstance(desired, int) and isinstance(live, str)) or (
        isinstance(desired, str) and isinstance(live, int)
    ):
        return str(desired) == str(live)
    return bool(desired == live)


class Kube:
    """A thin, synchronous client for the handlers (Kopf runs sync handlers in worker threads)."""

    def __init__(self, api_client: client.ApiClient | None = None, cache: WatchCache | None = None) -> None:
        self.cache = cache
        self.api = api_client or client.ApiClient()
        self.dynamic = DynamicClient(self.api)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.writes = 0

    @classmethod
    def from_environment(cls, cache: WatchCache | None = None) -> Kube:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
        return cls(cache=cache)

    def _cached(self, api_version: str, kind: str) -> WatchCache | None:
        return self.cache if self.cache is not None and self.cache.covers(api_version, kind) else None

    def _resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The server's copy, never the cache's: for reads that must see the operator's own last write."""
        try:
            return self._resource(api_version, kind).get(name=name, namespace=namespace).to_dict()  # type: ignore[no-any-return]
        except NotFoundError:
            return None

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        cache = self._cached(api_version, kind)
        if cache is not None:
            return cache.list(api_version, kind, namespace, label_selector)
        res = self._resource(api_version, kind).get(namespace=namespace, label_selector=label_selector)
        return [item.to_dict() for item in res.items] if res.items else []

    def apply(self, obj: dict[str, Any]) -> bool:
        """Create or update `obj` if the server's copy differs; returns whether a write happened."""
        meta = obj["metadata"]
        desired = _comparable(obj)
        cache = self._cached(obj["apiVersion"], obj["kind"])
        if cache is not None:
            watched = cache.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
            if watched is not None and is_subset(desired, watched):
                return False
        # A difference (or a copy not seen yet) is checked against the server before anything is written.
        live = self.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        if live is not None and is_subset(desired, live):
            return False
        resource = self._resource(obj["apiVersion"], obj["kind"])
        resource_body = dict(obj)
        self.dynamic.server_side_apply(
            resource,
            body=resource_body,
            name=meta["name"],
            namespace=meta["namespace"],
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        self.writes += 1
        return True

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        try:
            self._resource(api_version, kind).delete(name=name, namespace=namespace)
        except NotFoundError:
            return False
        self.writes += 1
        return True

    def patch_status(
        self, api_version: str, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        group, version = api_version.split("/")
        self.custom.patch_namespaced_custom_object_status(
            group, version, namespace, plural, name, {"status": status}
        )
        self.writes += 1

    def patch_annotations(
        self, api_version: str, plural: str, namespace: str, name: str, annotations: dict[str, str]
    ) -> None:
        group, version = api_version.split("/")
        body = {"metadata": {"annotations": annotations}}
        self.custom.patch_namespaced_custom_object(group, version, namespace, plural, name, body)
        self.writes += 1

    def patch_spec(
        self, api_version: str, plural: str, namespace: str, name: str, spec: dict[str, Any]
    ) -> None:
        group, version = api_version.split("/")
        self.custom.patch_namespaced_custom_object(group, version, namespace, plural, name, {"spec": spec})
        self.writes += 1

    def scale(self, api_version: str, plural: str, namespace: str, name: str, replicas: int) -> None:
        group, version = api_version.split("/")
        self.custom.patch_namespaced_custom_object_scale(
            group, version, namespace, plural, name, {"spec": {"replicas": replicas}}
        )
        self.writes += 1

    def read_secret(self, namespace: str, name: str, fresh: bool = False) -> dict[str, str]:
        """Decoded data of a Secret; raises LookupError naming it when absent. From the watch cache when there
        is one, where absent means absent (Kopf lists every Secret before a handler runs); `fresh` asks the
        server, for a read whose answer is written back (the cache may not have seen a Secret just made)."""
        cache = self._cached("v1", "Secret")
        if cache is not None and not fresh:
            watched = cache.get("v1", "Secret", namespace, name)
            if watched is None:
                raise LookupError(f"Secret {namespace}/{name} not found")
            return {k: base64.b64decode(v).decode() for k, v in (watched.get("data") or {}).items()}
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except client.ApiException as e:
            if e.status == 404:
                raise LookupError(f"Secret {namespace}/{name} not found") from None
            raise
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    # ownerReferences are compared too; only apiVersion/kind are implicit in the lookup.
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
