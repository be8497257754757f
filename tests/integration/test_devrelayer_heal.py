"""Healing stuck transactions on the dev relayer, as OZ Relayer v1.8.0 does it: `PUT` replaces a transaction
at its nonce, `DELETE` cancels it (at once while pending, with a no-op self-transfer once signed).

Stuck is made real on anvil: mining is paused (`Chain.congested`) so a transaction stays `submitted` in the
mempool, and `anvil_dropTransaction` removes it there, so its nonce stays open and every later transaction of
the relayer waits behind it. The stand-in never broadcasts a `submitted` transaction again, so only these
endpoints get such a relayer going.

A transaction is `pending` on a running relayer for milliseconds only; the pending cases run an engine in this
process, on the same Redis and chain, whose workers start only after the requests were answered.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from msq_devrelayer.api import create_app
from msq_devrelayer.config import load_config
from msq_devrelayer.engine import CANCELED_BY_USER, CANCELED_WITH_NOOP, UNBUMPABLE, Engine
from msq_devrelayer.fees import min_bump
from msq_devrelayer.metrics import Metrics
from msq_devrelayer.redis_keys import RedisKeys
from msq_devrelayer.rpc import JsonRpc
from msq_devrelayer.signer import KeySigner
from msq_devstack.chain import Chain
from msq_devstack.openbao import OpenBao
from msq_devstack.redis import Redis
from msq_devstack.relayers import ENV_EXPECTED_ADDRESS, LocalRelayer, provision_relayer, start_relayer
from tests.support.relayer_io import WebhookReceiver, rpc, tx_count, wait_for

DEAD = "0x000000000000000000000000000000000000dEaD"
FINAL = {"confirmed", "failed", "expired", "canceled"}
HEALABLE = "[Pending, Sent, Submitted]"


def fresh_address() -> str:
    """A recipient no other test pays, so its balance says whether a transfer happened."""
    return "0x" + secrets.token_hex(20)


def balance(chain: Chain, address: str) -> int:
    return int(rpc(chain, "eth_getBalance", [address, "latest"]), 16)


def head(chain: Chain) -> int:
    return int(rpc(chain, "eth_blockNumber", []), 16)


class Api:
    """The REST calls of one running relayer."""

    def __init__(self, relayer: LocalRelayer) -> None:
        self.http = httpx.Client(base_url=relayer.url, headers=relayer.headers, timeout=10)
        self.base = f"/api/v1/relayers/{relayer.relayer_id}/transactions"

    def send(self, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.http.post(self.base, json=body)
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]

    def get(self, tx_id: str) -> dict[str, Any]:
        resp = self.http.get(f"{self.base}/{tx_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]

    def replace(self, tx_id: str, body: Any) -> httpx.Response:
        return self.http.put(f"{self.base}/{tx_id}", json=body)

    def cancel(self, tx_id: str) -> httpx.Response:
        return self.http.delete(f"{self.base}/{tx_id}")

    def wait_status(self, tx_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
        return wait_for(
            f"{tx_id} {status}", lambda: (d := self.get(tx_id))["status"] == status and d, timeout
        )

    def wait_final(self, ids: list[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
        def check() -> dict[str, dict[str, Any]] | None:
            records = {i: self.get(i) for i in ids}
            return records if all(r["status"] in FINAL for r in records.values()) else None

        return wait_for("final statuses", check, timeout, interval=0.2)


def transfer(to: str, value: int) -> dict[str, Any]:
    return {"to": to, "value": value, "gas_limit": 21_000, "speed": "fast"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("heal")


@pytest.fixture(scope="module")
def healer(
    openbao: OpenBao,
    redis_server: Redis,
    chain: Chain,
    work_dir: Path,
    receiver: WebhookReceiver,
    stack_logs: Path,
) -> Iterator[tuple[Api, str]]:
    config_dir, env = provision_relayer(
        openbao, redis_server.url, chain, relayer_id="heal-a", work_dir=work_dir, webhook_url=receiver.url
    )
    relayer = start_relayer(config_dir, env, stack_logs, "devrelayer-heal-a")
    api = Api(relayer)
    yield api, env[ENV_EXPECTED_ADDRESS]
    api.http.close()
    relayer.stop()


def stuck_pair(api: Api, chain: Chain, first_body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A transaction dropped from the mempool after its submission and a later one waiting behind its nonce,
    with blocks being mined again."""
    with chain.congested():
        first = api.send(first_body)
        submitted = api.wait_status(first["id"], "submitted")
        rpc(chain, "anvil_dropTransaction", [submitted["hash"]])
        second = api.send(transfer(DEAD, 1))
        api.wait_status(second["id"], "submitted")
    mined_from = head(chain)
    wait_for("two blocks", lambda: head(chain) >= mined_from + 2, timeout=15)
    assert api.get(first["id"])["status"] == "submitted"
    assert api.get(second["id"])["status"] == "submitted"
    return submitted, api.get(second["id"])


