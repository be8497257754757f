"""The relaying pipeline: queue intake, pricing, nonce assignment, signing, broadcast, and tracking to
`confirmed`.

Statuses follow OZ: `pending` (accepted, queued) -> `sent` (nonce assigned, signed, persisted) ->
`submitted` (the node has it) -> `mined` -> `confirmed` after the network's required confirmations;
`failed` when the node refuses it or it reverts, `expired` when `valid_until` passes before submission,
`canceled` when a cancel takes it back before it is signed, or once the no-op a cancel put at its nonce mines.

A replacement (PUT) or a cancel (DELETE) of a signed transaction keeps its nonce: the new version is signed,
stored with every earlier hash and broadcast, and whichever of those hashes mines decides the outcome. A
`submitted` transaction is otherwise never broadcast again (OZ bumps stuck ones after minutes; here healing
is explicit).

One process owns one relayer (its Deployment runs a single pod), so a single sender task assigns nonces
and the in-memory view of in-flight transactions is authoritative; Redis holds everything needed to pick
up again after a crash: records, the queue, the nonce counter and the free-nonce list.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from typing import Any

import redis.asyncio as aioredis
from eth_utils import to_checksum_address

from msq_devrelayer.api_models import DEFAULT_SPEED, EvmTransactionRequest, parse_timestamp
from msq_devrelayer.config import RelayerConfig
from msq_devrelayer.fees import FeeOracle, Fees, min_bump
from msq_devrelayer.metrics import Metrics
from msq_devrelayer.nonces import NonceManager
from msq_devrelayer.records import (
    CANCELED,
    CONFIRMED,
    EXPIRED,
    FAILED,
    MINED,
    PENDING,
    SENT,
    SUBMITTED,
    TxRecord,
    now_iso,
)
from msq_devrelayer.redis_keys import RedisKeys
from msq_devrelayer.rpc import JsonRpc, RpcError, RpcTransportError
from msq_devrelayer.signer import KeySigner
from msq_devrelayer.webhooks import Notifier

log = logging.getLogger(__name__)

INTAKE_BATCH = 64
SEND_BATCH = 64
# One in-flight id back to the head of the queue, only if it is still in flight (one step: a crash between the
# two commands would drop it from both lists).
_REQUEUE = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then redis.call('LPUSH', KEYS[2], ARGV[1]) end
"""
RECEIPT_BATCH = 256
REBROADCAST_AFTER = 3.0
GAS_LIMIT_BUFFER_PCT = 10
NOOP_GAS = 21_000
MAX_NONCE_CONFLICTS = 3
_KNOWN = ("already known", "already imported", "known transaction", "already exists")
_NONCE_TAKEN = ("nonce too low", "replacement transaction underpriced", "nonce has already been used")


class Rejected(Exception):
    """A request the relayer refuses (HTTP 400); the message says why."""


class UnknownTransaction(Exception):
    """No transaction with this id (HTTP 404)."""


# The statuses OZ lets a transaction be replaced or canceled in (evm_transaction.rs cancel_transaction,
# replace_transaction), and its refusal (utils.rs ensure_status_one_of, a ValidationError, so a 400).
HEALABLE = (PENDING, SENT, SUBMITTED)
CANCELED_BY_USER = "Transaction canceled by user"
CANCELED_WITH_NOOP = "Transaction canceled by user, replacing with NOOP"
# OZ's answer when the transaction to replace has no price of the kind the market price comes in
# (replacement.rs calculate_replacement_price): a speed-priced one not yet signed, or a legacy-priced one on
# an EIP-1559 relayer.
UNBUMPABLE = "Unable to calculate sufficient price bump for speed-based replacement"


def _refuse_status(rec: TxRecord, operation: str) -> None:
    if rec.status not in HEALABLE:
        expected = ", ".join(s.capitalize() for s in HEALABLE)
        raise Rejected(
            f"Invalid transaction state for {operation}. Current: {rec.status.capitalize()}, "
            f"Expected one of: [{expected}]"
        )


# What OZ counts as pending (constants/transactions.rs PENDING_TRANSACTION_STATUSES): not `mined`.
COUNTED_AS_PENDING = (PENDING, SENT, SUBMITTED)
NOT_FINAL = (PENDING, SENT, SUBMITTED, MINED)


def _ms(timestamp: str) -> float:
    """An RFC 3339 time as the ms score of OZ's indexes (transaction_redis.rs timestamp_to_score)."""
    return float(int(parse_timestamp(timestamp) * 1000))


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _matches(err: RpcError, needles: tuple[str, ...]) -> bool:
    msg = err.message.lower()
    return any(n in msg for n in needles)


