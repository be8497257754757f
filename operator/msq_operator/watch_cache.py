"""What the timers re-read, from watches instead of requests: Kopf keeps an index of each kind below
(handlers/cache_indexes.py), fed by one watch per kind and namespace, and `Kube` reads these copies instead
of asking the API server on every pass (a pool's pass read its children, their Secrets and every object it
applies; a relayer's read its Secrets).

A copy may trail the server by one watch event. The cache is only ever used to find that nothing needs
doing; whatever acts on a difference (an apply that writes, a deletion) reads the server first, and reads
that must see the operator's own last write (funding, sweeps, healing records) never use it (`Kube.get`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from msq_operator.resources import API_VERSION

# (apiVersion, kind) -> the name of its Kopf index (the keyword Kopf passes it under).
INDEXES: dict[tuple[str, str], str] = {
    ("v1", "Secret"): "msq_cache_secrets",
    ("v1", "ConfigMap"): "msq_cache_configmaps",
    ("v1", "Service"): "msq_cache_services",
    ("apps/v1", "Deployment"): "msq_cache_deployments",
    (API_VERSION, "Relayer"): "msq_cache_relayers",
    (API_VERSION, "RelayerPool"): "msq_cache_relayerpools",
    (API_VERSION, "ContractPolicy"): "msq_cache_contractpolicies",
}


def _matches(labels: Mapping[str, str], selector: str) -> bool:
    """An equality selector (`a=b,c=d`, the only kind the operator uses)."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, sep, value = term.partition("=")
        if not sep or "!" in key:
            raise ValueError(f"label selector {selector!r}: only key=value terms are supported")
        if labels.get(key.strip()) != value.lstrip("=").strip():
            return False
    return True


class WatchCache:
    """Read-only views of the Kopf indexes above, by (apiVersion, kind)."""

    def __init__(self, indexes: Mapping[tuple[str, str], Mapping[Any, Iterable[dict[str, Any]]]]) -> None:
        self._indexes = dict(indexes)

    @classmethod
    def from_kopf(cls, kwargs: Mapping[str, Any]) -> WatchCache:
        """From the keyword arguments Kopf passes a handler (its indexes are among them)."""
        return cls({kind: kwargs[name] for kind, name in INDEXES.items()})

    def covers(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self._indexes

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The watched copy, or None when the watch has not seen it (absent, or not kept: ask the server)."""
        store = self._indexes[(api_version, kind)].get((namespace, name))
        bodies = _settled(lambda: list(store or ()))
        return bodies[0] if bodies else None

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        index = self._indexes[(api_version, kind)]
        out = []
        for key in _settled(lambda: list(index)):
            if key[0] != namespace:
                continue
            for body in _settled(lambda k=key: list(index.get(k) or ())):
                if _matches((body.get("metadata") or {}).get("labels") or {}, label_selector):
                    out.append(body)
        return sorted(out, key=lambda b: str(b["metadata"]["name"]))


def _settled(read: Callable[[], list[Any]]) -> list[Any]:
    """Kopf updates its indexes on the event loop while handler threads read them: a dict that changes size
    under an iteration raises RuntimeError, and the next try sees it settled."""
    for _ in range(5):
        try:
            return read()
        except RuntimeError:
            continue
    return read()
