"""The EVM transaction request body, checked as OZ checks it: one pricing method, sane numbers."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX = re.compile(r"^0x([0-9a-fA-F]{2})*$")
U128_MAX = 2**128 - 1
U256_MAX = 2**256 - 1

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
    value: int = Field(ge=0, le=U256_MAX)
    data: str | None = None
    gas_limit: int | None = Field(default=None, ge=0, le=2**64 - 1)
    gas_price: int | None = Field(default=None, ge=0, le=U128_MAX)
    speed: Speed | None = None
    max_fee_per_gas: int | None = Field(default=None, ge=0, le=U128_MAX)
    max_priority_fee_per_gas: int | None = Field(default=None, ge=0, le=U128_MAX)
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
        return self
