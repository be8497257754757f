"""Name the reason an `ERC2771Forwarder.execute` reverted, from the revert data of eth_call/estimateGas.

The forwarder discards the target's own revert data (a failing target surfaces as `FailedCall`), so the
forwarder's custom errors plus Solidity's `Error(string)` and `Panic(uint256)` cover everything
`execute` can return. Two names are not ABI errors:
- `EmptyRevert`: no data. The forwarder hits `invalid()` when the transaction gas limit left the target
  less gas than the request's `gas` (63/64 rule); an out-of-gas looks the same.
- `UnknownError(0x........)`: a selector not in the forwarder ABI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_hash.auto import keccak

from msq_contracts.artifacts import load_artifact

EMPTY_REVERT = "EmptyRevert"

_STANDARD_ERRORS: list[dict[str, Any]] = [
    {"type": "error", "name": "Error", "inputs": [{"name": "message", "type": "string"}]},
    {"type": "error", "name": "Panic", "inputs": [{"name": "code", "type": "uint256"}]},
]


@dataclass(frozen=True)
class ForwarderRevert:
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _ErrorSpec:
    name: str
    arg_names: tuple[str, ...]
    arg_types: tuple[str, ...]


@cache
def _errors_by_selector() -> dict[bytes, _ErrorSpec]:
    entries = [e for e in load_artifact("ERC2771Forwarder")["abi"] if e["type"] == "error"]
    specs: dict[bytes, _ErrorSpec] = {}
    for entry in entries + _STANDARD_ERRORS:
        # None of these errors take tuple arguments, so the canonical signature is a plain type list.
        types = tuple(i["type"] for i in entry["inputs"])
        selector = keccak(f"{entry['name']}({','.join(types)})".encode())[:4]
        specs[selector] = _ErrorSpec(entry["name"], tuple(i["name"] for i in entry["inputs"]), types)
    return specs


def _as_bytes(revert_data: bytes | str | None) -> bytes:
    if revert_data is None:
        return b""
    if isinstance(revert_data, str):
        return bytes.fromhex(revert_data.removeprefix("0x").removeprefix("0X"))
    return bytes(revert_data)


def decode_forwarder_revert(revert_data: bytes | str | None) -> ForwarderRevert:
    """Error name and decoded arguments (`{"deadline": 123}`) of forwarder revert data (bytes or 0x hex)."""
    data = _as_bytes(revert_data)
    if not data:
        return ForwarderRevert(EMPTY_REVERT)
    spec = _errors_by_selector().get(data[:4])
    if spec is None:
        return ForwarderRevert(f"UnknownError(0x{data[:4].hex()})")
    try:
        values = decode(list(spec.arg_types), data[4:])
    except DecodingError:
        # The selector matched but the payload is truncated: still worth reporting by name.
        return ForwarderRevert(spec.name)
    return ForwarderRevert(spec.name, dict(zip(spec.arg_names, values, strict=True)))


def decode_forwarder_error(revert_data: bytes | str | None) -> str:
    """Just the error name, e.g. `ERC2771ForwarderExpiredRequest`; see the module doc for the extra names."""
    return decode_forwarder_revert(revert_data).name
