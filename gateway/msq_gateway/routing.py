"""Which relayer of the pool gets the next transaction.

Relayer health and load come from each relayer's `/status`, polled in the background (never on the request
path). Between polls, transactions this gateway handed to a relayer are added to its last reported pending
count, so LeastLoad does not send a burst to whichever relayer looked idle at the last poll.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import aiohttp

from msq_gateway import metrics
from msq_gateway.relayer_client import RelayerError, get_status
from msq_gateway.runtime import RelayerTarget, Snapshot
from msq_gateway.upstreams import Upstreams

log = logging.getLogger("msq_gateway.routing")


@dataclass
class RelayerState:
    # Optimistic until the first poll: a dead relayer costs one refused connection, then is skipped.
    healthy: bool = True
    paused: bool = False
    pending: int = 0
    handed_since_poll: int = 0
    polled_at: float = 0.0
    error: str | None = None
    failed_polls: int = 0

    @property
    def load(self) -> int:
        return self.pending + self.handed_since_poll


class Router:
    def __init__(self) -> None:
        self.states: dict[str, RelayerState] = {}
        self._next = 0

    def state(self, relayer_id: str) -> RelayerState:
        st = self.states.get(relayer_id)
        if st is None:
            st = self.states[relayer_id] = RelayerState()
        return st

    def routable(self, relayers: Iterable[RelayerTarget]) -> list[RelayerTarget]:
        out = []
        for r in relayers:
            st = self.state(r.id)
            if st.healthy and not st.paused and not r.draining:
                out.append(r)
        return out

    def pick(
        self, snapshot: Snapshot, exclude: set[str] | frozenset[str] = frozenset()
    ) -> RelayerTarget | None:
        candidates = [r for r in self.routable(snapshot.relayers) if r.id not in exclude]
        if not candidates:
            return None
        start = self._next % len(candidates)
        self._next += 1
        if snapshot.config.routing.strategy == "RoundRobin":
            return candidates[start]
        # LeastLoad: lowest load wins; the rotating start breaks ties so equal relayers share evenly.
        best = candidates[start]
        best_load = self.state(best.id).load
        for i in range(1, len(candidates)):
            r = candidates[(start + i) % len(candidates)]
            load = self.state(r.id).load
            if load < best_load:
                best, best_load = r, load
        return best

    def handed(self, relayer_id: str) -> None:
        self.state(relayer_id).handed_since_poll += 1

    def mark_unreachable(self, relayer_id: str, reason: str) -> None:
        st = self.state(relayer_id)
        st.healthy = False
        st.error = reason
        metrics.RELAYER_ROUTABLE.labels(relayer=relayer_id).set(0)

    async def poll_one(
        self, http: aiohttp.ClientSession, relayer: RelayerTarget, timeout: float, failure_threshold: int
    ) -> None:
        st = self.state(relayer.id)
        handed_before = st.handed_since_poll
        try:
            status = await get_status(http, relayer, timeout)
        except RelayerError as exc:
            st.failed_polls += 1
            st.error = str(exc)
            if st.healthy and (exc.refused or st.failed_polls >= failure_threshold):
                log.warning("relayer %s unhealthy (%d failed polls): %s", relayer.id, st.failed_polls, exc)
                st.healthy = False
        else:
            if not st.healthy:
                log.info("relayer %s healthy again", relayer.id)
            st.healthy, st.error, st.failed_polls = True, None, 0
            st.paused = status.paused or status.disabled
            st.pending = status.pending
            # Hand-offs made while the poll was in flight are not in its answer yet.
            st.handed_since_poll = max(0, st.handed_since_poll - handed_before)
            metrics.RELAYER_PENDING.labels(relayer=relayer.id).set(status.pending)
        st.polled_at = time.monotonic()
        metrics.RELAYER_ROUTABLE.labels(relayer=relayer.id).set(
            1 if st.healthy and not st.paused and not relayer.draining else 0
        )

    async def poll_all(self, upstreams: Upstreams, snapshot: Snapshot) -> None:
        timeout = snapshot.config.routing.status_timeout_seconds
        threshold = snapshot.config.routing.unhealthy_after_failures
        await asyncio.gather(
            *(self.poll_one(upstreams.relayer(r), r, timeout, threshold) for r in snapshot.relayers)
        )
        for gone in set(self.states) - set(snapshot.relayers_by_id):
            del self.states[gone]

    async def run(self, upstreams: Upstreams, current: Callable[[], Snapshot]) -> None:
        while True:
            snapshot = current()
            try:
                await self.poll_all(upstreams, snapshot)
            except Exception:
                log.exception("relayer status poll failed")
            await asyncio.sleep(snapshot.config.routing.status_refresh_seconds)