def test_replace_heals_a_dropped_transaction(
    healer: tuple[Api, str], chain: Chain, receiver: WebhookReceiver
) -> None:
    api, address = healer
    start = tx_count(chain, address)
    to = fresh_address()
    old, behind = stuck_pair(api, chain, transfer(DEAD, 1))
    assert old["nonce"] == start and behind["nonce"] == start + 1

    # Explicit prices in the body are not used: OZ prices a replacement at market (for_replacement).
    resp = api.replace(old["id"], {"to": to, "value": 3, "gas_limit": 21_000, "gas_price": 1})
    assert resp.status_code == 200, resp.text
    new = resp.json()["data"]
    assert new["id"] == old["id"] and new["nonce"] == old["nonce"] and new["status"] == "submitted"
    assert new["hash"] != old["hash"] and new["to"].lower() == to and new["value"] == "3"
    assert new["speed"] == "fast" and new["is_canceled"] is False and "gas_price" not in new
    assert int(new["max_fee_per_gas"]) >= min_bump(int(old["max_fee_per_gas"]))
    assert int(new["max_priority_fee_per_gas"]) >= min_bump(int(old["max_priority_fee_per_gas"]))

    done = api.wait_final([old["id"], behind["id"]])
    assert {d["status"] for d in done.values()} == {"confirmed"}
    healed = done[old["id"]]
    assert healed["hash"] == new["hash"]
    mined = rpc(chain, "eth_getTransactionByHash", [healed["hash"]])
    assert int(mined["nonce"], 16) == start and mined["to"].lower() == to and int(mined["value"], 16) == 3
    assert balance(chain, to) == 3
    assert tx_count(chain, address) == start + 2
    # The replacement is announced like any change of the transaction (send_transaction_update_notification).
    wait_for(
        "a webhook with the replacement",
        lambda: any(
            p["hash"] == new["hash"] and p["status"] == "submitted" for p in receiver.payloads(old["id"])
        ),
        timeout=10,
    )


def test_cancel_of_a_stuck_transaction_mines_a_noop(
    healer: tuple[Api, str], chain: Chain, receiver: WebhookReceiver
) -> None:
    api, address = healer
    start = tx_count(chain, address)
    to = fresh_address()
    with chain.congested():
        tx = api.send(transfer(to, 12_345))
        old = api.wait_status(tx["id"], "submitted")
        # Still in the mempool: the no-op has to outbid it there.
        resp = api.cancel(tx["id"])
        assert resp.status_code == 200, resp.text
        noop = resp.json()["data"]
        assert noop["status"] == "submitted" and noop["is_canceled"] is True
        assert noop["status_reason"] == CANCELED_WITH_NOOP
        assert noop["nonce"] == old["nonce"] == start and noop["hash"] != old["hash"]
        assert noop["to"].lower() == address.lower() and noop["value"] == "0" and noop["data"] == "0x"
        assert noop["gas_limit"] == 21_000 and noop["speed"] == "fast"
        assert int(noop["max_fee_per_gas"]) >= min_bump(int(old["max_fee_per_gas"]))
        # Hidden from the active statuses' list while its no-op is out (OZ's list_transactions).
        listed = api.http.get(api.base, params={"status": "submitted", "per_page": 0}).json()["data"]
        assert tx["id"] not in {t["id"] for t in listed}
    done = api.wait_final([tx["id"]])[tx["id"]]
    assert done["status"] == "canceled" and done["is_canceled"] is True
    assert done["status_reason"] == CANCELED_WITH_NOOP and "confirmed_at" not in done
    assert done["hash"] == noop["hash"]
    mined = rpc(chain, "eth_getTransactionByHash", [done["hash"]])
    assert int(mined["nonce"], 16) == start and mined["to"].lower() == address.lower()
    assert balance(chain, to) == 0  # the original transfer never happened
    statuses = [p["status"] for p in receiver.payloads(tx["id"])]
    wait_for("the canceled webhook", lambda: "canceled" in [p["status"] for p in receiver.payloads(tx["id"])])
    assert any(p["is_canceled"] and p["status"] == "submitted" for p in receiver.payloads(tx["id"])), statuses
    # Final now: both healing calls refuse it as OZ does.
    again = api.cancel(tx["id"])
    assert again.status_code == 400
    assert again.json()["error"] == (
        f"Invalid transaction state for cancel_transaction. Current: Canceled, Expected one of: {HEALABLE}"
    )


