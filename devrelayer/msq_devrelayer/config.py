"""OZ Relayer's `config.json`, validated the way OZ validates it, and resolved for one relayer.

The models mirror OZ's config-file structs: objects OZ reads with `deny_unknown_fields` forbid extra
keys here too, secrets are `{"type": "env" | "plain", "value": ...}`, and cross references (signer,
notification, network) must resolve. The dev relayer runs one relayer per process (one pod per key), so a
file with more or fewer than one relayer is refused; of OZ's signer types only `vault` is implemented.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from msq_devrelayer.errors import StartupError
from msq_devrelayer.settings import MIN_SECRET_LENGTH

_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_URL = re.compile(r"^(https?|wss?)://[^\s/]+")
OZ_SIGNER_TYPES = ("local", "aws_kms", "turnkey", "cdp", "vault", "vault_transit", "google_cloud_kms")
U128_MAX = 2**128 - 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlainOrEnv(_Strict):
    type: Literal["env", "plain"]
    value: str

    def resolve(self, env: Mapping[str, str], where: str) -> str:
        if self.type == "plain":
            return self.value
        if self.value not in env:
            raise StartupError(f"{where}: environment variable {self.value} is not set")
        return env[self.value]


class EnvRef(_Strict):
    type: Literal["env"]
    value: str


class RpcEntry(_Strict):
    url: str
    weight: int | None = Field(default=None, ge=0, le=100)


class EvmPolicies(_Strict):
    gas_price_cap: int | None = Field(default=None, ge=0, le=U128_MAX)
    whitelist_receivers: list[str] | None = None
    eip1559_pricing: bool | None = None
    private_transactions: bool | None = None
    min_balance: int | None = Field(default=None, ge=0, le=U128_MAX)
    gas_limit_estimation: bool | None = None

    @field_validator("whitelist_receivers")
    @classmethod
    def _addresses(cls, value: list[str] | None) -> list[str] | None:
        for addr in value or []:
            if not _ADDRESS.match(addr):
                raise ValueError(f"{addr!r} is not an address")
        return value


class RelayerEntry(BaseModel):
    # OZ reads relayers field by field (no deny_unknown_fields), so unknown keys are ignored here too.
    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, max_length=36)
    name: str = Field(min_length=1)
    network: str = Field(min_length=1)
    paused: bool
    network_type: Literal["evm", "solana", "stellar"]
    signer_id: str = Field(min_length=1)
    notification_id: str | None = None
    policies: dict[str, Any] | None = None
    custom_rpc_urls: list[str | RpcEntry] | None = None

    @field_validator("id")
    @classmethod
    def _id_format(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("ID must contain only letters, numbers, dashes and underscores")
        return value


class VaultSignerConfig(_Strict):
    address: str
    namespace: str | None = None
    role_id: PlainOrEnv
    secret_id: PlainOrEnv
    key_name: str = Field(min_length=1)
    mount_point: str | None = None

    @field_validator("address")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL of the Vault server")
        return value


class SignerEntry(_Strict):
    id: str = Field(min_length=1)
    type: str
    config: dict[str, Any]

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in OZ_SIGNER_TYPES:
            raise ValueError(f"unknown signer type {value!r} (OZ knows {', '.join(OZ_SIGNER_TYPES)})")
        if value != "vault":
            raise ValueError(f"signer type {value!r} is not implemented by the dev relayer (only 'vault')")
        return value


class NotificationEntry(_Strict):
    id: str = Field(min_length=1)
    type: Literal["webhook"]
    url: str
    signing_key: PlainOrEnv | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("Invalid Webhook URL")
        return value


class EvmNetworkEntry(_Strict):
    type: Literal["evm", "solana", "stellar"]
    network: str = Field(min_length=1)
    from_: str | None = Field(default=None, alias="from")
    rpc_urls: list[str | EnvRef | RpcEntry] = Field(min_length=1)
    explorer_urls: list[str | EnvRef] | None = None
    average_blocktime_ms: int | None = Field(default=None, ge=0)
    is_testnet: bool | None = None
    tags: list[str] | None = None
    chain_id: int = Field(ge=0, le=2**64 - 1)
    required_confirmations: int = Field(ge=0)
    features: list[str] | None = None
    symbol: str = Field(min_length=1)
    gas_price_cache: dict[str, Any] | None = None

    @field_validator("from_")
    @classmethod
    def _no_inheritance(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("network inheritance ('from') is not implemented by the dev relayer")
        return value


class ConfigFile(BaseModel):
    relayers: list[RelayerEntry]
    signers: list[SignerEntry]
    notifications: list[NotificationEntry]
    networks: list[dict[str, Any]] | str
    plugins: list[dict[str, Any]] | None = None


class _Secret:
    """A string that never shows up in a repr, a log line or a traceback's locals summary."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__


