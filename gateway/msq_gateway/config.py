"""The gateway configuration file: the contract between the operator (which renders it) and the gateway.

`apiVersion: gateway.msq.io/v1`, `kind: GatewayConfig`, YAML or JSON, camelCase keys. Unknown keys are
errors, so a typo in a rendered file fails loudly instead of silently weakening a policy. Secrets (relayer
API keys, webhook signing keys, callback secrets, URLs carrying credentials) are never inline: each is read
from an environment variable (`...Env`) or a file (`...File`, e.g. a mounted Kubernetes Secret).
Every validation error names the field by its dotted path, e.g. `relayers[1].apiKeyEnv`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from eth_abi.registry import registry as abi_registry
from eth_utils import keccak, to_checksum_address
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

API_VERSION = "gateway.msq.io/v1"
KIND = "GatewayConfig"
UINT256_MAX = 2**256 - 1
# Quota arithmetic runs in Redis Lua, whose numbers are doubles: keep gas budgets exactly representable.
MAX_SAFE_INT = 2**53 - 1

_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_SIGNATURE = re.compile(r"^([A-Za-z_$][A-Za-z0-9_$]*)\((.*)\)$")


class ConfigError(ValueError):
    """The configuration is invalid; `problems` holds one `path: message` line per error."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid gateway config:\n  " + "\n  ".join(problems))
        self.problems = problems


def normalize_address(value: str) -> str:
    """Checksummed form of a 0x address; a mixed-case input must carry a valid EIP-55 checksum."""
    if not isinstance(value, str) or not _HEX_ADDRESS.match(value):
        raise ValueError("must be a 0x-prefixed 20-byte hex address")
    checksummed = to_checksum_address(value)
    body = value[2:]
    if body != body.lower() and body != body.upper() and value != checksummed:
        raise ValueError("has a mixed-case address with an invalid EIP-55 checksum")
    return checksummed


def parse_uint(value: Any) -> int:
    """Accepts a JSON integer, a decimal string or a 0x hex string; wei amounts often exceed 2**53."""
    if isinstance(value, bool):
        raise ValueError("must be an unsigned integer, not a boolean")
    if isinstance(value, int):
        out = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            if text[:2].lower() == "0x":
                out = int(text[2:], 16) if len(text) > 2 else -1
            elif text.isdigit() and text.isascii():
                out = int(text, 10)
            else:
                raise ValueError
        except ValueError:
            raise ValueError("must be an unsigned integer (JSON number, decimal string or 0x hex)") from None
    else:
        raise ValueError("must be an unsigned integer (JSON number, decimal string or 0x hex)")
    if out < 0 or out > UINT256_MAX:
        raise ValueError("must be between 0 and 2**256-1")
    return out


def canonical_signature(signature: str) -> str:
    """`transfer(address, uint)` -> `transfer(address,uint256)`: the text whose keccak is the selector."""
    text = "".join(signature.split())
    m = _SIGNATURE.match(text)
    if not m:
        raise ValueError(f"method {signature!r} is not a function signature like 'transfer(address,uint256)'")
    name, args = m.group(1), m.group(2)
    if args == "":
        return f"{name}()"
    types_str = f"({args})"
    try:
        from eth_abi.grammar import normalize, parse

        parsed = parse(normalize(types_str))
        parsed.validate()
        canonical = parsed.to_type_str()
    except Exception as exc:
        raise ValueError(f"method {signature!r} has invalid argument types: {exc}") from None
    if not abi_registry.has_encoder(canonical):
        raise ValueError(f"method {signature!r} has an unknown argument type")
    return f"{name}{canonical}"


def selector_of(signature: str) -> bytes:
    """The 4-byte function selector of a signature (canonicalized first)."""
    return keccak(text=canonical_signature(signature))[:4]


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            "must be 1-63 lowercase letters, digits, '.', '_' or '-', starting and ending alphanumeric"
        )
    return value


Address = Annotated[str, AfterValidator(normalize_address)]
Name = Annotated[str, AfterValidator(_check_name)]
Wei = Annotated[int, BeforeValidator(parse_uint)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=True,
    )


def _one_source(model: BaseModel, base: str, *, required: bool, inline: bool = False) -> None:
    """Exactly one of `<base>`, `<base>Env`, `<base>File` (inline only where allowed) may be set."""
    attrs = ([base] if inline else []) + [f"{base}_env", f"{base}_file"]
    aliases = [to_camel(a) for a in attrs]
    present = [alias for attr, alias in zip(attrs, aliases, strict=True) if getattr(model, attr) is not None]
    if len(present) > 1:
        raise ValueError(f"set only one of {', '.join(aliases)} (got {', '.join(present)})")
    if required and not present:
        raise ValueError(f"one of {', '.join(aliases)} is required")