def test_the_original_still_wins_if_it_mines_first(healer: tuple[Api, str], chain: Chain) -> None:
    api, _ = healer
    first_to, second_to = fresh_address(), fresh_address()
    with chain.congested():
        tx = api.send(transfer(first_to, 5))
        old = api.wait_status(tx["id"], "submitted")
        raw_old = rpc(chain, "eth_getRawTransactionByHash", [old["hash"]])
        resp = api.replace(tx["id"], transfer(second_to, 6))
        assert resp.status_code == 200, resp.text
        new = resp.json()["data"]
        # The replacement is lost and the original comes back: it is the one that mines.
        rpc(chain, "anvil_dropTransaction", [new["hash"]])
        rpc(chain, "eth_sendRawTransaction", [raw_old])
    done = api.wait_final([tx["id"]])[tx["id"]]
    assert done["status"] == "confirmed" and done["hash"] == old["hash"]
    assert balance(chain, first_to) == 5 and balance(chain, second_to) == 0


def test_final_and_unknown_transactions_are_refused(healer: tuple[Api, str]) -> None:
    api, _ = healer
    tx = api.send(transfer(DEAD, 1))
    done = api.wait_final([tx["id"]])[tx["id"]]
    assert done["status"] == "confirmed"
    put = api.replace(tx["id"], transfer(DEAD, 2))
    delete = api.cancel(tx["id"])
    for resp, op in ((put, "replace_transaction"), (delete, "cancel_transaction")):
        assert resp.status_code == 400
        assert resp.json() == {
            "success": False,
            "error": f"Invalid transaction state for {op}. Current: Confirmed, Expected one of: {HEALABLE}",
        }
    for resp in (api.replace("no-such-tx", transfer(DEAD, 2)), api.cancel("no-such-tx")):
        assert resp.status_code == 404
        assert resp.json()["error"] == "Transaction with ID no-such-tx not found"
    # The body is read before the transaction is looked up (api/controllers/relayer.rs replace_transaction).
    bad = api.replace("no-such-tx", {"to": DEAD, "speed": "fast"})
    assert bad.status_code == 400 and "value" in bad.json()["error"]
    text = api.http.put(
        f"{api.base}/{tx['id']}",
        content=json.dumps(transfer(DEAD, 2)),
        headers={"Content-Type": "text/plain"},
    )
    assert (text.status_code, text.text) == (400, "Content type error")
    ghost = api.http.delete(f"/api/v1/relayers/nope/transactions/{tx['id']}")
    assert ghost.status_code == 404 and ghost.json()["error"] == "Relayer with ID nope not found"
    assert api.get(tx["id"]) == done  # nothing changed


def test_a_paused_relayer_refuses_both(
    openbao: OpenBao, redis_server: Redis, chain: Chain, work_dir: Path, stack_logs: Path
) -> None:
    config_dir, env = provision_relayer(
        openbao, redis_server.url, chain, relayer_id="heal-paused", work_dir=work_dir, funding_wei=0
    )
    config_path = config_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["relayers"][0]["paused"] = True
    config_path.write_text(json.dumps(config))
    relayer = start_relayer(config_dir, env, stack_logs, "devrelayer-heal-paused")
    try:
        api = Api(relayer)
        for resp in (
            api.replace("no-such-tx", transfer(DEAD, 1)),
            api.replace("no-such-tx", {"not": "a transaction"}),
            api.cancel("no-such-tx"),
            api.http.post(api.base, json=transfer(DEAD, 1)),
        ):
            assert resp.status_code == 403
            assert resp.json() == {"success": False, "error": "Relayer paused"}
        api.http.close()
    finally:
        relayer.stop()


