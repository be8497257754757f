"""Which calls the gateway relays: compiled once per config, evaluated per request with dict lookups only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from msq_gateway.config import PolicyConfig
from msq_gateway.errors import GatewayError

Kind = Literal["direct", "gasless"]


@dataclass(frozen=True)
class _Rule:
    policy: str
    selectors: frozenset[bytes]
    allow_all_methods: bool
    max_value: int
    direct: bool
    gasless: bool


@dataclass(frozen=True)
class CompiledPolicy:
    # lowercase address -> every rule for it, across policies
    rules: dict[str, tuple[_Rule, ...]]
    blocked: frozenset[str]
    # selector -> canonical signature, for messages
    names: dict[bytes, str]

    @classmethod
    def build(cls, policies: list[PolicyConfig]) -> CompiledPolicy:
        rules: dict[str, list[_Rule]] = {}
        names: dict[bytes, str] = {}
        blocked: set[str] = set()
        for policy in policies:
            blocked.update(a.lower() for a in policy.blocked_users)
            for contract in policy.contracts:
                sels = contract.selectors()
                names.update(sels)
                rules.setdefault(contract.address.lower(), []).append(
                    _Rule(
                        policy.name,
                        frozenset(sels),
                        contract.allow_all_methods,
                        contract.max_value,
                        contract.direct,
                        contract.gasless,
                    )
                )
        return cls({a: tuple(r) for a, r in rules.items()}, frozenset(blocked), names)

    def check(
        self,
        kind: Kind,
        to: str,
        data: bytes,
        value: int,
        *,
        user: str | None = None,
        field_prefix: str = "",
    ) -> None:
        """Raise the GatewayError of the first failed check; return if some rule allows the call.

        With several rules for one contract, the error reported is the one of the rule that got furthest,
        so a client learns the real blocker (e.g. value, not method) rather than an arbitrary one.
        """
        if user is not None and user.lower() in self.blocked:
            raise GatewayError(
                "user_blocked",
                f"{field_prefix}from: signer {user} is blocked by policy",
                f"{field_prefix}from",
            )
        rules = self.rules.get(to.lower())
        if not rules:
            raise GatewayError(
                "contract_not_allowed",
                f"{field_prefix}to: contract {to} is not allowed by any policy",
                f"{field_prefix}to",
            )
        selector = bytes(data[:4]) if len(data) >= 4 else None
        best: GatewayError | None = None
        best_rank = -1
        for rule in rules:
            if not (rule.direct if kind == "direct" else rule.gasless):
                err, rank = (
                    GatewayError(
                        f"{kind}_not_allowed",
                        f"{field_prefix}to: {kind} calls to {to} are not allowed (policy {rule.policy})",
                        f"{field_prefix}to",
                    ),
                    0,
                )
            elif not rule.allow_all_methods and (selector is None or selector not in rule.selectors):
                err, rank = self._method_error(selector, data, to, field_prefix), 1
            elif value > rule.max_value:
                err, rank = (
                    GatewayError(
                        "value_too_high",
                        f"{field_prefix}value: {value} wei exceeds the maximum {rule.max_value} for {to}",
                        f"{field_prefix}value",
                    ),
                    2,
                )
            else:
                return
            if rank > best_rank:
                best, best_rank = err, rank
        assert best is not None
        raise best

    def _method_error(self, selector: bytes | None, data: bytes, to: str, prefix: str) -> GatewayError:
        if selector is None:
            what = "a call without a 4-byte selector" if data else "a plain value transfer (empty data)"
        else:
            what = f"method {self.names.get(selector, '0x' + selector.hex())}"
        return GatewayError(
            "method_not_allowed", f"{prefix}data: {what} is not allowed on {to}", f"{prefix}data"
        )
