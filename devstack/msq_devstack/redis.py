"""redis-server, without persistence unless asked for an append-only file."""

from __future__ import annotations

import os
import signal
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

    def restart(self, *, kill: bool = True, appendonly: bool | None = None, timeout: float = 20) -> None:
        """Stop (SIGKILL when `kill`, as a crash; else a clean shutdown) and start again on the same port and
        folder. `appendonly` switches the append-only file first: turned off at run time, the restarted
        server starts empty; left on, it replays what it acknowledged."""
        if appendonly is not None:
            value = "yes" if appendonly else "no"
            self.client().config_set("appendonly", value)
            argv = self.process.argv
            argv[argv.index("--appendonly") + 1] = value
        assert self.process.proc is not None
        if kill:
            os.killpg(self.process.proc.pid, signal.SIGKILL)
            self.process.proc.wait(10)
        else:
            self.process.stop()
        self.process.start()
        self.process.wait_ready(lambda: bool(self.client().ping()), timeout)

    def client(self) -> redis_client.Redis:
        return redis_client.Redis.from_url(self.url, socket_timeout=1)


def start_redis(
    log_dir: Path,
    timeout: float = 20,
    *,
    appendonly: bool = False,
    data_dir: Path | None = None,
    name: str = "redis",
) -> Redis:
    """`appendonly` fsyncs every write to the append-only file before answering (appendfsync always), so a
    killed server loses nothing it acknowledged; its files go to `data_dir` (default: `log_dir`)."""
    port = free_port()
    folder = data_dir or log_dir
    folder.mkdir(parents=True, exist_ok=True)
    proc = ManagedProcess(
        name,
        [
            tools.redis_server(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "yes" if appendonly else "no",
            "--appendfsync",
            "always",
            "--dir",
            str(folder),
        ],
        log_dir,
    ).start()
    url = f"redis://127.0.0.1:{port}/0"
    r = Redis(url=url, process=proc)
    proc.wait_ready(lambda: bool(r.client().ping()), timeout)
    return r
