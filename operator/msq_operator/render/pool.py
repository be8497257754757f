"""Objects a RelayerPool owns directly: its Relayers, and what its status says about them."""

from __future__ import annotations

from typing import Any

from msq_operator.render.meta import ANNOTATION_ENDPOINT, LABEL_POOL, MANAGED_BY, owned_meta
from msq_operator.resources import API_VERSION
from msq_operator.resources.pool import RelayerPoolSpec

LABEL_ORDINAL = "relayer.msq.io/ordinal"
GATEWAY_WEBHOOK_PATH = "/api/v1/webhooks/relayer"


def selector(pool_name: str) -> str:
    """The label selector of a pool's relayers (for the scale subresource, HPA and KEDA)."""
    return f"{LABEL_POOL}={pool_name}"


def relayer_name(pool_name: str, ordinal: int) -> str:
    return f"{pool_name}-{ordinal}"


def gateway_name(pool_name: str) -> str:
    return f"{pool_name}-gateway"


def gateway_url(pool: dict[str, Any], spec: RelayerPoolSpec) -> str:
    """The gateway's Service URL, unless an endpoint annotation points elsewhere (out-of-cluster runs)."""
    annotated = (pool["metadata"].get("annotations") or {}).get(ANNOTATION_ENDPOINT)
    if annotated:
        return str(annotated)
    meta = pool["metadata"]
    return f"http://{gateway_name(meta['name'])}.{meta['namespace']}.svc:{spec.gateway.port}"


def sweep_target(pool: dict[str, Any], spec: RelayerPoolSpec) -> str | None:
    """Where a removed relayer's balance goes: the pool's treasury, once it exists, with sweepOnRemove."""
    if spec.funding is None or not spec.funding.sweep_on_remove:
        return None
    return ((pool.get("status") or {}).get("funding") or {}).get("treasuryAddress") or None


def build_relayer(
    pool: dict[str, Any], spec: RelayerPoolSpec, ordinal: int, *, draining: bool
) -> dict[str, Any]:
    meta = pool["metadata"]
    name = relayer_name(meta["name"], ordinal)
    relayer_spec: dict[str, Any] = {
        "poolRef": {"name": meta["name"]},
        "network": spec.network.model_dump(by_alias=True, exclude_none=True),
        "image": spec.relayer.image,
        "resources": spec.relayer.resources.model_dump(by_alias=True),
        "policies": spec.relayer.policies.model_dump(by_alias=True, exclude_none=True),
        "signer": spec.signer.model_dump(by_alias=True, exclude_none=True),
        "redis": {"urlSecretRef": spec.redis.url_secret_ref.model_dump(by_alias=True)},
        "draining": draining,
        "stuckAfterSeconds": spec.relayer.stuck_after_seconds,
        "healing": spec.relayer.healing.model_dump(by_alias=True),
    }
    if spec.gateway.enabled:
        relayer_spec["webhook"] = {"url": gateway_url(pool, spec) + GATEWAY_WEBHOOK_PATH}
    sweep_to = sweep_target(pool, spec)
    if sweep_to:
        relayer_spec["sweepTo"] = sweep_to
    return {
        "apiVersion": API_VERSION,
        "kind": "Relayer",
        "metadata": owned_meta(
            pool,
            name,
            {
                LABEL_POOL: meta["name"],
                LABEL_ORDINAL: str(ordinal),
                "app.kubernetes.io/managed-by": MANAGED_BY,
            },
        ),
        "spec": relayer_spec,
    }


def ordinal_of(relayer: dict[str, Any]) -> int:
    try:
        return int((relayer["metadata"].get("labels") or {}).get(LABEL_ORDINAL, "-1"))
    except ValueError:
        return -1
