"""On the real OZ engine, the operator's queue depth measures a relayer's backlog.

One OZ Relayer on an anvil of its own that mines only every 2 s (interval mining, no automine) gets a burst of
transactions faster than the chain takes them. The operator's reading (`Observer.queue_depth`, what becomes
`status.queueDepth` and what the autoscaler sums) must rise to the whole burst while it waits for the chain
and fall back to 0 once everything is confirmed. The old reading, the length of OZ's request list, is
sampled alongside and printed: OZ's workers empty that list at once, whatever the chain does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis

from msq_devstack import engine
from msq_devstack.chain import Chain, start_chain
from msq_devstack.openbao import OpenBao
from msq_devstack.redis import Redis
from msq_devstack.relayers import LocalRelayer, provision_relayer, start_relayer
from msq_operator.observe import Observer, queue_key

BURST = 40
BLOCK_TIME = 2.0
SAMPLE_EVERY = 0.2
# OZ schedules a transaction's first status check 8 s after it is created and retries every 8-12 s
# (constants/evm_transaction.rs:44, queues/retry_config.rs STATUS_EVM_BACKOFF), so a burst stays pending for
# at least that long even on a chain that mines it in the next block.
# On a busy 2-core machine (other relayers running) OZ itself takes a minute or more to sign and send 40.
DRAIN_TIMEOUT = 300.0
RECEIVER = "0x000000000000000000000000000000000000dEaD"
FINAL = {"confirmed", "failed", "canceled", "expired"}


@dataclass(frozen=True)
class Sample:
    t: float
    backlog: int | None  # the operator's reading, relayer id given (observed_status)
    discovered: int | None  # the same, id looked up under the prefix (autoscaler)
    request_list: int  # the old reading
    api_pending: int | None  # OZ's own pending_transactions_count


@pytest.fixture(scope="module")
def oz_engine() -> None:
    if engine.oz_binary() is None:
        pytest.skip(engine.HOW_TO_ENABLE)


@pytest.fixture
def slow_chain(oz_engine: None, stack_logs: Path) -> Iterator[Chain]:
    c = start_chain(stack_logs, block_time=BLOCK_TIME, automine=False, name="anvil-slow")
    yield c
    c.stop()


@pytest.fixture
def oz_relayer(
    slow_chain: Chain, openbao: OpenBao, redis_server: Redis, stack_logs: Path, tmp_path: Path
) -> Iterator[tuple[LocalRelayer, str]]:
    config_dir, env = provision_relayer(
        openbao, redis_server.url, slow_chain, relayer_id="oz-backlog", work_dir=tmp_path
    )
    relayer = start_relayer(config_dir, env, stack_logs, "oz-backlog", engine="oz")
    yield relayer, env["REDIS_KEY_PREFIX"]
    relayer.stop()


def _print_series(samples: list[Sample], burst_at: float, accepted_at: float, final_at: float) -> None:
    print(f"\nburst of {BURST} at t={burst_at:.1f}s, accepted by {accepted_at:.1f}s, final {final_at:.1f}s")
    print("   t(s)  backlog  discovered  request_list  api_pending")
    last: tuple[object, ...] | None = None
    for s in samples:
        row = (s.backlog, s.discovered, s.request_list, s.api_pending)
        if row != last:  # print the changes only: the plateau is long
            cells = f"{s.backlog!s:>7}  {s.discovered!s:>10}  {s.request_list:>12}  {s.api_pending!s:>11}"
            print(f"{s.t:7.1f}  {cells}")
            last = row
    old_max = max(s.request_list for s in samples)
    new_max = max(s.backlog or 0 for s in samples)
    print(f"max backlog {new_max}, max request list {old_max} (the old signal) over {len(samples)} samples")


def test_queue_depth_follows_the_backlog_of_a_real_oz_relayer(
    oz_relayer: tuple[LocalRelayer, str], redis_server: Redis
) -> None:
    relayer, prefix = oz_relayer
    observer = Observer()
    raw = redis.Redis.from_url(redis_server.url)
    base = f"{relayer.url}/api/v1/relayers/{relayer.relayer_id}"
    samples: list[Sample] = []
    stop = threading.Event()
    t0 = time.monotonic()

    api_pending: list[int | None] = [None]

    def sample_api() -> None:  # its own pace: a busy relayer answers /status in seconds, Redis in micros
        while not stop.is_set():
            status = observer.relayer_status(relayer.url, relayer.relayer_id, relayer.api_key)
            api_pending[0] = status.pending if status else None
            stop.wait(SAMPLE_EVERY)

    def sample() -> None:
        while not stop.is_set():
            samples.append(
                Sample(
                    t=time.monotonic() - t0,
                    backlog=observer.queue_depth(redis_server.url, prefix, relayer.relayer_id),
                    discovered=observer.queue_depth(redis_server.url, prefix),
                    request_list=int(raw.llen(queue_key(prefix))),
                    api_pending=api_pending[0],
                )
            )
            stop.wait(SAMPLE_EVERY)

    samplers = [threading.Thread(target=f, daemon=True) for f in (sample, sample_api)]
    for thread in samplers:
        thread.start()
    with httpx.Client(timeout=30, headers=relayer.headers) as http:
        time.sleep(1.0)  # a few samples of the idle relayer first
        body = {"to": RECEIVER, "value": 1, "data": "0x", "gas_limit": 21000, "speed": "fast"}

        def submit(_: int) -> str:
            reply = http.post(f"{base}/transactions", json=body)
            assert reply.status_code == 200, reply.text
            return str(reply.json()["data"]["id"])

        burst_at = time.monotonic() - t0
        with ThreadPoolExecutor(16) as pool:
            ids = list(pool.map(submit, range(BURST)))
        accepted_at = time.monotonic() - t0

        # Every transaction of the relayer: the burst, and any OZ adds itself (a NOOP filling a nonce gap).
        every: dict[str, dict[str, object]] = {}
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            try:  # one page holds them all; a busy relayer may time out a poll, the next one counts
                page = http.get(f"{base}/transactions", params={"page": 1, "per_page": 100}).json()["data"]
                every = {d["id"]: d for d in page}
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            if set(ids) <= every.keys() and all(d["status"] in FINAL for d in every.values()):
                break
            time.sleep(1.0)
        final = {i: every[i] for i in ids if i in every and every[i]["status"] in FINAL}
        final_at = time.monotonic() - t0
        time.sleep(1.0)  # and a few samples after the drain
    stop.set()
    for thread in samplers:
        thread.join(10)
    _print_series(samples, burst_at, accepted_at, final_at)

    extra = [d for i, d in every.items() if i not in ids]
    print(f"nonces {sorted(int(str(d['nonce'])) for d in every.values())}; added by OZ: {len(extra)}")
    assert len(final) == BURST, f"only {len(final)}/{BURST} final after {DRAIN_TIMEOUT:.0f}s"
    assert {d["status"] for d in final.values()} == {"confirmed"}
    assert all(d["status"] in FINAL for d in extra)
    # OZ gives every request its own nonce at once (no in-flight cap), never one nonce to two of them.
    assert len({d["nonce"] for d in final.values()}) == BURST

    during = [s for s in samples if burst_at <= s.t <= final_at]
    # Only OZ's status check marks a transaction mined, and the first one runs 8 s after its creation
    # (domain/relayer/evm/evm_relayer.rs:254-265), so when the last of the burst was created every one created
    # in the 7 s before stayed outstanding for at least another second: for a fast burst, all of it.
    created = [datetime.fromisoformat(str(d["created_at"])) for d in final.values()]
    outstanding = sum(1 for c in created if c > max(created) - timedelta(seconds=7))
    span = (max(created) - min(created)).total_seconds()
    print(f"burst created by OZ over {span:.1f}s: {outstanding} outstanding at once")
    # ... and never more than the relayer holds: one snapshot counts each transaction once.
    assert outstanding <= max(s.backlog or 0 for s in during) <= BURST + len(extra)
    assert outstanding <= max(s.discovered or 0 for s in during) <= BURST + len(extra)
    # ... while OZ's request list is already empty: the old reading sees none of it.
    assert any(s.request_list == 0 and (s.backlog or 0) >= BURST // 2 for s in during)
    # Everything confirmed: nothing is left, by either reading.
    assert observer.queue_depth(redis_server.url, prefix, relayer.relayer_id) == 0
    assert observer.queue_depth(redis_server.url, prefix) == 0
    api_after = [observer.relayer_status(relayer.url, relayer.relayer_id, relayer.api_key) for _ in range(5)]
    assert 0 in {a.pending for a in api_after if a is not None}, "OZ's own pending count did not reach 0"
    assert samples[-1].backlog == 0 and samples[-1].request_list == 0