class ChainConfig(_Model):
    """The chain every relayer of the pool sends to. `chainId` is also the EIP-712 domain chain id."""

    chain_id: int = Field(gt=0, description="EVM chain id, e.g. 80002 for Polygon Amoy.")
    rpc_url: str | None = Field(default=None, description="JSON-RPC URL (used for forwarder nonce reads).")
    rpc_url_env: str | None = Field(default=None, description="Environment variable holding the RPC URL.")
    rpc_url_file: str | None = Field(default=None, description="File holding the RPC URL.")

    @model_validator(mode="after")
    def _sources(self) -> ChainConfig:
        _one_source(self, "rpc_url", required=True, inline=True)
        return self


class ForwarderConfig(_Model):
    """The ERC2771Forwarder that gasless requests are executed through; its EIP-712 domain."""

    address: Address = Field(description="Forwarder contract address (EIP-712 verifyingContract).")
    name: str = Field(min_length=1, description="EIP-712 domain name the forwarder was deployed with.")
    version: str = Field(default="1", min_length=1, description='EIP-712 domain version ("1" for OZ 5.x).')


class RelayerConfig(_Model):
    """One OZ Relayer instance of the pool."""

    id: Name = Field(description="OZ relayer id (the `{relayer_id}` in its REST paths).")
    url: str = Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$", description="Base URL, e.g. http://rl-0:8080.")
    api_key_env: str | None = Field(
        default=None, description="Environment variable with the relayer API key."
    )
    api_key_file: str | None = Field(default=None, description="File with the relayer API key.")
    webhook_signing_key_env: str | None = Field(
        default=None, description="Environment variable with the key this relayer signs webhooks with."
    )
    webhook_signing_key_file: str | None = Field(
        default=None, description="File with the webhook signing key."
    )
    draining: bool = Field(default=False, description="Draining relayers get no new transactions.")

    @model_validator(mode="after")
    def _sources(self) -> RelayerConfig:
        _one_source(self, "api_key", required=True)
        _one_source(self, "webhook_signing_key", required=False)
        return self


class RoutingConfig(_Model):
    """How a relayer is picked for each transaction."""

    strategy: Literal["RoundRobin", "LeastLoad"] = Field(
        default="RoundRobin",
        description="RoundRobin, or LeastLoad by the relayers' pending transaction count.",
    )
    status_refresh_seconds: float = Field(
        default=1.0,
        ge=0.05,
        le=60,
        description="How often each relayer's /status is polled in the background.",
    )
    # OZ computes /status from Redis and the RPC node (balance); on a busy relayer it takes seconds.
    status_timeout_seconds: float = Field(
        default=5.0, gt=0, le=30, description="Timeout of one /status poll."
    )
    # A relayer busy with a burst answers /status late but still takes transactions: one slow poll must not
    # take every relayer of the pool out of routing at once (as kubelet's failureThreshold). A refused
    # connection takes it out at the first poll.
    unhealthy_after_failures: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Consecutive failed /status polls (timeouts, errors) before a relayer leaves routing.",
    )


class ApiKeyConfig(_Model):
    """A client of the gateway. Only the SHA-256 of the key is configured, never the key."""

    name: Name = Field(description="Client name, used in metrics, quotas and records.")
    sha256: str = Field(description="Lowercase hex SHA-256 of the API key.")
    quota: Name | None = Field(
        default=None, description="Name of an entry of `quotas`; none means unlimited."
    )
    callback_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Status changes of this client's transactions are POSTed here.",
    )
    callback_secret_env: str | None = Field(
        default=None, description="Environment variable with the HMAC key callbacks are signed with."
    )
    callback_secret_file: str | None = Field(default=None, description="File with the callback HMAC key.")

    @model_validator(mode="after")
    def _check(self) -> ApiKeyConfig:
        if not _SHA256_HEX.match(self.sha256):
            raise ValueError("sha256 must be 64 lowercase hex characters (the SHA-256 of the API key)")
        _one_source(self, "callback_secret", required=self.callback_url is not None)
        if self.callback_url is None and (self.callback_secret_env or self.callback_secret_file):
            raise ValueError("callbackSecretEnv/callbackSecretFile given without callbackUrl")
        return self


