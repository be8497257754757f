"""Gas prices from the node: EIP-1559 fees from `eth_feeHistory`, legacy prices from `eth_gasPrice`.

Fee data is cached briefly: at hundreds of transactions a second, asking the node for every one would
double the RPC load for the same answer (OZ caches gas prices too).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from msq_devrelayer.rpc import JsonRpc, RpcError

# Priority-fee percentile of recent blocks per speed, and the legacy gas-price multiplier per speed.
_PERCENTILES = {"safeLow": 10, "average": 30, "fast": 50, "fastest": 70}
_LEGACY_MULTIPLIER = {"safeLow": 1.0, "average": 1.1, "fast": 1.25, "fastest": 1.5}
_HISTORY_BLOCKS = 4


@dataclass(frozen=True)
class Fees:
    """Either `gas_price` (legacy) or both EIP-1559 fields."""

    gas_price: int | None = None
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None

    @property
    def is_eip1559(self) -> bool:
        return self.max_fee_per_gas is not None


def min_bump(price: int) -> int:
    """The least price a node takes to replace a pending transaction: OZ's calculate_min_bump, +10 % in
    integer arithmetic and at least 1 wei (domain/transaction/evm/price_calculator.rs)."""
    return max(price * 11 // 10, price + 1)


class FeeOracle:
    def __init__(self, rpc: JsonRpc, gas_price_cap: int | None, ttl: float = 1.0) -> None:
        self._rpc = rpc
        self._cap = gas_price_cap
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self._at = 0.0
        self._base_fee = 0
        self._rewards: dict[int, int] = {}
        self._suggested_tip = 0
        self._gas_price = 0

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._at < self._ttl:
                return
            history, tip, gas_price = await self._rpc.batch(
                [
                    ("eth_feeHistory", [hex(_HISTORY_BLOCKS), "latest", sorted(_PERCENTILES.values())]),
                    ("eth_maxPriorityFeePerGas", []),
                    ("eth_gasPrice", []),
                ]
            )
            if isinstance(gas_price, Exception):
                raise gas_price
            self._gas_price = int(gas_price, 16)
            self._suggested_tip = 0 if isinstance(tip, Exception) else int(tip, 16)
            if isinstance(history, RpcError) or not isinstance(history, dict):
                # A node without feeHistory: fall back to the legacy price as the base fee.
                self._base_fee, self._rewards = self._gas_price, {}
            else:
                self._base_fee = int(history["baseFeePerGas"][-1], 16)
                rewards = history.get("reward") or []
                self._rewards = {}
                for i, pct in enumerate(sorted(_PERCENTILES.values())):
                    values = [int(r[i], 16) for r in rewards if len(r) > i]
                    self._rewards[pct] = sum(values) // len(values) if values else 0
            self._at = time.monotonic()

    async def base_fee(self) -> int:
        await self._refresh()
        return self._base_fee

    async def eip1559(self, speed: str, *, capped: bool = True) -> Fees:
        """Market fees for `speed`; `capped=False` ignores `gas_price_cap`, as OZ does for a cancel's no-op so
        that it can always outbid the transaction it replaces."""
        await self._refresh()
        tip = self._rewards.get(_PERCENTILES[speed], 0) or self._suggested_tip
        max_fee = 2 * self._base_fee + tip
        if capped and self._cap is not None:
            max_fee = min(max_fee, self._cap)
            tip = min(tip, max_fee)
        return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip)

    async def legacy(self, speed: str, *, capped: bool = True) -> Fees:
        await self._refresh()
        price = int(self._gas_price * _LEGACY_MULTIPLIER[speed])
        if capped and self._cap is not None:
            price = min(price, self._cap)
        return Fees(gas_price=price)
