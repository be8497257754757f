"""Top-ups from a pool's treasury, decided without I/O: which relayer gets how much within the daily cap,
and what became of a transfer already recorded.

Exactly once rests on two rules the handler follows: a transfer is recorded (signed, with its nonce and
hash) in the pool's status before it is broadcast, and no new transfer is planned while a recorded one is
unsettled. A recorded transfer can then only be re-broadcast as the same signed bytes, which the chain
accepts at most once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, Literal

from msq_operator.resources.pool import Funding

DAY_SECONDS = 24 * 3600
TRANSFER_GAS = 21_000
KEPT_TRANSFERS = 50  # settled transfers kept in status (at least the last 24 hours' are needed for the cap)

State = Literal[
    "Funded", "ToppingUp", "TreasuryEmpty", "DailyCapReached", "TreasuryMissing", "ChainUnreachable"
]
STATES: tuple[str, ...] = (
    "Unconfigured",
    "Funded",
    "ToppingUp",
    "TreasuryEmpty",
    "DailyCapReached",
    "TreasuryMissing",
    "ChainUnreachable",
)
Outcome = Literal["Confirmed", "Failed", "Dropped", "InFlight"]


@dataclass(frozen=True)
class Balance:
    relayer: str
    address: str
    wei: int


@dataclass(frozen=True)
class Transfer:
    """A top-up as recorded in status.funding: signed before it is sent, so its nonce and hash are known."""

    relayer: str
    to: str
    value: str  # wei, decimal string (JSON numbers lose precision above 2^53)
    nonce: int
    hash: str
    raw: str
    recordedAt: str  # camelCase: the status field's name
    result: str = ""
    settledAt: str = ""

    def to_status(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v != ""}

    @classmethod
    def from_status(cls, data: dict[str, Any]) -> Transfer:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})


@dataclass(frozen=True)
class TopUp:
    relayer: str
    to: str
    value: int


@dataclass(frozen=True)
class Blocked:
    state: State
    message: str


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def sent_within(transfers: list[dict[str, Any]], now: dt.datetime, seconds: int = DAY_SECONDS) -> int:
    """Wei the confirmed transfers moved in the last `seconds` (what the daily cap counts)."""
    return sum(
        int(t["value"])
        for t in transfers
        if t.get("result") == "Confirmed" and (now - parse_time(t["settledAt"])).total_seconds() < seconds
    )


def plan_top_up(
    funding: Funding, balances: list[Balance], treasury_wei: int, fee_wei: int, sent_today: int
) -> TopUp | Blocked | None:
    """The next top-up: the poorest relayer below minBalance is brought to targetBalance, or as close as
    the cap allows. None when every relayer is at or above minBalance."""
    low = sorted((b for b in balances if b.wei < funding.min_balance), key=lambda b: (b.wei, b.relayer))
    if not low:
        return None
    names = ", ".join(b.relayer for b in low)
    room = funding.daily_cap - sent_today
    if room <= 0:
        return Blocked(
            "DailyCapReached",
            f"{names} below minBalance {funding.min_balance} wei; {sent_today} wei sent in the last 24 hours "
            f"reaches dailyCap {funding.daily_cap}",
        )
    poorest = low[0]
    value = min(funding.target_balance - poorest.wei, room)
    if treasury_wei < value + fee_wei:
        return Blocked(
            "TreasuryEmpty",
            f"{names} below minBalance {funding.min_balance} wei; the treasury holds {treasury_wei} wei, "
            f"a top-up of {value} wei needs {value + fee_wei} with the fee",
        )
    return TopUp(poorest.relayer, poorest.address, value)


def settle(recorded: Transfer, latest_nonce: int, receipt_status: int | None) -> Outcome:
    """What became of a recorded transfer. `latest_nonce` (the treasury's mined transaction count) must be
    read before the receipt: a transfer mined between the two reads then shows its receipt, and is never
    taken for one whose nonce something else used."""
    if receipt_status is not None:
        return "Confirmed" if receipt_status == 1 else "Failed"
    if latest_nonce > recorded.nonce:
        return "Dropped"  # the nonce went to another transaction of the treasury key: ours can never land
    return "InFlight"


def _priced(tx: dict[str, Any], max_fee: int, tip: int, eip1559: bool) -> dict[str, Any]:
    """EIP-1559 fees, or a legacy gas price (max_fee) on a network without them."""
    if eip1559:
        return {**tx, "type": 2, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}
    return {**tx, "gasPrice": max_fee}


def transfer_tx(
    top_up: TopUp, nonce: int, chain_id: int, max_fee: int, tip: int, eip1559: bool = True
) -> dict[str, Any]:
    tx = {"chainId": chain_id, "nonce": nonce, "to": top_up.to, "value": top_up.value, "gas": TRANSFER_GAS}
    return _priced(tx, max_fee, tip, eip1559)


def kept(transfers: list[dict[str, Any]], now: dt.datetime) -> list[dict[str, Any]]:
    """The settled transfers worth keeping: the last 24 hours' (the cap needs them), at least the newest."""
    recent = [t for t in transfers if (now - parse_time(t["settledAt"])).total_seconds() < DAY_SECONDS]
    return recent if len(recent) >= KEPT_TRANSFERS else transfers[-KEPT_TRANSFERS:]


def sweep_tx(
    balance: int, gas_price: int, nonce: int, chain_id: int, to: str, eip1559: bool = True
) -> dict[str, Any] | None:
    """Everything but the fee, to `to`. The price per gas is exactly `gas_price` (legacy: the gas price;
    EIP-1559: max fee and priority fee both, while the base fee is at most gas_price), so the fee is exactly
    TRANSFER_GAS x gas_price and nothing is left behind. None when the balance does not cover the fee."""
    fee = TRANSFER_GAS * gas_price
    if balance <= fee:
        return None
    tx = {"chainId": chain_id, "nonce": nonce, "to": to, "value": balance - fee, "gas": TRANSFER_GAS}
    return _priced(tx, gas_price, gas_price, eip1559)