class QuotaConfig(_Model):
    """A fixed-window budget, counted per API key."""

    name: Name
    window_seconds: int = Field(ge=1, le=31 * 86400, description="Window length; counters reset at its end.")
    max_transactions: int | None = Field(
        default=None, ge=0, description="Transactions per window (none: unlimited)."
    )
    max_gas: int | None = Field(
        default=None, ge=0, le=MAX_SAFE_INT, description="Sum of gas limits per window (none: unlimited)."
    )


class ContractRule(_Model):
    """One allowed target contract."""

    address: Address
    name: str | None = Field(default=None, description="Label for humans and metrics.")
    methods: list[str] = Field(
        default_factory=list, description="Allowed methods by signature, e.g. 'transfer(address,uint256)'."
    )
    allow_all_methods: bool = Field(
        default=False, description="Allow any calldata (and plain value transfers)."
    )
    max_value: Wei = Field(default=0, description="Largest native value (wei) a call may carry.")
    direct: bool = Field(
        default=True, description="Allowed through /relay/direct (msg.sender is the relayer)."
    )
    gasless: bool = Field(
        default=True, description="Allowed through /relay/gasless (ERC-2771, via the forwarder)."
    )

    @model_validator(mode="after")
    def _check(self) -> ContractRule:
        if not self.methods and not self.allow_all_methods:
            raise ValueError("methods is empty: list allowed signatures or set allowAllMethods: true")
        for i, sig in enumerate(self.methods):
            try:
                canonical_signature(sig)
            except ValueError as exc:
                raise ValueError(f"methods[{i}]: {exc}") from None
        return self

    def selectors(self) -> dict[bytes, str]:
        return {selector_of(sig): canonical_signature(sig) for sig in self.methods}


class PolicyConfig(_Model):
    """One contract policy (the operator renders one per matching ContractPolicy object).

    A request is allowed if any policy's rule for its target allows it; a user blocked by any policy is
    blocked.
    """

    name: Name
    contracts: list[ContractRule] = Field(default_factory=list)
    blocked_users: list[Address] = Field(
        default_factory=list, description="Gasless signers that are refused."
    )


class RedisConfig(_Model):
    """Redis for quotas, idempotency records and transaction status."""

    url: str | None = Field(default=None, pattern=r"^rediss?://", description="redis:// or rediss:// URL.")
    url_env: str | None = Field(default=None, description="Environment variable holding the URL.")
    url_file: str | None = Field(default=None, description="File holding the URL.")
    key_prefix: str = Field(default="msq-gw", min_length=1, pattern=r"^[A-Za-z0-9:._-]+$")

    @model_validator(mode="after")
    def _sources(self) -> RedisConfig:
        _one_source(self, "url", required=True, inline=True)
        return self


class LimitsConfig(_Model):
    """Bounds and timeouts."""

    max_body_bytes: int = Field(
        default=65536, ge=1024, le=10 * 1024 * 1024, description="Larger bodies get 413."
    )
    relay_connect_timeout_seconds: float = Field(default=1.0, gt=0, le=30)
    # OZ gives up on a request after REQUEST_TIMEOUT_SECONDS (default 30, server_config.rs): waiting as long
    # keeps a slow but accepted submission from being reported as an unknown outcome.
    relay_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=120,
        description="Read timeout of a submission; past it the outcome is unknown.",
    )
    rpc_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    default_gas_limit: int = Field(
        default=300_000, ge=21_000, description="Gas limit of a direct call without one."
    )
    max_gas_limit: int = Field(
        default=15_000_000, ge=21_000, le=MAX_SAFE_INT, description="Larger gas is refused."
    )
    gasless_gas_overhead: int = Field(
        default=100_000, ge=0, description="Added to request.gas (plus 1/63) for the forwarder's own work."
    )
    max_deadline_seconds: int = Field(
        default=7 * 86400,
        ge=60,
        le=10 * 365 * 86400,
        description="Gasless deadlines further ahead are refused.",
    )
    deadline_margin_seconds: int = Field(
        default=5, ge=0, le=3600, description="Gasless deadlines closer than this are refused as expired."
    )
    default_speed: Literal["fastest", "fast", "average", "safeLow"] = Field(
        default="fast", description="OZ Relayer gas price speed used when a request names none."
    )
    idempotency_ttl_seconds: int = Field(
        default=86400, ge=60, description="How long a first result is replayed."
    )
    idempotency_wait_seconds: float = Field(
        default=30.0, gt=0, le=600, description="How long a concurrent duplicate waits for the first result."
    )
    status_ttl_seconds: int = Field(
        default=7 * 86400, ge=60, description="How long transaction records are kept."
    )
    callback_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    callback_attempts: int = Field(default=3, ge=1, le=10)
    unknown_reconcile_seconds: float = Field(
        default=10.0, gt=0, le=3600, description="How often unknown outcomes are looked for at their relayer."
    )
    unknown_give_up_seconds: int = Field(
        default=600,
        ge=1,
        le=7 * 86400,
        description="An unknown outcome the relayer still does not have after this ends failed (never sent).",
    )


