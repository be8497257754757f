"""Gateway overhead: latency of a gasless request through the gateway vs the same transaction sent straight
to the relayer, interleaved in one run on one local stack.

Both arms POST an `ERC2771Forwarder.execute` of a freshly signed ForwardRequest (a 0-token ERC-20 transfer,
each from a new user so every nonce is valid) and time the HTTP round trip until the relayer's acceptance.
Through the gateway that includes API-key auth, EIP-712 recovery, the forwarder nonce read (eth_call),
the nonce reservation, quota and idempotency-free relay hand-off and the record write; straight to the
relayer it is the relayer's own intake only. Requests are sequential, so this is latency, not throughput.

    .venv/bin/python -m bench.gateway_overhead [--requests 200]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account

from bench.report import emit, percentile, progress, quiet_logs
from msq_contracts.forward_request import ForwarderDomain, ForwardRequest, encode_execute, sign_request
from msq_devstack.stack import StackRunner
from msq_gateway.devpool import LocalPool, deploy_samples, sha256_hex

API_KEY = "bench-overhead-key-" + secrets.token_hex(16)
GAS = 100_000
OVERHEAD = 100_000  # the gateway's default gaslessGasOverhead, so both arms send the same gas limit


def _transfer_zero() -> bytes:
    return bytes.fromhex("a9059cbb") + bytes(12) + secrets.token_bytes(20) + bytes(32)


def _signed(token: str, domain: ForwarderDomain) -> tuple[ForwardRequest, bytes]:
    key = "0x" + secrets.token_hex(32)
    deadline = int(time.time()) + 3600
    req = ForwardRequest(
        from_=Account.from_key(key).address.lower(),
        to=token.lower(),
        value=0,
        gas=GAS,
        nonce=0,
        deadline=deadline,
        data=_transfer_zero(),
    )
    return req, sign_request(req, key, domain)


def _gateway_body(req: ForwardRequest, sig: bytes) -> dict[str, Any]:
    return {
        "request": {
            "from": req.from_,
            "to": req.to,
            "value": 0,
            "gas": req.gas,
            "nonce": 0,
            "deadline": req.deadline,
            "data": "0x" + req.data.hex(),
        },
        "signature": "0x" + sig.hex(),
    }


def _relayer_body(req: ForwardRequest, sig: bytes, forwarder: str) -> dict[str, Any]:
    return {
        "to": forwarder,
        "value": 0,
        "data": "0x" + encode_execute(req, sig).hex(),
        "gas_limit": GAS + -(-GAS // 63) + OVERHEAD,
        "speed": "fast",
        "valid_until": datetime.fromtimestamp(req.deadline, UTC).isoformat().replace("+00:00", "Z"),
    }


def _stats(samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def run(requests: int, warmup: int = 20) -> dict[str, Any]:
    with StackRunner(kube=False) as stack:
        assert stack.chain and stack.redis and stack.openbao
        samples = deploy_samples(stack.chain)
        work = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
        pool = LocalPool(
            name=f"bovh{secrets.token_hex(3)}",
            chain=stack.chain,
            redis_url=stack.redis.url,
            openbao=stack.openbao,
            work_dir=work,
            log_dir=stack.log_dir,
            size=1,
            forwarder=samples.forwarder,
            policies=[
                {
                    "name": "bench",
                    "contracts": [{"address": samples.token, "methods": ["transfer(address,uint256)"]}],
                }
            ],
            api_keys=[{"name": "bench", "sha256": sha256_hex(API_KEY)}],
        ).start()
        try:
            relayer = pool.relayers[0]
            domain = ForwarderDomain(
                name=pool.forwarder_name, chain_id=stack.chain.chain_id, verifying_contract=samples.forwarder
            )
            total = requests + warmup
            progress(f"signing {2 * total} requests")
            pairs = [(_signed(samples.token, domain), _signed(samples.token, domain)) for _ in range(total)]
            nonce_before = pool.chain_nonces()[relayer.relayer_id]
            via_gateway: list[float] = []
            direct: list[float] = []
            with (
                httpx.Client(base_url=pool.url, headers={"X-API-Key": API_KEY}, timeout=30) as gw,
                httpx.Client(
                    base_url=relayer.url, timeout=30, headers={"Authorization": f"Bearer {relayer.api_key}"}
                ) as rl,
            ):
                path = f"/api/v1/relayers/{relayer.relayer_id}/transactions"
                progress(f"timing {requests} pairs after {warmup} warm-up pairs")
                for i, ((g_req, g_sig), (d_req, d_sig)) in enumerate(pairs):
                    g_body = _gateway_body(g_req, g_sig)
                    d_body = _relayer_body(d_req, d_sig, samples.forwarder)
                    t0 = time.perf_counter()
                    r1 = gw.post("/api/v1/relay/gasless", json=g_body)
                    t1 = time.perf_counter()
                    r2 = rl.post(path, json=d_body)
                    t2 = time.perf_counter()
                    if r1.status_code != 202 or r2.status_code != 200:
                        raise RuntimeError(
                            f"request failed: {r1.status_code} {r1.text} / {r2.status_code} {r2.text}"
                        )
                    if i >= warmup:
                        via_gateway.append(t1 - t0)
                        direct.append(t2 - t1)
            # Sanity: every one of them was really sent (one relayer nonce each).
            deadline = time.monotonic() + 60
            while pool.chain_nonces()[relayer.relayer_id] < nonce_before + 2 * total:
                if time.monotonic() > deadline:
                    raise RuntimeError("not every benchmark transaction was mined")
                time.sleep(0.2)
        finally:
            pool.stop()
    gw_stats, d_stats = _stats(via_gateway), _stats(direct)
    return {
        "benchmark": "gateway_overhead",
        "requests_per_arm": requests,
        "transaction": "gasless ERC-20 transfer via ERC2771Forwarder.execute, sequential, keep-alive client",
        "via_gateway": gw_stats,
        "direct_to_relayer": d_stats,
        "ratio_p50": round(gw_stats["p50_ms"] / d_stats["p50_ms"], 3),
        "ratio_p99": round(gw_stats["p99_ms"] / d_stats["p99_ms"], 3),
        "gateway_added_p50_ms": round(gw_stats["p50_ms"] - d_stats["p50_ms"], 3),
        "all_mined": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    quiet_logs()
    emit(run(args.requests))


if __name__ == "__main__":
    main()
