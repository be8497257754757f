"""Is a relayer's nonce sequence healthy? Decided from three readings, without I/O.

- `chain_nonce`: the transactions of the relayer's address mined on chain, read *before* the relayer's own
  counter, so a transaction the relayer assigns and gets mined between the two reads cannot look like drift.
- `relayer_nonce`: the next nonce the relayer will assign (OZ's transaction counter, its /status `nonce`).
- `oldest_pending_age`: seconds since the oldest transaction the relayer has not seen mined was created.
- `chain_still_for`: seconds the chain's nonce has not moved (as long as this operator has watched it).
  A chain that keeps taking the relayer's transactions is not stuck, however old its backlog: it is busy,
  or the relayer has not looked at its receipts yet (OZ checks every 8-12 s).

Drift (the chain is ahead of the relayer: the key was used elsewhere, or the relayer's counter was lost)
makes the relayer's next transactions fail with "nonce too low"; a transaction pending longer than
`stuck_after` holds its nonce and every later one behind it.
"""

from __future__ import annotations

from msq_operator.render.conditions import Status


def nonce_health(
    chain_nonce: int | None,
    relayer_nonce: int | None,
    oldest_pending_age: float | None,
    stuck_after: int,
    chain_still_for: float | None = None,
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
    still = oldest_pending_age if chain_still_for is None else chain_still_for
    if oldest_pending_age is not None and min(oldest_pending_age, still) > stuck_after:
        return (
            "False",
            "Stuck",
            f"{nonces}: the oldest pending transaction is {oldest_pending_age:.0f}s old and the chain took "
            f"none for {still:.0f}s (stuckAfterSeconds {stuck_after}); nonce {chain_nonce} holds every later "
            "one",
        )
    return "True", "InSequence", nonces
