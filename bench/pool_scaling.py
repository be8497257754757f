"""Pool scaling: confirmed transactions per second through the gateway with 1, 2, 4 and 8 relayers, in one run
on one local stack (anvil with automine, one Redis, relayers as processes: the stand-in, or with
`--engine oz` the real OZ Relayer binary), with the CPU time each part spent per transaction (from /proc).

Eight relayers are provisioned once; for each size N the gateway config marks all but N as draining (a hot
reload, as the operator does on scale-down). Then M direct NFT mints are submitted through the gateway with
a fixed number in flight, and the clock stops when every one of them is confirmed: the active relayers report
nothing pending and their on-chain nonces advanced by exactly M. Efficiency is tps_N / (N * tps_1).

Everything shares this machine's cores (2 on the project's machines): the gateway, every relayer, anvil,
Redis and the load generator. More relayers add parallel nonce lanes but also processes competing for the
same CPUs, which is what the efficiency column shows.

    .venv/bin/python -m bench.pool_scaling [--transactions 300] [--concurrency 48] [--sizes 1,2,4,8]
        [--engine dev|oz]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.cpu import cpu_seconds
from bench.report import emit, progress, quiet_logs
from msq_devstack.stack import StackRunner
from msq_gateway.devpool import LocalPool, deploy_samples, sha256_hex

API_KEY = "bench-scaling-key-" + secrets.token_hex(16)


def _mint(nft: str) -> dict[str, Any]:
    return {"to": nft, "data": "0x6a627842" + "00" * 12 + secrets.token_hex(20), "gasLimit": 200_000}


async def _submit(url: str, nft: str, count: int, concurrency: int) -> tuple[float, dict[str, int]]:
    per_relayer: dict[str, int] = {}
    async with httpx.AsyncClient(
        base_url=url,
        headers={"X-API-Key": API_KEY},
        timeout=60,
        limits=httpx.Limits(max_connections=concurrency),
    ) as client:
        sem = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with sem:
                resp = await client.post("/api/v1/relay/direct", json=_mint(nft))
            if resp.status_code != 202:
                raise RuntimeError(f"submission failed: {resp.status_code} {resp.text}")
            rid = resp.json()["relayerId"]
            per_relayer[rid] = per_relayer.get(rid, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return time.perf_counter() - start, per_relayer


def _parts(pool: LocalPool, stack: Any, active: list[Any]) -> dict[str, int]:
    parts = {r.relayer_id: r.process.process.proc.pid for r in active}
    assert pool.gateway and pool.gateway.proc and stack.chain.process.proc and stack.redis.process.proc
    parts.update(gateway=pool.gateway.proc.pid, anvil=stack.chain.process.proc.pid)
    parts["redis"] = stack.redis.process.proc.pid
    return parts


def _measure(
    pool: LocalPool, stack: Any, nft: str, size: int, count: int, concurrency: int
) -> dict[str, Any]:
    active = pool.relayers[:size]
    for i, r in enumerate(pool.relayers):
        r.draining = i >= size
    pool.apply()
    before = pool.chain_nonces()
    pids = _parts(pool, stack, active)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    start = time.perf_counter()
    accepted_s, per_relayer = asyncio.run(_submit(pool.url, nft, count, concurrency))
    deadline = time.monotonic() + 600
    while True:
        nonces = pool.chain_nonces()
        mined = sum(nonces[r.relayer_id] - before[r.relayer_id] for r in active)
        if mined >= count and all(r.status()["pending_transactions_count"] == 0 for r in active):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count - mined} transactions not confirmed in time with {size} relayers")
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    cpu_ms = {
        name: round((cpu_seconds(pid) - cpu_before[name]) * 1000 / count, 2) for name, pid in pids.items()
    }
    if mined != count:
        raise RuntimeError(f"expected {count} transactions from the active relayers, chain shows {mined}")
    return {
        "relayers": size,
        "transactions": count,
        "seconds": round(elapsed, 3),
        "confirmed_tps": round(count / elapsed, 1),
        "accepted_tps": round(count / accepted_s, 1),
        "per_relayer": dict(sorted(per_relayer.items())),
        "cpu_ms_per_tx": cpu_ms,
    }


def run(sizes: list[int], count: int, concurrency: int, engine: str = "dev") -> dict[str, Any]:
    with StackRunner(kube=False) as stack:
        assert stack.chain and stack.redis and stack.openbao
        samples = deploy_samples(stack.chain)
        progress(f"starting {max(sizes)} relayers and the gateway")
        pool = LocalPool(
            name=f"bscl{secrets.token_hex(3)}",
            chain=stack.chain,
            redis_url=stack.redis.url,
            openbao=stack.openbao,
            work_dir=Path(tempfile.mkdtemp(prefix="bench-scaling-")),
            log_dir=stack.log_dir,
            size=max(sizes),
            forwarder=samples.forwarder,
            routing="LeastLoad",
            policies=[
                {"name": "bench", "contracts": [{"address": samples.nft, "methods": ["mint(address)"]}]}
            ],
            api_keys=[{"name": "bench", "sha256": sha256_hex(API_KEY)}],
            engine=engine,
        ).start()
        try:
            progress("warm-up")
            _measure(pool, stack, samples.nft, max(sizes), min(100, count), concurrency)
            rows = []
            for size in sizes:
                progress(f"{size} relayer(s): {count} transactions")
                rows.append(_measure(pool, stack, samples.nft, size, count, concurrency))
        finally:
            pool.stop()
    base = rows[0]["confirmed_tps"] / rows[0]["relayers"]
    for row in rows:
        row["efficiency"] = round(row["confirmed_tps"] / (row["relayers"] * base), 3)
    return {
        "benchmark": "pool_scaling",
        "engine": engine,
        "transaction": "direct ERC-721 mint through the gateway (LeastLoad), anvil automine, 1 confirmation",
        "concurrency": concurrency,
        "results": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=48)
    parser.add_argument("--sizes", default="1,2,4,8")
    parser.add_argument("--engine", choices=["dev", "oz"], default="dev")
    args = parser.parse_args()
    quiet_logs()
    emit(run([int(s) for s in args.sizes.split(",")], args.transactions, args.concurrency, args.engine))


if __name__ == "__main__":
    main()
