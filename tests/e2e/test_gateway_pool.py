"""A pool of 3 relayers (the real OZ Relayer where it is built, else the stand-in) behind the gateway on
anvil: mixed transactions end confirmed with their effects on chain and clean nonces; a relayer killed
mid-run loses nothing and stops getting traffic."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from msq_devstack import engine
from msq_devstack.chain import Chain
from msq_devstack.openbao import OpenBao
from msq_devstack.redis import Redis
from msq_gateway.devpool import LocalPool, Samples, deploy_samples, sha256_hex
from tests.support.gateway import (
    address_of,
    balance_of,
    erc20_transfer,
    mint_tokens,
    nft_mint,
    random_address,
    rpc,
    signed_gasless,
    user_keys,
    wait_terminal,
)

KEY = "e2e-client-key-0123456789abcdef0123456789abcdef"
ENGINE = engine.selected()
USERS = 10
# The real OZ Relayer, built as its own release profile builds it (opt-level 0), spends about 1.6 s of CPU per
# transaction here (bench/README.md), a hundred times the stand-in: the same flows, fewer transactions.
DIRECT, GASLESS_ROUNDS, CONCURRENCY = (120, 8, 16) if ENGINE == "dev" else (30, 2, 6)
TOTAL = DIRECT + USERS * GASLESS_ROUNDS
TOKENS = 10**24


@dataclass
class Env:
    pool: LocalPool
    samples: Samples
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
    users = user_keys(USERS, "gw-e2e")
    pool = LocalPool(
        name="gwe2e",
        chain=chain,
        redis_url=redis_server.url,
        openbao=openbao,
        work_dir=tmp_path_factory.mktemp("gw-e2e"),
        log_dir=stack_logs,
        size=3,
        forwarder=samples.forwarder,
        policies=[
            {
                "name": "samples",
                "contracts": [
                    {"address": samples.token, "methods": ["transfer(address,uint256)"]},
                    {"address": samples.nft, "methods": ["mint(address)"], "gasless": False},
                ],
            }
        ],
        api_keys=[{"name": "e2e", "sha256": sha256_hex(KEY)}],
        engine=ENGINE,
    ).start()
    try:
        # Users hold tokens but no ETH; relayers hold tokens for their own direct transfers.
        mint_tokens(
            chain.rpc_url,
            samples.token,
            samples.deployer_key,
            [address_of(k) for k in users] + [r.address for r in pool.relayers],
            TOKENS,
        )
        yield Env(pool, samples, users, chain)
    finally:
        pool.stop()


@dataclass
class Sent:
    kind: str  # gasless | mint | transfer
    recipient: str
    amount: int
    sender: str | None  # gasless: the user
    response: dict[str, Any]
    started: float


async def _direct(client: httpx.AsyncClient, env: Env, kind: str, sem: asyncio.Semaphore) -> Sent:
    recipient = random_address()
    amount = 0 if kind == "mint" else 1 + int(recipient[-4:], 16) % 1000
    if kind == "mint":
        body = {"to": env.samples.nft, "data": "0x" + nft_mint(recipient).hex()}
    else:
        body = {"to": env.samples.token, "data": "0x" + erc20_transfer(recipient, amount).hex()}
    async with sem:
        started = time.monotonic()
        resp = await client.post("/api/v1/relay/direct", json=body)
    return Sent(kind, recipient, amount, None, {"status_code": resp.status_code, **resp.json()}, started)


async def _gasless_rounds(client: httpx.AsyncClient, env: Env, rounds: int) -> list[Sent]:
    """Each user sends `rounds` transfers, one at a time: a forwarder nonce is usable once the previous one
    is consumed on chain, so a user's next request waits for the previous one's confirmation."""
    out: list[Sent] = []

    async def user_flow(key: str) -> None:
        user = address_of(key)
        nonce = int((await client.get(f"/api/v1/relay/gasless/nonce/{user}")).json()["nonce"])
        for i in range(rounds):
            recipient = random_address()
            amount = 1 + i
            body = signed_gasless(
                key,
                to=env.samples.token,
                data=erc20_transfer(recipient, amount),
                nonce=nonce + i,
                chain_id=env.chain.chain_id,
                forwarder=env.samples.forwarder,
            )
            started = time.monotonic()
            resp = await client.post("/api/v1/relay/gasless", json=body)
            sent = Sent(
                "gasless", recipient, amount, user, {"status_code": resp.status_code, **resp.json()}, started
            )
            out.append(sent)
            assert resp.status_code == 202, resp.text
            gid = resp.json()["id"]
            while (await client.get(f"/api/v1/relay/status/{gid}")).json()["status"] != "confirmed":
                await asyncio.sleep(0.05)

    await asyncio.gather(*(user_flow(k) for k in env.users))
    return out


def _tx_nonces(rpc_url: str, hashes: list[str]) -> dict[str, list[int]]:
    by_sender: dict[str, list[int]] = defaultdict(list)
    for h in hashes:
        tx = rpc(rpc_url, "eth_getTransactionByHash", [h])
        assert tx is not None, f"transaction {h} not on chain"
        by_sender[tx["from"].lower()].append(int(tx["nonce"], 16))
    return by_sender


def test_200_mixed_transactions(env: Env) -> None:
    pool, rpc_url, token = env.pool, env.chain.rpc_url, env.samples.token
    nonces_before = {
        r.address.lower(): n for r, n in zip(pool.relayers, pool.chain_nonces().values(), strict=True)
    }
    user_before = {address_of(k): balance_of(rpc_url, token, address_of(k)) for k in env.users}
    relayer_token_before = {r.relayer_id: balance_of(rpc_url, token, r.address) for r in pool.relayers}

    async def run() -> list[Sent]:
        async with httpx.AsyncClient(
            base_url=pool.url, headers={"X-API-Key": KEY}, timeout=30, limits=httpx.Limits(max_connections=64)
        ) as client:
            sem = asyncio.Semaphore(CONCURRENCY)
            directs = [_direct(client, env, "mint" if i % 2 else "transfer", sem) for i in range(DIRECT)]
            gasless, direct = await asyncio.gather(
                _gasless_rounds(client, env, GASLESS_ROUNDS), asyncio.gather(*directs)
            )
            return [*gasless, *direct]

    sent = asyncio.run(run())
    assert len(sent) == TOTAL
    assert all(s.response["status_code"] == 202 for s in sent), [
        s.response for s in sent if s.response["status_code"] != 202
    ][:3]
    final = wait_terminal(pool.url, KEY, [s.response["id"] for s in sent], timeout=240)
    assert Counter(b["status"] for b in final.values()) == {"confirmed": TOTAL}

    # On-chain effects, one recipient per request.
    spent_by_user: Counter[str] = Counter()
    spent_by_relayer: Counter[str] = Counter()
    for s in sent:
        if s.kind == "mint":
            nft_balance = rpc(
                rpc_url,
                "eth_call",
                [{"to": env.samples.nft, "data": "0x70a08231" + "00" * 12 + s.recipient[2:]}, "latest"],
            )
            assert int(nft_balance, 16) == 1
        else:
            assert balance_of(rpc_url, token, s.recipient) == s.amount
            if s.kind == "gasless":
                assert s.sender is not None
                spent_by_user[s.sender] += s.amount
            else:
                spent_by_relayer[s.response["relayerId"]] += s.amount
    # Gasless transfers moved the users' tokens: the token saw the user as _msgSender(), not the relayer.
    for user, before in user_before.items():
        assert balance_of(rpc_url, token, user) == before - spent_by_user[user]
    for r in pool.relayers:
        assert (
            balance_of(rpc_url, token, r.address)
            == relayer_token_before[r.relayer_id] - spent_by_relayer[r.relayer_id]
        )

    # Nonces: every transaction of a relayer has its own nonce, and they fill exactly the range it used.
    nonces_after = {
        r.address.lower(): n for r, n in zip(pool.relayers, pool.chain_nonces().values(), strict=True)
    }
    by_sender = _tx_nonces(rpc_url, [b["hash"] for b in final.values()])
    assert set(by_sender) <= set(nonces_before)
    for address, nonces in by_sender.items():
        assert len(nonces) == len(set(nonces)), f"nonce reused by {address}"
        assert sorted(nonces) == list(range(nonces_before[address], nonces_after[address])), address

    # RoundRobin: an even spread (picks are sequential in the gateway, so within one of each other).
    per_relayer = Counter(s.response["relayerId"] for s in sent)
    assert set(per_relayer) == {r.relayer_id for r in pool.relayers}
    assert max(per_relayer.values()) - min(per_relayer.values()) <= 1, per_relayer


def test_killed_relayer_loses_nothing_and_gets_no_new_traffic(env: Env) -> None:
    pool = env.pool
    victim = pool.relayers[1]
    kill_at: list[float] = []

    async def run() -> list[Sent]:
        async with httpx.AsyncClient(base_url=pool.url, headers={"X-API-Key": KEY}, timeout=30) as client:
            sem = asyncio.Semaphore(6 if ENGINE == "dev" else 3)

            async def killer() -> None:
                # Kill once the victim has taken a few transactions, while requests are still flowing.
                while True:
                    await asyncio.sleep(0.02)
                    if (
                        sum(
                            1
                            for t in tasks
                            if t.done() and t.result().response.get("relayerId") == victim.relayer_id
                        )
                        >= 5
                    ):
                        break
                await asyncio.to_thread(pool.kill_relayer, 1)
                kill_at.append(time.monotonic())

            count = 90 if ENGINE == "dev" else 24
            tasks = [asyncio.create_task(_direct(client, env, "mint", sem)) for _ in range(count)]
            await asyncio.gather(killer(), *tasks)
            return [t.result() for t in tasks]

    sent = asyncio.run(run())
    assert kill_at, "the victim was never killed"
    codes = Counter((s.response["status_code"], s.response.get("code", "ok")) for s in sent)
    assert set(codes) <= {(202, "ok"), (504, "relay_outcome_unknown")}, codes
    accepted = [s for s in sent if s.response["status_code"] == 202]
    unknown = [s for s in sent if s.response["status_code"] == 504]
    on_victim = [s for s in accepted if s.response["relayerId"] == victim.relayer_id]
    assert len(on_victim) >= 5
    # Requests that started after the kill went to the others.
    after = [s for s in accepted if s.started > kill_at[0]]
    assert after and all(s.response["relayerId"] != victim.relayer_id for s in after)

    # The victim comes back (same key, same Redis queue): what it had accepted still ends terminal.
    pool.restart_relayer(1)
    final = wait_terminal(pool.url, KEY, [s.response["id"] for s in accepted], timeout=240)
    assert Counter(b["status"] for b in final.values()) == {"confirmed": len(accepted)}
    for s in unknown:  # reported as such, with the relayer that may hold it
        status = httpx.get(
            f"{pool.url}/api/v1/relay/status/{s.response['id']}", headers={"X-API-Key": KEY}
        ).json()
        assert status["status"] in ("unknown", "confirmed") and status["relayerId"] == victim.relayer_id
    by_sender = _tx_nonces(env.chain.rpc_url, [b["hash"] for b in final.values()])
    for address, nonces in by_sender.items():
        assert len(nonces) == len(set(nonces)), f"nonce reused by {address}"
    status = victim.status()
    assert status["pending_transactions_count"] == 0
    assert int(status["nonce"]) == pool.chain_nonces()[victim.relayer_id]

    # And it takes new traffic again, once the gateway's status poll sees it serving (a restarted OZ relayer
    # may first report itself disabled while it re-checks its balance).
    routable = f'msq_gateway_relayer_routable{{relayer="{victim.relayer_id}"}} 1.0'
    deadline = time.monotonic() + 60
    while routable not in httpx.get(f"{pool.url}/metrics", timeout=5).text and time.monotonic() < deadline:
        time.sleep(0.5)

    async def more() -> list[Sent]:
        async with httpx.AsyncClient(base_url=pool.url, headers={"X-API-Key": KEY}, timeout=30) as client:
            sem = asyncio.Semaphore(4)
            return await asyncio.gather(*(_direct(client, env, "mint", sem) for _ in range(9)))

    again = asyncio.run(more())
    assert Counter(s.response["relayerId"] for s in again)[victim.relayer_id] == 3
    wait_terminal(pool.url, KEY, [s.response["id"] for s in again], timeout=240)
