"""Relayer spec: one key, one OZ Relayer Deployment."""

from __future__ import annotations

from pydantic import Field

from msq_operator.resources.common import (
    DEFAULT_RELAYER_IMAGE,
    Healing,
    Network,
    RelayerPolicies,
    Resources,
    SecretKeyRef,
    Signer,
    Spec,
)

KIND = "Relayer"
PLURAL = "relayers"


class PoolRef(Spec):
    name: str


class RelayerRedis(Spec):
    url_secret_ref: SecretKeyRef = Field(alias="urlSecretRef")
    key_prefix: str | None = Field(default=None, alias="keyPrefix")


class Webhook(Spec):
    url: str


class RelayerSpec(Spec):
    pool_ref: PoolRef | None = Field(default=None, alias="poolRef")
    network: Network
    image: str = DEFAULT_RELAYER_IMAGE
    resources: Resources = Field(default_factory=Resources)
    policies: RelayerPolicies = Field(default_factory=RelayerPolicies)
    signer: Signer
    redis: RelayerRedis
    webhook: Webhook | None = None
    paused: bool = False
    draining: bool = False
    sweep_to: str | None = Field(default=None, alias="sweepTo")
    stuck_after_seconds: int = Field(default=300, alias="stuckAfterSeconds")
    healing: Healing = Field(default_factory=Healing)
