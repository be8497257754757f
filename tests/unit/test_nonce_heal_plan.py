"""The healing plan for a stuck transaction: replacements, then one cancel, spaced, bounded by the record."""

from __future__ import annotations

from msq_operator.render.nonce_heal import HealRecord, next_step, replacement_request
from msq_operator.resources.common import Healing

HEALING = Healing(replaceAttempts=2, retryAfterSeconds=30)


def _record(attempts: int, at: float, tx: str = "tx-1", action: str = "Replace") -> HealRecord:
    return HealRecord(transaction_id=tx, nonce=4, attempts=attempts, action=action, last_attempt_at=at)


def test_a_new_stuck_transaction_is_replaced_first() -> None:
    assert next_step(None, "tx-1", 1000.0, HEALING) == "Replace"


def test_an_attempt_is_given_retry_after_seconds_before_the_next() -> None:
    assert next_step(_record(1, 990.0), "tx-1", 1000.0, HEALING) == "Wait"
    assert next_step(_record(1, 960.0), "tx-1", 1000.0, HEALING) == "Replace"


def test_after_the_replacements_one_cancel_then_nothing_more() -> None:
    assert next_step(_record(2, 0.0), "tx-1", 1000.0, HEALING) == "Cancel"
    assert next_step(_record(3, 0.0, action="Cancel"), "tx-1", 1000.0, HEALING) == "Exhausted"
    assert next_step(_record(9, 0.0), "tx-1", 1000.0, HEALING) == "Exhausted"


def test_without_cancel_the_replacements_are_all() -> None:
    no_cancel = Healing(replaceAttempts=1, cancel=False)
    assert next_step(_record(1, 0.0), "tx-1", 1000.0, no_cancel) == "Exhausted"


def test_zero_replacements_cancel_at_once() -> None:
    assert next_step(None, "tx-1", 0.0, Healing(replaceAttempts=0)) == "Cancel"


def test_a_record_of_another_transaction_starts_the_count_again() -> None:
    assert next_step(_record(3, 999.0, tx="tx-0"), "tx-1", 1000.0, HEALING) == "Replace"


def test_a_record_restored_from_status_keeps_its_count_and_time() -> None:
    raw = {
        "transactionId": "tx-1",
        "nonce": 4,
        "attempts": 2,
        "action": "Replace",
        "lastAttemptAt": "2026-12-04T01:00:00Z",
    }
    record = HealRecord.from_status(raw)
    assert record is not None and record.attempts == 2 and record.last_attempt_at == 1796346000.0
    assert HealRecord.from_status(None) is None and HealRecord.from_status({}) is None


def test_the_replacement_is_the_same_call_priced_by_the_relayer() -> None:
    tx = {
        "to": "0x00000000000000000000000000000000000000aa",
        "value": "0x10",
        "data": "0xabcd",
        "gas_limit": 50_000,
        "max_fee_per_gas": 1,
        "nonce": 4,
    }
    assert replacement_request(tx) == {
        "to": "0x00000000000000000000000000000000000000aa",
        "value": 16,
        "data": "0xabcd",
        "gas_limit": 50_000,
        "speed": "fastest",
    }
