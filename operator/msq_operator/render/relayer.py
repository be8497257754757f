"""Objects for one Relayer: its credentials Secret, OZ `config.json` Secret, Deployment and Service.

`config.json` is a Secret, not a ConfigMap: OZ reads a network's `rpc_urls` only as literal URLs (no env
reference there: models/relayer/rpc_config.rs, an entry is a string or `{url, weight}`), and a provider URL
usually carries an access key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from msq_operator import oz_config
from msq_operator.render.meta import (
    ANNOTATION_CONFIG_HASH,
    ANNOTATION_ENDPOINT,
    ANNOTATION_NONCE_RESYNC,
    CONTAINER_SECURITY_CONTEXT,
    LABEL_COMPONENT,
    LABEL_POOL,
    LABEL_RELAYER,
    MANAGED_BY,
    content_hash,
    owned_meta,
    oz_relayer_id,
    secret_data,
)
from msq_operator.resources.common import Network
from msq_operator.resources.relayer import RelayerSpec

HTTP_PORT = 8080
METRICS_PORT = 8081
CONFIG_DIR = "/app/config"
CONFIG_FILE = "config.json"

# Keys of the relayer's Secret. The private key is never one of them: it lives only in Vault.
SECRET_API_KEY = "api_key"
SECRET_WEBHOOK_SIGNING_KEY = "webhook_signing_key"
SECRET_ROLE_ID = "role_id"
SECRET_SECRET_ID = "secret_id"
SECRET_STORAGE_ENCRYPTION_KEY = "storage_encryption_key"


@dataclass(frozen=True)
class RelayerNames:
    relayer: str
    namespace: str

    @property
    def deployment(self) -> str:
        return self.relayer

    @property
    def service(self) -> str:
        return self.relayer

    @property
    def config(self) -> str:
        return f"{self.relayer}-config"

    @property
    def secret(self) -> str:
        return f"{self.relayer}-credentials"

    @property
    def oz_id(self) -> str:
        return oz_relayer_id(self.relayer)

    @property
    def service_url(self) -> str:
        return f"http://{self.service}.{self.namespace}.svc:{HTTP_PORT}"


def names_of(relayer: dict[str, Any]) -> RelayerNames:
    return RelayerNames(relayer=relayer["metadata"]["name"], namespace=relayer["metadata"]["namespace"])


def key_path(spec: RelayerSpec, namespace: str, name: str) -> str:
    return f"{spec.signer.key_path_prefix.strip('/')}/{namespace}/{name}"


def redis_key_prefix(spec: RelayerSpec, namespace: str, name: str) -> str:
    return spec.redis.key_prefix or f"msq:{namespace}:{name}"


def labels(relayer: dict[str, Any]) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": "openzeppelin-relayer",
        "app.kubernetes.io/instance": relayer["metadata"]["name"],
        LABEL_COMPONENT: "relayer",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_RELAYER: relayer["metadata"]["name"],
    }
    pool = (relayer["metadata"].get("labels") or {}).get(LABEL_POOL)
    if pool:
        out[LABEL_POOL] = pool
    return out


def _meta(relayer: dict[str, Any], name: str) -> dict[str, Any]:
    return owned_meta(relayer, name, labels(relayer))


def rpc_urls(network: Network, secret_url: str | None) -> tuple[str, ...]:
    """The network's RPC URLs in the order they are tried: the Secret's URL first, then `rpcUrls`."""
    return tuple(dict.fromkeys(([secret_url] if secret_url else []) + list(network.rpc_urls)))


def build_oz_params(
    relayer: dict[str, Any], spec: RelayerSpec, rpc_secret_url: str | None = None
) -> oz_config.OzRelayerParams:
    """`rpc_secret_url` is the URL read from `spec.network.rpcUrlSecretRef`, when the spec names one."""
    n = names_of(relayer)
    if spec.webhook is None:
        raise ValueError("spec.webhook.url is required: OZ Relayer needs one notification target")
    pol = spec.policies
    return oz_config.OzRelayerParams(
        relayer_id=n.oz_id,
        network=spec.network.name,
        chain_id=spec.network.chain_id,
        rpc_urls=rpc_urls(spec.network, rpc_secret_url),
        signer=oz_config.VaultSignerParams(
            vault_address=spec.signer.vault_address,
            key_name=key_path(spec, n.namespace, n.relayer),
            mount_point=spec.signer.kv_mount,
        ),
        webhook_url=spec.webhook.url,
        eip1559=spec.network.eip1559,
        required_confirmations=spec.network.required_confirmations,
        symbol=spec.network.symbol,
        average_blocktime_ms=spec.network.average_blocktime_ms,
        is_testnet=spec.network.is_testnet,
        tags=tuple(spec.network.tags),
        policies=oz_config.RelayerPolicies(
            gas_price_cap=int(pol.gas_price_cap) if pol.gas_price_cap else None,
            min_balance=int(pol.min_balance) if pol.min_balance else None,
            whitelist_receivers=tuple(pol.whitelist_receivers) or None,
            eip1559_pricing=pol.eip1559_pricing,
            gas_limit_estimation=pol.gas_limit_estimation,
        ),
        paused=spec.paused,
        name=n.relayer,
    )


def build_config_secret(
    relayer: dict[str, Any], spec: RelayerSpec, rpc_secret_url: str | None = None
) -> dict[str, Any]:
    config = oz_config.build_oz_config(build_oz_params(relayer, spec, rpc_secret_url))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _meta(relayer, names_of(relayer).config),
        "data": secret_data({CONFIG_FILE: json.dumps(config, indent=2, sort_keys=True) + "\n"}),
    }


def build_secret(relayer: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """`values` are the AppRole credentials, API key and webhook signing key (generated by the caller)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _meta(relayer, names_of(relayer).secret),
        "data": secret_data(values),
    }


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def build_deployment(relayer: dict[str, Any], spec: RelayerSpec, config: dict[str, Any]) -> dict[str, Any]:
    """`config` is the rendered config Secret: a change of its content rolls the pod."""
    n = names_of(relayer)
    lbl = labels(relayer)
    selector = {LABEL_RELAYER: n.relayer, LABEL_COMPONENT: "relayer"}
    env: list[dict[str, Any]] = [
        _secret_env("API_KEY", n.secret, SECRET_API_KEY),
        _secret_env(oz_config.ENV_WEBHOOK_SIGNING_KEY, n.secret, SECRET_WEBHOOK_SIGNING_KEY),
        _secret_env(oz_config.ENV_VAULT_ROLE_ID, n.secret, SECRET_ROLE_ID),
        _secret_env(oz_config.ENV_VAULT_SECRET_ID, n.secret, SECRET_SECRET_ID),
        _secret_env("REDIS_URL", spec.redis.url_secret_ref.name, spec.redis.url_secret_ref.key),
        {"name": "REDIS_KEY_PREFIX", "value": redis_key_prefix(spec, n.namespace, n.relayer)},
        # OZ keeps transactions in memory unless told otherwise (server_config.rs,
        # get_repository_storage_type: default "in_memory"): a restarted pod would forget every pending
        # transaction. Redis storage needs a base64 32-byte key to encrypt what it stores
        # (initialize_app_state.rs: refuses to start without STORAGE_ENCRYPTION_KEY).
        {"name": "REPOSITORY_STORAGE_TYPE", "value": "redis"},
        _secret_env("STORAGE_ENCRYPTION_KEY", n.secret, SECRET_STORAGE_ENCRYPTION_KEY),
        {"name": "CONFIG_DIR", "value": CONFIG_DIR},
        {"name": "CONFIG_FILE_NAME", "value": CONFIG_FILE},
        {"name": "APP_PORT", "value": str(HTTP_PORT)},
        {"name": "METRICS_PORT", "value": str(METRICS_PORT)},
        # OZ's switch is METRICS_ENABLED, exactly "true" (main.rs, `metrics_enabled`).
        {"name": "METRICS_ENABLED", "value": "true"},
        {"name": "LOG_MODE", "value": "stdout"},
    ]
    probe = {"httpGet": {"path": "/api/v1/health", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 3}
    ready = {"httpGet": {"path": "/api/v1/ready", "port": "http"}, "periodSeconds": 5, "timeoutSeconds": 3}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(relayer, n.deployment),
        "spec": {
            # One pod per key: two pods signing with one key would race for nonces.
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": lbl,
                    "annotations": pod_annotations(relayer, config),
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "runAsGroup": 1000,
                        "fsGroup": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "relayer",
                            "image": spec.image,
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [
                                {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
                                {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
                            ],
                            "env": env,
                            "resources": {
                                "requests": dict(spec.resources.requests),
                                "limits": dict(spec.resources.limits),
                            },
                            "livenessProbe": probe,
                            "readinessProbe": ready,
                            "securityContext": CONTAINER_SECURITY_CONTEXT,
                            "volumeMounts": [
                                {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "config", "secret": {"secretName": n.config}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def build_service(relayer: dict[str, Any]) -> dict[str, Any]:
    n = names_of(relayer)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(relayer, n.service),
        "spec": {
            "type": "ClusterIP",
            "selector": {LABEL_RELAYER: n.relayer, LABEL_COMPONENT: "relayer"},
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
            ],
        },
    }


def pod_annotations(relayer: dict[str, Any], config: dict[str, Any]) -> dict[str, str]:
    """A changed value restarts the relayer: a new configuration, or a nonce resync (both engines take the
    chain's nonce as the floor of their counter when they start)."""
    out = {ANNOTATION_CONFIG_HASH: content_hash(config["data"])}
    resync = (relayer["metadata"].get("annotations") or {}).get(ANNOTATION_NONCE_RESYNC)
    if resync:
        out[ANNOTATION_NONCE_RESYNC] = resync
    return out


def endpoint(relayer: dict[str, Any]) -> str:
    """Where the operator and gateway reach this relayer: the Service, unless an endpoint annotation says
    otherwise (an operator running outside the cluster, or the local pod stand-in)."""
    annotated = (relayer["metadata"].get("annotations") or {}).get(ANNOTATION_ENDPOINT)
    return annotated or names_of(relayer).service_url