def test_pending_transactions_are_changed_before_they_are_signed(
    openbao: OpenBao, redis_server: Redis, chain: Chain, work_dir: Path
) -> None:
    config_dir, env = provision_relayer(
        openbao, redis_server.url, chain, relayer_id="heal-inproc", work_dir=work_dir
    )
    key = openbao.client().secrets.kv.v2.read_secret_version(
        path="relayers/heal-inproc", mount_point=openbao.kv_mount, raise_on_deleted_version=True
    )["data"]["data"]["value"]
    cfg = load_config(config_dir / "config.json", env)
    address = env[ENV_EXPECTED_ADDRESS]
    to = fresh_address()
    prefix = f"heal-inproc-{secrets.token_hex(4)}"
    start = tx_count(chain, address)
    results: dict[str, Any] = {}

    async def scenario() -> None:
        redis = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        node = JsonRpc(cfg.network.rpc_urls)
        signer = KeySigner(bytes.fromhex(key.removeprefix("0x")))
        engine = Engine(
            cfg,
            RedisKeys(prefix, f"{prefix}:queue:", cfg.relayer_id),
            redis,
            node,
            signer,
            None,
            Metrics(cfg.relayer_id),
        )
        app = create_app(engine, env["API_KEY"])
        transport = httpx.ASGITransport(app=app)
        base = f"/api/v1/relayers/{cfg.relayer_id}/transactions"
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://relayer",
            headers={"Authorization": f"Bearer {env['API_KEY']}"},
        ) as http:

            async def post(body: dict[str, Any]) -> dict[str, Any]:
                resp = await http.post(base, json=body)
                assert resp.status_code == 200, resp.text
                return resp.json()["data"]

            # No workers yet: all three stay pending.
            canceled = await post(transfer(DEAD, 1))
            speed_priced = await post(transfer(DEAD, 2))
            priced = await post(
                {
                    "to": DEAD,
                    "value": 3,
                    "gas_limit": 21_000,
                    "max_fee_per_gas": 10**9,
                    "max_priority_fee_per_gas": 10**8,
                }
            )
            results["cancel"] = await http.delete(f"{base}/{canceled['id']}")
            results["cancel again"] = await http.delete(f"{base}/{canceled['id']}")
            # A pending transaction priced by speed has no price to bump yet: OZ refuses to replace it.
            results["replace speed"] = await http.put(f"{base}/{speed_priced['id']}", json=transfer(to, 9))
            results["replace priced"] = await http.put(f"{base}/{priced['id']}", json=transfer(to, 7))
            await engine.start()
            try:
                ids = (canceled["id"], speed_priced["id"], priced["id"])
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    records = {i: (await http.get(f"{base}/{i}")).json()["data"] for i in ids}
                    if all(r["status"] in FINAL for r in records.values()):
                        break
                    await asyncio.sleep(0.2)
                results["final"] = records
            finally:
                await engine.stop()
                await node.aclose()
                await redis.aclose()

    asyncio.run(scenario())
    cancel = results["cancel"]
    assert cancel.status_code == 200, cancel.text
    data = cancel.json()["data"]
    assert data["status"] == "canceled" and data["status_reason"] == CANCELED_BY_USER
    assert data["is_canceled"] is False  # OZ only changes the status of a pending one
    assert "nonce" not in data and "hash" not in data
    assert results["cancel again"].status_code == 400
    speed = results["replace speed"]
    assert speed.status_code == 400 and speed.json()["error"] == UNBUMPABLE
    priced = results["replace priced"]
    assert priced.status_code == 200, priced.text
    replaced = priced.json()["data"]
    assert replaced["status"] == "pending" and replaced["to"].lower() == to and replaced["value"] == "7"
    assert "nonce" not in replaced and "hash" not in replaced
    assert int(replaced["max_fee_per_gas"]) >= min_bump(10**9)
    assert int(replaced["max_priority_fee_per_gas"]) >= min_bump(10**8)
    final = results["final"]
    statuses = {r["id"]: r["status"] for r in final.values()}
    assert statuses[data["id"]] == "canceled" and "nonce" not in final[data["id"]]
    assert statuses[replaced["id"]] == "confirmed", final[replaced["id"]]
    mined = rpc(chain, "eth_getTransactionByHash", [final[replaced["id"]]["hash"]])
    assert mined["to"].lower() == to and int(mined["value"], 16) == 7
    assert balance(chain, to) == 7
    # Only the two not canceled took nonces, with no gap.
    assert tx_count(chain, address) == start + 2
