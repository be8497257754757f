"""Spec types shared by RelayerPool and Relayer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Spec(BaseModel):
    # Unknown fields come from newer CRD versions; the API server already validated the object.
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class SecretKeyRef(Spec):
    name: str
    key: str = "url"


class SecretRef(Spec):
    name: str


class Network(Spec):
    name: str
    chain_id: int = Field(alias="chainId")
    rpc_urls: list[str] = Field(default_factory=list, alias="rpcUrls")
    rpc_url_secret_ref: SecretKeyRef | None = Field(default=None, alias="rpcUrlSecretRef")
    eip1559: bool = True
    required_confirmations: int = Field(default=1, alias="requiredConfirmations")
    # Defaults as in the CRD, for objects that never went through the API server (the server fills them in).
    symbol: str = "ETH"
    average_blocktime_ms: int = Field(default=12000, alias="averageBlocktimeMs")
    is_testnet: bool | None = Field(default=None, alias="isTestnet")
    tags: list[str] = Field(default_factory=list)


class Resources(Spec):
    requests: dict[str, str | int] = Field(default_factory=lambda: {"cpu": "100m", "memory": "128Mi"})
    limits: dict[str, str | int] = Field(default_factory=lambda: {"memory": "512Mi"})


class RelayerPolicies(Spec):
    gas_price_cap: str | None = Field(default=None, alias="gasPriceCap")
    min_balance: str | None = Field(default=None, alias="minBalance")
    whitelist_receivers: list[str] = Field(default_factory=list, alias="whitelistReceivers")
    eip1559_pricing: bool | None = Field(default=None, alias="eip1559Pricing")
    gas_limit_estimation: bool = Field(default=True, alias="gasLimitEstimation")


class SignerAuth(Spec):
    method: Literal["Token", "AppRole"]
    secret_ref: SecretRef = Field(alias="secretRef")


class Signer(Spec):
    vault_address: str = Field(alias="vaultAddress")
    kv_mount: str = Field(default="secret", alias="kvMount")
    key_path_prefix: str = Field(default="msq-relayer", alias="keyPathPrefix")
    approle_mount: str = Field(default="approle", alias="approleMount")
    auth: SignerAuth


DEFAULT_RELAYER_IMAGE = "openzeppelin/openzeppelin-relayer:v1.8.0"
DEFAULT_GATEWAY_IMAGE = "ghcr.io/msq/msq-relayer:0.1.0"


class Healing(Spec):
    """What the operator does with a Stuck transaction (NonceHealthy=False, reason Stuck): replace it through
    the relayer's own API at the same nonce and a higher fee, up to `replace_attempts` times, then cancel it
    (a zero-value self-transfer at that nonce). The relayer's gasPriceCap bounds every fee it pays."""

    enabled: bool = True
    replace_attempts: int = Field(default=3, alias="replaceAttempts")
    cancel: bool = True
    retry_after_seconds: int = Field(default=60, alias="retryAfterSeconds")
