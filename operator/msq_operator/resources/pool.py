"""RelayerPool spec."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from msq_operator.resources.common import (
    DEFAULT_GATEWAY_IMAGE,
    DEFAULT_RELAYER_IMAGE,
    Healing,
    Network,
    RelayerPolicies,
    Resources,
    SecretKeyRef,
    SecretRef,
    Signer,
    Spec,
)

KIND = "RelayerPool"
PLURAL = "relayerpools"


class Autoscaling(Spec):
    mode: Literal["Disabled", "Internal", "External"] = "Disabled"
    min_replicas: int = Field(default=1, alias="minReplicas")
    max_replicas: int = Field(default=10, alias="maxReplicas")
    target_queue_depth_per_relayer: int = Field(default=10, alias="targetQueueDepthPerRelayer")
    scale_down_stabilization_seconds: int = Field(default=300, alias="scaleDownStabilizationSeconds")
    poll_interval_seconds: int = Field(default=15, alias="pollIntervalSeconds")


class RelayerTemplate(Spec):
    image: str = DEFAULT_RELAYER_IMAGE
    resources: Resources = Field(default_factory=Resources)
    policies: RelayerPolicies = Field(default_factory=RelayerPolicies)
    stuck_after_seconds: int = Field(default=300, alias="stuckAfterSeconds")
    healing: Healing = Field(default_factory=Healing)


class RedisRef(Spec):
    url_secret_ref: SecretKeyRef = Field(alias="urlSecretRef")


class Forwarder(Spec):
    address: str
    name: str = "MSQForwarder"


class Gateway(Spec):
    enabled: bool = True
    replicas: int = 1
    image: str = DEFAULT_GATEWAY_IMAGE
    routing: Literal["RoundRobin", "LeastLoad"] = "RoundRobin"
    api_keys_secret_ref: SecretRef | None = Field(default=None, alias="apiKeysSecretRef")
    forwarder: Forwarder | None = None
    port: int = 8080


class Funding(Spec):
    """Top-ups of the pool's relayers from a treasury key in Vault (amounts in wei)."""

    treasury_key_path: str | None = Field(default=None, alias="treasuryKeyPath")
    min_balance: int = Field(alias="minBalance")
    target_balance: int = Field(alias="targetBalance")
    daily_cap: int = Field(alias="dailyCap")
    sweep_on_remove: bool = Field(default=False, alias="sweepOnRemove")

    @model_validator(mode="after")
    def _ordered(self) -> Funding:
        if self.target_balance <= self.min_balance:
            raise ValueError("spec.funding.targetBalance must be greater than minBalance")
        return self


class RelayerPoolSpec(Spec):
    network: Network
    replicas: int = 1
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    relayer: RelayerTemplate = Field(default_factory=RelayerTemplate)
    signer: Signer
    redis: RedisRef
    gateway: Gateway = Field(default_factory=Gateway)
    funding: Funding | None = None
