"""Unknown outcomes made known.

Every submission is recorded as `unknown`, with what is sent, before the relayer sees it, and takes its
relayer transaction id once the relayer answers. One whose answer never came (the relayer read it, then the
connection timed out or broke, or the gateway died) keeps that record. A background pass looks for it at
that relayer: among the transactions the relayer created since (OZ lists them newest first), the first one
with the same `to`, `data` and `value` that no other record has claimed becomes this record's transaction,
and its status follows from then on (polls and webhooks). A relayer that still has no such transaction
after the give-up time never sent it: the record ends `failed`, saying so. When the relayer had answered the
submission itself (an HTTP 500 outside its envelope, e.g. its store failed mid-write) rather than timing
out, its handler had finished, so the first complete listing without the transaction settles it then
instead of after the give-up time. Either way the client's callback goes out, as for any status change. The
claim is a Redis SET NX on the (relayer, transaction) index, so two gateway processes, or two unknown
records of identical calls, never take the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError

from msq_gateway.relay import Services, after_update, refresh_from_relayer
from msq_gateway.relayer_client import RelayerError, list_transactions
from msq_gateway.runtime import RelayerTarget, Snapshot
from msq_gateway.store import Sent, TxRecord

log = logging.getLogger("msq_gateway.reconcile")

PER_PAGE = 50
MAX_PAGES = 10
# A relayer's created_at may be a little behind the gateway's clock.
CLOCK_SKEW_SECONDS = 5.0


def created_at(tx: dict[str, Any]) -> float | None:
    value = tx.get("created_at")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _hex(value: Any) -> str:
    text = str(value or "").lower()
    return text[2:] if text.startswith("0x") else text


def _int(value: Any) -> int | None:
    try:
        return int(str(value), 0)
    except (TypeError, ValueError):
        return None


def same_transaction(tx: dict[str, Any], sent: Sent) -> bool:
    return (
        _hex(tx.get("to")) == _hex(sent.to)
        and _hex(tx.get("data")) == _hex(sent.data)
        and _int(tx.get("value")) == _int(sent.value)
    )


async def candidates(
    svc: Services, relayer: RelayerTarget, since: float, timeout: float
) -> list[dict[str, Any]]:
    """The relayer's transactions created since `since` (less the skew), oldest first."""
    out: list[dict[str, Any]] = []
    for page in range(1, MAX_PAGES + 1):
        txs = await list_transactions(svc.upstreams.relayer(relayer), relayer, page, PER_PAGE, timeout)
        for tx in txs:
            at = created_at(tx)
            if at is not None and at < since - CLOCK_SKEW_SECONDS:
                return out[::-1]
            out.append(tx)
        if len(txs) < PER_PAGE:
            break
    return out[::-1]


async def reconcile_one(svc: Services, snap: Snapshot, rec: TxRecord, sent: Sent, now: float) -> bool:
    """One unknown record; returns whether it was settled (claimed or given up)."""
    limits = snap.config.limits
    # Every record is written `unknown` before its submission (relay.py): one younger than a submission's
    # time-outs may still be on its way, and another record's identical call must not be taken for it.
    if now - rec.created_at < limits.relay_connect_timeout_seconds + limits.relay_timeout_seconds:
        return False
    relayer = snap.relayers_by_id.get(rec.relayer_id)
    if relayer is not None:
        try:
            found = await candidates(svc, relayer, rec.created_at, snap.config.routing.status_timeout_seconds)
        except RelayerError as exc:
            log.warning("unknown outcome %s: relayer %s cannot be asked: %s", rec.id, rec.relayer_id, exc)
            found = None
        for tx in found or []:
            if not (isinstance(tx.get("id"), str) and same_transaction(tx, sent)):
                continue
            if await svc.store.claim(rec.id, rec.relayer_id, tx["id"]):
                claimed = await svc.store.get(rec.id)
                if claimed is not None:
                    await refresh_from_relayer(svc, snap, claimed)
                log.info("unknown outcome %s is relayer %s transaction %s", rec.id, rec.relayer_id, tx["id"])
                return True
        if found is None:
            return False  # unknown stays unknown while the relayer cannot be asked
        # A listing cut at MAX_PAGES may not reach back to the record's creation.
        if sent.answered and len(found) < MAX_PAGES * PER_PAGE:
            upd = await svc.store.give_up(
                rec.id,
                f"relayer {rec.relayer_id} answered HTTP 500 and has no such transaction: it was never sent",
            )
            if upd is not None:
                await after_update(svc, snap, upd)
            return True
    if now - rec.created_at < limits.unknown_give_up_seconds:
        return False
    where = f"relayer {rec.relayer_id}" + ("" if relayer is not None else " (no longer in the pool)")
    upd = await svc.store.give_up(rec.id, f"{where} has no such transaction: it was never sent")
    if upd is not None:
        await after_update(svc, snap, upd)
    return True


async def reconcile_pass(svc: Services, snap: Snapshot) -> int:
    settled = 0
    now = time.time()
    for rec, sent in await svc.store.unknown():
        if await reconcile_one(svc, snap, rec, sent, now):
            settled += 1
    return settled


async def run(services: Callable[[], Services], current: Callable[[], Snapshot]) -> None:
    while True:
        snap = current()
        await asyncio.sleep(snap.config.limits.unknown_reconcile_seconds)
        try:
            await reconcile_pass(services(), current())
        except RedisError as exc:
            log.warning("unknown outcomes not reconciled this pass: Redis: %s", exc)
        except Exception:
            log.exception("unknown outcomes not reconciled this pass")
