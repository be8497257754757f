"""The next healing step for a relayer's stuck transaction, decided from its recorded attempts, without I/O.

A stuck transaction holds its nonce and every later one behind it. It is healed through the relayer's own
API, never by signing outside it: a replacement (OZ `PUT .../transactions/{id}`) re-signs the same call at
the same nonce with a fee the relayer prices higher; a cancel (`DELETE`) puts a zero-value self-transfer at
that nonce. Both keep the nonce, so however often either is asked, at most one transaction of that nonce is
mined: a repeated attempt costs at most a fee, never a second transfer. The bound on attempts is kept by
recording each one (status.nonceHealing) before it is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from msq_operator.render.funding import parse_time
from msq_operator.resources.common import Healing

Action = Literal["Wait", "Replace", "Cancel", "Exhausted"]

# Only a transaction holding a nonce is healed: a `pending` one (not yet signed) waits in the relayer's own
# queue, behind whatever is stuck, and a `mined` one is no longer the chain's problem.
HEALABLE_STATUSES = frozenset({"sent", "submitted"})


@dataclass(frozen=True)
class HealRecord:
    transaction_id: str
    nonce: int | None
    attempts: int
    action: str
    last_attempt_at: float  # seconds since the epoch

    @classmethod
    def from_status(cls, raw: dict[str, Any] | None) -> HealRecord | None:
        if not raw or not raw.get("transactionId"):
            return None
        return cls(
            transaction_id=str(raw["transactionId"]),
            nonce=raw.get("nonce"),
            attempts=int(raw.get("attempts") or 0),
            action=str(raw.get("action") or ""),
            last_attempt_at=parse_time(raw["lastAttemptAt"]).timestamp() if raw.get("lastAttemptAt") else 0.0,
        )


def next_step(record: HealRecord | None, transaction_id: str, now: float, healing: Healing) -> Action:
    """What to do now about `transaction_id`, the relayer's oldest stuck transaction."""
    attempts = record.attempts if record is not None and record.transaction_id == transaction_id else 0
    if attempts and record is not None and now - record.last_attempt_at < healing.retry_after_seconds:
        return "Wait"
    if attempts < healing.replace_attempts:
        return "Replace"
    if healing.cancel and attempts == healing.replace_attempts:
        return "Cancel"
    return "Exhausted"


def replacement_request(tx: dict[str, Any]) -> dict[str, Any]:
    """The same call, priced again by the relayer: OZ ignores prices in a replacement request (it clears
    them, EvmTransactionData::for_replacement, and prices at market with its minimum bump), so none is sent;
    `fastest` is the speed it prices highest."""
    body: dict[str, Any] = {
        "value": int(str(tx.get("value") or "0"), 0),
        "data": tx.get("data") or "0x",
        "gas_limit": tx.get("gas_limit"),
        "speed": "fastest",
    }
    if tx.get("to"):
        body["to"] = tx["to"]
    return body


def describe(record: HealRecord | None, healing: Healing) -> str:
    """The healing part of the Stuck message."""
    if not healing.enabled:
        return "healing is off (spec.healing.enabled)"
    if record is None:
        return "healing: not tried yet"
    bound = healing.replace_attempts + (1 if healing.cancel else 0)
    return (
        f"healing: {record.action} attempt {record.attempts}/{bound} on transaction {record.transaction_id}"
    )
