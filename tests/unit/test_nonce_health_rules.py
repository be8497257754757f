"""The NonceHealthy decision: drift, stuck, in sequence, unknown."""

from __future__ import annotations

from msq_operator.render.nonce_health import nonce_health


def test_in_sequence_names_both_nonces() -> None:
    status, reason, message = nonce_health(7, 9, 3.0, 300)
    assert (status, reason) == ("True", "InSequence") and "7" in message and "9" in message


def test_the_chain_ahead_of_the_relayer_is_drift() -> None:
    status, reason, message = nonce_health(10, 8, None, 300)
    assert (status, reason) == ("False", "Drift")
    assert "chain nonce 10" in message and "next nonce 8" in message


def test_an_old_pending_transaction_is_stuck_and_names_the_nonce_it_holds() -> None:
    status, reason, message = nonce_health(4, 6, 301.0, 300)
    assert (status, reason) == ("False", "Stuck") and "nonce 4 holds" in message and "301s" in message


def test_a_chain_that_keeps_taking_transactions_is_not_stuck() -> None:
    # An old backlog, but the chain's nonce moved 10 s ago: busy, not stuck.
    assert nonce_health(4, 9, 900.0, 300, chain_still_for=10.0)[1] == "InSequence"
    status, reason, message = nonce_health(4, 9, 900.0, 300, chain_still_for=400.0)
    assert (status, reason) == ("False", "Stuck") and "none for 400s" in message


def test_unknown_without_either_reading() -> None:
    assert nonce_health(None, 3, None, 300)[0] == "Unknown"
    assert nonce_health(3, None, None, 300)[0] == "Unknown"
