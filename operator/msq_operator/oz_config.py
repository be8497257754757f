"""OZ Relayer `config.json` for one relayer, as a pure function of its parameters.

The shape follows OZ Relayer's own config-file structs (v1.x): `relayers[]` (id <= 36 chars of
`[A-Za-z0-9_-]`, `network_type: evm`, `policies` with unknown fields denied), `signers[]` (`type: vault`,
`config: {address, role_id, secret_id, key_name, mount_point}` — `address` is the Vault URL),
`notifications[]` (at least one: OZ rejects an empty list) and inline `networks[]`.

Credentials are env references (`{"type": "env", "value": NAME}`), which OZ resolves at start: the
relayer's Secret supplies `VAULT_ROLE_ID`, `VAULT_SECRET_ID` and `WEBHOOK_SIGNING_KEY`. RPC URLs are literal
(OZ resolves no env reference there), which is why the operator keeps the rendered file in a Secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ENV_VAULT_ROLE_ID = "VAULT_ROLE_ID"
ENV_VAULT_SECRET_ID = "VAULT_SECRET_ID"
ENV_WEBHOOK_SIGNING_KEY = "WEBHOOK_SIGNING_KEY"

# OZ's own limits for relayer ids; signer and notification ids reuse the relayer id, so they hold too.
_OZ_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


@dataclass(frozen=True)
class EnvRef:
    """A value OZ reads from an environment variable at start."""

    name: str

    def __post_init__(self) -> None:
        if not _ENV_NAME.match(self.name):
            raise ValueError(f"environment variable name {self.name!r} is not valid")

    def render(self) -> dict[str, str]:
        return {"type": "env", "value": self.name}


@dataclass(frozen=True)
class VaultSignerParams:
    vault_address: str
    key_name: str
    mount_point: str = "secret"
    role_id: EnvRef = EnvRef(ENV_VAULT_ROLE_ID)
    secret_id: EnvRef = EnvRef(ENV_VAULT_SECRET_ID)
    # The relayer's EVM address. OZ's vault signer config denies unknown fields and has no place for it,
    # so it is not rendered; it is carried for the caller (status, env for the dev relayer's self-check).
    relayer_address: str | None = None
    namespace: str | None = None


@dataclass(frozen=True)
class RelayerPolicies:
    gas_price_cap: int | None = None
    min_balance: int | None = None
    whitelist_receivers: tuple[str, ...] | None = None
    eip1559_pricing: bool | None = None
    gas_limit_estimation: bool | None = None
    private_transactions: bool | None = None


@dataclass(frozen=True)
class OzRelayerParams:
    relayer_id: str
    network: str
    chain_id: int
    # Literal URLs: OZ has no env reference for rpc_urls (models/relayer/rpc_config.rs).
    rpc_urls: tuple[str, ...]
    signer: VaultSignerParams
    webhook_url: str
    eip1559: bool = True
    required_confirmations: int = 1
    webhook_signing: bool = True
    webhook_signing_key: EnvRef = EnvRef(ENV_WEBHOOK_SIGNING_KEY)
    policies: RelayerPolicies = field(default_factory=RelayerPolicies)
    paused: bool = False
    name: str | None = None
    symbol: str = "ETH"
    # OZ's config-file check lets a network without it through, but OZ cannot start a relayer on it
    # (models/network/evm/network.rs: "has no average_blocktime_ms"). None leaves it out; the operator's
    # build_oz_params always passes one (the CRD defaults it).
    average_blocktime_ms: int | None = None
    is_testnet: bool | None = None
    tags: tuple[str, ...] = ()


def _check(params: OzRelayerParams) -> None:
    if not _OZ_ID.match(params.relayer_id):
        raise ValueError(f"relayer_id {params.relayer_id!r}: OZ needs 1-36 characters of [A-Za-z0-9_-]")
    if not params.network:
        raise ValueError("network name is empty")
    if params.chain_id < 0:
        raise ValueError(f"chain_id {params.chain_id} is negative")
    if params.required_confirmations < 0:
        raise ValueError("required_confirmations is negative")
    if not params.symbol:
        raise ValueError("symbol is empty: OZ needs the native currency's ticker")
    # OZ divides by it when pricing EIP-1559 transactions and does not check it is positive.
    if params.average_blocktime_ms is not None and params.average_blocktime_ms <= 0:
        raise ValueError(f"average_blocktime_ms {params.average_blocktime_ms} is not positive")
    for tag in params.tags:
        if not tag:
            raise ValueError("tags: an empty tag")
    if not params.rpc_urls:
        raise ValueError("rpc_urls is empty: OZ needs at least one RPC URL")
    for url in params.rpc_urls:
        if not url.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError(f"rpc url {url!r} is not an http(s)/ws(s) URL")
    if not params.webhook_url.startswith(("http://", "https://")):
        raise ValueError(f"webhook_url {params.webhook_url!r} is not an http(s) URL")
    if not params.signer.vault_address.startswith(("http://", "https://")):
        raise ValueError(f"vault address {params.signer.vault_address!r} is not an http(s) URL")
    if not params.signer.key_name:
        raise ValueError("vault key_name is empty")
    pol = params.policies
    for name in ("gas_price_cap", "min_balance"):
        value = getattr(pol, name)
        if value is not None and value < 0:
            raise ValueError(f"policy {name} is negative")
    for addr in pol.whitelist_receivers or ():
        if not _ADDRESS.match(addr):
            raise ValueError(f"whitelist_receivers entry {addr!r} is not an address")


def _policies(pol: RelayerPolicies) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if pol.gas_price_cap is not None:
        out["gas_price_cap"] = pol.gas_price_cap
    if pol.min_balance is not None:
        out["min_balance"] = pol.min_balance
    if pol.whitelist_receivers is not None:
        out["whitelist_receivers"] = list(pol.whitelist_receivers)
    if pol.eip1559_pricing is not None:
        out["eip1559_pricing"] = pol.eip1559_pricing
    if pol.gas_limit_estimation is not None:
        out["gas_limit_estimation"] = pol.gas_limit_estimation
    if pol.private_transactions is not None:
        out["private_transactions"] = pol.private_transactions
    return out


def build_oz_config(params: OzRelayerParams) -> dict[str, Any]:
    """The complete `config.json` for one OZ Relayer instance. Raises ValueError for what OZ would reject."""
    _check(params)
    relayer: dict[str, Any] = {
        "id": params.relayer_id,
        "name": params.name or params.relayer_id,
        "network": params.network,
        "paused": params.paused,
        "network_type": "evm",
        "signer_id": params.relayer_id,
        "notification_id": params.relayer_id,
    }
    policies = _policies(params.policies)
    if policies:
        relayer["policies"] = policies

    vault: dict[str, Any] = {
        "address": params.signer.vault_address,
        "role_id": params.signer.role_id.render(),
        "secret_id": params.signer.secret_id.render(),
        "key_name": params.signer.key_name,
        "mount_point": params.signer.mount_point,
    }
    if params.signer.namespace:
        vault["namespace"] = params.signer.namespace

    notification: dict[str, Any] = {"id": params.relayer_id, "type": "webhook", "url": params.webhook_url}
    if params.webhook_signing:
        notification["signing_key"] = params.webhook_signing_key.render()

    network: dict[str, Any] = {
        "type": "evm",
        "network": params.network,
        "chain_id": params.chain_id,
        "required_confirmations": params.required_confirmations,
        "symbol": params.symbol,
        "rpc_urls": list(params.rpc_urls),
        # Without the `eip1559` feature OZ prices transactions as legacy (type 0) ones.
        "features": ["eip1559"] if params.eip1559 else [],
    }
    if params.average_blocktime_ms is not None:
        network["average_blocktime_ms"] = params.average_blocktime_ms
    if params.is_testnet is not None:
        network["is_testnet"] = params.is_testnet
    if params.tags:
        network["tags"] = list(params.tags)

    return {
        "relayers": [relayer],
        "signers": [{"id": params.relayer_id, "type": "vault", "config": vault}],
        "notifications": [notification],
        "networks": [network],
    }


def required_env(params: OzRelayerParams) -> tuple[str, ...]:
    """Environment variables the rendered config refers to (the relayer Secret must provide them)."""
    names = [params.signer.role_id.name, params.signer.secret_id.name]
    if params.webhook_signing:
        names.append(params.webhook_signing_key.name)
    return tuple(dict.fromkeys(names))
