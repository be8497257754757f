"""Unknown outcomes reconciled on real parts (gateway, two dev relayers, Redis, anvil): a submission whose
answer times out for real (a read timeout shorter than the relayer's answer) is found at the relayer by
what was sent and ends in the relayer's terminal status, with the client's callback then; one the relayer
never received ends `failed`, saying so. Nothing is sent twice."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis as AsyncRedis

from msq_devstack.chain import Chain
from msq_devstack.openbao import OpenBao
from msq_devstack.redis import Redis
from msq_gateway.app import DIRECT
from msq_gateway.devpool import LocalPool, Samples, deploy_samples, sha256_hex
from msq_gateway.idempotency import Claim, Idempotency, fingerprint
from msq_gateway.models import DirectRelayRequest
from msq_gateway.store import Sent, TxStore, new_id
from tests.support.gateway import CallbackReceiver, nft_mint, random_address

KEY = "unknown-outcome-key-0123456789abcdef0123456789"
SECRET = "unknown-outcome-callback-secret"
GIVE_UP_SECONDS = 3


@pytest.fixture(scope="module")
def pool(
    chain: Chain,
    redis_server: Redis,
    openbao: OpenBao,
    stack_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalPool, Samples, CallbackReceiver]]:
    samples = deploy_samples(chain)
    receiver = CallbackReceiver()
    work = tmp_path_factory.mktemp("unknown")
    (work / "gateway" / "secrets").mkdir(parents=True)
    (work / "gateway" / "secrets" / "callback").write_text(SECRET)
    p = LocalPool(
        name="unknown",
        chain=chain,
        redis_url=redis_server.url,
        openbao=openbao,
        work_dir=work,
        log_dir=stack_logs,
        size=2,
        forwarder=samples.forwarder,
        policies=[{"name": "nft", "contracts": [{"address": samples.nft, "methods": ["mint(address)"]}]}],
        api_keys=[
            {
                "name": "client",
                "sha256": sha256_hex(KEY),
                "callbackUrl": receiver.url,
                "callbackSecretFile": "secrets/callback",
            }
        ],
        limits={"unknownReconcileSeconds": 0.5, "unknownGiveUpSeconds": GIVE_UP_SECONDS},
    ).start()
    try:
        yield p, samples, receiver
    finally:
        p.stop()
        receiver.stop()


def _status(p: LocalPool, gid: str) -> dict[str, Any]:
    return httpx.get(f"{p.url}/api/v1/relay/status/{gid}", headers={"X-API-Key": KEY}, timeout=10).json()


def _nft_balance(chain: Chain, nft: str, owner: str) -> int:
    call = {"to": nft, "data": "0x70a08231" + owner[2:].lower().rjust(64, "0")}
    reply = httpx.post(
        chain.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [call, "latest"]}
    )
    return int(reply.json()["result"], 16)


def _wait(fn: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := fn():
            return result
        time.sleep(0.2)
    raise AssertionError("not reached")


def test_a_timed_out_submission_ends_in_the_relayers_terminal_status_with_its_callback(
    pool: tuple[LocalPool, Samples, CallbackReceiver], chain: Chain
) -> None:
    p, samples, receiver = pool
    # The relayer answers in milliseconds; a read timeout of 1 ms after the request is written makes the
    # gateway give up on the answer while the relayer goes on and creates the transaction.
    p.limits = {**p.limits, "relayTimeoutSeconds": 0.001}
    p.apply()
    unknown: list[tuple[str, str]] = []
    try:
        for _ in range(20):
            owner = random_address()
            body = {"to": samples.nft, "data": "0x" + nft_mint(owner).hex()}
            r = httpx.post(f"{p.url}/api/v1/relay/direct", json=body, headers={"X-API-Key": KEY}, timeout=30)
            if r.status_code == 504:
                assert r.json()["code"] == "relay_outcome_unknown", r.text
                unknown.append((r.json()["id"], owner))
            if len(unknown) == 2:
                break
    finally:
        p.limits = {k: v for k, v in p.limits.items() if k != "relayTimeoutSeconds"}
        p.apply()
    assert len(unknown) == 2, "no submission timed out"
    for gid, owner in unknown:
        done = _wait(lambda g=gid: (s := _status(p, g))["status"] == "confirmed" and s)
        assert done["transactionId"] and done["hash"], done
        assert _nft_balance(chain, samples.nft, owner) == 1  # minted once: found, not resent
        # The client heard of it when it became known.
        _wait(
            lambda g=gid: any(
                json.loads(body).get("id") == g and json.loads(body).get("status") == "confirmed"
                for _, body in receiver.received
            ),
            timeout=30,
        )
    # Two records never claim one transaction.
    assert len({_status(p, gid)["transactionId"] for gid, _ in unknown}) == 2


def test_an_unknown_outcome_the_relayer_never_received_ends_failed(
    pool: tuple[LocalPool, Samples, CallbackReceiver], redis_server: Redis
) -> None:
    """A submission lost before the relayer read it (the connection broke mid-request) leaves the gateway
    with an unknown record and the relayer with nothing. That loss cannot be caused on demand, so the record
    is written here through the gateway's own store, as the gateway writes one."""
    p, samples, receiver = pool
    relayer = p.relayers[0]
    gid = new_id()

    async def write() -> None:
        redis = AsyncRedis.from_url(redis_server.url, decode_responses=True)
        try:
            await TxStore(redis, f"msq-gw-{p.name}").create(
                gid,
                kind="direct",
                client="client",
                relayer_id=relayer.relayer_id,
                tx_id=None,
                status="unknown",
                hash=None,
                ttl=3600,
                sent=Sent(to=samples.nft, data="0x" + nft_mint(random_address()).hex(), value="0"),
            )
        finally:
            await redis.aclose()

    asyncio.run(write())
    assert _status(p, gid)["status"] == "unknown"
    done = _wait(lambda: (s := _status(p, gid))["status"] == "failed" and s, timeout=GIVE_UP_SECONDS + 30)
    assert "never sent" in done["statusReason"] and relayer.relayer_id in done["statusReason"], done
    assert not done["transactionId"]
    _wait(
        lambda: any(
            json.loads(body).get("id") == gid and json.loads(body).get("status") == "failed"
            for _, body in receiver.received
        ),
        timeout=30,
    )


