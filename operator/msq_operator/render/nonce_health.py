"""Is a relayer's nonce sequence healthy? Decided from three readings, without I/O.

- `chain_nonce`: the transactions of the relayer's address mined on chain, read *before* the relayer's own
  counter, so a transaction the relayer assigns and gets mined between the two reads cannot look like drift.
- `relayer_nonce`: the next nonce the relayer will assign (OZ's transaction counter, its /status `nonce`).
- `oldest_pending_age`: seconds since the oldest transaction the relayer has not seen mined was created.

Drift (the chain is ahead of the relayer: the key was used elsewhere, or the relayer's counter was lost)
makes the relayer's next transactions fail with "nonce too low"; a transaction pending longer than
`stuck_after` holds its nonce and every later one behind it.
"""

from __future__ import annotations

from msq_operator.render.conditions import Status


def nonce_health(
    chain_nonce: int | None, relayer_nonce: int | None, oldest_pending_age: float | None, stuck_after: int
) -> tuple[Status, str, str]:
    """(status, reason, message) of the NonceHealthy condition."""
    if chain_nonce is None or relayer_nonce is None:
        return "Unknown", "NotObserved", "the chain or the relayer cannot be read"
    nonces = f"chain nonce {chain_nonce}, relayer's next nonce {relayer_nonce}"
    if chain_nonce > relayer_nonce:
        return (
            "False",
            "Drift",
            f"{nonces}: {chain_nonce - relayer_nonce} transaction(s) of this address were mined that the "
            "relayer did not send (the key used elsewhere?); its next ones would fail until it resyncs",
        )
    if oldest_pending_age is not None and oldest_pending_age > stuck_after:
        return (
            "False",
            "Stuck",
            f"{nonces}: the oldest pending transaction is {oldest_pending_age:.0f}s old (stuckAfterSeconds "
            f"{stuck_after}); it holds nonce {chain_nonce} and every later one",
        )
    return "True", "InSequence", nonces
