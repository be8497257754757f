"""The operator's backlog reading against a real Redis holding OZ's key layout (as a real OZ 1.8.0 relayer
writes it: `{prefix}:relayer_list`, `{prefix}:relayer:{id}:status_sorted:{Status}`, the request list)."""

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
    p = f"msq:test-{uuid.uuid4().hex[:8]}:payments-0"
    yield p
    client = redis.Redis.from_url(redis_server.url)
    keys = list(client.scan_iter(f"{p}:*"))
    if keys:
        client.delete(*keys)


def _write(url: str, prefix: str, *, relayer: bool = True, listed: int = 0, **per_status: int) -> None:
    client = redis.Redis.from_url(url)
    if relayer:
        client.sadd(observe.relayer_list_key(prefix), OZ_ID)
    if listed:
        client.rpush(observe.queue_key(prefix), *[f"job-{i}" for i in range(listed)])
    for status, count in per_status.items():
        if count:
            key = observe.status_index_key(prefix, OZ_ID, status)
            client.zadd(key, {f"tx-{status}-{i}": i for i in range(count)})


def test_queue_depth_finds_the_relayer_id_under_the_prefix(redis_server: Redis, prefix: str) -> None:
    _write(redis_server.url, prefix, listed=1, Pending=2, Sent=5, Submitted=30, Mined=99)
    assert Observer().queue_depth(redis_server.url, prefix) == 37


def test_queue_depth_with_a_known_id_reads_only_that_relayer(redis_server: Redis, prefix: str) -> None:
    _write(redis_server.url, prefix, Submitted=4, Mined=99)
    assert Observer().queue_depth(redis_server.url, prefix, OZ_ID) == 4
    assert Observer().queue_depth(redis_server.url, prefix, "someone-else") == 0


def test_without_oz_state_under_the_prefix_the_request_list_is_read(redis_server: Redis, prefix: str) -> None:
    assert Observer().queue_depth(redis_server.url, prefix) == 0
    _write(redis_server.url, prefix, relayer=False, listed=20)
    assert Observer().queue_depth(redis_server.url, prefix) == 20
    assert Observer().queue_depth(redis_server.url, prefix, OZ_ID) == 20


def test_stale_request_jobs_of_an_oz_relayer_are_not_backlog(redis_server: Redis, prefix: str) -> None:
    _write(redis_server.url, prefix, listed=5, Mined=99)
    assert Observer().queue_depth(redis_server.url, prefix, OZ_ID) == 0


def test_unknown_when_redis_is_unreachable() -> None:
    assert Observer().queue_depth(f"redis://127.0.0.1:{free_port()}/0", "msq:x:y") is None


def test_mined_transactions_keep_a_draining_relayer_unsettled(redis_server: Redis, prefix: str) -> None:
    # Mined is not backlog, but its confirmed webhook is still to come: the drain must wait for it.
    _write(redis_server.url, prefix, Submitted=2, Mined=3)
    assert Observer().backlog(redis_server.url, prefix, OZ_ID) == observe.Backlog(queued=2, unsettled=5)


def test_the_stand_in_has_no_unsettled_count(redis_server: Redis, prefix: str) -> None:
    _write(redis_server.url, prefix, relayer=False, listed=4)
    assert Observer().backlog(redis_server.url, prefix) == observe.Backlog(queued=4, unsettled=None)