def test_an_unknown_outcome_the_relayer_answered_ends_failed_without_the_give_up_wait(
    pool: tuple[LocalPool, Samples, CallbackReceiver], redis_server: Redis
) -> None:
    """A relayer that answered the submission with an HTTP 500 outside its envelope (its store failed
    mid-write, as in a Redis restart) had finished with it: once it lists its transactions without it, the
    record ends `failed` at once, while a timed-out one still waits for the give-up time. The 500 itself
    cannot be caused on demand here, so both records are written through the gateway's own store."""
    p, samples, _ = pool
    # Records younger than a submission's time-outs are left alone (it may still be on its way): short ones.
    p.limits = {**p.limits, "unknownGiveUpSeconds": 600, "relayTimeoutSeconds": 1}
    p.apply()
    relayer = p.relayers[0]
    answered, timed_out = new_id(), new_id()

    async def write() -> None:
        redis = AsyncRedis.from_url(redis_server.url, decode_responses=True)
        try:
            for gid, was_answered in ((answered, True), (timed_out, False)):
                await TxStore(redis, f"msq-gw-{p.name}").create(
                    gid,
                    kind="direct",
                    client="client",
                    relayer_id=relayer.relayer_id,
                    tx_id=None,
                    status="unknown",
                    hash=None,
                    ttl=3600,
                    sent=Sent(
                        to=samples.nft,
                        data="0x" + nft_mint(random_address()).hex(),
                        value="0",
                        answered=was_answered,
                    ),
                )
        finally:
            await redis.aclose()

    try:
        asyncio.run(write())
        done = _wait(lambda: (s := _status(p, answered))["status"] == "failed" and s, timeout=30)
        assert "answered HTTP 500" in done["statusReason"] and "never sent" in done["statusReason"], done
        assert _status(p, timed_out)["status"] == "unknown"
    finally:
        changed = ("unknownGiveUpSeconds", "relayTimeoutSeconds")
        p.limits = {k: v for k, v in p.limits.items() if k not in changed}
        p.apply()


def test_a_retry_after_a_gateway_died_mid_request_gets_the_first_record_not_a_second_transaction(
    pool: tuple[LocalPool, Samples, CallbackReceiver], redis_server: Redis
) -> None:
    """A gateway killed while the relayer had the transaction leaves an Idempotency-Key claimed for record
    `gid` and that record, written `unknown` before the relayer saw it. A retry with the key waits
    `idempotencyWaitSeconds`, then gets 504 with that id, stored as the key's answer, instead of a 409 until
    the claim expires (and a second transaction then). A claim whose record was never written (the gateway
    died before sending) still answers 409. A dying gateway cannot be stopped at that exact point on demand,
    so both are written here through the gateway's own stores, as the gateway writes them."""
    p, samples, _ = pool
    p.limits = {**p.limits, "idempotencyWaitSeconds": 1}
    p.apply()
    prefix = f"msq-gw-{p.name}"
    bodies = [{"to": samples.nft, "data": "0x" + nft_mint(random_address()).hex()} for _ in range(2)]
    with_record, without_record = new_id(), new_id()

    async def write() -> None:
        redis = AsyncRedis.from_url(redis_server.url, decode_responses=True)
        try:
            claims = (("key-with-record", with_record), ("key-without-record", without_record))
            for (key, gid), body in zip(claims, bodies, strict=True):
                canonical = DirectRelayRequest.model_validate(body).model_dump_json(by_alias=True)
                fp = fingerprint(DIRECT, canonical)
                claim = await Idempotency(redis, prefix).begin(
                    "client", key, fp, 1, gid=gid, record_exists=_never, done_ttl=3600
                )
                assert isinstance(claim, Claim)
            await TxStore(redis, prefix).create(
                with_record,
                kind="direct",
                client="client",
                relayer_id=p.relayers[0].relayer_id,
                tx_id=None,
                status="unknown",
                hash=None,
                ttl=3600,
                sent=Sent(to=samples.nft, data=bodies[0]["data"], value="0"),
            )
        finally:
            await redis.aclose()

    def retry(key: str, body: dict[str, str]) -> httpx.Response:
        return httpx.post(
            f"{p.url}/api/v1/relay/direct",
            json=body,
            headers={"X-API-Key": KEY, "Idempotency-Key": key},
            timeout=30,
        )

    try:
        asyncio.run(write())
        first = retry("key-with-record", bodies[0])
        assert (first.status_code, first.json()["code"], first.json()["id"]) == (
            504,
            "relay_outcome_unknown",
            with_record,
        ), first.text
        again = retry("key-with-record", bodies[0])  # the stored answer, at once
        assert again.json()["id"] == with_record and again.headers["Idempotent-Replayed"] == "true"
        blocked = retry("key-without-record", bodies[1])
        assert (blocked.status_code, blocked.json()["code"]) == (409, "idempotency_in_progress"), blocked.text
    finally:
        p.limits = {k: v for k, v in p.limits.items() if k != "idempotencyWaitSeconds"}
        p.apply()


async def _never(gid: str) -> bool:
    return False
