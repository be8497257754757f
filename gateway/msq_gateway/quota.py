"""Per-API-key fixed-window quotas in Redis: transactions and gas per window, checked and charged atomically.

The window index comes from the gateway's clock, so all replicas of a gateway share windows as long as their
clocks agree to well within a window; each window's counters expire on their own. A charge is refunded when
the relay certainly sent nothing, so a refused or unroutable request does not eat the client's budget.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from msq_gateway.config import QuotaConfig
from msq_gateway.errors import GatewayError

# Returns {verdict, tx, gas}: 1 charged; 0 transactions exhausted; -1 gas exhausted.
_CHARGE = """
local tx = tonumber(redis.call('HGET', KEYS[1], 'tx') or '0')
local gas = tonumber(redis.call('HGET', KEYS[1], 'gas') or '0')
local add = tonumber(ARGV[3])
local max_tx = tonumber(ARGV[1])
local max_gas = tonumber(ARGV[2])
if max_tx >= 0 and tx + 1 > max_tx then return {0, tx, gas} end
if max_gas >= 0 and gas + add > max_gas then return {-1, tx, gas} end
redis.call('HINCRBY', KEYS[1], 'tx', 1)
redis.call('HINCRBY', KEYS[1], 'gas', add)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {1, tx + 1, gas + add}
"""


@dataclass(frozen=True)
class Charge:
    key: str
    gas: int


class Quotas:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._charge = redis.register_script(_CHARGE)

    async def charge(
        self, client: str, quota: QuotaConfig | None, gas: int, now: float | None = None
    ) -> Charge | None:
        """Charge one transaction of `gas`; raises quota_exceeded (429) with Retry-After when over budget."""
        if quota is None:
            return None
        now = time.time() if now is None else now
        window = quota.window_seconds
        slot = int(now // window)
        key = f"{self.prefix}:quota:{client}:{quota.name}:{window}:{slot}"
        max_tx = -1 if quota.max_transactions is None else quota.max_transactions
        max_gas = -1 if quota.max_gas is None else quota.max_gas
        verdict, used_tx, used_gas = await self._charge(keys=[key], args=[max_tx, max_gas, gas, window * 2])
        if verdict == 1:
            return Charge(key, gas)
        retry_after = max(1, math.ceil((slot + 1) * window - now))
        headers = {"Retry-After": str(retry_after)}
        if verdict == 0:
            raise GatewayError(
                "quota_exceeded",
                f"quota.maxTransactions: {used_tx} of {max_tx} transactions used in the current {window}s "
                f"window "
                f"of quota {quota.name!r}; retry in {retry_after}s",
                "quota.maxTransactions",
                headers=headers,
            )
        raise GatewayError(
            "quota_exceeded",
            f"quota.maxGas: {used_gas} gas used of {max_gas} in the current {window}s window of quota "
            f"{quota.name!r}; this transaction needs {gas}; retry in {retry_after}s",
            "quota.maxGas",
            headers=headers,
        )

    async def refund(self, charge: Charge | None) -> None:
        if charge is None:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(charge.key, "tx", -1)
            pipe.hincrby(charge.key, "gas", -charge.gas)
            await pipe.execute()
