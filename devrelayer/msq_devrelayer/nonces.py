"""Nonce allocation that never reuses a nonce the node may hold and never leaves a gap.

A nonce is handed out once and persisted (with the signed transaction) before the transaction is
broadcast, so a crash cannot hand it out again. Only when the node answered that it refused a transaction
does its nonce come back, into a free list that the next allocation drains first; a nonce still free when
there is nothing left to send is filled with a no-op self-transfer, because later nonces wait behind it.
"""

from __future__ import annotations

import heapq

import redis.asyncio as aioredis

from msq_devrelayer.redis_keys import RedisKeys


class NonceManager:
    def __init__(self) -> None:
        self.next = 0
        self._free: list[int] = []

    @property
    def free(self) -> list[int]:
        return sorted(self._free)

    def load(
        self,
        stored_next: int | None,
        stored_free: list[int],
        chain_pending: int,
        chain_latest: int,
        highest_held: int | None,
    ) -> None:
        """Start from whichever is furthest: our own counter, what the node has seen, what our records hold.

        Free nonces below the mined count were used on chain after all (someone else used the key) and
        are dropped.
        """
        candidates = [stored_next or 0, chain_pending]
        if highest_held is not None:
            candidates.append(highest_held + 1)
        self.next = max(candidates)
        self._free = [n for n in set(stored_free) if chain_latest <= n < self.next]
        heapq.heapify(self._free)

    def allocate(self) -> int:
        if self._free:
            return heapq.heappop(self._free)
        nonce = self.next
        self.next += 1
        return nonce

    def release(self, nonce: int) -> None:
        """Give back a nonce whose transaction the node refused (it is certainly not in its pool)."""
        if nonce < self.next and nonce not in self._free:
            heapq.heappush(self._free, nonce)

    def take(self, nonce: int) -> None:
        """A free nonce that got filled (by a no-op) is no longer free."""
        if nonce in self._free:
            self._free.remove(nonce)
            heapq.heapify(self._free)

    def resync(self, chain_pending: int) -> None:
        """The node says a nonce was too low: something else moved the account forward."""
        if chain_pending > self.next:
            self.next = chain_pending
        self._free = [n for n in self._free if n >= chain_pending]
        heapq.heapify(self._free)

    def persist(self, pipe: aioredis.client.Pipeline, keys: RedisKeys) -> None:
        pipe.set(keys.nonce_next, self.next)
        pipe.delete(keys.nonce_free)
        if self._free:
            pipe.zadd(keys.nonce_free, {str(n): n for n in self._free})
