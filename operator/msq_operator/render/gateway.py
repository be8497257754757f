"""The pool's gateway: its config file (the contract with `msq_gateway.config`), a Secret with the relayer
credentials it needs, a Deployment and a Service."""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from msq_operator.render.meta import (
    CONTAINER_SECURITY_CONTEXT,
    LABEL_COMPONENT,
    LABEL_POOL,
    MANAGED_BY,
    owned_meta,
    oz_relayer_id,
    secret_data,
)
from msq_operator.render.pool import gateway_name
from msq_operator.render.relayer import SECRET_API_KEY, SECRET_WEBHOOK_SIGNING_KEY
from msq_operator.resources.policy import ContractPolicySpec
from msq_operator.resources.pool import RelayerPoolSpec

CONFIG_DIR = "/etc/msq-gateway/config"
SECRETS_DIR = "/etc/msq-gateway/secrets"
CONFIG_FILE = "gateway.yaml"
# Paths in the config resolve against its own folder, so the same file works wherever both are mounted.
_SECRETS_REL = "../secrets"
REDIS_URL_KEY = "redis_url"
RPC_URL_KEY = "rpc_url"


def _meta(pool: dict[str, Any], name: str) -> dict[str, Any]:
    return owned_meta(pool, name, labels(pool))


def labels(pool: dict[str, Any]) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "msq-gateway",
        "app.kubernetes.io/instance": pool["metadata"]["name"],
        LABEL_COMPONENT: "gateway",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_POOL: pool["metadata"]["name"],
    }


def config_map_name(pool_name: str) -> str:
    return f"{gateway_name(pool_name)}-config"


def secret_name(pool_name: str) -> str:
    return f"{gateway_name(pool_name)}-secrets"


def _secret_file(relayer: dict[str, Any], key: str) -> str:
    return f"{_SECRETS_REL}/{relayer['metadata']['name']}.{key}"


def build_gateway_config(
    pool: dict[str, Any],
    spec: RelayerPoolSpec,
    relayers: list[tuple[dict[str, Any], str]],
    api_keys: dict[str, str],
    policies: list[tuple[str, ContractPolicySpec]],
) -> dict[str, Any]:
    """`relayers` are (Relayer object, endpoint URL) pairs; `api_keys` maps client name to its key (only the
    SHA-256 is rendered); `policies` are (name, spec) of the accepted ContractPolicies selecting this pool."""
    meta = pool["metadata"]
    forwarder = spec.gateway.forwarder
    if forwarder is None:
        raise ValueError("spec.gateway.forwarder is required when the gateway is enabled")
    chain: dict[str, Any] = {"chainId": spec.network.chain_id}
    # The same first URL the relayers try (render.relayer.rpc_urls): the Secret's, when there is one.
    if spec.network.rpc_url_secret_ref is not None:
        chain["rpcUrlFile"] = f"{_SECRETS_REL}/{RPC_URL_KEY}"
    else:
        chain["rpcUrl"] = spec.network.rpc_urls[0]

    quotas: list[dict[str, Any]] = []
    quota_of: dict[str, str] = {}
    for policy_name, policy in sorted(policies, key=lambda p: p[0]):
        for q in policy.quotas:
            if q.api_key in quota_of:
                continue  # the first policy (by name) that sets a client's quota wins; documented
            qname = f"{policy_name}-{q.api_key}"[:63].rstrip("-.")
            quota: dict[str, Any] = {"name": qname, "windowSeconds": q.window_seconds}
            if q.max_transactions is not None:
                quota["maxTransactions"] = q.max_transactions
            if q.max_gas is not None:
                quota["maxGas"] = int(q.max_gas)
            quotas.append(quota)
            quota_of[q.api_key] = qname

    keys: list[dict[str, Any]] = []
    for name in sorted(api_keys):
        entry: dict[str, Any] = {"name": name, "sha256": hashlib.sha256(api_keys[name].encode()).hexdigest()}
        if name in quota_of:
            entry["quota"] = quota_of[name]
        keys.append(entry)

    return {
        "apiVersion": "gateway.msq.io/v1",
        "kind": "GatewayConfig",
        "chain": chain,
        "forwarder": {"address": forwarder.address, "name": forwarder.name},
        "relayers": [
            {
                "id": oz_relayer_id(r["metadata"]["name"]),
                "url": url,
                "apiKeyFile": _secret_file(r, SECRET_API_KEY),
                "webhookSigningKeyFile": _secret_file(r, SECRET_WEBHOOK_SIGNING_KEY),
                "draining": bool(r["spec"].get("draining", False)),
            }
            for r, url in sorted(relayers, key=lambda p: p[0]["metadata"]["name"])
        ],
        "routing": {"strategy": spec.gateway.routing},
        "apiKeys": keys,
        "quotas": quotas,
        "policies": [
            {
                "name": name,
                "contracts": [
                    {
                        "address": c.address,
                        **({"name": c.name} if c.name else {}),
                        "methods": list(c.methods),
                        "maxValue": c.max_value,
                        "direct": c.direct,
                        "gasless": c.gasless,
                    }
                    for c in policy.contracts
                ],
                "blockedUsers": list(policy.blocked_users),
            }
            for name, policy in sorted(policies, key=lambda p: p[0])
        ],
        "redis": {
            "urlFile": f"{_SECRETS_REL}/{REDIS_URL_KEY}",
            "keyPrefix": f"msq-gw:{meta['namespace']}:{meta['name']}",
        },
    }


def build_config_map(pool: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(pool, config_map_name(pool["metadata"]["name"])),
        "data": {CONFIG_FILE: yaml.safe_dump(config, sort_keys=False)},
    }


def build_secret(pool: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """Relayer API keys and webhook signing keys (never a private key), the Redis URL and, if it is secret,
    the RPC URL: what the gateway reads through `...File` entries of its config."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _meta(pool, secret_name(pool["metadata"]["name"])),
        "data": secret_data(values),
    }


def build_deployment(pool: dict[str, Any], spec: RelayerPoolSpec) -> dict[str, Any]:
    pool_name = pool["metadata"]["name"]
    lbl = labels(pool)
    port = spec.gateway.port
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(pool, gateway_name(pool_name)),
        "spec": {
            "replicas": spec.gateway.replicas,
            "selector": {"matchLabels": {LABEL_POOL: pool_name, LABEL_COMPONENT: "gateway"}},
            # The config and secrets are mounted volumes the gateway reloads on change: scaling the pool
            # rewrites them without restarting the gateway.
            "template": {
                "metadata": {"labels": lbl},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "gateway",
                            "image": spec.gateway.image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["msq-gateway"],
                            "args": [
                                "--config",
                                f"{CONFIG_DIR}/{CONFIG_FILE}",
                                "--host",
                                "0.0.0.0",
                                "--port",
                                str(port),
                            ],
                            "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 10,
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": "http"},
                                "periodSeconds": 5,
                            },
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                            "securityContext": CONTAINER_SECURITY_CONTEXT,
                            "volumeMounts": [
                                {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                                {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": config_map_name(pool_name)}},
                        {"name": "secrets", "secret": {"secretName": secret_name(pool_name)}},
                    ],
                },
            },
        },
    }


def build_service(pool: dict[str, Any], spec: RelayerPoolSpec) -> dict[str, Any]:
    pool_name = pool["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(pool, gateway_name(pool_name)),
        "spec": {
            "type": "ClusterIP",
            "selector": {LABEL_POOL: pool_name, LABEL_COMPONENT: "gateway"},
            "ports": [{"name": "http", "port": spec.gateway.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
