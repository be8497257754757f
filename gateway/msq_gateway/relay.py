"""The relay pipeline: checks in order of cost, then hand-off to one relayer of the pool.

Gasless: chain/forwarder -> deadline -> gas bounds -> EIP-712 recovery -> policy -> forwarder nonce (one
RPC read) -> nonce reservation -> quota -> relay. Policy runs before the nonce read so a request the policy
refuses costs no chain round trip. Direct: gas bounds -> policy -> quota -> relay.

Nothing reaches a relayer before every check passed; any failure before the hand-off sent nothing, so the
quota charge and the nonce reservation are given back.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from msq_contracts.forward_request import ForwardRequest, InvalidSignature, encode_execute, recover_signer
from msq_gateway import metrics
from msq_gateway.chain import forwarder_nonce
from msq_gateway.errors import GatewayError
from msq_gateway.idempotency import Idempotency
from msq_gateway.models import DirectRelayRequest, GaslessRelayRequest, Kind, RelayAccepted, TxStatus
from msq_gateway.quota import Charge, Quotas
from msq_gateway.relayer_client import (
    NotAccepted,
    OutcomeUnknown,
    RelayerError,
    get_transaction,
    submit_transaction,
)
from msq_gateway.routing import Router
from msq_gateway.runtime import Client, Snapshot
from msq_gateway.store import KNOWN, TERMINAL, Sent, TxRecord, TxStore, Update
from msq_gateway.upstreams import Upstreams
from msq_gateway.webhooks import CallbackSender

log = logging.getLogger("msq_gateway.relay")

# Terminal statuses in which the forwarder did not consume the signer's nonce: the user may sign it again.
_NONCE_NOT_USED = frozenset({"failed", "canceled", "expired"})


@dataclass
class Services:
    """Long-lived clients and stores shared by all requests (one of each per process)."""

    upstreams: Upstreams
    redis: Redis
    store: TxStore
    quotas: Quotas
    idempotency: Idempotency
    router: Router
    callbacks: CallbackSender

    @classmethod
    def create(cls, upstreams: Upstreams, redis: Redis, prefix: str, router: Router) -> Services:
        return cls(
            upstreams,
            redis,
            TxStore(redis, prefix),
            Quotas(redis, prefix),
            Idempotency(redis, prefix),
            router,
            CallbackSender(upstreams.callbacks),
        )

    @property
    def prefix(self) -> str:
        return self.store.prefix


def _gasless_gas_limit(inner_gas: int, overhead: int) -> int:
    # The forwarder checks that the call kept gas/63 in reserve (EIP-150), then does its own work on top.
    return inner_gas + -(-inner_gas // 63) + overhead


async def relay_direct(
    svc: Services, snap: Snapshot, client: Client, body: DirectRelayRequest, gid: str
) -> RelayAccepted:
    limits = snap.config.limits
    gas = body.gas_limit if body.gas_limit is not None else limits.default_gas_limit
    if gas > limits.max_gas_limit:
        raise GatewayError(
            "invalid_field", f"gasLimit: {gas} exceeds the maximum {limits.max_gas_limit}", "gasLimit"
        )
    snap.policy.check("direct", body.to, body.data, body.value)
    payload = {
        "to": body.to,
        # A decimal string: OZ reads a JSON integer value only below 2**64 wei (about 18.4 ETH).
        "value": str(body.value),
        "data": "0x" + body.data.hex(),
        "gas_limit": gas,
        "speed": body.speed or limits.default_speed,
    }
    return await _relay(svc, snap, client, "direct", payload, gas, nonce_key=None, gid=gid)


async def relay_gasless(
    svc: Services, snap: Snapshot, client: Client, body: GaslessRelayRequest, gid: str
) -> RelayAccepted:
    limits = snap.config.limits
    req = body.request
    forwarder = snap.config.forwarder.address
    if body.chain_id is not None and body.chain_id != snap.domain.chain_id:
        raise GatewayError(
            "wrong_chain",
            f"chainId: this gateway relays on chain {snap.domain.chain_id}, "
            f"the request was signed for chain {body.chain_id}",
            "chainId",
        )
    if body.forwarder is not None and body.forwarder != forwarder:
        raise GatewayError(
            "wrong_forwarder",
            f"forwarder: this gateway uses forwarder {forwarder}, not {body.forwarder}",
            "forwarder",
        )
    now = time.time()
    if req.deadline < now + limits.deadline_margin_seconds:
        raise GatewayError(
            "expired",
            f"request.deadline: {req.deadline} has passed or is less than "
            f"{limits.deadline_margin_seconds}s away (now {int(now)})",
            "request.deadline",
        )
    if req.deadline > now + limits.max_deadline_seconds:
        raise GatewayError(
            "invalid_field",
            f"request.deadline: more than {limits.max_deadline_seconds}s in the future",
            "request.deadline",
        )
    gas_limit = _gasless_gas_limit(req.gas, limits.gasless_gas_overhead)
    if gas_limit > limits.max_gas_limit:
        raise GatewayError(
            "invalid_field",
            f"request.gas: {req.gas} plus forwarder overhead exceeds the maximum "
            f"gas limit {limits.max_gas_limit}",
            "request.gas",
        )
    # Lowercase skips ForwardRequest's own checksum re-verification: the model already validated them.
    fr = ForwardRequest(
        from_=req.from_.lower(),
        to=req.to.lower(),
        value=req.value,
        gas=req.gas,
        nonce=req.nonce,
        deadline=req.deadline,
        data=req.data,
    )
    try:
        signer = recover_signer(fr, body.signature, snap.domain)
    except InvalidSignature as exc:
        raise GatewayError("bad_signature", f"signature: {exc}", "signature") from None
    if signer != req.from_:
        raise GatewayError(
            "bad_signature",
            f"signature: recovers to {signer}, not request.from {req.from_} "
            "(wrong key, wrong chain/forwarder domain, or altered request)",
            "signature",
        )
    snap.policy.check("gasless", req.to, req.data, req.value, user=req.from_, field_prefix="request.")
    onchain = await forwarder_nonce(
        svc.upstreams.rpc, snap.rpc_url, forwarder, req.from_, limits.rpc_timeout_seconds
    )
    if req.nonce != onchain:
        raise GatewayError(
            "nonce_mismatch",
            f"request.nonce: {req.nonce} is not the forwarder's current nonce {onchain} for {req.from_}",
            "request.nonce",
        )
    # Two requests with the same (signer, nonce) can both pass the read above; only one can execute on chain.
    nonce_key = f"{svc.prefix}:gnonce:{forwarder.lower()}:{req.from_.lower()}:{req.nonce}"
    ttl = max(60, min(3600, int(req.deadline - now) + 60))
    if not await svc.redis.set(nonce_key, "1", nx=True, ex=ttl):
        raise GatewayError(
            "nonce_mismatch",
            f"request.nonce: {req.nonce} of {req.from_} is already used by a "
            "transaction in flight; wait for it or sign the next nonce",
            "request.nonce",
        )
    try:
        payload = {
            "to": forwarder,
            "value": str(req.value),
            "data": "0x" + encode_execute(fr, body.signature).hex(),
            "gas_limit": gas_limit,
            "speed": limits.default_speed,
            # The relayer must not send it once the forwarder would refuse it.
            "valid_until": datetime.fromtimestamp(req.deadline, UTC).isoformat().replace("+00:00", "Z"),
        }
        return await _relay(svc, snap, client, "gasless", payload, gas_limit, nonce_key=nonce_key, gid=gid)
    except GatewayError as exc:
        if exc.id is None:  # no transaction may exist: the nonce is free again
            await svc.redis.delete(nonce_key)
        raise
    except BaseException:
        await svc.redis.delete(nonce_key)
        raise


async def _relay(
    svc: Services,
    snap: Snapshot,
    client: Client,
    kind: str,
    payload: dict[str, Any],
    gas: int,
    nonce_key: str | None,
    gid: str,
) -> RelayAccepted:
    limits = snap.config.limits
    charge: Charge | None = await svc.quotas.charge(client.name, client.quota, gas)
    tried: set[str] = set()
    rejection: NotAccepted | None = None
    sent = Sent(str(payload["to"]), str(payload.get("data") or "0x"), str(payload.get("value", 0)))
    written = False
    try:
        while (relayer := svc.router.pick(snap, tried)) is not None:
            tried.add(relayer.id)
            # Written before the relayer sees it, so a gateway that dies from here on leaves an `unknown`
            # record the reconciler settles from the relayer's list (and a retry with the same
            # Idempotency-Key gets its id), not a transaction without a record that a retry sends again.
            await _write_unknown(
                svc, client, kind, gid, relayer.id, nonce_key, sent, limits.status_ttl_seconds
            )
            written = True
            try:
                tx = await submit_transaction(
                    svc.upstreams.relayer(relayer),
                    relayer,
                    payload,
                    connect_timeout=limits.relay_connect_timeout_seconds,
                    read_timeout=limits.relay_timeout_seconds,
                )
            except NotAccepted as exc:
                outcome = "unreachable" if exc.unreachable else "rejected"
                metrics.RELAY_ATTEMPTS.labels(relayer=relayer.id, outcome=outcome).inc()
                log.warning(
                    "relayer %s did not accept a %s transaction (%s); trying another",
                    relayer.id,
                    kind,
                    exc.reason,
                )
                if exc.unreachable:
                    svc.router.mark_unreachable(relayer.id, exc.reason)
                else:
                    rejection = exc
                continue
            except OutcomeUnknown as exc:
                metrics.RELAY_ATTEMPTS.labels(relayer=relayer.id, outcome="unknown").inc()
                metrics.RELAYED.labels(kind=kind, status="unknown").inc()
                if exc.answered:
                    answered = Sent(sent.to, sent.data, sent.value, answered=True)
                    await _write_unknown(
                        svc, client, kind, gid, relayer.id, nonce_key, answered, limits.status_ttl_seconds
                    )
                log.error(
                    "relayer %s: outcome of %s transaction %s unknown: %s", relayer.id, kind, gid, exc.reason
                )
                charge = None  # it may have been sent: keep it charged
                raise GatewayError(
                    "relay_outcome_unknown",
                    f"relayer {relayer.id} did not answer after receiving the transaction ({exc.reason}); "
                    f"it may or may not be sent. It was not retried elsewhere; the gateway looks for it at "
                    f"the relayer, and the status of record id {gid} (and your callback) will say",
                    None,
                    id=gid,
                ) from None
            metrics.RELAY_ATTEMPTS.labels(relayer=relayer.id, outcome="accepted").inc()
            metrics.RELAYED.labels(kind=kind, status="accepted").inc()
            svc.router.handed(relayer.id)
            charge = None
            status = str(tx.get("status") or "pending").lower()
            status = status if status in KNOWN else "pending"
            tx_hash = tx.get("hash") if isinstance(tx.get("hash"), str) else None
            try:
                rec = await svc.store.accept(
                    gid, relayer.id, tx["id"], status, tx_hash, limits.status_ttl_seconds
                )
            except RedisError:
                # The relayer has the transaction: answering with an error would invite a duplicate. The
                # record stays `unknown` and the reconciler finds this transaction at the relayer.
                log.exception(
                    "relayer %s accepted transaction %s (id %s) but its record could not be updated",
                    relayer.id,
                    tx["id"],
                    gid,
                )
                rec = None
            if rec is None:
                now = time.time()
                rec = TxRecord(
                    gid, kind, client.name, relayer.id, tx["id"], status, tx_hash, None, now, now, nonce_key
                )
            return accepted_body(rec)
    finally:
        if charge is not None:
            await svc.quotas.refund(charge)
    if written:  # no relayer took it: nothing was sent
        await svc.store.give_up(gid, "no relayer accepted the transaction: it was never sent")
    if rejection is not None:
        raise GatewayError(
            "relayer_rejected", f"every relayer refused the transaction; last: {rejection}", None
        )
    raise GatewayError(
        "no_relayer_available", "no relayer of the pool is healthy, unpaused and not draining", None
    )


async def _write_unknown(
    svc: Services,
    client: Client,
    kind: str,
    gid: str,
    relayer_id: str,
    nonce_key: str | None,
    sent: Sent,
    ttl: int,
) -> None:
    await svc.store.create(
        gid,
        kind=kind,
        client=client.name,
        relayer_id=relayer_id,
        tx_id=None,
        status="unknown",
        hash=None,
        ttl=ttl,
        nonce_key=nonce_key,
        sent=sent,
    )


def accepted_body(rec: TxRecord) -> RelayAccepted:
    return RelayAccepted(
        id=rec.id,
        kind=cast(Kind, rec.kind),
        status=cast(TxStatus, rec.status),
        relayer_id=rec.relayer_id,
        transaction_id=rec.tx_id or "",
        hash=rec.hash,
        created_at=rec.created_at,
    )


async def after_update(svc: Services, snap: Snapshot, upd: Update) -> None:
    """On a recorded change (webhook or poll): metrics, nonce release, client callback."""
    if not upd.changed:
        return
    rec = upd.record
    if rec.status != upd.previous:
        metrics.RELAYED.labels(kind=rec.kind, status=rec.status).inc()
    if rec.status in _NONCE_NOT_USED and rec.nonce_key:
        await svc.redis.delete(rec.nonce_key)
    client = snap.clients_by_name.get(rec.client)
    if client is not None and client.callback_url:
        event = {
            "id": rec.id,
            "kind": rec.kind,
            "status": rec.status,
            "hash": rec.hash,
            "relayerId": rec.relayer_id,
            "transactionId": rec.tx_id,
            "statusReason": rec.reason,
            "updatedAt": rec.updated_at,
        }
        limits = snap.config.limits
        svc.callbacks.send(client, event, limits.callback_timeout_seconds, limits.callback_attempts)


async def refresh_from_relayer(svc: Services, snap: Snapshot, rec: TxRecord) -> TxRecord:
    """Ask the relayer for a record that is not terminal yet; on any failure keep what the store has."""
    relayer = snap.relayers_by_id.get(rec.relayer_id)
    if rec.status in TERMINAL or rec.tx_id is None or relayer is None:
        return rec
    try:
        tx = await get_transaction(
            svc.upstreams.relayer(relayer), relayer, rec.tx_id, snap.config.routing.status_timeout_seconds
        )
    except RelayerError:
        return rec
    status = str(tx.get("status") or "").lower()
    tx_hash = tx.get("hash") if isinstance(tx.get("hash"), str) else None
    reason = tx.get("status_reason") if isinstance(tx.get("status_reason"), str) else None
    upd = await svc.store.update_status(rec.id, status, tx_hash, reason)
    if upd is None:
        return rec
    await after_update(svc, snap, upd)
    return upd.record
