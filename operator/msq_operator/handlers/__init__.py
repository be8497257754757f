"""Kopf handlers: thin wrappers doing the I/O around the pure `render` functions. Importing this package
registers them all."""

from __future__ import annotations

from typing import Any

import kopf

from msq_operator import runtime
from msq_operator.handlers import autoscaler, cache_indexes, funding, policy, pool, relayer
from msq_operator.kube_io import Kube
from msq_operator.watch_cache import WatchCache

__all__ = ["autoscaler", "cache_indexes", "funding", "policy", "pool", "relayer"]


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
    # Progress and the diff base live in annotations, so nothing but our own fields is written to status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="relayer.msq.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="relayer.msq.io", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "relayer.msq.io/cleanup"
    settings.posting.level = 20  # INFO and above become Kubernetes Events
    settings.watching.server_timeout = 300
    settings.execution.max_workers = 8
    if not _runtime_ready():
        # Kopf fills the indexes (one watch per kind and namespace) before any resource handler runs.
        runtime.init(runtime.Runtime(kube=Kube.from_environment(cache=WatchCache.from_kopf(kwargs))))


def _runtime_ready() -> bool:
    try:
        runtime.get()
    except RuntimeError:
        return False
    return True


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_via_client(**kwargs)
