"""Redis is real."""

import redis

from msq_devstack.redis import Redis


def test_lpush_llen(redis_server: Redis) -> None:
    r = redis.Redis.from_url(redis_server.url)
    key = "smoke:queue:transaction_request_queue:active"
    r.delete(key)
    r.lpush(key, "a", "b", "c")
    assert r.llen(key) == 3
