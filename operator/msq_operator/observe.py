"""What the operator reads from running relayers: OZ `/status` over HTTP and queue depth from Redis."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import httpx
import redis


@dataclass(frozen=True)
class RelayerStatus:
    balance: str
    nonce: int
    pending: int
    paused: bool


QUEUE_SUFFIX = ":queue:transaction_request_queue:active"


def queue_key(prefix: str) -> str:
    return f"{prefix}{QUEUE_SUFFIX}"


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

    def queue_depth(self, redis_url: str, prefix: str) -> int | None:
        with self._lock:
            client = self._redis.get(redis_url)
            if client is None:
                client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
                self._redis[redis_url] = client
        try:
            return int(client.llen(queue_key(prefix)))
        except redis.RedisError:
            return None
