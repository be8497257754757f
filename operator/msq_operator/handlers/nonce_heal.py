"""Heal a relayer's nonce: a stuck transaction through the relayer's own API (see render/nonce_heal.py), a
drifted counter by restarting the relayer.

Called by the relayer's observe pass when its NonceHealthy condition is False. One step per pass: a stuck
transaction's attempt is recorded in status.nonceHealing first, then the relayer is asked; the record, not
the process, keeps the bound.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf

from msq_operator import faults, runtime
from msq_operator.metrics import NONCE_HEAL_ATTEMPTS
from msq_operator.relayer_api import RelayerApi, RelayerApiError
from msq_operator.render.conditions import now_rfc3339
from msq_operator.render.meta import ANNOTATION_NONCE_RESYNC
from msq_operator.render.nonce_heal import (
    HEALABLE_STATUSES,
    HealRecord,
    describe,
    next_step,
    replacement_request,
)
from msq_operator.resources import API_VERSION
from msq_operator.resources.relayer import PLURAL, RelayerSpec

log = logging.getLogger("msq_operator.nonce_heal")


def heal_stuck(
    relayer: dict[str, Any], rspec: RelayerSpec, api: RelayerApi, tx_id: str, chain_nonce: int
) -> str:
    """Take the next step for `tx_id`, the relayer's oldest pending transaction, while `chain_nonce` is the
    next nonce the chain takes from this address; returns the healing part of the Stuck message."""
    meta = relayer["metadata"]
    ns, name = meta["namespace"], meta["name"]
    healing = rspec.healing
    if not healing.enabled:
        return describe(None, healing)
    kube = runtime.get().kube
    # The record is read fresh: an attempt the previous pass (or process) recorded must count.
    fresh = kube.get(API_VERSION, "Relayer", ns, name)
    if fresh is None:
        return ""
    record = HealRecord.from_status((fresh.get("status") or {}).get("nonceHealing"))
    step = next_step(record, tx_id, time.time(), healing)
    log.info("%s/%s: stuck transaction %s, next step %s (record %s)", ns, name, tx_id, step, record)
    if step == "Wait":
        return describe(record, healing)
    try:
        tx = api.transaction(tx_id)
    except RelayerApiError as exc:
        return f"healing: cannot read transaction {tx_id}: {exc}"
    status = str(tx.get("status") or "").lower()
    log.info(
        "%s/%s: transaction %s is %s at nonce %s (chain %s), hash %s, max fee %s",
        ns,
        name,
        tx_id,
        status,
        tx.get("nonce"),
        chain_nonce,
        tx.get("hash"),
        tx.get("max_fee_per_gas") or tx.get("gas_price"),
    )
    if status not in HEALABLE_STATUSES:
        return f"healing: transaction {tx_id} is {status or 'unknown'}, nothing to heal"
    if tx.get("nonce") != chain_nonce:
        # Below the chain's nonce it is mined and the relayer has not looked yet (OZ checks every 8-12 s);
        # above it, an earlier nonce is what holds the chain, not this transaction.
        return f"healing: transaction {tx_id} has nonce {tx.get('nonce')}, the chain waits for {chain_nonce}"
    if step == "Exhausted":
        if record is not None and record.action != "Exhausted":
            message = (
                f"transaction {tx_id} at nonce {tx.get('nonce')} is still not mined after "
                f"{record.attempts} healing attempt(s); see docs/operations.md (A stuck nonce)"
            )
            kopf.warn(relayer, reason="HealingExhausted", message=message)
            _record(ns, name, {**_as_status(record), "action": "Exhausted"})
        return f"healing exhausted on transaction {tx_id} (spec.healing bound reached)"
    attempts = (record.attempts if record is not None and record.transaction_id == tx_id else 0) + 1
    entry = {
        "transactionId": tx_id,
        "nonce": tx.get("nonce"),
        "attempts": attempts,
        "action": step,
        "lastAttemptAt": now_rfc3339(),
        "result": "Recorded",
    }
    _record(ns, name, entry)
    faults.point("heal.recorded")
    NONCE_HEAL_ATTEMPTS.labels(ns, name, step).inc()
    try:
        answer = api.replace(tx_id, replacement_request(tx)) if step == "Replace" else api.cancel(tx_id)
    except RelayerApiError as exc:
        _record(ns, name, {**entry, "result": str(exc)[:300]})
        kopf.warn(relayer, reason="HealingRefused", message=f"{step} of transaction {tx_id}: {exc}")
        return f"healing: {step} attempt {attempts} refused: {exc}"
    _record(ns, name, {**entry, "result": "Accepted"})
    kopf.info(
        relayer,
        reason="Replaced" if step == "Replace" else "Canceled",
        message=(
            f"stuck transaction {tx_id} at nonce {tx.get('nonce')}: {step} attempt {attempts} accepted, "
            f"new hash {answer.get('hash')}"
        ),
    )
    return describe(HealRecord(tx_id, tx.get("nonce"), attempts, step, time.time()), healing)


def settle(relayer: dict[str, Any], status: dict[str, Any], stuck_id: str | None) -> None:
    """Once the healed transaction is no longer the stuck one, say so and clear the record."""
    record = HealRecord.from_status(status.get("nonceHealing"))
    if record is None or record.transaction_id == stuck_id:
        return
    meta = relayer["metadata"]
    kopf.info(
        relayer,
        reason="NonceHealed",
        message=(
            f"transaction {record.transaction_id} at nonce {record.nonce} no longer holds the nonce back "
            f"after {record.attempts} attempt(s), the last one {record.action}"
        ),
    )
    _record(meta["namespace"], meta["name"], None)


def _as_status(record: HealRecord) -> dict[str, Any]:
    return {
        "transactionId": record.transaction_id,
        "nonce": record.nonce,
        "attempts": record.attempts,
        "action": record.action,
    }


def _record(namespace: str, name: str, entry: dict[str, Any] | None) -> None:
    runtime.get().kube.patch_status(API_VERSION, PLURAL, namespace, name, {"nonceHealing": entry})


def resync_drift(relayer: dict[str, Any], rspec: RelayerSpec, chain_nonce: int, relayer_nonce: int) -> str:
    """The chain is ahead of the relayer's counter: its next transaction would be signed with a used nonce
    (OZ then fails it, "consumed externally"). Both engines raise their counter to the chain's nonce when they
    start, so the relayer is restarted, once per chain nonce: the annotation, copied to the pod template,
    names the nonce it was restarted for. Pending transactions wait in Redis across the restart."""
    if not rspec.healing.enabled:
        return "healing is off (spec.healing.enabled)"
    meta = relayer["metadata"]
    done = (meta.get("annotations") or {}).get(ANNOTATION_NONCE_RESYNC)
    if done == str(chain_nonce):
        return f"healing: restarted for chain nonce {chain_nonce} already; waiting for the relayer to resync"
    runtime.get().kube.patch_annotations(
        API_VERSION, PLURAL, meta["namespace"], meta["name"], {ANNOTATION_NONCE_RESYNC: str(chain_nonce)}
    )
    NONCE_HEAL_ATTEMPTS.labels(meta["namespace"], meta["name"], "Resync").inc()
    kopf.info(
        relayer,
        reason="NonceResync",
        message=(
            f"chain nonce {chain_nonce} is ahead of the relayer's next nonce {relayer_nonce}: restarting the "
            "relayer so it takes the chain's nonce before its next transaction"
        ),
    )
    return f"healing: relayer restarted to take chain nonce {chain_nonce}"
