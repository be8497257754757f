"""Custom resources as a platform engineer would write them, for tests and the demo's flow."""

from __future__ import annotations

from typing import Any

from msq_devstack.scenario import API_KEYS_SECRET, REDIS_SECRET, VAULT_AUTH_SECRET
from msq_devstack.scenario import pool_manifest as pool
from tests.support.kube import GROUP, VERSION

__all__ = ["API_KEYS_SECRET", "REDIS_SECRET", "VAULT_AUTH_SECRET", "contract_policy", "pool"]


def contract_policy(
    name: str,
    *,
    pool_labels: dict[str, str],
    contracts: list[dict[str, Any]],
    quotas: list[dict[str, Any]] | None = None,
    blocked: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ContractPolicy",
        "metadata": {"name": name},
        "spec": {
            "poolSelector": {"matchLabels": pool_labels},
            "contracts": contracts,
            "quotas": quotas or [],
            "blockedUsers": blocked or [],
        },
    }
