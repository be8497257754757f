"""A network's RPC URL as the operator uses it: `rpcUrlSecretRef`'s URL first, then `rpcUrls`."""

from __future__ import annotations

import kopf

from msq_operator import runtime
from msq_operator.render.relayer import rpc_urls
from msq_operator.resources.common import Network


def rpc_secret_url(namespace: str, network: Network) -> str | None:
    """The URL in `rpcUrlSecretRef`, read where it is needed so it never lands in a ConfigMap or status."""
    ref = network.rpc_url_secret_ref
    if ref is None:
        return None
    try:
        return runtime.get().kube.read_secret(namespace, ref.name)[ref.key]
    except (LookupError, KeyError):
        raise kopf.TemporaryError(
            f"spec.network.rpcUrlSecretRef: Secret {ref.name} has no key {ref.key!r}", delay=15
        ) from None


def rpc_url(namespace: str, network: Network) -> str:
    """The URL the operator itself sends to (top-ups, sweeps): the first one the relayers try."""
    return rpc_urls(network, rpc_secret_url(namespace, network))[0]
