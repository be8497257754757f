"""The operator's backlog reading: OZ's own Redis key layout, the count OZ reports as
`pending_transactions_count`, and what happens when a relayer's id or Redis is missing."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from msq_operator import observe
from msq_operator.observe import Observer

PREFIX = "msq:payments:payments-0"
OZ_ID = "payments-payments-0"


def test_keys_are_ozs_status_indexes_for_the_statuses_it_counts_as_pending() -> None:
    # Key names as a real OZ 1.8.0 relayer writes them (SCAN under its prefix during a burst).
    assert observe.backlog_keys(PREFIX, [OZ_ID]) == [
        f"{PREFIX}:relayer:{OZ_ID}:status_sorted:Pending",
        f"{PREFIX}:relayer:{OZ_ID}:status_sorted:Sent",
        f"{PREFIX}:relayer:{OZ_ID}:status_sorted:Submitted",
    ]
    assert observe.relayer_list_key(PREFIX) == f"{PREFIX}:relayer_list"
    assert observe.queue_key(PREFIX) == f"{PREFIX}:queue:transaction_request_queue:active"


def test_mined_and_final_transactions_are_not_backlog() -> None:
    assert not {"Mined", "Confirmed", "Failed", "Canceled", "Expired"} & set(observe.PENDING_STATUSES)


def test_backlog_keys_are_per_relayer_and_counted_once() -> None:
    keys = observe.backlog_keys(PREFIX, ["b", "a", "b"])
    assert len(keys) == 6 and len(set(keys)) == 6
    assert [k.split(":relayer:")[1].split(":")[0] for k in keys] == ["a"] * 3 + ["b"] * 3
    assert observe.backlog_keys(PREFIX, []) == []


@pytest.mark.parametrize(
    ("listed", "counts", "expected"),
    [
        (0, [0, 0, 0], 0),  # an idle OZ relayer
        (3, [3, 0, 0], 3),  # requests waiting are already stored as Pending: not counted twice
        (0, [0, 12, 48], 60),  # a burst OZ has signed and sent: its request list is already empty
        # OZ's status checker re-queues prepare jobs for transactions Pending over 20 s: the list then holds
        # jobs, some for transactions already sent, and no-ops after everything is mined.
        (19, [2, 32, 6], 40),
        (5, [0, 0, 0], 0),
        (7, None, 7),  # no OZ state under the prefix (the local stand-in): its request list
    ],
)
def test_backlog_is_the_status_index_sum_where_oz_keeps_one(
    listed: int, counts: list[int] | None, expected: int
) -> None:
    assert observe.backlog(listed, counts) == expected


def test_member_ids_decode_from_bytes() -> None:
    assert observe.decode_ids([b"payments-0", "payments-1"]) == ["payments-0", "payments-1"]


class _FakePipeline:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.calls: list[tuple[str, str]] = []

    def llen(self, key: str) -> None:
        self.calls.append(("llen", key))

    def zcard(self, key: str) -> None:
        self.calls.append(("zcard", key))

    def execute(self) -> list[int]:
        return [int(self.data.get(key, 0)) for _, key in self.calls]


class _FakeRedis:
    """The four commands the observer uses, over a dict; `fail` makes every call raise like a lost server."""

    def __init__(self, data: dict[str, Any], fail: bool = False) -> None:
        self.data = data
        self.fail = fail
        self.pipelines: list[_FakePipeline] = []

    def smembers(self, key: str) -> set[bytes]:
        if self.fail:
            raise redis.ConnectionError("down")
        return {m.encode() for m in self.data.get(key, set())}

    def pipeline(self, transaction: bool = True) -> _FakePipeline:
        if self.fail:
            raise redis.ConnectionError("down")
        # One MULTI: OZ moves a transaction between status sets atomically; a snapshot counts it once.
        assert transaction
        p = _FakePipeline(self.data)
        self.pipelines.append(p)
        return p


def _observer(fake: _FakeRedis) -> Observer:
    obs = Observer()
    obs._redis["redis://x"] = fake  # type: ignore[assignment]
    return obs


def _oz_state(pending: int, sent: int, submitted: int, listed: int) -> dict[str, Any]:
    idx = {s: observe.status_index_key(PREFIX, OZ_ID, s) for s in ("Pending", "Sent", "Submitted", "Mined")}
    return {
        observe.relayer_list_key(PREFIX): {OZ_ID},
        observe.queue_key(PREFIX): listed,
        idx["Pending"]: pending,
        idx["Sent"]: sent,
        idx["Submitted"]: submitted,
        idx["Mined"]: 99,  # mined, waiting for confirmations: the relayer has nothing left to send
    }


def test_queue_depth_finds_the_relayer_id_under_the_prefix() -> None:
    fake = _FakeRedis(_oz_state(pending=2, sent=5, submitted=30, listed=1))
    assert _observer(fake).queue_depth("redis://x", PREFIX) == 37


def test_queue_depth_with_a_known_id_reads_only_that_relayer() -> None:
    fake = _FakeRedis(_oz_state(pending=0, sent=0, submitted=4, listed=0))
    assert _observer(fake).queue_depth("redis://x", PREFIX, OZ_ID) == 4
    assert _observer(fake).queue_depth("redis://x", PREFIX, "someone-else") == 0


def test_queue_depth_without_oz_state_under_the_prefix_is_its_request_list() -> None:
    fake = _FakeRedis({observe.queue_key(PREFIX): 20})
    assert _observer(fake).queue_depth("redis://x", PREFIX) == 20
    assert _observer(fake).queue_depth("redis://x", PREFIX, OZ_ID) == 20
    assert _observer(_FakeRedis({})).queue_depth("redis://x", PREFIX) == 0


def test_queue_depth_ignores_stale_request_jobs_of_an_oz_relayer() -> None:
    fake = _FakeRedis(_oz_state(pending=0, sent=0, submitted=0, listed=5))
    assert _observer(fake).queue_depth("redis://x", PREFIX, OZ_ID) == 0


def test_queue_depth_is_unknown_when_redis_is_unreachable() -> None:
    assert _observer(_FakeRedis({}, fail=True)).queue_depth("redis://x", PREFIX) is None


def test_mined_transactions_keep_a_draining_relayer_unsettled() -> None:
    # Mined is not backlog, but its confirmed webhook is still to come: the drain must wait for it.
    fake = _FakeRedis(
        {
            observe.relayer_list_key(PREFIX): {OZ_ID},
            observe.status_index_key(PREFIX, OZ_ID, "Submitted"): 2,
            observe.status_index_key(PREFIX, OZ_ID, "Mined"): 3,
        }
    )
    snapshot = _observer(fake).backlog("redis://x", PREFIX, OZ_ID)
    assert snapshot == observe.Backlog(queued=2, unsettled=5)
    assert _observer(_FakeRedis({observe.queue_key(PREFIX): 4})).backlog("redis://x", PREFIX) == (
        observe.Backlog(queued=4, unsettled=None)
    )