@dataclass(frozen=True)
class VaultSigner:
    signer_id: str
    vault_address: str
    namespace: str | None
    role_id: _Secret
    secret_id: _Secret
    key_name: str
    mount_point: str


@dataclass(frozen=True)
class Webhook:
    notification_id: str
    url: str
    signing_key: _Secret | None


@dataclass(frozen=True)
class Network:
    name: str
    chain_id: int
    rpc_urls: tuple[str, ...]
    eip1559: bool
    required_confirmations: int
    symbol: str
    average_blocktime_ms: int | None


@dataclass(frozen=True)
class RelayerConfig:
    """Everything the dev relayer needs, secrets resolved from the environment."""

    relayer_id: str
    name: str
    paused: bool
    network: Network
    signer: VaultSigner
    webhook: Webhook | None
    policies: EvmPolicies = field(default_factory=EvmPolicies)
    policies_explicit: bool = False


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(root)"


def _invalid(exc: ValidationError, prefix: str = "") -> StartupError:
    lines = [f"{prefix}{_loc(err['loc'])}: {err['msg']}" for err in exc.errors()]
    return StartupError("invalid config: " + "; ".join(lines))


def _parse(model: type[BaseModel], data: Any, where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, f"{where}.") from None


def _networks(raw: list[dict[str, Any]] | str, base: Path) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(raw, list):
        return [(f"networks.{i}", n) for i, n in enumerate(raw)]
    # OZ also takes a directory of network files, each `{"networks": [...]}`; relative to config.json.
    directory = Path(raw) if Path(raw).is_absolute() else base / raw
    if not directory.is_dir():
        raise StartupError(f"invalid config: networks: {raw!r} is not a directory of network files")
    out: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(directory.glob("*.json")):
        for i, n in enumerate(json.loads(path.read_text()).get("networks", [])):
            out.append((f"networks({path.name}).{i}", n))
    return out


def _rpc_url(entry: str | EnvRef | RpcEntry, env: Mapping[str, str], where: str) -> str:
    if isinstance(entry, EnvRef):
        if entry.value not in env:
            raise StartupError(f"invalid config: {where}: environment variable {entry.value} is not set")
        url = env[entry.value]
    else:
        url = entry.url if isinstance(entry, RpcEntry) else entry
    if not _URL.match(url):
        raise StartupError(f"invalid config: {where}: Invalid RPC URL")
    return url


