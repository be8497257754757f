"""The operator's backlog reading against a real Redis holding OZ's key layout (as a real OZ 1.8.0 relayer
writes it: `{prefix}:relayer_list`, `{prefix}:relayer:{id}:status_sorted:{Status}`, the request list), and
what happens when a relayer's id or Redis is missing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from msq_devstack.process import free_port
from msq_devstack.redis import Redis
from msq_operator import observe
from msq_operator.observe import Observer

OZ_ID = "payments-payments-0"


@pytest.fixture
def prefix(redis_server: Redis) -> Iterator[str]:
    """A prefix of this test's own, its keys deleted afterwards (the Redis is shared by the session)."""
    p = f"msq:test-{uuid.uuid4().hex[:8]}:payments-0"
    yield p
    with redis.Redis.from_url(redis_server.url) as client:
        keys = list(client.scan_iter(f"{p}:*"))
        if keys:
            client.delete(*keys)


def _write(url: str, prefix: str, *, relayer: bool = True, listed: int = 0, **per_status: int) -> None:
    """OZ's state under `prefix`: the relayer id listed (SADD), `listed` request jobs (RPUSH) and, per status,
    that many distinct transactions in its index (ZADD, so ZCARD is the count)."""
    with redis.Redis.from_url(url) as client:
        if relayer:
            client.sadd(observe.relayer_list_key(prefix), OZ_ID)
        if listed:
            client.rpush(observe.queue_key(prefix), *[f"job-{i}" for i in range(listed)])
        for status, count in per_status.items():
            if count:
                key = observe.status_index_key(prefix, OZ_ID, status)
                client.zadd(key, {f"tx-{status}-{i}": i for i in range(count)})


def _oz_state(url: str, prefix: str, pending: int, sent: int, submitted: int, listed: int) -> None:
    # Mined, waiting for confirmations: the relayer has nothing left to send.
    _write(url, prefix, listed=listed, Pending=pending, Sent=sent, Submitted=submitted, Mined=99)


def test_queue_depth_finds_the_relayer_id_under_the_prefix(redis_server: Redis, prefix: str) -> None:
    _oz_state(redis_server.url, prefix, pending=2, sent=5, submitted=30, listed=1)
    assert Observer().queue_depth(redis_server.url, prefix) == 37


def test_queue_depth_with_a_known_id_reads_only_that_relayer(redis_server: Redis, prefix: str) -> None:
    _oz_state(redis_server.url, prefix, pending=0, sent=0, submitted=4, listed=0)
    assert Observer().queue_depth(redis_server.url, prefix, OZ_ID) == 4
    assert Observer().queue_depth(redis_server.url, prefix, "someone-else") == 0


def test_queue_depth_without_oz_state_under_the_prefix_is_its_request_list(
    redis_server: Redis, prefix: str
) -> None:
    assert Observer().queue_depth(redis_server.url, prefix) == 0  # nothing under the prefix at all
    _write(redis_server.url, prefix, relayer=False, listed=20)
    assert Observer().queue_depth(redis_server.url, prefix) == 20
    assert Observer().queue_depth(redis_server.url, prefix, OZ_ID) == 20


def test_queue_depth_ignores_stale_request_jobs_of_an_oz_relayer(redis_server: Redis, prefix: str) -> None:
    _oz_state(redis_server.url, prefix, pending=0, sent=0, submitted=0, listed=5)
    assert Observer().queue_depth(redis_server.url, prefix, OZ_ID) == 0


def test_queue_depth_is_unknown_when_redis_is_unreachable() -> None:
    # Nothing listens on a port just freed on the loopback: the connection is refused.
    assert Observer().queue_depth(f"redis://127.0.0.1:{free_port()}/0", "msq:x:payments-0") is None


def test_the_status_indexes_are_read_in_one_multi(redis_server: Redis, prefix: str) -> None:
    # OZ moves a transaction between status sets atomically; a snapshot counts it once. Redis's MONITOR shows
    # what the observer's connection sent.
    _oz_state(redis_server.url, prefix, pending=1, sent=1, submitted=1, listed=1)
    end = f"{prefix}:monitor-end"
    with redis.Redis.from_url(redis_server.url, socket_timeout=10) as client, client.monitor() as monitor:
        assert Observer().queue_depth(redis_server.url, prefix, OZ_ID) == 3
        client.exists(end)
        seen = []
        while not (cmd := monitor.next_command())["command"].endswith(end):
            seen.append(cmd)
    port = next(
        c["client_port"] for c in seen if c["command"].startswith("SMEMBERS ") and prefix in c["command"]
    )
    sent = [c["command"].split()[0] for c in seen if c["client_port"] == port]
    reads = sent[sent.index("SMEMBERS") + 1 :]
    counts = ["ZCARD"] * len(observe.UNSETTLED_STATUSES)
    assert reads == ["MULTI", "LLEN", *counts, *["ZRANGE"] * len(observe.PENDING_STATUSES), "EXEC"]


def test_mined_transactions_keep_a_draining_relayer_unsettled(redis_server: Redis, prefix: str) -> None:
    # Mined is not backlog, but its confirmed webhook is still to come: the drain must wait for it.
    _write(redis_server.url, prefix, Submitted=2, Mined=3)
    snapshot = Observer().backlog(redis_server.url, prefix, OZ_ID)
    assert snapshot == observe.Backlog(
        queued=2, unsettled=5, oldest_pending_ms=0.0, oldest_pending_id="tx-Submitted-0"
    )
    # The local stand-in keeps no OZ status index: only its request list, and no unsettled count.
    stand_in = f"{prefix}:stand-in"
    _write(redis_server.url, stand_in, relayer=False, listed=4)
    assert Observer().backlog(redis_server.url, stand_in) == observe.Backlog(queued=4, unsettled=None)


def test_the_oldest_pending_transaction_is_the_smallest_created_at_not_yet_mined(
    redis_server: Redis, prefix: str
) -> None:
    # OZ scores its status indexes by created_at (ms); a Mined one is on chain and holds no nonce back.
    with redis.Redis.from_url(redis_server.url) as client:
        client.sadd(observe.relayer_list_key(prefix), OZ_ID)
        for status, created_ms in (("Pending", 5_000), ("Submitted", 3_000), ("Mined", 1_000)):
            client.zadd(observe.status_index_key(prefix, OZ_ID, status), {f"tx-{status}": created_ms})
    snapshot = Observer().backlog(redis_server.url, prefix, OZ_ID)
    assert snapshot is not None and snapshot.oldest_pending_ms == 3_000
    assert snapshot.oldest_pending_id == "tx-Submitted"  # the one healing acts on