class Engine:
    def __init__(
        self,
        cfg: RelayerConfig,
        keys: RedisKeys,
        redis: aioredis.Redis,
        rpc: JsonRpc,
        signer: KeySigner,
        notifier: Notifier | None,
        metrics: Metrics,
    ) -> None:
        self.cfg = cfg
        self.keys = keys
        self.redis = redis
        self.rpc = rpc
        self.signer = signer
        self.notifier = notifier
        self.metrics = metrics
        self.nonces = NonceManager()
        self.fees = FeeOracle(rpc, cfg.policies.gas_price_cap)
        self.balance: int | None = None
        self.ready = False
        self._use_eip1559 = cfg.network.eip1559 and cfg.policies.eip1559_pricing is not False
        self._prepared: asyncio.Queue[TxRecord] = asyncio.Queue(maxsize=4 * SEND_BATCH)
        self._retry: list[TxRecord] = []
        self._conflicts: dict[str, int] = {}
        self._sent: dict[str, tuple[TxRecord, float]] = {}
        self._submitted: dict[str, TxRecord] = {}
        self._mined: dict[str, TxRecord] = {}
        self._intake_busy = False
        # Ids the intake moved in flight and has not handed to the sender yet: after a failed batch (a Redis
        # outage) they go back to the queue instead of staying in flight until a restart.
        self._intake_ids: list[str] = []
        self._requeue_one = redis.register_script(_REQUEUE)
        # Held by whatever moves a transaction past `pending` or changes a signed one (the sender, the
        # tracker's updates, replace and cancel), so a replacement never interleaves with a signing or a
        # status change of the same transaction.
        self._lock = asyncio.Lock()
        # Pending transactions replaced or canceled since the intake may have read them: the sender reads
        # them again from Redis instead of signing the copy it was handed.
        self._touched: set[str] = set()
        self._last_gap_fill = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        blocktime = (cfg.network.average_blocktime_ms or 1000) / 1000
        self._poll = min(1.0, max(0.05, blocktime / 10))

    # ---- API side -------------------------------------------------------------------------------------

    def _check_policies(self, req: EvmTransactionRequest, *, balance: bool = True) -> None:
        pol = self.cfg.policies
        # `paused` is refused by the API (403) before the body is read, as OZ does.
        if (
            pol.whitelist_receivers
            and req.to is not None
            and req.to.lower() not in {a.lower() for a in pol.whitelist_receivers}
        ):
            raise Rejected(f"to: {req.to} is not in the relayer's whitelist_receivers")
        if req.gas_limit is None and pol.gas_limit_estimation is False:
            raise Rejected("gas_limit: required because the relayer's gas_limit_estimation policy is off")
        cap = pol.gas_price_cap
        for name in ("gas_price", "max_fee_per_gas"):
            value = getattr(req, name)
            if cap is not None and value is not None and value > cap:
                raise Rejected(f"{name}: {value} exceeds the relayer's gas_price_cap {cap}")
        if req.max_fee_per_gas is not None and not self.cfg.network.eip1559:
            raise Rejected(f"max_fee_per_gas: network {self.cfg.network.name} has no eip1559 feature")
        if (
            balance
            and pol.min_balance is not None
            and self.balance is not None
            and self.balance < pol.min_balance
        ):
            raise Rejected(f"Relayer balance {self.balance} is below its min_balance {pol.min_balance}")

    async def submit(self, req: EvmTransactionRequest) -> TxRecord:
        self._check_policies(req)
        rec = TxRecord(
            id=str(uuid.uuid4()),
            relayer_id=self.cfg.relayer_id,
            from_address=self.signer.address,
            status=PENDING,
            created_at=now_iso(),
            value=req.value,
            to=None if req.to is None else to_checksum_address(req.to),
            data=req.data,
            gas_limit=req.gas_limit,
            speed=req.speed,
            gas_price=req.gas_price,
            max_fee_per_gas=req.max_fee_per_gas,
            max_priority_fee_per_gas=req.max_priority_fee_per_gas,
            valid_until=req.valid_until,
        )
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.keys.transaction(rec.id), rec.to_json())
        pipe.sadd(self.keys.pending, rec.id)
        created_ms = _ms(rec.created_at)
        pipe.zadd(self.keys.status_sorted(PENDING), {rec.id: created_ms})
        pipe.zadd(self.keys.by_created_at, {rec.id: created_ms})
        pipe.sadd(self.keys.relayer_list, self.cfg.relayer_id)
        pipe.rpush(self.keys.queue_active, rec.id)
        await pipe.execute()
        # Like OZ, webhooks report status changes; acceptance itself is answered by this response.
        self.metrics.created(rec.id)
        return rec

    async def get(self, tx_id: str) -> TxRecord | None:
        raw = await self.redis.get(self.keys.transaction(tx_id))
        return None if raw is None else TxRecord.from_json(raw)

    # ---- API side: replace and cancel ----------------------------------------------------------------

    async def replace(self, tx_id: str, req: EvmTransactionRequest) -> TxRecord:
        """OZ's replace_transaction: same nonce, `to`/`value`/`data`/`gas_limit`/`speed` from the request, and
        prices never from it (EvmTransactionData::for_replacement clears them): the market price for the
        speed, each fee raised to at least the minimum bump over the old one."""
        self._check_policies(req, balance=False)
        async with self._lock:
            rec = await self._current(tx_id)
            _refuse_status(rec, "replace_transaction")
            speed = req.speed or rec.speed or DEFAULT_SPEED
            fees = await self._replacement_fees(rec, speed)
            to = None if req.to is None else to_checksum_address(req.to)
            gas_limit = req.gas_limit
            if gas_limit is None:
                gas_limit = await self._estimate(
                    dataclasses.replace(rec, to=to, value=req.value, data=req.data)
                )
            before = self._snapshot(rec)
            rec.to = to
            rec.value = req.value
            rec.data = req.data
            rec.speed = speed
            rec.gas_limit = gas_limit
            rec.gas_price = fees.gas_price
            rec.max_fee_per_gas = fees.max_fee_per_gas
            rec.max_priority_fee_per_gas = fees.max_priority_fee_per_gas
            if rec.status == PENDING:
                # Not signed yet: it goes out as it is now, with the nonce it is given then.
                self._touched.add(rec.id)
                await self._persist([rec], notify=False)
                self._announce(rec, before.status)
                return rec
            await self._resign_in_place(rec, before)
            return rec

    async def cancel(self, tx_id: str) -> TxRecord:
        """OZ's cancel_transaction: a pending transaction is canceled at once; a signed one gets a no-op
        self-transfer at its nonce (utils.rs make_noop), keeps its status with `is_canceled`, and becomes
        `canceled` when that no-op mines (status.rs)."""
        async with self._lock:
            rec = await self._current(tx_id)
            _refuse_status(rec, "cancel_transaction")
            if rec.status == PENDING:
                self._touched.add(rec.id)
                rec.status = CANCELED
                rec.status_reason = CANCELED_BY_USER
                await self._persist([rec])
                return rec
            fees = await self._noop_fees(rec)
            before = self._snapshot(rec)
            rec.to = self.signer.address
            rec.value = 0
            rec.data = "0x"
            rec.gas_limit = NOOP_GAS
            rec.speed = DEFAULT_SPEED
            rec.gas_price = fees.gas_price
            rec.max_fee_per_gas = fees.max_fee_per_gas
            rec.max_priority_fee_per_gas = fees.max_priority_fee_per_gas
            rec.is_canceled = True
            rec.status_reason = CANCELED_WITH_NOOP
            await self._resign_in_place(rec, before)
            return rec

    async def _current(self, tx_id: str) -> TxRecord:
        """The live record: the engine's own object while it is in flight (so its loops see the change),
        else the stored one."""
        if tx_id in self._submitted:
            return self._submitted[tx_id]
        if tx_id in self._mined:
            return self._mined[tx_id]
        if tx_id in self._sent:
            return self._sent[tx_id][0]
        for rec in self._retry:
            if rec.id == tx_id:
                return rec
        rec = await self.get(tx_id)
        if rec is None:
            raise UnknownTransaction(tx_id)
        return rec

    @staticmethod
    def _snapshot(rec: TxRecord) -> TxRecord:
        return dataclasses.replace(rec, hashes=list(rec.hashes))

    @staticmethod
    def _restore(rec: TxRecord, before: TxRecord) -> None:
        for f in dataclasses.fields(TxRecord):
            setattr(rec, f.name, getattr(before, f.name))

    async def _estimate(self, rec: TxRecord) -> int:
        try:
            est = await self.rpc.call("eth_estimateGas", [self._call_object(rec)])
        except RpcError as exc:
            raise Rejected(f"gas estimation failed: {exc.message}") from None
        return int(est, 16) * (100 + GAS_LIMIT_BUFFER_PCT) // 100

    async def _replacement_fees(self, old: TxRecord, speed: str) -> Fees:
        """replacement.rs calculate_replacement_price: the market price for `speed` (within gas_price_cap),
        then each fee raised to the minimum bump over the old one, past the cap if need be. The kind follows
        the old transaction; market prices of another kind cannot be compared and are refused, as in OZ."""
        use_legacy = old.gas_price is not None or self.cfg.policies.eip1559_pricing is False
        market = await (self.fees.eip1559 if self._use_eip1559 else self.fees.legacy)(speed)
        if use_legacy:
            if old.gas_price is None or market.gas_price is None:
                raise Rejected(UNBUMPABLE)
            return Fees(gas_price=max(market.gas_price, min_bump(old.gas_price)))
        if (
            old.max_fee_per_gas is None
            or old.max_priority_fee_per_gas is None
            or market.max_fee_per_gas is None
            or market.max_priority_fee_per_gas is None
        ):
            raise Rejected(UNBUMPABLE)
        return Fees(
            max_fee_per_gas=max(market.max_fee_per_gas, min_bump(old.max_fee_per_gas)),
            max_priority_fee_per_gas=max(
                market.max_priority_fee_per_gas, min_bump(old.max_priority_fee_per_gas)
            ),
        )

    async def _noop_fees(self, old: TxRecord) -> Fees:
        """What OZ's resubmission prices a cancel's no-op at (price_calculator.rs calculate_bumped_gas_price
        with force_bump): the `fast` market price or the minimum bump over the old price, whichever is
        higher, and no gas_price_cap, so the no-op can always take the nonce."""
        if old.max_fee_per_gas is not None and old.max_priority_fee_per_gas is not None:
            market = await self.fees.eip1559(DEFAULT_SPEED, capped=False)
            base = await self.fees.base_fee()
            assert market.max_priority_fee_per_gas is not None
            tip = max(market.max_priority_fee_per_gas, min_bump(old.max_priority_fee_per_gas))
            max_fee = max(base, min_bump(old.max_fee_per_gas), 2 * base + tip)
            return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip)
        if old.gas_price is not None:
            market = await self.fees.legacy(DEFAULT_SPEED, capped=False)
            assert market.gas_price is not None
            return Fees(gas_price=max(market.gas_price, min_bump(old.gas_price)))
        raise Rejected("Transaction missing required gas price parameters")

    async def _resign_in_place(self, rec: TxRecord, before: TxRecord) -> None:
        """Sign the changed transaction at its nonce, store it with every earlier hash, then broadcast it.
        A node that refuses it leaves the transaction as it was (the refusal is the answer); one that does
        not answer leaves the new version stored and watched."""
        assert rec.nonce is not None
        try:
            tx = self.signer.sign(self._tx_dict(rec, rec.nonce))
        except Exception as exc:  # a field the signer cannot encode: refuse, change nothing
            self._restore(rec, before)
            raise Rejected(f"signing failed: {type(exc).__name__}") from None
        self._apply_signature(rec, tx)
        known = before.watched_hashes
        rec.hashes = known if rec.hash in known else [*known, rec.hash]
        # Durable before it leaves, as for a first signing: a crash from here on finds the new version.
        await self._persist([rec], notify=False)
        try:
            await self.rpc.call("eth_sendRawTransaction", [rec.raw])
        except RpcTransportError as exc:
            log.warning("replacement of %s got no answer (%s); stored and watched", rec.id, exc)
            if rec.status == SENT:
                self._sent[rec.id] = (rec, time.monotonic())
            self._announce(rec, before.status)
            return
        except RpcError as exc:
            if not _matches(exc, _KNOWN):
                self._restore(rec, before)
                await self._persist([rec], notify=False)
                raise Rejected(f"replacement refused by the node: {exc.message}") from None
        rec.sent_at = now_iso()
        if rec.status == SENT:
            rec.status = SUBMITTED
            self._sent.pop(rec.id, None)
            self._retry = [r for r in self._retry if r.id != rec.id]
        self._submitted[rec.id] = rec
        await self._persist([rec], notify=False)
        self._announce(rec, before.status)

    def _announce(self, rec: TxRecord, previous: str) -> None:
        """The webhook OZ sends after a replace or cancel (send_transaction_update_notification), whether
        or not the status moved; only a status move counts in the metrics."""
        if rec.status != previous:
            self._notify(rec)
        elif self.notifier is not None:
            self.notifier.notify(rec.response())

    async def live_balance(self) -> int:
        try:
            self.balance = int(await self.rpc.call("eth_getBalance", [self.signer.address, "latest"]), 16)
        except (RpcError, RpcTransportError):
            if self.balance is None:
                raise
        return self.balance

    async def pending_count(self) -> int:
        """OZ's `pending_transactions_count`: pending, sent and submitted, not mined
        (domain/relayer/evm/evm_relayer.rs get_status, constants/transactions.rs)."""
        pipe = self.redis.pipeline(transaction=False)
        for status in COUNTED_AS_PENDING:
            pipe.zcard(self.keys.status_sorted(status))
        return sum(int(n) for n in await pipe.execute())

    async def list_page(
        self, page: int, per_page: int, status: str | None = None
    ) -> tuple[list[TxRecord], int]:
        """One page of this relayer's transactions, newest first, and the total count.

        The index arithmetic is OZ's (repositories/transaction/transaction_redis.rs find_by_relayer_id):
        u32 `(page - 1) * per_page` wrapping, so page 0 is an empty page, and `per_page` 0 makes the range
        end before it starts, which Redis reads as "to the end": every transaction."""
        if status is None:
            total = int(await self.redis.zcard(self.keys.by_created_at))
            ids: list[str] | None = None
        else:
            ids = []
            for chunk in _chunks(await self.redis.zrange(self.keys.by_created_at, 0, -1, desc=True), 500):
                raws = await self.redis.mget([self.keys.transaction(i) for i in chunk])
                for i, raw in zip(chunk, raws, strict=True):
                    rec = None if raw is None else TxRecord.from_json(raw)
                    # OZ leaves a canceled-in-progress transaction out of the active statuses' lists: it
                    # keeps its status until its no-op mines (api/controllers/relayer.rs list_transactions).
                    if (
                        rec is not None
                        and rec.status == status
                        and not (rec.is_canceled and not rec.is_final)
                    ):
                        ids.append(i)
            total = len(ids)
        start = ((page - 1) * per_page) % 2**32
        end = start + per_page - 1
        if total == 0 or start >= total:
            return [], total
        if ids is None:
            page_ids = list(await self.redis.zrange(self.keys.by_created_at, start, end, desc=True))
        else:
            page_ids = ids[start:] if end < 0 else ids[start : end + 1]
        if not page_ids:
            return [], total
        raws = await self.redis.mget([self.keys.transaction(i) for i in page_ids])
        return [TxRecord.from_json(r) for r in raws if r is not None], total

    async def last_confirmed_at(self) -> str | None:
        raw = await self.redis.get(self.keys.last_confirmed)
        return None if raw is None else str(raw)

    async def queue_depth(self) -> int:
        return int(await self.redis.llen(self.keys.queue_active))

    # ---- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._recover()
        self.ready = True
        self._tasks = [
            asyncio.create_task(self._guard(fn), name=fn.__name__)
            for fn in (self._intake, self._sender, self._tracker, self._sampler)
        ]

    async def stop(self) -> None:
        self.ready = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _guard(self, loop: Any) -> None:
        # A failing loop (Redis or node outage) must not stop the relayer: back off and go on. The first
        # failure is logged with its traceback, repeats only as one line every half minute.
        failures, last_logged = 0, 0.0
        while True:
            started = time.monotonic()
            try:
                await loop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if time.monotonic() - started > 60:
                    failures = 0  # it had recovered: this is a new outage
                failures += 1
                if failures == 1:
                    log.exception("%s failed; retrying", loop.__name__)
                    last_logged = time.monotonic()
                elif time.monotonic() - last_logged > 30:
                    log.warning(
                        "%s still failing (%d times): %s: %s",
                        loop.__name__,
                        failures,
                        type(exc).__name__,
                        exc,
                    )
                    last_logged = time.monotonic()
                await asyncio.sleep(min(5.0, 0.5 * failures))

    async def _recover(self) -> None:
        keys = self.keys
        while await self.redis.lmove(keys.queue_inflight, keys.queue_active, "RIGHT", "LEFT"):
            pass
        ids = sorted(await self.redis.smembers(keys.pending))
        records = (
            [
                TxRecord.from_json(r)
                for r in await self.redis.mget([keys.transaction(i) for i in ids])
                if r is not None
            ]
            if ids
            else []
        )
        held = [r.nonce for r in records if r.nonce is not None and r.status in (SENT, SUBMITTED, MINED)]
        stored_next = await self.redis.get(keys.nonce_next)
        stored_free = [int(n) for n in await self.redis.zrange(keys.nonce_free, 0, -1)]
        pending_count, latest_count = await self.rpc.batch(
            [
                ("eth_getTransactionCount", [self.signer.address, "pending"]),
                ("eth_getTransactionCount", [self.signer.address, "latest"]),
            ]
        )
        for result in (pending_count, latest_count):
            if isinstance(result, Exception):
                raise result
        self.nonces.load(
            None if stored_next is None else int(stored_next),
            stored_free,
            int(pending_count, 16),
            int(latest_count, 16),
            max(held) if held else None,
        )
        for rec in records:
            if rec.status == SENT:
                self._sent[rec.id] = (rec, 0.0)
            elif rec.status == SUBMITTED:
                self._submitted[rec.id] = rec
            elif rec.status == MINED:
                self._mined[rec.id] = rec
        pipe = self.redis.pipeline(transaction=True)
        self.nonces.persist(pipe, keys)
        # Status indexes rewritten from the records, so state stored before they existed is counted too.
        pipe.sadd(keys.relayer_list, self.cfg.relayer_id)
        for rec in records:
            self._index_status(pipe, rec)
        await pipe.execute()
        await self.live_balance()
        log.info(
            "recovered: next nonce %d, free %s, %d sent, %d submitted, %d mined, %d queued",
            self.nonces.next,
            self.nonces.free,
            len(self._sent),
            len(self._submitted),
            len(self._mined),
            await self.queue_depth(),
        )

    # ---- persistence ----------------------------------------------------------------------------------

    def _index_status(self, pipe: aioredis.client.Pipeline, rec: TxRecord) -> None:
        """Move the record to its status' sorted set. Statuses only move forward and never leave a final
        one, so taking it out of every non-final set but its own is enough."""
        score = _ms(rec.confirmed_at if rec.status == CONFIRMED and rec.confirmed_at else rec.created_at)
        pipe.zadd(self.keys.status_sorted(rec.status), {rec.id: score})
        for status in NOT_FINAL:
            if status != rec.status:
                pipe.zrem(self.keys.status_sorted(status), rec.id)

    def _notify(self, rec: TxRecord) -> None:
        self.metrics.status(rec.id, rec.status, rec.status_reason)
        if self.notifier is not None:
            self.notifier.notify(rec.response())

    async def _persist(
        self,
        records: list[TxRecord],
        *,
        done_ids: list[str] | tuple[str, ...] = (),
        nonces: bool = False,
        notify: bool = True,
    ) -> None:
        pipe = self.redis.pipeline(transaction=True)
        confirmed_at = None
        for rec in records:
            pipe.set(self.keys.transaction(rec.id), rec.to_json())
            self._index_status(pipe, rec)
            if rec.is_final:
                pipe.srem(self.keys.pending, rec.id)
            if rec.status == CONFIRMED:
                confirmed_at = rec.confirmed_at
        for tx_id in done_ids:
            pipe.lrem(self.keys.queue_inflight, 1, tx_id)
        if nonces:
            self.nonces.persist(pipe, self.keys)
        if confirmed_at is not None:
            pipe.set(self.keys.last_confirmed, confirmed_at)
        await pipe.execute()
        if notify:
            for rec in records:
                self._notify(rec)

    @staticmethod
    def _fail(rec: TxRecord, reason: str) -> None:
        rec.status = FAILED
        rec.status_reason = reason
        rec.raw = None

    # ---- intake: queue -> priced transactions ---------------------------------------------------------

    async def _intake(self) -> None:
        keys = self.keys
        if self._intake_ids:
            await self._requeue(self._intake_ids)
            self._intake_ids = []
        while True:
            self._intake_busy = False
            first = await self.redis.blmove(keys.queue_active, keys.queue_inflight, 1, "LEFT", "RIGHT")
            if first is None:
                continue
            self._intake_busy = True
            self._intake_ids = [first]
            pipe = self.redis.pipeline(transaction=False)
            for _ in range(INTAKE_BATCH - 1):
                pipe.lmove(keys.queue_active, keys.queue_inflight, "LEFT", "RIGHT")
            ids = [first, *(i for i in await pipe.execute() if i)]
            self._intake_ids = ids
            raws = await self.redis.mget([keys.transaction(i) for i in ids])
            records: list[TxRecord] = []
            stale: list[str] = []
            for tx_id, raw in zip(ids, raws, strict=True):
                rec = None if raw is None else TxRecord.from_json(raw)
                if rec is None or rec.status != PENDING:
                    stale.append(tx_id)
                    self._touched.discard(tx_id)
                else:
                    records.append(rec)
            if stale:
                await self._persist([], done_ids=stale)
            ready = await self._price(records)
            self._intake_ids = []
            for rec in ready:
                await self._prepared.put(rec)

    async def _requeue(self, ids: list[str]) -> None:
        """Back to the head of the queue, in their order, unless a persist already took them off in flight
        (nothing of them was signed: the intake only reads and prices)."""
        for tx_id in reversed(ids):
            await self._requeue_one(keys=[self.keys.queue_inflight, self.keys.queue_active], args=[tx_id])

    async def _price(self, records: list[TxRecord]) -> list[TxRecord]:
        """Fill in gas limits and fees; transactions that cannot be priced fail here, before any nonce."""
        failed: list[TxRecord] = []
        while True:
            try:
                need_gas = [r for r in records if r.gas_limit is None]
                estimates = await self.rpc.batch(
                    [("eth_estimateGas", [self._call_object(r)]) for r in need_gas]
                )
                for rec, est in zip(need_gas, estimates, strict=True):
                    if isinstance(est, RpcTransportError):
                        raise est
                    if isinstance(est, RpcError):
                        self._fail(rec, f"gas estimation failed: {est.message}")
                        failed.append(rec)
                    else:
                        rec.gas_limit = int(est, 16) * (100 + GAS_LIMIT_BUFFER_PCT) // 100
                for rec in records:
                    if rec.status == FAILED or rec.gas_price is not None or rec.max_fee_per_gas is not None:
                        continue
                    rec.speed = rec.speed or DEFAULT_SPEED
                    fees = await (self.fees.eip1559 if self._use_eip1559 else self.fees.legacy)(rec.speed)
                    rec.gas_price = fees.gas_price
                    rec.max_fee_per_gas = fees.max_fee_per_gas
                    rec.max_priority_fee_per_gas = fees.max_priority_fee_per_gas
                break
            except RpcTransportError as exc:
                # Nothing was signed yet: waiting and pricing again is always safe.
                log.warning("pricing: node unreachable (%s); retrying", exc)
                await asyncio.sleep(1)
        if failed:
            async with self._lock:
                # One canceled or replaced meanwhile is no longer this copy's to fail.
                failed = [r for r in failed if r.id not in self._touched]
                await self._persist(failed, done_ids=[r.id for r in failed])
        return [r for r in records if r.status != FAILED]

    # ---- sender: nonce, sign, persist, broadcast ------------------------------------------------------

    async def _sender(self) -> None:
        while True:
            batch: list[TxRecord] = []
            # Queue.get only takes an item once it resumes, so a timeout never loses one.
            with contextlib.suppress(TimeoutError):
                batch.append(await asyncio.wait_for(self._prepared.get(), timeout=0.5))
            while batch and len(batch) < SEND_BATCH and not self._prepared.empty():
                batch.append(self._prepared.get_nowait())
            async with self._lock:
                if self._retry:
                    batch, self._retry = self._retry + batch, []
                if batch:
                    await self._sign_and_send(batch)
                await self._rebroadcast()
            await self._fill_gaps()

    def _call_object(self, rec: TxRecord) -> dict[str, Any]:
        call = {"from": self.signer.address, "value": hex(rec.value), "data": rec.data or "0x"}
        if rec.to is not None:
            call["to"] = rec.to
        return call

    def _tx_dict(self, rec: TxRecord, nonce: int) -> dict[str, Any]:
        tx: dict[str, Any] = {
            "chainId": self.cfg.network.chain_id,
            "nonce": nonce,
            "gas": rec.gas_limit,
            "value": rec.value,
            "data": rec.data or "0x",
        }
        if rec.to is not None:
            tx["to"] = rec.to
        if rec.max_fee_per_gas is not None:
            tx["maxFeePerGas"] = rec.max_fee_per_gas
            tx["maxPriorityFeePerGas"] = rec.max_priority_fee_per_gas
            tx["type"] = 2
        else:
            tx["gasPrice"] = rec.gas_price
        return tx

    async def _refetch_touched(self, batch: list[TxRecord]) -> list[TxRecord]:
        """The stored version of each transaction replaced or canceled after the intake read it; the ones
        no longer pending are dropped (their queue entries still go with the batch)."""
        out: list[TxRecord] = []
        for rec in batch:
            if rec.id in self._touched:
                self._touched.discard(rec.id)
                fresh = await self.get(rec.id)
                if fresh is None or fresh.status != PENDING:
                    continue
                rec = fresh
            out.append(rec)
        return out

    def _apply_signature(self, rec: TxRecord, tx: Any) -> None:
        rec.hash = "0x" + tx.hash.hex()
        rec.raw = "0x" + tx.raw_transaction.hex()
        rec.signature = {
            "r": f"{tx.r:064x}",
            "s": f"{tx.s:064x}",
            "v": tx.v,
            "sig": f"{tx.r:064x}{tx.s:064x}{tx.v:02x}",
        }

    async def _sign_and_send(self, batch: list[TxRecord]) -> None:
        now = time.time()
        signed: list[TxRecord] = []
        finished: list[TxRecord] = []
        done_ids = [r.id for r in batch]
        for rec in await self._refetch_touched(batch):
            if rec.valid_until is not None and parse_timestamp(rec.valid_until) <= now:
                rec.status = EXPIRED
                rec.status_reason = "valid_until passed before submission"
                rec.raw = None
                finished.append(rec)
                continue
            nonce = self.nonces.allocate()
            try:
                tx = self.signer.sign(self._tx_dict(rec, nonce))
            except Exception as exc:  # a malformed field is this transaction's problem, not the batch's
                self.nonces.release(nonce)
                self._fail(rec, f"signing failed: {type(exc).__name__}")
                finished.append(rec)
                continue
            rec.nonce = nonce
            self._apply_signature(rec, tx)
            # A new nonce (first signing, or again after another transaction took the nonce): no earlier
            # hash can mine for it.
            rec.hashes = [rec.hash]
            rec.status = SENT
            signed.append(rec)
        # Nonce state and signed bytes are durable before anything leaves: a crash from here on
        # re-broadcasts the same bytes instead of signing the nonce twice.
        try:
            await self._persist(signed + finished, done_ids=done_ids, nonces=True)
        except Exception:
            # Not durable (Redis outage), so none of it left: the nonces go back, else the next
            # transactions would leave a gap the node never fills, and the batch is signed again later.
            for rec in signed:
                assert rec.nonce is not None
                self.nonces.release(rec.nonce)
            self._retry = [*signed, *finished, *self._retry]
            raise
        for rec in signed:
            self._sent[rec.id] = (rec, time.monotonic())
        await self._broadcast(signed)

    async def _broadcast(self, records: list[TxRecord], *, rebroadcast: bool = False) -> None:
        if not records:
            return
        try:
            results = await self.rpc.batch([("eth_sendRawTransaction", [r.raw]) for r in records])
        except (RpcTransportError, RpcError) as exc:
            log.warning(
                "broadcast of %d transactions got no answer (%s); will re-broadcast", len(records), exc
            )
            for rec in records:
                self._sent[rec.id] = (rec, time.monotonic())
            return
        submitted: list[TxRecord] = []
        failed: list[TxRecord] = []
        conflicts: list[TxRecord] = []
        for rec, res in zip(records, results, strict=True):
            if isinstance(res, RpcTransportError):
                self._sent[rec.id] = (rec, time.monotonic())
                continue
            if isinstance(res, RpcError) and not _matches(res, _KNOWN):
                if _matches(res, _NONCE_TAKEN):
                    if rebroadcast:
                        # Our own earlier, unanswered broadcast may have landed: let the receipt decide.
                        submitted.append(rec)
                    else:
                        conflicts.append(rec)
                    continue
                assert rec.nonce is not None
                self.nonces.release(rec.nonce)
                self._fail(rec, f"rejected by the node: {res.message}")
                failed.append(rec)
                continue
            submitted.append(rec)
        for rec in submitted:
            rec.status = SUBMITTED
            # OZ stamps `sent_at` when the node takes the transaction, not when it is signed
            # (domain/transaction/evm/evm_transaction.rs submit_transaction).
            rec.sent_at = now_iso()
            self._sent.pop(rec.id, None)
            self._conflicts.pop(rec.id, None)
        for rec in failed:
            self._sent.pop(rec.id, None)
        for rec in conflicts:
            self._sent.pop(rec.id, None)
        # Tracked before the persist: if Redis fails it, the tracker still follows them to their receipt.
        for rec in submitted:
            self._submitted[rec.id] = rec
        await self._persist(submitted + failed, nonces=bool(failed))
        if conflicts:
            await self._resign(conflicts)

    async def _resign(self, conflicts: list[TxRecord]) -> None:
        """Another transaction took these nonces (the key was used elsewhere): move past it and sign again."""
        count = int(await self.rpc.call("eth_getTransactionCount", [self.signer.address, "pending"]), 16)
        self.nonces.resync(count)
        log.warning("nonce conflict: node expects %d; re-signing %d transactions", count, len(conflicts))
        give_up: list[TxRecord] = []
        for rec in conflicts:
            self._conflicts[rec.id] = self._conflicts.get(rec.id, 0) + 1
            if self._conflicts[rec.id] > MAX_NONCE_CONFLICTS:
                self._fail(rec, "nonce kept being taken by other transactions")
                give_up.append(rec)
            else:
                self._retry.append(rec)
        await self._persist(give_up, nonces=True)

    async def _rebroadcast(self) -> None:
        cutoff = time.monotonic() - REBROADCAST_AFTER
        due = [rec for rec, at in list(self._sent.values()) if at <= cutoff]
        if due:
            await self._broadcast(due[:SEND_BATCH], rebroadcast=True)

    async def _fill_gaps(self) -> None:
        """Fill a nonce the node refused with a no-op self-transfer once nothing else is waiting for it."""
        free = self.nonces.free
        if not free or self._retry or not self._prepared.empty() or self._intake_busy:
            return
        if time.monotonic() - self._last_gap_fill < 1.0 or await self.queue_depth():
            return
        self._last_gap_fill = time.monotonic()
        fees = await (self.fees.eip1559 if self._use_eip1559 else self.fees.legacy)("fast")
        noop = TxRecord(
            id="noop",
            relayer_id=self.cfg.relayer_id,
            from_address=self.signer.address,
            status=PENDING,
            created_at=now_iso(),
            value=0,
            to=self.signer.address,
            gas_limit=NOOP_GAS,
            gas_price=fees.gas_price,
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
        )
        raws = ["0x" + self.signer.sign(self._tx_dict(noop, n)).raw_transaction.hex() for n in free]
        try:
            results = await self.rpc.batch([("eth_sendRawTransaction", [raw]) for raw in raws])
        except (RpcTransportError, RpcError) as exc:
            log.warning("gap fill got no answer (%s); will retry", exc)
            return
        for nonce, res in zip(free, results, strict=True):
            if not isinstance(res, Exception) or (isinstance(res, RpcError) and _matches(res, _KNOWN)):
                self.nonces.take(nonce)
                log.info("filled nonce %d with a no-op self-transfer", nonce)
            else:
                log.warning("gap fill for nonce %d refused: %s", nonce, res)
        pipe = self.redis.pipeline(transaction=True)
        self.nonces.persist(pipe, self.keys)
        await pipe.execute()

    # ---- tracker: submitted -> mined -> confirmed -----------------------------------------------------

    async def _tracker(self) -> None:
        required = self.cfg.network.required_confirmations
        while True:
            await asyncio.sleep(self._poll)
            if not self._submitted and not self._mined:
                continue
            # Every hash a transaction has had: after a replacement the old one may still be what mines.
            watching: list[tuple[TxRecord, str]] = []
            for rec in list(self._submitted.values()):
                hashes = rec.watched_hashes
                if watching and len(watching) + len(hashes) > RECEIPT_BATCH:
                    break
                watching.extend((rec, h) for h in hashes)
            try:
                results = await self.rpc.batch(
                    [("eth_blockNumber", []), *(("eth_getTransactionReceipt", [h]) for _, h in watching)]
                )
            except (RpcTransportError, RpcError) as exc:
                log.warning("tracker: %s", exc)
                continue
            if isinstance(results[0], Exception):
                continue
            async with self._lock:
                await self._track(int(results[0], 16), watching, results[1:], required)

    async def _track(
        self, head: int, watching: list[tuple[TxRecord, str]], receipts: list[Any], required: int
    ) -> None:
        changed: list[TxRecord] = []
        events: list[dict[str, Any]] = []
        submitted_before, mined_before = dict(self._submitted), dict(self._mined)
        for (rec, tx_hash), receipt in zip(watching, receipts, strict=True):
            if receipt is None or isinstance(receipt, Exception):
                continue
            if self._submitted.get(rec.id) is not rec:
                continue  # moved on while the receipts were fetched
            del self._submitted[rec.id]
            rec.hash = tx_hash
            rec.mined_to = receipt.get("to")
            rec.raw = None
            rec.mined_block = int(receipt["blockNumber"], 16)
            if int(receipt.get("status", "0x1"), 16) == 1:
                rec.status = MINED
                self._mined[rec.id] = rec
            else:
                self._fail(rec, "Transaction reverted")
            events.append(rec.response())
            changed.append(rec)
        for rec in list(self._mined.values()):
            assert rec.mined_block is not None
            # OZ's rule (domain/transaction/evm/utils.rs has_enough_confirmations): the head must be
            # `required` blocks past the one that mined it, so with 1 the next block confirms.
            if head >= rec.mined_block + required:
                del self._mined[rec.id]
                if self._noop_won(rec):
                    # OZ's status check (status.rs): a canceled transaction whose self-send no-op mined
                    # is canceled, with no confirmed_at; if the original won the nonce it is confirmed.
                    rec.status = CANCELED
                else:
                    rec.status = CONFIRMED
                    rec.confirmed_at = now_iso()
                events.append(rec.response())
                if rec not in changed:
                    changed.append(rec)
        if changed:
            try:
                await self._persist(changed, notify=False)
            except Exception:
                # Not stored (Redis outage): keep following them, so a later pass sees the same receipts
                # and stores them, instead of leaving them `submitted` or `mined` until a restart.
                self._submitted.update(submitted_before)
                self._mined.update(mined_before)
                raise
            for event in events:
                self.metrics.status(event["id"], event["status"], event["status_reason"])
                if self.notifier is not None:
                    self.notifier.notify(event)

    def _noop_won(self, rec: TxRecord) -> bool:
        return (
            rec.is_canceled and rec.mined_to is not None and rec.mined_to.lower() == rec.from_address.lower()
        )

    # ---- sampler: balance and gauges ------------------------------------------------------------------

    async def _sampler(self) -> None:
        while True:
            with contextlib.suppress(RpcError, RpcTransportError):
                await self.live_balance()
            self.metrics.gauges(
                queue_depth=await self.queue_depth(),
                pending=await self.pending_count(),
                balance=self.balance,
                next_nonce=self.nonces.next,
            )
            await asyncio.sleep(2.0)
