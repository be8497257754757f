"""Custom resources as a platform engineer would write them, for tests and the demo's flow."""

from __future__ import annotations

from typing import Any

from tests.support.kube import GROUP, VERSION

VAULT_AUTH_SECRET = "vault-operator-token"
REDIS_SECRET = "relayer-redis"
API_KEYS_SECRET = "gateway-api-keys"


def pool(
    name: str,
    *,
    replicas: int,
    vault_addr: str,
    rpc_url: str,
    chain_id: int,
    forwarder: str,
    autoscaling: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    routing: str = "RoundRobin",
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "network": {"name": "anvil", "chainId": chain_id, "rpcUrls": [rpc_url], "requiredConfirmations": 1},
        "replicas": replicas,
        "signer": {
            "vaultAddress": vault_addr,
            "auth": {"method": "Token", "secretRef": {"name": VAULT_AUTH_SECRET}},
        },
        "redis": {"urlSecretRef": {"name": REDIS_SECRET}},
        "gateway": {
            "routing": routing,
            "apiKeysSecretRef": {"name": API_KEYS_SECRET},
            "forwarder": {"address": forwarder, "name": "MSQForwarder"},
        },
    }
    if autoscaling:
        spec["autoscaling"] = autoscaling
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RelayerPool",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": spec,
    }


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
