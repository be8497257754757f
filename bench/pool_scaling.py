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
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.cpu import cpu_seconds
from bench.loadgen import run_wrk
from bench.profile import profiling
from bench.report import emit, progress, quiet_logs
from msq_devstack.stack import StackRunner
from msq_gateway.devpool import LocalPool, deploy_samples, sha256_hex

API_KEY = "bench-scaling-key-" + secrets.token_hex(16)


def mint_body(nft: str) -> str:
    """A direct ERC-721 `mint(address)` to a fresh address, as a gateway request body."""
    return json.dumps(
        {"to": nft, "data": "0x6a627842" + "00" * 12 + secrets.token_hex(20), "gasLimit": 200000}
    )


def _accepted(pool: LocalPool) -> int:
    """Direct transactions the gateway handed to a relayer so far, from its own counter. wrk is interrupted
    once its bodies run out, and a request it had not finished writing then never reaches the gateway: the
    count of transactions to wait for is the gateway's, not the number of bodies."""
    text = httpx.get(f"{pool.url}/metrics", timeout=5).text
    prefix = 'msq_gateway_relayed_transactions_total{kind="direct",status="accepted"} '
    return sum(int(float(line.removeprefix(prefix))) for line in text.splitlines() if line.startswith(prefix))


def _parts(pool: LocalPool, stack: Any, active: list[Any]) -> dict[str, int]:
    parts = {r.relayer_id: r.process.process.proc.pid for r in active}
    assert pool.gateway and pool.gateway.proc and stack.chain.process.proc and stack.redis.process.proc
    parts.update(gateway=pool.gateway.proc.pid, anvil=stack.chain.process.proc.pid)
    parts["redis"] = stack.redis.process.proc.pid
    return parts


def _measure(
    pool: LocalPool,
    stack: Any,
    nft: str,
    size: int,
    count: int,
    concurrency: int,
    timeout: float = 300,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    active = pool.relayers[:size]
    for i, r in enumerate(pool.relayers):
        r.draining = i >= size
    pool.apply()
    before = pool.chain_nonces()
    pids = _parts(pool, stack, active)
    bodies = [mint_body(nft) for _ in range(count)]
    accepted_before = _accepted(pool)
    sampled = {name: pid for name, pid in pids.items() if name in ("gateway", active[0].relayer_id)}
    with profiling(sampled, profile_dir, f"relayers-{size}"):
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        start = time.perf_counter()
        load = run_wrk(
            pool.url, "/api/v1/relay/direct", bodies, seconds=600, connections=concurrency, api_key=API_KEY,
            tail_path="/healthz",
        )  # fmt: skip
        # Requests written before wrk was interrupted are still being relayed: wait for the count to settle.
        sent, settled = -1, _accepted(pool) - accepted_before
        while settled != sent:
            sent = settled
            time.sleep(0.5)
            settled = _accepted(pool) - accepted_before
        deadline = time.monotonic() + timeout
        while True:
            nonces = pool.chain_nonces()
            mined = {r.relayer_id: nonces[r.relayer_id] - before[r.relayer_id] for r in active}
            if sum(mined.values()) >= sent and all(
                r.status()["pending_transactions_count"] == 0 for r in active
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{sent - sum(mined.values())} of {sent} transactions not confirmed in time; "
                    f"the gateway answered {load.summary()['statuses']}"
                )
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    cpu["wrk"] = load.cpu_seconds
    cpu_ms = {name: round(seconds * 1000 / sent, 3) for name, seconds in cpu.items()}
    if sum(mined.values()) != sent or sent < count - concurrency:
        raise RuntimeError(
            f"expected {sent} transactions from the active relayers, chain shows {mined}; "
            f"the gateway answered {load.summary()['statuses']}"
        )
    return {
        "relayers": size,
        "transactions": sent,
        "seconds": round(elapsed, 3),
        "confirmed_tps": round(sent / elapsed, 1),
        "accepted_tps": round(load.ok(202) / load.seconds, 1),
        "submit_p50_ms": round(load.p50_ms, 2),
        "submit_p99_ms": round(load.p99_ms, 2),
        "per_relayer": dict(sorted(mined.items())),
        "cpu_ms_per_tx": cpu_ms,
    }


def run(
    sizes: list[int], count: int, concurrency: int, engine: str = "dev", profile_dir: Path | None = None
) -> dict[str, Any]:
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
            _measure(pool, stack, samples.nft, max(sizes), min(100, count), concurrency, timeout=30)
            rows = []
            for size in sizes:
                progress(f"{size} relayer(s): {count} transactions")
                rows.append(
                    _measure(pool, stack, samples.nft, size, count, concurrency, profile_dir=profile_dir)
                )
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
    parser.add_argument(
        "--profile", type=Path, help="write py-spy collapsed stacks of the gateway and the first relayer here"
    )
    args = parser.parse_args()
    quiet_logs()
    sizes = [int(s) for s in args.sizes.split(",")]
    emit(run(sizes, args.transactions, args.concurrency, args.engine, args.profile))


if __name__ == "__main__":
    main()