class GatewayConfig(_Model):
    """Root of the gateway configuration file."""

    api_version: Literal["gateway.msq.io/v1"] = Field(description="Always gateway.msq.io/v1.")
    kind: Literal["GatewayConfig"]
    chain: ChainConfig
    forwarder: ForwarderConfig
    relayers: list[RelayerConfig] = Field(default_factory=list)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)
    quotas: list[QuotaConfig] = Field(default_factory=list)
    policies: list[PolicyConfig] = Field(default_factory=list)
    redis: RedisConfig
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

    @model_validator(mode="after")
    def _cross_field(self) -> GatewayConfig:
        problems: list[str] = []
        _unique(problems, "relayers", [r.id for r in self.relayers], "id")
        _unique(problems, "apiKeys", [k.name for k in self.api_keys], "name")
        _unique(problems, "apiKeys", [k.sha256 for k in self.api_keys], "sha256")
        _unique(problems, "quotas", [q.name for q in self.quotas], "name")
        _unique(problems, "policies", [p.name for p in self.policies], "name")
        quota_names = {q.name for q in self.quotas}
        for i, key in enumerate(self.api_keys):
            if key.quota is not None and key.quota not in quota_names:
                problems.append(
                    f"apiKeys[{i}].quota: unknown quota {key.quota!r} (defined: "
                    f"{', '.join(sorted(quota_names)) or 'none'})"
                )
        for p, policy in enumerate(self.policies):
            for c, rule in enumerate(policy.contracts):
                if rule.address == self.forwarder.address:
                    problems.append(
                        f"policies[{p}].contracts[{c}].address: is the forwarder itself; "
                        "calls to it are built by the gateway, never allowed as targets"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _unique(problems: list[str], where: str, values: list[str], field: str) -> None:
    seen: dict[str, int] = {}
    for i, v in enumerate(values):
        if v in seen:
            problems.append(f"{where}[{i}].{field}: duplicate of {where}[{seen[v]}].{field} ({v!r})")
        seen.setdefault(v, i)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "literal[")):
            continue  # pydantic's validator-kind segments, not part of the user's path
        else:
            out += ("." if out else "") + part
    return out or "(root)"


def format_validation_error(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{_loc(tuple(err['loc']))}: {msg}")
    return problems


def parse_config(data: Any) -> GatewayConfig:
    """Validate a decoded document; raises ConfigError whose lines each name a field."""
    if not isinstance(data, dict):
        raise ConfigError(["(root): must be a mapping with apiVersion, kind, chain, ..."])
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def read_config_file(path: Path) -> GatewayConfig:
    return parse_config_text(path.read_text(), path)


def parse_config_text(text: str, path: Path) -> GatewayConfig:
    """The config in `text`, read from `path` (its suffix says JSON or YAML)."""
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError([f"(file) {path}: not valid {kind}: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"(file) {path}: {kind} nested deeper than the parser allows"]) from None
    return parse_config(data)


def read_secret(
    field: str, env: str | None, file: str | None, base_dir: Path, inline: str | None = None
) -> str:
    """Resolve one secret source, naming the config field in any error."""
    if inline is not None:
        return inline
    if env is not None:
        value = os.environ.get(env)
        if value is None or value == "":
            raise ConfigError([f"{field}Env: environment variable {env!r} is not set"])
        return value.strip()
    if file is not None:
        path = Path(file) if Path(file).is_absolute() else base_dir / file
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise ConfigError([f"{field}File: cannot read {str(path)!r}: {exc.strerror}"]) from None
        if not value:
            raise ConfigError([f"{field}File: {str(path)!r} is empty"])
        return value
    raise ConfigError([f"{field}: no source configured"])


def secret_files(cfg: GatewayConfig, base_dir: Path) -> list[Path]:
    """Every file the config reads secrets from; their changes trigger a reload like the config's own."""
    names = [cfg.chain.rpc_url_file, cfg.redis.url_file]
    for r in cfg.relayers:
        names += [r.api_key_file, r.webhook_signing_key_file]
    names += [k.callback_secret_file for k in cfg.api_keys]
    return [Path(n) if Path(n).is_absolute() else base_dir / n for n in names if n]


def json_schema() -> dict[str, Any]:
    """JSON Schema of the file (by alias), for the operator's tests and editors."""
    return GatewayConfig.model_json_schema(by_alias=True)
