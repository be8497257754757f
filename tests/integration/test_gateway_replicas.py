"""Two gateway processes on one config and one Redis, in front of one pool of 3 stand-in relayers (the gateway
is what is tested: its replicas share quotas, idempotency, records and the gasless nonce reservations only
through Redis). Every request is sent to both replicas at once, as a client retrying on another pod does:
each transaction is sent once, the relayers share the load, and every record is readable on either replica."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from msq_devstack.chain import Chain
from msq_devstack.openbao import OpenBao
from msq_devstack.redis import Redis
from msq_gateway.devpool import LocalPool, Samples, deploy_samples, sha256_hex
from tests.support.gateway import (
    address_of,
    erc20_transfer,
    mint_tokens,
    nft_mint,
    random_address,
    rpc,
    signed_gasless,
    user_keys,
    wait_terminal,
)

pytestmark = pytest.mark.integration

KEY = "replica-client-key-0123456789abcdef0123456789ab"
DIRECT = 60
USERS = 12


@dataclass
class Env:
    pool: LocalPool
    samples: Samples
    urls: tuple[str, str]
    users: list[str]
    chain: Chain


@pytest.fixture(scope="module")
def env(
    chain: Chain,
    redis_server: Redis,
    openbao: OpenBao,
    stack_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Env]:
    samples = deploy_samples(chain)
    users = user_keys(USERS, "gw-replicas")
    pool = LocalPool(
        name="gwrep",
        chain=chain,
        redis_url=redis_server.url,
        openbao=openbao,
        work_dir=tmp_path_factory.mktemp("gw-replicas"),
        log_dir=stack_logs,
        size=3,
        forwarder=samples.forwarder,
        routing="LeastLoad",
        policies=[
            {
                "name": "samples",
                "contracts": [
                    {"address": samples.token, "methods": ["transfer(address,uint256)"]},
                    {"address": samples.nft, "methods": ["mint(address)"], "gasless": False},
                ],
            }
        ],
        api_keys=[{"name": "replicas", "sha256": sha256_hex(KEY)}],
        engine="dev",
    ).start()
    try:
        second = pool.add_gateway_replica()
        mint_tokens(
            chain.rpc_url, samples.token, samples.deployer_key, [address_of(k) for k in users], 10**24
        )
        yield Env(pool, samples, (pool.url, second), users, chain)
    finally:
        pool.stop()


async def _both(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], path: str, body: dict[str, Any]
) -> list[httpx.Response]:
    """The same request, with the same Idempotency-Key, to both replicas at the same moment."""
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    return list(await asyncio.gather(*(c.post(path, json=body, headers=headers) for c in clients)))


def _nft_owner_count(env: Env, owner: str) -> int:
    data = "0x70a08231" + "00" * 12 + owner[2:].lower()  # balanceOf(owner)
    return int(rpc(env.chain.rpc_url, "eth_call", [{"to": env.samples.nft, "data": data}, "latest"]), 16)


def test_two_replicas_send_each_transaction_once_and_share_the_pool(env: Env) -> None:
    recipients = [random_address() for _ in range(DIRECT)]
    nonces_before = env.pool.chain_nonces()

    async def run() -> tuple[
        list[list[httpx.Response]], list[list[httpx.Response]], list[list[httpx.Response]]
    ]:
        async with (
            httpx.AsyncClient(base_url=env.urls[0], headers={"X-API-Key": KEY}, timeout=60) as a,
            httpx.AsyncClient(base_url=env.urls[1], headers={"X-API-Key": KEY}, timeout=60) as b,
        ):
            sem = asyncio.Semaphore(12)

            async def direct(to: str) -> list[httpx.Response]:
                async with sem:
                    body = {"to": env.samples.nft, "data": "0x" + nft_mint(to).hex()}
                    return await _both((a, b), "/api/v1/relay/direct", body)

            async def gasless(key: str, same_key: bool) -> list[httpx.Response]:
                body = signed_gasless(
                    key,
                    to=env.samples.token,
                    data=erc20_transfer(random_address(), 7),
                    nonce=0,
                    chain_id=env.chain.chain_id,
                    forwarder=env.samples.forwarder,
                )
                if same_key:
                    return await _both((a, b), "/api/v1/relay/gasless", body)
                # No Idempotency-Key: only the forwarder nonce reservation, shared in Redis, stands between
                # the two replicas and a second send of the same signed request.
                return list(
                    await asyncio.gather(
                        a.post("/api/v1/relay/gasless", json=body), b.post("/api/v1/relay/gasless", json=body)
                    )
                )

            directs = await asyncio.gather(*(direct(to) for to in recipients))
            half = USERS // 2
            keyed = await asyncio.gather(*(gasless(k, True) for k in env.users[:half]))
            unkeyed = await asyncio.gather(*(gasless(k, False) for k in env.users[half:]))
            return list(directs), list(keyed), list(unkeyed)

    directs, keyed, unkeyed = asyncio.run(run())

    # Same Idempotency-Key on both replicas: both answer 202 with the same transaction, one of them replayed
    # (or, while the first is in progress, 409 idempotency_in_progress); never two transactions.
    ids: list[str] = []
    for pair in directs + keyed:
        accepted = [r for r in pair if r.status_code == 202]
        assert accepted, [(r.status_code, r.text) for r in pair]
        assert len({r.json()["id"] for r in accepted}) == 1, [r.text for r in pair]
        for r in pair:
            assert r.status_code == 202 or r.json()["code"] == "idempotency_in_progress", r.text
        ids.append(accepted[0].json()["id"])
    # No key: exactly one replica takes the signed request, the other refuses the reserved nonce.
    for pair in unkeyed:
        codes = sorted(r.status_code for r in pair)
        assert codes[0] == 202 and codes[1] != 202, [r.text for r in pair]
        refused = next(r for r in pair if r.status_code != 202)
        assert refused.json()["code"] == "nonce_mismatch", refused.text
        ids.append(next(r for r in pair if r.status_code == 202).json()["id"])

    # Every record is readable and terminal on either replica.
    done = wait_terminal(env.urls[1], KEY, ids, timeout=120)
    assert Counter(s["status"] for s in done.values()) == Counter({"confirmed": len(ids)})
    first = wait_terminal(env.urls[0], KEY, ids, timeout=10)
    assert {i: s["hash"] for i, s in first.items()} == {i: s["hash"] for i, s in done.items()}

    # On chain: each recipient minted exactly once, each user's signed transfer executed once (nonce 1 now),
    # and the relayers' nonces advanced by exactly the transactions sent.
    assert [_nft_owner_count(env, to) for to in recipients] == [1] * DIRECT
    forwarder_nonces = [
        int(
            rpc(
                env.chain.rpc_url,
                "eth_call",
                [
                    {
                        "to": env.samples.forwarder,
                        "data": "0x7ecebe00" + "00" * 12 + address_of(k)[2:].lower(),
                    },
                    "latest",
                ],
            ),
            16,
        )
        for k in env.users
    ]
    assert forwarder_nonces == [1] * USERS
    after = env.pool.chain_nonces()
    per_relayer = {rid: after[rid] - nonces_before[rid] for rid in after}
    assert sum(per_relayer.values()) == DIRECT + USERS
    # Shared between the replicas' routers: every relayer took part, none took most of it.
    print({"per_relayer": per_relayer})
    assert all(n >= (DIRECT + USERS) // 6 for n in per_relayer.values()), per_relayer
