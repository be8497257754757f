"""Process-wide clients the handlers share, created once at operator start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from msq_operator.chain import ChainClient
from msq_operator.kube_io import Kube
from msq_operator.observe import Observer


@dataclass
class Runtime:
    kube: Kube
    observer: Observer = field(default_factory=Observer)
    # Internal autoscaler memory: (time, recommended replicas) per pool, for the scale-down window.
    recommendations: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    last_autoscale: dict[str, float] = field(default_factory=dict)
    chains: dict[str, ChainClient] = field(default_factory=dict)
    # Per relayer: its address's chain nonce and since when it has been that (for NonceHealthy's Stuck).
    chain_nonce_since: dict[str, tuple[int, float]] = field(default_factory=dict)

    def unchanged_for(self, key: str, nonce: int, now: float) -> float:
        """Seconds the chain nonce under `key` has been `nonce`: 0 when it just moved (or on first sight)."""
        seen = self.chain_nonce_since.get(key)
        if seen is None or seen[0] != nonce:
            self.chain_nonce_since[key] = (nonce, now)
            return 0.0
        return now - seen[1]

    def chain(self, rpc_url: str) -> ChainClient:
        """One long-lived client per RPC URL (its HTTP connections are reused)."""
        client = self.chains.get(rpc_url)
        if client is None:
            client = self.chains[rpc_url] = ChainClient(rpc_url)
        return client


_runtime: Runtime | None = None


def get() -> Runtime:
    if _runtime is None:
        raise RuntimeError("operator runtime not initialised (startup handler has not run)")
    return _runtime


def init(runtime: Runtime) -> Runtime:
    global _runtime
    _runtime = runtime
    return runtime
