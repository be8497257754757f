"""Top-up decisions (render/funding.py): who gets how much within the cap, and what a recorded transfer's
outcome is, including the read order that keeps a just-mined transfer from being taken for a dropped one."""

from __future__ import annotations

import datetime as dt

import pytest

from msq_operator.render.funding import (
    TRANSFER_GAS,
    Balance,
    Blocked,
    TopUp,
    Transfer,
    kept,
    plan_top_up,
    sent_within,
    settle,
    sweep_tx,
)
from msq_operator.resources.pool import Funding

ETH = 10**18
FUNDING = Funding(minBalance=str(ETH), targetBalance=str(3 * ETH), dailyCap=str(5 * ETH))
NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


def _at(hours_ago: float) -> str:
    return (NOW - dt.timedelta(hours=hours_ago)).isoformat().replace("+00:00", "Z")


def test_the_poorest_relayer_below_min_is_brought_to_target() -> None:
    balances = [Balance("p-0", "0xa", 2 * ETH), Balance("p-1", "0xb", ETH // 2), Balance("p-2", "0xc", 0)]
    assert plan_top_up(FUNDING, balances, 100 * ETH, 10**15, 0) == TopUp("p-2", "0xc", 3 * ETH)


def test_nothing_to_do_at_or_above_min() -> None:
    assert plan_top_up(FUNDING, [Balance("p-0", "0xa", ETH)], 100 * ETH, 0, 0) is None


def test_the_cap_cuts_a_top_up_and_then_stops_them() -> None:
    low = [Balance("p-0", "0xa", 0)]
    assert plan_top_up(FUNDING, low, 100 * ETH, 0, 4 * ETH) == TopUp("p-0", "0xa", ETH)
    blocked = plan_top_up(FUNDING, low, 100 * ETH, 0, 5 * ETH)
    assert isinstance(blocked, Blocked) and blocked.state == "DailyCapReached"
    assert "p-0" in blocked.message and str(5 * ETH) in blocked.message


def test_an_empty_treasury_blocks_with_the_amounts() -> None:
    blocked = plan_top_up(FUNDING, [Balance("p-0", "0xa", 0)], 3 * ETH, 10**15, 0)
    assert isinstance(blocked, Blocked) and blocked.state == "TreasuryEmpty"
    assert str(3 * ETH + 10**15) in blocked.message


def test_the_cap_counts_confirmed_transfers_of_the_last_24_hours_only() -> None:
    transfers = [
        {"value": str(ETH), "result": "Confirmed", "settledAt": _at(1)},
        {"value": str(2 * ETH), "result": "Confirmed", "settledAt": _at(25)},
        {"value": str(4 * ETH), "result": "Dropped", "settledAt": _at(1)},
    ]
    assert sent_within(transfers, NOW) == ETH


def _recorded(nonce: int = 7) -> Transfer:
    return Transfer("p-0", "0xa", str(ETH), nonce, "0xhash", "0xraw", _at(0))


@pytest.mark.parametrize(
    ("latest_nonce", "receipt", "outcome"),
    [
        (7, None, "InFlight"),  # not mined: re-send the same bytes
        (8, 1, "Confirmed"),
        (8, 0, "Failed"),
        (8, None, "Dropped"),  # the nonce went elsewhere, ours has no receipt
    ],
)
def test_settle(latest_nonce: int, receipt: int | None, outcome: str) -> None:
    assert settle(_recorded(), latest_nonce, receipt) == outcome


def test_a_recorded_transfer_round_trips_through_status_without_empty_fields() -> None:
    t = _recorded()
    status = t.to_status()
    assert "result" not in status and Transfer.from_status(status) == t


def test_kept_holds_the_day_and_at_least_the_newest() -> None:
    old = [{"value": "1", "result": "Confirmed", "settledAt": _at(30 + i)} for i in range(60)]
    assert len(kept(old, NOW)) == 50
    day = [{"value": "1", "result": "Confirmed", "settledAt": _at(i / 10)} for i in range(70)]
    assert len(kept(old + day, NOW)) == 70


def test_target_must_exceed_min() -> None:
    with pytest.raises(ValueError, match="targetBalance must be greater than minBalance"):
        Funding(minBalance="5", targetBalance="5", dailyCap="10")


def test_a_sweep_leaves_exactly_nothing_behind() -> None:
    tx = sweep_tx(2 * ETH, 3_000_000_000, 4, 31337, "0xt")
    assert tx is not None and tx["value"] + TRANSFER_GAS * 3_000_000_000 == 2 * ETH
    # Max fee and tip equal: the price paid per gas is exactly gas_price whatever the base fee below it.
    assert tx["maxFeePerGas"] == tx["maxPriorityFeePerGas"] == 3_000_000_000 and tx["nonce"] == 4
    assert sweep_tx(TRANSFER_GAS * 3_000_000_000, 3_000_000_000, 0, 1, "0xt") is None


def test_without_eip1559_a_legacy_gas_price_is_used() -> None:
    tx = sweep_tx(ETH, 5, 0, 56, "0xt", eip1559=False)
    assert tx is not None and tx["gasPrice"] == 5 and "maxFeePerGas" not in tx and "type" not in tx
    assert tx["value"] + TRANSFER_GAS * 5 == ETH