def parse_config(data: Any, env: Mapping[str, str], base_dir: Path = Path(".")) -> RelayerConfig:
    """Validate a parsed config.json; raise StartupError naming the first field OZ would reject."""
    if not isinstance(data, dict):
        raise StartupError("invalid config: the file must hold a JSON object")
    try:
        cfg = ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from None

    if len(cfg.relayers) != 1:
        raise StartupError(
            f"invalid config: relayers: the dev relayer runs exactly one relayer per process "
            f"(found {len(cfg.relayers)})"
        )
    if not cfg.signers:
        raise StartupError("invalid config: signers: at least one signer is required")
    if not cfg.notifications:
        # OZ refuses an empty notifications list (MissingField "notifications").
        raise StartupError("invalid config: notifications: at least one notification is required")
    for what, items in (("signers", cfg.signers), ("notifications", cfg.notifications)):
        ids = [item.id for item in items]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise StartupError(f"invalid config: {what}: duplicate id {sorted(dupes)[0]!r}")

    relayer = cfg.relayers[0]
    if relayer.network_type != "evm":
        raise StartupError(
            f"invalid config: relayers.0.network_type: {relayer.network_type!r} is not "
            "implemented by the dev relayer (only 'evm')"
        )
    policies = _parse(EvmPolicies, relayer.policies or {}, "relayers.0.policies")

    signer_idx = next((i for i, s in enumerate(cfg.signers) if s.id == relayer.signer_id), None)
    if signer_idx is None:
        raise StartupError(
            f"invalid config: relayers.0.signer_id: Relayer '{relayer.id}' references "
            f"non-existent signer '{relayer.signer_id}'"
        )
    vault = _parse(VaultSignerConfig, cfg.signers[signer_idx].config, f"signers.{signer_idx}.config")
    where = f"signers.{signer_idx}.config"
    signer = VaultSigner(
        signer_id=relayer.signer_id,
        vault_address=vault.address,
        namespace=vault.namespace,
        role_id=_Secret(vault.role_id.resolve(env, f"invalid config: {where}.role_id")),
        secret_id=_Secret(vault.secret_id.resolve(env, f"invalid config: {where}.secret_id")),
        key_name=vault.key_name,
        mount_point=vault.mount_point or "secret",
    )
    if not signer.role_id.reveal() or not signer.secret_id.reveal():
        raise StartupError(f"invalid config: {where}: role_id and secret_id cannot be empty")

    webhook: Webhook | None = None
    if relayer.notification_id is not None:
        idx = next((i for i, n in enumerate(cfg.notifications) if n.id == relayer.notification_id), None)
        if idx is None:
            raise StartupError(
                f"invalid config: relayers.0.notification_id: Relayer '{relayer.id}' "
                f"references non-existent notification '{relayer.notification_id}'"
            )
        note = cfg.notifications[idx]
        key: _Secret | None = None
        if note.signing_key is not None:
            value = note.signing_key.resolve(env, f"invalid config: notifications.{idx}.signing_key")
            if len(value) < MIN_SECRET_LENGTH:
                raise StartupError(
                    f"invalid config: notifications.{idx}.signing_key: Signing key must be at "
                    f"least {MIN_SECRET_LENGTH} characters long (found {len(value)})"
                )
            key = _Secret(value)
        webhook = Webhook(notification_id=note.id, url=note.url, signing_key=key)

    networks = _networks(cfg.networks, base_dir)
    if not networks:
        raise StartupError("invalid config: networks: config must contain at least one network")
    match = [(w, n) for w, n in networks if n.get("network") == relayer.network and n.get("type") == "evm"]
    if not match:
        raise StartupError(
            f"invalid config: relayers.0.network: no evm network named {relayer.network!r} in networks"
        )
    where, raw_net = match[0]
    net = _parse(EvmNetworkEntry, raw_net, where)
    rpc_source: list[str | EnvRef | RpcEntry] = list(relayer.custom_rpc_urls or net.rpc_urls)
    rpc_urls = tuple(_rpc_url(u, env, f"{where}.rpc_urls.{i}") for i, u in enumerate(rpc_source))
    network = Network(
        name=net.network,
        chain_id=net.chain_id,
        rpc_urls=rpc_urls,
        eip1559="eip1559" in (net.features or []),
        required_confirmations=net.required_confirmations,
        symbol=net.symbol,
        average_blocktime_ms=net.average_blocktime_ms,
    )
    return RelayerConfig(
        relayer_id=relayer.id,
        name=relayer.name,
        paused=relayer.paused,
        network=network,
        signer=signer,
        webhook=webhook,
        policies=policies,
        policies_explicit=relayer.policies is not None,
    )


def load_config(path: Path, env: Mapping[str, str]) -> RelayerConfig:
    try:
        text = path.read_text()
    except OSError as exc:
        raise StartupError(f"config: cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StartupError(
            f"invalid config: {path.name} is not JSON: {exc.msg} at line {exc.lineno}"
        ) from None
    return parse_config(data, env, path.parent)
