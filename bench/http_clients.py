"""HTTP clients for the gateway's calls to relayers, compared by measurement: CPU time of the client process
per request, and requests per second, posting the same transaction body to the sink relayer
(bench/endpoints.py) with the same number in flight, the clients interleaved in rounds in one run.

    .venv/bin/python -m bench.http_clients [--requests 4000] [--concurrency 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.report import emit, progress, quiet_logs
from msq_devstack.process import ManagedProcess, free_port

BODY = {"to": "0x" + "ab" * 20, "value": "0", "data": "0x6a627842" + "00" * 32, "gas_limit": 200000}
PATH = "/api/v1/relayers/sink-0/transactions"


async def _drive(count: int, concurrency: int, one: Callable[[], Awaitable[None]]) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def task() -> None:
        async with sem:
            await one()

    start = time.process_time()
    await asyncio.gather(*(task() for _ in range(count)))
    return time.process_time() - start


async def _httpx(url: str, count: int, concurrency: int) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10, trust_env=False) as client:

        async def one() -> None:
            resp = await client.post(url + PATH, json=BODY, headers={"Authorization": "Bearer k"})
            json.loads(resp.content)

        await _drive(50, concurrency, one)
        wall = time.perf_counter()
        cpu = await _drive(count, concurrency, one)
        return cpu, time.perf_counter() - wall


async def _aiohttp(url: str, count: int, concurrency: int) -> tuple[float, float]:
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=4.0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def one() -> None:
            async with session.post(url + PATH, json=BODY, headers={"Authorization": "Bearer k"}) as resp:
                json.loads(await resp.read())

        await _drive(50, concurrency, one)
        wall = time.perf_counter()
        cpu = await _drive(count, concurrency, one)
        return cpu, time.perf_counter() - wall


CLIENTS: dict[str, Callable[[str, int, int], Awaitable[tuple[float, float]]]] = {
    "httpx": _httpx,
    "aiohttp": _aiohttp,
}


def run(requests: int, concurrency: int, rounds: int) -> dict[str, Any]:
    port = free_port()
    sink = ManagedProcess(
        "bench-sink",
        [sys.executable, "-m", "bench.endpoints", "sink", "--port", str(port)],
        Path(tempfile.mkdtemp(prefix="bench-clients-")),
    ).start()
    url = f"http://127.0.0.1:{port}"
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in CLIENTS}
    try:
        sink.wait_ready(lambda: httpx.get(url + "/x/status", timeout=2).status_code == 200, 30)
        for r in range(rounds):
            for name, client in CLIENTS.items():
                cpu, wall = asyncio.run(client(url, requests, concurrency))
                samples[name].append((cpu, wall))
                progress(
                    f"round {r + 1} {name}: {cpu * 1e6 / requests:.0f} us CPU/request, "
                    f"{requests / wall:.0f} req/s"
                )
    finally:
        sink.stop()
    out: dict[str, Any] = {}
    for name, got in samples.items():
        out[name] = {
            "client_cpu_us_per_request": round(statistics.median(c for c, _ in got) * 1e6 / requests, 1),
            "rps": round(statistics.median(requests / w for _, w in got), 1),
        }
    out["cpu_ratio_httpx_to_aiohttp"] = round(
        out["httpx"]["client_cpu_us_per_request"] / out["aiohttp"]["client_cpu_us_per_request"], 2
    )
    return {
        "benchmark": "http_clients",
        "requests": requests,
        "concurrency": concurrency,
        "rounds": rounds,
        "clients": out,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    quiet_logs()
    emit(run(args.requests, args.concurrency, args.rounds))


if __name__ == "__main__":
    main()
