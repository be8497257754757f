"""What the operator reads from running relayers: OZ `/status` over HTTP and each one's backlog in Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpx
import redis


@dataclass(frozen=True)
class RelayerStatus:
    balance: str
    nonce: int
    pending: int
    paused: bool


# The apalis list OZ's API pushes a transaction request onto (queues/redis/queue.rs:223-237, apalis-redis
# `{queue}:active`). It is no backlog: OZ's request workers (concurrency 50, queues/queue_type.rs:99; apalis
# fetches 10 more into its buffer) move the jobs to their in-flight sets at once, whatever the chain does,
# and OZ's status checker pushes extra prepare jobs for a transaction Pending over 20 s
# (constants/evm_transaction.rs:62), so it counts jobs, not transactions. Measured on a real relayer
# (tests/e2e/test_oz_backlog.py): the list of a 40-transaction burst was empty 1 s after the burst, while all
# 40 stayed outstanding for another 30 s.
QUEUE_SUFFIX = ":queue:transaction_request_queue:active"

# The backlog of one relayer is what OZ itself reports as `pending_transactions_count`: the transactions it
# accepted and has not seen mined yet. An EVM relayer caps nothing in flight: prepare_transaction gives every
# request the next nonce, signs it and hands it to the submitter at once
# (domain/transaction/evm/evm_transaction.rs:767-838), so a chain, an RPC or a relayer slower than the
# traffic piles transactions up as Pending/Sent/Submitted, not as queued jobs. OZ counts them as the ZCARD sum
# of its per-relayer status indexes (domain/relayer/evm/evm_relayer.rs:367-372, repositories/transaction/
# transaction_redis.rs:2540-2564) for the statuses of constants/transactions.rs:20-24. The operator reads the
# same sorted sets itself: the number exists while the relayer's API does not answer (its /status also needs
# the RPC, for the balance), and read in one MULTI it never counts a transaction twice, which OZ's one-by-one
# ZCARDs do while a transaction moves between sets (one Lua script moves it, transaction_redis.rs:2107-2204).
# In the key a status is spelled by strum's Display: the variant name (models/transaction/repository.rs:48).
PENDING_STATUSES: tuple[str, ...] = ("Pending", "Sent", "Submitted")
# Mined is not backlog (the chain has it) but not final either: OZ sends the `confirmed` webhook only after
# `required_confirmations` blocks, so a draining relayer must not be removed while any is Mined.
UNSETTLED_STATUSES: tuple[str, ...] = (*PENDING_STATUSES, "Mined")


def queue_key(prefix: str) -> str:
    return f"{prefix}{QUEUE_SUFFIX}"


def relayer_list_key(prefix: str) -> str:
    """Set of the relayer ids OZ keeps state for under `prefix` (transaction_redis.rs:141 and
    relayer_redis.rs:50, written at start-up). One OZ process per prefix runs one relayer: it names the id."""
    return f"{prefix}:relayer_list"


def status_index_key(prefix: str, relayer_id: str, status: str) -> str:
    """`{prefix}:relayer:{id}:status_sorted:{Status}` (transaction_redis.rs:114-130)."""
    return f"{prefix}:relayer:{relayer_id}:status_sorted:{status}"


def backlog_keys(
    prefix: str, relayer_ids: Iterable[str], statuses: Sequence[str] = PENDING_STATUSES
) -> list[str]:
    return [status_index_key(prefix, rid, s) for rid in sorted(set(relayer_ids)) for s in statuses]


@dataclass(frozen=True)
class Backlog:
    queued: int  # accepted, not yet mined: the scaling signal (status.queueDepth)
    unsettled: int | None  # accepted, not yet final (also Mined); None without an OZ status index
    # created_at (ms since the epoch, the status index's score) of the oldest transaction not yet mined
    oldest_pending_ms: float | None = None
    oldest_pending_id: str | None = None  # its transaction id, the one healing acts on


def backlog(request_queue_len: int, pending_counts: Sequence[int] | None) -> int:
    """Transactions accepted and not yet mined: the status index sum. `pending_counts` is None where no OZ
    state exists under the prefix (a relayer not started yet, or the local stand-in, which keeps no OZ status
    index); there the request list is all there is to read."""
    if pending_counts is None:
        return int(request_queue_len)
    return sum(int(c) for c in pending_counts)


def decode_ids(members: Iterable[bytes | str]) -> list[str]:
    return [m.decode() if isinstance(m, bytes) else str(m) for m in members]


class Observer:
    """Shared, long-lived clients: one HTTP pool and one Redis pool per URL."""

    def __init__(self, timeout: float = 3.0) -> None:
        self.http = httpx.Client(timeout=timeout)
        self._redis: dict[str, redis.Redis] = {}
        self._lock = threading.Lock()

    def relayer_status(self, endpoint: str, relayer_id: str, api_key: str) -> RelayerStatus | None:
        """None when the relayer cannot be asked (down, not yet started): unknown is not zero."""
        try:
            r = self.http.get(
                f"{endpoint}/api/v1/relayers/{relayer_id}/status",
                headers={"Authorization": f"Bearer {api_key}"},
            )
            if r.status_code != 200:
                return None
            data = r.json().get("data") or {}
            return RelayerStatus(
                balance=str(int(str(data.get("balance", "0")), 0)),
                nonce=int(str(data.get("nonce", "0")), 0),
                pending=int(data.get("pending_transactions_count", 0)),
                paused=bool(data.get("system_disabled", False) or data.get("paused", False)),
            )
        except (httpx.HTTPError, ValueError):
            return None

    def ready(self, url: str) -> bool:
        try:
            return self.http.get(url).status_code == 200
        except httpx.HTTPError:
            return False

    def _client(self, redis_url: str) -> redis.Redis:
        with self._lock:
            client = self._redis.get(redis_url)
            if client is None:
                client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
                self._redis[redis_url] = client
            return client

    def queue_depth(self, redis_url: str, prefix: str, relayer_id: str | None = None) -> int | None:
        """The backlog of the relayer keeping its state under `prefix` (see PENDING_STATUSES); None when Redis
        cannot be read. `relayer_id` reads only that relayer's index, not every id the prefix lists."""
        snapshot = self.backlog(redis_url, prefix, relayer_id)
        return None if snapshot is None else snapshot.queued

    def backlog(self, redis_url: str, prefix: str, relayer_id: str | None = None) -> Backlog | None:
        """Backlog and unsettled count from one snapshot of the status index; None if Redis cannot be read."""
        client = self._client(redis_url)
        try:
            known = decode_ids(client.smembers(relayer_list_key(prefix)))
            ids = ([relayer_id] if relayer_id else known) if known else []
            pipe = client.pipeline(transaction=True)  # one snapshot of all the sets
            pipe.llen(queue_key(prefix))
            unsettled_keys = backlog_keys(prefix, ids, UNSETTLED_STATUSES)
            for key in unsettled_keys:
                pipe.zcard(key)
            for key in backlog_keys(prefix, ids, PENDING_STATUSES):
                pipe.zrange(key, 0, 0, withscores=True)  # scored by created_at: the oldest first
            listed, *rest = pipe.execute()
        except redis.RedisError:
            return None
        if not known:
            return Backlog(queued=backlog(listed, None), unsettled=None)
        counts, firsts = rest[: len(unsettled_keys)], rest[len(unsettled_keys) :]
        per_status = len(UNSETTLED_STATUSES)
        queued = [c for i, c in enumerate(counts) if UNSETTLED_STATUSES[i % per_status] in PENDING_STATUSES]
        oldest = min(((float(score), member) for first in firsts for member, score in first), default=None)
        return Backlog(
            queued=backlog(listed, queued),
            unsettled=sum(int(c) for c in counts),
            oldest_pending_ms=None if oldest is None else oldest[0],
            oldest_pending_id=None if oldest is None else decode_ids([oldest[1]])[0],
        )
