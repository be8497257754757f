"""The EVM transaction request body, checked as OZ checks it: one pricing method, sane numbers."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, field_validator, model_validator

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX = re.compile(r"^0x([0-9a-fA-F]{2})*$")
U128_MAX = 2**128 - 1
U256_MAX = 2**256 - 1
# OZ parses the body into a serde_json::Value first; without serde_json's arbitrary precision an integer above
# u64 becomes a float there, which none of OZ's integer fields accept (routes/relayer.rs send_transaction,
# models/transaction/request/mod.rs from_json). So every JSON number it takes is below 2**64.
JSON_INT_MAX = 2**64 - 1


def _json_uint(value: Any) -> Any:
    """A JSON integer as serde reads one into u64/u128: a non-negative whole number, not a bool, not a float,
    not a string (pydantic's lax mode would take "21000")."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a JSON integer")
    if not 0 <= value <= JSON_INT_MAX:
        raise ValueError(f"must be between 0 and {JSON_INT_MAX} as a JSON number")
    return value


_RADIX = {"0x": 16, "0o": 8, "0b": 2}
_DIGITS = {
    16: re.compile(r"^[0-9a-fA-F]*$"),
    10: re.compile(r"^[0-9]*$"),
    8: re.compile(r"^[0-7]*$"),
    2: re.compile(r"^[01]*$"),
}


def _u256(value: Any) -> Any:
    """`value` as OZ's U256 (ruint's serde) reads it: a JSON integer below 2**64, or a string, decimal or with
    a 0x/0o/0b prefix, up to 2**256 - 1. ruint skips `_` and reads no digits at all as 0."""
    if isinstance(value, str):
        base = _RADIX.get(value[:2].lower(), 10)
        digits = (value[2:] if base != 10 else value).replace("_", "")
        if not _DIGITS[base].match(digits):
            raise ValueError("must be a decimal or 0x-prefixed hex string")
        number = int(digits, base) if digits else 0
        if number > U256_MAX:
            raise ValueError("must fit in 256 bits")
        return number
    return _json_uint(value)


JsonUint = Annotated[int, BeforeValidator(_json_uint)]

Speed = Literal["fastest", "fast", "average", "safeLow"]
# OZ prices a request that names no pricing at all at this speed.
DEFAULT_SPEED: Speed = "fast"


def parse_timestamp(value: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp (with a time zone)."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("must carry a time zone")
    return parsed.timestamp()


class EvmTransactionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str | None = None
    value: Annotated[int, BeforeValidator(_u256)]
    data: str | None = None
    gas_limit: JsonUint | None = None
    gas_price: JsonUint | None = None
    speed: Speed | None = None
    max_fee_per_gas: JsonUint | None = None
    max_priority_fee_per_gas: JsonUint | None = None
    valid_until: str | None = None

    @field_validator("to")
    @classmethod
    def _to(cls, value: str | None) -> str | None:
        if value is not None and not _ADDRESS.match(value):
            raise ValueError("must be a 0x-prefixed 20-byte hex address")
        return value

    @field_validator("data")
    @classmethod
    def _data(cls, value: str | None) -> str | None:
        if value is not None and not _HEX.match(value):
            raise ValueError("must be 0x-prefixed hex with whole bytes")
        return value

    @field_validator("valid_until")
    @classmethod
    def _valid_until(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            parse_timestamp(value)
        except ValueError:
            raise ValueError("must be an RFC 3339 timestamp with a time zone") from None
        return value

    @model_validator(mode="after")
    def _one_pricing(self) -> EvmTransactionRequest:
        eip1559 = (self.max_fee_per_gas, self.max_priority_fee_per_gas)
        if (eip1559[0] is None) != (eip1559[1] is None):
            raise ValueError("max_fee_per_gas and max_priority_fee_per_gas must be given together")
        chosen = [self.gas_price is not None, self.speed is not None, eip1559[0] is not None]
        if sum(chosen) > 1:
            raise ValueError("give only one of speed, gas_price, or max_fee_per_gas+max_priority_fee_per_gas")
        if eip1559[0] is not None and eip1559[1] is not None and eip1559[1] > eip1559[0]:
            raise ValueError("max_priority_fee_per_gas cannot exceed max_fee_per_gas")
        if self.to is None and not self.data:
            raise ValueError("a transaction without 'to' must carry contract creation 'data'")
        if self.gas_limit is not None and self.gas_limit < (intrinsic := self.intrinsic_gas()):
            # OZ refuses this at the API (models/transaction/request/evm.rs), before any nonce is spent.
            raise ValueError(
                f"gas_limit is too low, intrinsic gas is {intrinsic} and gas_limit is {self.gas_limit}"
            )
        return self

    def intrinsic_gas(self) -> int:
        """The base cost OZ checks `gas_limit` against (utils/transaction.rs calculate_intrinsic_gas): 21000,
        or 53000 for a contract creation, plus 4 per zero and 16 per non-zero byte of data."""
        payload = bytes.fromhex(self.data[2:]) if self.data else b""
        zeros = payload.count(0)
        return (21_000 if self.to is not None else 53_000) + 4 * zeros + 16 * (len(payload) - zeros)
