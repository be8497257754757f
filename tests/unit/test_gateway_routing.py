"""Relayer choice: RoundRobin spreads evenly, LeastLoad prefers idle relayers, both skip unroutable ones."""

from __future__ import annotations

import asyncio
import http.server
import os
import threading
import time
from collections import Counter

from msq_devstack.process import free_port
from msq_gateway.routing import Router
from msq_gateway.runtime import Snapshot
from msq_gateway.upstreams import new_http_client
from tests.support.gateway import config_doc, snapshot_of


def _snap(n: int, strategy: str = "RoundRobin", draining: tuple[str, ...] = ()) -> Snapshot:
    relayers = [
        {
            "id": f"rl-{i}",
            "url": f"http://127.0.0.1:{10000 + i}",
            "apiKeyEnv": "GW_UNIT_KEY",
            "draining": f"rl-{i}" in draining,
        }
        for i in range(n)
    ]
    os.environ.setdefault("GW_UNIT_KEY", "x" * 40)
    return snapshot_of(config_doc(relayers=relayers, routing=strategy))


def _picks(router: Router, snap: Snapshot, count: int, hand: bool = True) -> Counter[str]:
    out: Counter[str] = Counter()
    for _ in range(count):
        r = router.pick(snap)
        assert r is not None
        out[r.id] += 1
        if hand:
            router.handed(r.id)
    return out


def test_round_robin_is_even() -> None:
    snap = _snap(3)
    assert _picks(Router(), snap, 300) == {"rl-0": 100, "rl-1": 100, "rl-2": 100}


def test_unroutable_relayers_are_skipped() -> None:
    snap = _snap(4, draining=("rl-3",))
    router = Router()
    router.mark_unreachable("rl-0", "refused")
    router.state("rl-1").paused = True
    assert _picks(router, snap, 10) == {"rl-2": 10}
    router.state("rl-2").healthy = False
    assert router.pick(snap) is None


def test_exclusion_for_retries() -> None:
    snap = _snap(3)
    router = Router()
    seen: set[str] = set()
    for _ in range(3):
        r = router.pick(snap, exclude=seen)
        assert r is not None and r.id not in seen
        seen.add(r.id)
    assert router.pick(snap, exclude=seen) is None


def test_least_load_prefers_idle_relayers() -> None:
    snap = _snap(3, "LeastLoad")
    router = Router()
    router.state("rl-0").pending = 50
    router.state("rl-1").pending = 0
    router.state("rl-2").pending = 10
    picks = _picks(router, snap, 30)
    # rl-1 takes everything until it carries as much as rl-2; rl-0 stays untouched.
    assert picks["rl-0"] == 0
    assert picks["rl-1"] == 20 and picks["rl-2"] == 10


def test_least_load_ties_rotate() -> None:
    snap = _snap(4, "LeastLoad")
    picks = _picks(Router(), snap, 400)
    assert set(picks.values()) == {100}


def test_least_load_without_handoffs_still_spreads_ties() -> None:
    snap = _snap(2, "LeastLoad")
    picks = _picks(Router(), snap, 10, hand=False)
    assert picks == {"rl-0": 5, "rl-1": 5}


class _SlowStatus(http.server.BaseHTTPRequestHandler):
    """A relayer so busy that its /status answers after the poll's timeout."""

    def do_GET(self) -> None:
        time.sleep(0.5)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_slow_status_polls_leave_routing_only_after_the_threshold_and_refusals_at_once() -> None:
    slow = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowStatus)
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    os.environ.setdefault("GW_UNIT_KEY", "x" * 40)
    busy_url = f"http://127.0.0.1:{slow.server_address[1]}"
    snap = snapshot_of(
        config_doc(
            relayers=[
                {"id": "busy", "url": busy_url, "apiKeyEnv": "GW_UNIT_KEY"},
                {"id": "gone", "url": f"http://127.0.0.1:{free_port()}", "apiKeyEnv": "GW_UNIT_KEY"},
            ]
        )
    )
    busy, gone = snap.relayers
    router = Router()

    async def polls(n: int) -> list[list[str]]:
        routable = []
        async with new_http_client() as http_client:
            for _ in range(n):
                for r in (busy, gone):
                    await router.poll_one(http_client, r, 0.1, 3)
                routable.append([r.id for r in router.routable(snap.relayers)])
        return routable

    try:
        assert asyncio.run(polls(3)) == [["busy"], ["busy"], []]
        assert router.state("busy").failed_polls == 3
        assert "Timeout" in (router.state("busy").error or "")
    finally:
        slow.shutdown()
        slow.server_close()
