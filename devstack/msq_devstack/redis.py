"""redis-server without persistence."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import redis as redis_client

from msq_devstack import tools
from msq_devstack.process import ManagedProcess, free_port


@dataclass
class Redis:
    url: str
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()


def start_redis(log_dir: Path, timeout: float = 20) -> Redis:
    port = free_port()
    proc = ManagedProcess(
        "redis",
        [
            tools.redis_server(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(log_dir),
        ],
        log_dir,
    ).start()
    url = f"redis://127.0.0.1:{port}/0"
    proc.wait_ready(lambda: bool(redis_client.Redis.from_url(url, socket_timeout=1).ping()), timeout)
    return Redis(url=url, process=proc)
