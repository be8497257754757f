"""The Kopf indexes behind msq_operator.watch_cache: a copy of every object of each kind the operator
re-reads, kept current by Kopf's watches."""

from __future__ import annotations

import copy
from typing import Any

import kopf

from msq_operator.render.meta import MANAGED_BY
from msq_operator.resources import API_VERSION, GROUP, VERSION
from msq_operator.watch_cache import INDEXES

# Helm keeps every release in a Secret of this type: large, and never one a pool names (the operator cannot
# read one).
UNCACHED_SECRET_TYPES = ("helm.sh/release.v1",)
_MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}


def _copy(body: kopf.Body) -> dict[str, Any]:
    # Kopf replaces a body on each event; a deep copy keeps ours immutable for the threads that read it.
    # managedFields, often the largest part of an object, is nothing the operator compares or reads.
    out = copy.deepcopy(dict(body))
    out["metadata"] = {k: v for k, v in out.get("metadata", {}).items() if k != "managedFields"}
    return out


@kopf.index("v1", "secrets", id=INDEXES[("v1", "Secret")])
def _secrets(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[Any, Any] | None:
    if body.get("type") in UNCACHED_SECRET_TYPES:
        return None
    return {(namespace, name): _copy(body)}


# The operator renders ConfigMaps, Services and Deployments with its managed-by label; only those are kept.
@kopf.index("v1", "configmaps", id=INDEXES[("v1", "ConfigMap")], labels=_MANAGED)
def _configmaps(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): _copy(body)}


@kopf.index("v1", "services", id=INDEXES[("v1", "Service")], labels=_MANAGED)
def _services(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): _copy(body)}


@kopf.index("apps", "v1", "deployments", id=INDEXES[("apps/v1", "Deployment")], labels=_MANAGED)
def _deployments(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): _copy(body)}


@kopf.index(GROUP, VERSION, "relayers", id=INDEXES[(API_VERSION, "Relayer")])
def _relayers(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): _copy(body)}


@kopf.index(GROUP, VERSION, "relayerpools", id=INDEXES[(API_VERSION, "RelayerPool")])
def _pools(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): _copy(body)}


@kopf.index(GROUP, VERSION, "contractpolicies", id=INDEXES[(API_VERSION, "ContractPolicy")])
def _policies(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): _copy(body)}
