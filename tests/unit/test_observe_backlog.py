"""The operator's backlog reading: OZ's own Redis key layout and the count OZ reports as
`pending_transactions_count`. Reading it from a real Redis, with a relayer's id or Redis missing, is
tests/integration/test_observe_backlog_redis.py."""

from __future__ import annotations

import pytest

from msq_operator import observe

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
