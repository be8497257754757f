"""Gateway cost: requests per second and CPU time per request of each process, side by side in one run.

Arms, each driven by wrk (bench/loadgen.py) for the same time over the same number of connections:
- `trivial`: a FastAPI POST that parses a JSON body (bench/endpoints.py): the ceiling of any FastAPI service;
- `sink_direct`: the sink relayer alone (answers OZ's transaction call at once, no chain behind it);
- `gateway_direct`: `POST /api/v1/relay/direct` through the gateway to the sink;
- `gateway_gasless`: `POST /api/v1/relay/gasless` (a distinct pre-signed ForwardRequest per request: EIP-712
  recovery, policy, the forwarder nonce read on anvil, the nonce reservation) through the gateway to the sink;
- `latency`: the sink and the gateway's direct route again over one connection: the latency the gateway adds;
- `anvil_raw`: pre-signed transfers posted as `eth_sendRawTransaction` to anvil: the chain's own rate.

CPU per request is user + system time from /proc of every process over its arm (wrk's from its rusage),
divided by the requests answered; idle work (status polls, timers) is included. The ratios are the targets
of the throughput work: direct >= 0.5x and gasless >= 0.4x the trivial endpoint's req/s, gateway CPU <= 1 ms
per direct and <= 1.5 ms per gasless request, added p50 latency <= 2 ms.

    .venv/bin/python -m bench.gateway_cost [--seconds 4] [--connections 32] [--profile bench/profiles]
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_utils import to_checksum_address

from bench.cpu import cpu_seconds
from bench.loadgen import LoadResult, run_wrk
from bench.pool_scaling import mint_body
from bench.profile import profiling
from bench.report import emit, progress, quiet_logs
from msq_contracts.forward_request import ForwarderDomain, ForwardRequest, sign_request
from msq_devstack.chain import ANVIL_KEYS
from msq_devstack.process import ManagedProcess, free_port
from msq_devstack.stack import StackRunner
from msq_gateway.devpool import LocalPool, deploy_samples, sha256_hex

API_KEY = "bench-cost-key-" + secrets.token_hex(16)
SINK_ID = "sink-0"
SINK_KEY = "sink-api-key-" + secrets.token_hex(16)
DIRECT = "/api/v1/relay/direct"
GASLESS = "/api/v1/relay/gasless"


def _gasless_bodies(token: str, domain: ForwarderDomain, n: int) -> list[str]:
    deadline = int(time.time()) + 3000
    out = []
    for _ in range(n):
        key = secrets.token_bytes(32)
        sender = Account.from_key(key).address
        data = bytes.fromhex("a9059cbb") + bytes(12) + secrets.token_bytes(20) + bytes(32)
        req = ForwardRequest(
            from_=sender, to=token, value=0, gas=100_000, nonce=0, deadline=deadline, data=data
        )
        sig = sign_request(req, key, domain)
        body = {
            "request": {
                "from": sender,
                "to": token,
                "value": "0",
                "gas": "100000",
                "nonce": "0",
                "deadline": str(deadline),
                "data": "0x" + data.hex(),
            },
            "signature": "0x" + sig.hex(),
        }
        out.append(json.dumps(body))
    return out


def _raw_transfers(chain_id: int, rpc_url: str, n: int) -> list[str]:
    account = Account.from_key(ANVIL_KEYS[-1])
    reply = httpx.post(
        rpc_url,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_getTransactionCount",
            "params": [account.address, "pending"],
        },
        timeout=5,
    ).json()
    first = int(reply["result"], 16)
    out = []
    for i in range(n):
        tx = {
            "to": to_checksum_address("0x" + secrets.token_hex(20)),
            "value": 1,
            "gas": 21000,
            "maxFeePerGas": 10**11,
            "maxPriorityFeePerGas": 10**9,
            "nonce": first + i,
            "chainId": chain_id,
        }
        raw = account.sign_transaction(tx).raw_transaction.hex()
        raw = raw if raw.startswith("0x") else "0x" + raw
        out.append(
            json.dumps({"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [raw]})
        )
    return out


def _arm(
    name: str,
    pids: dict[str, int],
    load: Callable[[], LoadResult],
    answered_ok: Callable[[LoadResult], int],
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    with profiling({"gateway": pids["gateway"]}, profile_dir, name):
        before = {part: cpu_seconds(pid) for part, pid in pids.items()}
        result = load()
    ok = answered_ok(result)
    if ok != result.requests or result.errors:
        raise RuntimeError(f"{name}: {result.requests - ok} unexpected answers: {result.summary()}")
    cpu = {part: (cpu_seconds(pid) - before[part]) for part, pid in pids.items()}
    cpu["wrk"] = result.cpu_seconds
    row = result.summary()
    row["cpu_ms_per_request"] = {
        part: round(s * 1000 / max(1, result.requests), 3) for part, s in cpu.items()
    }
    progress(f"{name}: {row['rps']} req/s, p50 {row['p50_ms']} ms, cpu/request {row['cpu_ms_per_request']}")
    return row


def _met(value: float, op: str, bound: float) -> dict[str, Any]:
    ok = value >= bound if op == ">=" else value <= bound
    return {"value": round(value, 3), "target": f"{op} {bound}", "met": ok}


def run(seconds: float = 4, connections: int = 32, profile_dir: Path | None = None) -> dict[str, Any]:
    with StackRunner(kube=False) as stack:
        assert stack.chain and stack.redis and stack.openbao and stack.redis.process.proc
        assert stack.chain.process.proc
        samples = deploy_samples(stack.chain)
        work = Path(tempfile.mkdtemp(prefix="bench-cost-"))
        procs: list[ManagedProcess] = []

        def serve(which: str) -> str:
            port = free_port()
            p = ManagedProcess(
                f"bench-{which}",
                [sys.executable, "-m", "bench.endpoints", which, "--port", str(port)],
                stack.log_dir,
            ).start()
            procs.append(p)
            url = f"http://127.0.0.1:{port}"
            p.wait_ready(
                lambda: httpx.get(f"{url}/api/v1/relayers/x/status", timeout=2).status_code < 500, 30
            )
            return url

        (work / "gateway" / "secrets").mkdir(parents=True)
        (work / "gateway" / "secrets" / "sink.api-key").write_text(SINK_KEY)
        (work / "gateway" / "secrets" / "sink.signing-key").write_text(secrets.token_hex(32))
        pool = None
        try:
            sink_url, trivial_url = serve("sink"), serve("trivial")
            pool = LocalPool(
                name=f"bcost{secrets.token_hex(3)}",
                chain=stack.chain,
                redis_url=stack.redis.url,
                openbao=stack.openbao,
                work_dir=work,
                log_dir=stack.log_dir,
                size=0,
                forwarder=samples.forwarder,
                policies=[
                    {
                        "name": "bench",
                        "contracts": [
                            {"address": samples.nft, "methods": ["mint(address)"]},
                            {"address": samples.token, "methods": ["transfer(address,uint256)"]},
                        ],
                    }
                ],
                api_keys=[{"name": "bench", "sha256": sha256_hex(API_KEY)}],
                extra_relayers=[
                    {
                        "id": SINK_ID,
                        "url": sink_url,
                        "apiKeyFile": "secrets/sink.api-key",
                        "webhookSigningKeyFile": "secrets/sink.signing-key",
                    }
                ],
            ).start()
            assert pool.gateway and pool.gateway.proc
            pids = {
                "gateway": pool.gateway.proc.pid,
                "sink": procs[0].proc.pid,  # type: ignore[union-attr]
                "trivial": procs[1].proc.pid,  # type: ignore[union-attr]
                "redis": stack.redis.process.proc.pid,
                "anvil": stack.chain.process.proc.pid,
            }
            sink_path = f"/api/v1/relayers/{SINK_ID}/transactions"
            domain = ForwarderDomain(
                name="MSQForwarder", chain_id=stack.chain.chain_id, verifying_contract=samples.forwarder
            )
            progress("signing gasless requests and raw transfers")
            direct = [mint_body(samples.nft) for _ in range(2000)]
            gasless = _gasless_bodies(samples.token, domain, int(1500 * seconds))
            warm = _gasless_bodies(samples.token, domain, 300)
            raw = _raw_transfers(stack.chain.chain_id, stack.chain.rpc_url, int(1500 * seconds))

            def wrk(
                url: str, path: str, bodies: list[str], conns: int = connections, key: str = ""
            ) -> LoadResult:
                # Direct bodies may repeat (each is one more mint to the sink); signed ones are used once.
                return run_wrk(
                    url, path, bodies, seconds=seconds, connections=conns, api_key=key, reuse=bodies is direct
                )

            status_202: Callable[[LoadResult], int] = lambda r: r.ok(202)  # noqa: E731
            status_200: Callable[[LoadResult], int] = lambda r: r.ok(200)  # noqa: E731
            progress("warm-up")
            run_wrk(pool.url, DIRECT, direct, seconds=1, connections=connections, api_key=API_KEY, reuse=True)
            run_wrk(pool.url, GASLESS, warm, seconds=1, connections=4, api_key=API_KEY)
            rows = {
                "trivial": _arm("trivial", pids, lambda: wrk(trivial_url, "/echo", direct), status_200),
                "sink_direct": _arm(
                    "sink_direct", pids, lambda: wrk(sink_url, sink_path, direct, key=SINK_KEY), status_200
                ),
                "gateway_direct": _arm(
                    "gateway_direct",
                    pids,
                    lambda: wrk(pool.url, DIRECT, direct, key=API_KEY),
                    status_202,
                    profile_dir,
                ),
                "gateway_gasless": _arm(
                    "gateway_gasless",
                    pids,
                    lambda: wrk(pool.url, GASLESS, gasless, key=API_KEY),
                    status_202,
                    profile_dir,
                ),
                "latency_sink_direct": _arm(
                    "latency_sink_direct",
                    pids,
                    lambda: wrk(sink_url, sink_path, direct, conns=1, key=SINK_KEY),
                    status_200,
                ),
                "latency_gateway_direct": _arm(
                    "latency_gateway_direct",
                    pids,
                    lambda: wrk(pool.url, DIRECT, direct, conns=1, key=API_KEY),
                    status_202,
                ),
                "anvil_raw": _arm(
                    "anvil_raw", pids, lambda: wrk(stack.chain.rpc_url, "/", raw, conns=8), status_200
                ),
            }
        finally:
            if pool is not None:
                pool.stop()
            for p in procs:
                p.stop()
    trivial_rps = rows["trivial"]["rps"]
    gw_direct = rows["gateway_direct"]["cpu_ms_per_request"]["gateway"]
    gw_gasless = rows["gateway_gasless"]["cpu_ms_per_request"]["gateway"]
    added_p50 = rows["latency_gateway_direct"]["p50_ms"] - rows["latency_sink_direct"]["p50_ms"]
    return {
        "benchmark": "gateway_cost",
        "seconds_per_arm": seconds,
        "connections": connections,
        "arms": rows,
        "targets": {
            "direct_rps_vs_trivial": _met(rows["gateway_direct"]["rps"] / trivial_rps, ">=", 0.5),
            "gasless_rps_vs_trivial": _met(rows["gateway_gasless"]["rps"] / trivial_rps, ">=", 0.4),
            "gateway_cpu_ms_per_direct": _met(gw_direct, "<=", 1.0),
            "gateway_cpu_ms_per_gasless": _met(gw_gasless, "<=", 1.5),
            "added_p50_ms_direct": _met(added_p50, "<=", 2.0),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--profile",
        type=Path,
        help="write py-spy collapsed stacks of the gateway for its two throughput arms into this folder",
    )
    args = parser.parse_args()
    quiet_logs()
    emit(run(args.seconds, args.connections, args.profile))


if __name__ == "__main__":
    main()
