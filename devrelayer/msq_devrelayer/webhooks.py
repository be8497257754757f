"""Transaction status webhooks in OZ's notification shape, signed like OZ signs them.

Body: `{"id", "event": "transaction_update", "payload": {"payload_type": "transaction", ...transaction},
"timestamp"}`; header `X-Signature` = base64(HMAC-SHA256(raw body, signing key)). Deliveries run
concurrently and are retried a few times, so a receiver can see them out of order: order by status, not
by arrival.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from msq_devrelayer.http_post import HttpPoster, PostError
from msq_devrelayer.records import now_iso

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.2, 1.0, 3.0)
# While the receiver is down, events pile up faster than retries drain them; past this many waiting, new
# events are dropped (and counted) rather than growing memory without bound.
MAX_WAITING = 20_000
WARN_EVERY = 10.0


def sign_body(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def transaction_update(transaction: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "event": "transaction_update",
            "payload": {"payload_type": "transaction", **transaction},
            "timestamp": now_iso(),
        },
        separators=(",", ":"),
    ).encode()


class Notifier:
    def __init__(
        self,
        url: str,
        signing_key: str | None,
        workers: int = 16,
        on_result: Callable[[bool], None] | None = None,
    ) -> None:
        self._on_result = on_result
        self._url = url
        self._key = signing_key
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=MAX_WAITING)
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._poster = HttpPoster(url, timeout=5.0, max_idle=workers)
        self._failed_since_warning = 0
        self._last_warning = -WARN_EVERY

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name=f"webhook-{i}") for i in range(self._workers)]

    def notify(self, transaction: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(transaction_update(transaction))
        except asyncio.QueueFull:
            self._dropped("queue full")

    def _dropped(self, reason: str) -> None:
        if self._on_result is not None:
            self._on_result(False)
        self._failed_since_warning += 1
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY:
            log.warning(
                "%d webhooks to %s dropped since the last warning (latest: %s)",
                self._failed_since_warning,
                self._url,
                reason,
            )
            self._failed_since_warning, self._last_warning = 0, now

    async def drain(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._poster.aclose()

    async def _deliver(self, body: bytes) -> bool:
        headers = {"Content-Type": "application/json"}
        if self._key is not None:
            headers["X-Signature"] = sign_body(body, self._key)
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS)):
            if delay:
                await asyncio.sleep(delay)
            try:
                status = await self._poster.post(body, headers)
            except (PostError, OSError, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= status < 300:
                    return True
                reason = f"HTTP {status}"
            log.debug("webhook attempt %d to %s failed: %s", attempt + 1, self._url, reason)
        self._dropped(f"{len(RETRY_DELAYS) + 1} attempts failed: {reason}")
        return False

    async def _run(self) -> None:
        while True:
            body = await self._queue.get()
            try:
                if await self._deliver(body) and self._on_result is not None:
                    self._on_result(True)
            except Exception:
                log.exception("webhook delivery crashed")
            finally:
                self._queue.task_done()
