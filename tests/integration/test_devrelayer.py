"""The dev relayer against real anvil, Redis and OpenBao, provisioned the way the operator provisions OZ.

Relayers here: A (webhooks to a local receiver, no policies), B (whitelist and gas price cap) and C (the
crash/restart one). Every HTTP response body is kept, and the last test checks that no private key shows
up in any of them or in any relayer log.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hvac
import hvac.exceptions
import pytest
import redis as redis_client
import redis.asyncio as aioredis

from msq_devrelayer.api_models import EvmTransactionRequest
from msq_devrelayer.config import load_config
from msq_devrelayer.engine import Engine
from msq_devrelayer.metrics import Metrics
from msq_devrelayer.redis_keys import RedisKeys
from msq_devrelayer.rpc import JsonRpc
from msq_devrelayer.signer import KeySigner
from msq_devstack.chain import Chain
from msq_devstack.openbao import OpenBao
from msq_devstack.process import free_port
from msq_devstack.redis import Redis
from msq_devstack.relayers import (
    ENV_EXPECTED_ADDRESS,
    LocalRelayer,
    provision_relayer,
    start_relayer,
)
from msq_operator.oz_config import RelayerPolicies
from tests.support.relayer_io import WebhookReceiver, rpc, tx_count

DEAD = "0x000000000000000000000000000000000000dEaD"
OTHER = "0x00000000000000000000000000000000000b0b00"
FINAL = {"confirmed", "failed", "expired", "canceled"}
# Init code that deploys `PUSH1 0 PUSH1 0 REVERT`: a contract every call to which reverts.
REVERTER_INITCODE = "0x6460006000fd6000526005601bf3"

RESPONSES: list[str] = []


def _keep(resp: httpx.Response) -> None:
    resp.read()
    RESPONSES.append(resp.text)


def client_for(relayer: LocalRelayer, *, auth: bool = True) -> httpx.Client:
    return httpx.Client(
        base_url=relayer.url,
        headers=relayer.headers if auth else {},
        timeout=10,
        event_hooks={"response": [_keep]},
    )


def send(http: httpx.Client, relayer: LocalRelayer, body: dict[str, Any]) -> dict[str, Any]:
    resp = http.post(f"/api/v1/relayers/{relayer.relayer_id}/transactions", json=body)
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert data["status"] == "pending"
    return data


def wait_final(
    http: httpx.Client, relayer: LocalRelayer, ids: list[str], timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    done: dict[str, Any] = {}
    while time.monotonic() < deadline:
        for tx_id in [i for i in ids if i not in done]:
            data = http.get(f"/api/v1/relayers/{relayer.relayer_id}/transactions/{tx_id}").json()["data"]
            if data["status"] in FINAL:
                done[tx_id] = data
        if len(done) == len(ids):
            return done
        time.sleep(0.1)
    raise AssertionError(f"{len(ids) - len(done)} transactions not final after {timeout}s")


def chain_nonces(chain: Chain, hashes: list[str]) -> list[int]:
    return sorted(int(rpc(chain, "eth_getTransactionByHash", [h])["nonce"], 16) for h in hashes)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("devrelayers")


@pytest.fixture(scope="module")
def provisioned(
    openbao: OpenBao, redis_server: Redis, chain: Chain, work_dir: Path, receiver: WebhookReceiver
) -> dict[str, tuple[Path, dict[str, str]]]:
    return {
        "it-a": provision_relayer(
            openbao, redis_server.url, chain, relayer_id="it-a", work_dir=work_dir, webhook_url=receiver.url
        ),
        "it-b": provision_relayer(
            openbao,
            redis_server.url,
            chain,
            relayer_id="it-b",
            work_dir=work_dir,
            webhook_url=receiver.url,
            policies=RelayerPolicies(whitelist_receivers=(DEAD,), gas_price_cap=50 * 10**9),
        ),
        "it-c": provision_relayer(
            openbao, redis_server.url, chain, relayer_id="it-c", work_dir=work_dir, webhook_url=receiver.url
        ),
    }


@pytest.fixture(scope="module")
def relayer_a(
    provisioned: dict[str, tuple[Path, dict[str, str]]], stack_logs: Path
) -> Iterator[LocalRelayer]:
    rel = start_relayer(*provisioned["it-a"], stack_logs, "devrelayer-it-a")
    yield rel
    rel.stop()


@pytest.fixture(scope="module")
def relayer_b(
    provisioned: dict[str, tuple[Path, dict[str, str]]], stack_logs: Path
) -> Iterator[LocalRelayer]:
    rel = start_relayer(*provisioned["it-b"], stack_logs, "devrelayer-it-b")
    yield rel
    rel.stop()


def test_transactions_reach_confirmed_with_consecutive_nonces(
    relayer_a: LocalRelayer, chain: Chain, provisioned: dict[str, Any]
) -> None:
    address = provisioned["it-a"][1][ENV_EXPECTED_ADDRESS]
    start = tx_count(chain, address)
    bodies: list[dict[str, Any]] = []
    for i in range(40):
        pricing = [
            {"speed": "fast"},
            {"speed": "safeLow"},
            {"gas_price": 3 * 10**9},
            {"max_fee_per_gas": 4 * 10**9, "max_priority_fee_per_gas": 10**9},
            {},
        ][i % 5]
        body: dict[str, Any] = {"to": DEAD, "value": i + 1, **pricing}
        if i % 2:
            body["gas_limit"] = 21_000
        bodies.append(body)
    with client_for(relayer_a) as http:
        ids = [send(http, relayer_a, b)["id"] for b in bodies]
        done = wait_final(http, relayer_a, ids)
    assert {d["status"] for d in done.values()} == {"confirmed"}
    hashes = [d["hash"] for d in done.values()]
    assert chain_nonces(chain, hashes) == list(range(start, start + 40))
    assert tx_count(chain, address) == start + 40
    for d in done.values():
        tx = rpc(chain, "eth_getTransactionByHash", [d["hash"]])
        assert tx["from"].lower() == address.lower() and int(tx["nonce"], 16) == d["nonce"]
        assert rpc(chain, "eth_getTransactionReceipt", [d["hash"]])["status"] == "0x1"
        assert d["confirmed_at"] and d["sent_at"]


def test_status_and_balance_report_the_chain(
    relayer_a: LocalRelayer, chain: Chain, provisioned: dict[str, Any]
) -> None:
    address = provisioned["it-a"][1][ENV_EXPECTED_ADDRESS]
    with client_for(relayer_a) as http:
        status = http.get(f"/api/v1/relayers/{relayer_a.relayer_id}/status").json()
        balance = http.get(f"/api/v1/relayers/{relayer_a.relayer_id}/balance").json()
        relayer = http.get(f"/api/v1/relayers/{relayer_a.relayer_id}").json()
    on_chain = int(rpc(chain, "eth_getBalance", [address, "latest"]), 16)
    assert status["success"] is True
    assert status["data"]["network_type"] == "evm"
    assert int(status["data"]["balance"]) == on_chain
    assert int(status["data"]["nonce"]) == tx_count(chain, address)
    assert status["data"]["pending_transactions_count"] == 0
    assert status["data"]["paused"] is False
    assert status["data"]["last_confirmed_transaction_timestamp"]
    assert balance == {"success": True, "data": {"balance": on_chain, "unit": "wei"}}
    assert relayer["data"]["address"].lower() == address.lower()


def test_api_key_is_required(relayer_a: LocalRelayer) -> None:
    path = f"/api/v1/relayers/{relayer_a.relayer_id}/status"
    with client_for(relayer_a, auth=False) as http:
        missing = http.get(path)
        wrong = http.get(path, headers={"Authorization": "Bearer " + "x" * 43})
        post = http.post(
            f"/api/v1/relayers/{relayer_a.relayer_id}/transactions",
            json={"to": DEAD, "value": 1},
            headers={"Authorization": relayer_a.api_key},
        )  # no "Bearer " scheme
        health = http.get("/api/v1/health")
        ready = http.get("/api/v1/ready")
    for resp in (missing, wrong, post):
        assert resp.status_code == 401
        assert resp.json() == {"success": False, "error": "Unauthorized"}
    assert health.status_code == 200 and health.text == "OK"
    assert ready.status_code == 200 and ready.json()["ready"] is True


def test_unknown_relayer_transaction_and_bad_body(relayer_a: LocalRelayer) -> None:
    with client_for(relayer_a) as http:
        other = http.get("/api/v1/relayers/nope/status")
        missing_tx = http.get(f"/api/v1/relayers/{relayer_a.relayer_id}/transactions/nope")
        bad = http.post(
            f"/api/v1/relayers/{relayer_a.relayer_id}/transactions",
            json={"to": DEAD, "value": 1, "speed": "fast", "gas_price": 1},
        )
        no_value = http.post(f"/api/v1/relayers/{relayer_a.relayer_id}/transactions", json={"to": DEAD})
    assert other.status_code == 404 and other.json()["success"] is False
    assert missing_tx.status_code == 404
    assert bad.status_code == 400 and "only one of" in bad.json()["error"]
    assert no_value.status_code == 400 and "value" in no_value.json()["error"]


def test_webhooks_carry_every_status_change_signed(
    relayer_a: LocalRelayer, receiver: WebhookReceiver, provisioned: dict[str, Any]
) -> None:
    key = provisioned["it-a"][1]["WEBHOOK_SIGNING_KEY"]
    with client_for(relayer_a) as http:
        tx_id = send(http, relayer_a, {"to": DEAD, "value": 7, "speed": "average"})["id"]
        wait_final(http, relayer_a, [tx_id])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(receiver.for_tx(tx_id)) < 4:
        time.sleep(0.1)
    events = receiver.for_tx(tx_id)
    assert {d.event["payload"]["status"] for d in events} == {"sent", "submitted", "mined", "confirmed"}
    for d in events:
        expected = base64.b64encode(hmac.new(key.encode(), d.body, hashlib.sha256).digest()).decode()
        assert hmac.compare_digest(d.headers["x-signature"], expected)
        assert d.headers["content-type"] == "application/json"
        assert d.event["event"] == "transaction_update"
        assert d.event["payload"]["payload_type"] == "transaction"
        assert d.event["payload"]["relayer_id"] == relayer_a.relayer_id
        dt.datetime.fromisoformat(d.event["timestamp"])


def test_revert_fails_and_estimation_failure_costs_no_nonce(
    relayer_a: LocalRelayer, chain: Chain, provisioned: dict[str, Any]
) -> None:
    address = provisioned["it-a"][1][ENV_EXPECTED_ADDRESS]
    start = tx_count(chain, address)
    with client_for(relayer_a) as http:
        deploy = send(http, relayer_a, {"value": 0, "data": REVERTER_INITCODE})
        deployed = wait_final(http, relayer_a, [deploy["id"]])[deploy["id"]]
        assert deployed["status"] == "confirmed" and "to" not in deployed
        reverter = rpc(chain, "eth_getTransactionReceipt", [deployed["hash"]])["contractAddress"]
        reverted = send(http, relayer_a, {"to": reverter, "value": 0, "data": "0x01", "gas_limit": 60_000})
        unestimable = send(http, relayer_a, {"to": reverter, "value": 0, "data": "0x02"})
        after = send(http, relayer_a, {"to": DEAD, "value": 1})
        done = wait_final(http, relayer_a, [reverted["id"], unestimable["id"], after["id"]])
    assert done[reverted["id"]]["status"] == "failed"
    assert done[reverted["id"]]["status_reason"] == "Transaction reverted"
    assert done[unestimable["id"]]["status"] == "failed"
    assert "gas estimation failed" in done[unestimable["id"]]["status_reason"]
    assert "nonce" not in done[unestimable["id"]]
    assert done[after["id"]]["status"] == "confirmed"
    hashes = [deployed["hash"], done[reverted["id"]]["hash"], done[after["id"]]["hash"]]
    assert chain_nonces(chain, hashes) == [start, start + 1, start + 2]
    assert tx_count(chain, address) == start + 3


def test_valid_until_in_the_past_expires_without_a_nonce(
    relayer_a: LocalRelayer, chain: Chain, provisioned: dict[str, Any]
) -> None:
    address = provisioned["it-a"][1][ENV_EXPECTED_ADDRESS]
    start = tx_count(chain, address)
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat()
    with client_for(relayer_a) as http:
        tx_id = send(http, relayer_a, {"to": DEAD, "value": 1, "valid_until": past})["id"]
        done = wait_final(http, relayer_a, [tx_id])[tx_id]
    assert done["status"] == "expired"
    assert "hash" not in done and "nonce" not in done
    assert tx_count(chain, address) == start


def test_policies_of_the_config_are_enforced(relayer_b: LocalRelayer) -> None:
    path = f"/api/v1/relayers/{relayer_b.relayer_id}/transactions"
    with client_for(relayer_b) as http:
        other = http.post(path, json={"to": OTHER, "value": 1})
        pricey = http.post(path, json={"to": DEAD, "value": 1, "gas_price": 51 * 10**9})
        tx_id = send(http, relayer_b, {"to": DEAD.lower(), "value": 1, "gas_price": 2 * 10**9})["id"]
        done = wait_final(http, relayer_b, [tx_id])[tx_id]
        policies = http.get(f"/api/v1/relayers/{relayer_b.relayer_id}").json()["data"]["policies"]
    assert other.status_code == 400 and "whitelist_receivers" in other.json()["error"]
    assert pricey.status_code == 400 and "gas_price_cap" in pricey.json()["error"]
    assert done["status"] == "confirmed" and done["to"] == DEAD
    assert policies == {"whitelist_receivers": [DEAD], "gas_price_cap": 50 * 10**9}


def test_approle_of_one_relayer_cannot_read_another_relayers_key(
    openbao: OpenBao, provisioned: dict[str, Any]
) -> None:
    env_a = provisioned["it-a"][1]
    app = hvac.Client(url=openbao.addr)
    app.auth.approle.login(role_id=env_a["VAULT_ROLE_ID"], secret_id=env_a["VAULT_SECRET_ID"])
    own = app.secrets.kv.v2.read_secret_version(
        path="relayers/it-a", mount_point=openbao.kv_mount, raise_on_deleted_version=True
    )
    assert set(own["data"]["data"]) == {"value"}
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.kv.v2.read_secret_version(
            path="relayers/it-b", mount_point=openbao.kv_mount, raise_on_deleted_version=True
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.kv.v2.read_secret_metadata(path="relayers/it-a", mount_point=openbao.kv_mount)
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.kv.v2.create_or_update_secret(
            path="relayers/it-a", secret={"value": "00" * 32}, mount_point=openbao.kv_mount
        )


def _run_cli(config_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {
        "PATH": "/usr/bin:/bin",
        **env,
        "CONFIG_DIR": str(config_dir),
        "APP_PORT": str(free_port()),
        "HOST": "127.0.0.1",
    }
    return subprocess.run(
        [sys.executable, "-m", "msq_devrelayer.cli"], env=full, capture_output=True, text=True, timeout=90
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda c: c["relayers"][0].pop("paused"), "relayers.0.paused"),
        (lambda c: c["signers"][0].update(type="hsm"), "signers.0.type"),
        (lambda c: c["relayers"][0].update(signer_id="ghost"), "relayers.0.signer_id"),
        (lambda c: c["networks"][0].update(chain_id="31337x"), "networks.0.chain_id"),
        (lambda c: c["networks"][0].update(chain_id=1), "chain_id"),
        (lambda c: c.update(relayers=[]), "relayers"),
    ],
)
def test_bad_config_stops_the_relayer_naming_the_field(
    provisioned: dict[str, Any], tmp_path: Path, change: Any, named: str
) -> None:
    config_dir, env = provisioned["it-c"]
    cfg = json.loads((config_dir / "config.json").read_text())
    change(cfg)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    result = _run_cli(tmp_path, env)
    assert result.returncode != 0
    assert named in result.stderr, result.stderr


def test_short_api_key_stops_the_relayer(provisioned: dict[str, Any]) -> None:
    config_dir, env = provisioned["it-c"]
    result = _run_cli(config_dir, {**env, "API_KEY": "too-short"})
    assert result.returncode != 0
    assert "API_KEY" in result.stderr and "32" in result.stderr


def test_queue_depth_is_ozs_request_queue_key(provisioned: dict[str, Any], redis_server: Redis) -> None:
    # Drive the engine in-process without its workers so the job stays on the queue to be counted.
    config_dir, env = provisioned["it-c"]
    cfg = load_config(config_dir / "config.json", {**env, "REDIS_KEY_PREFIX": "queue-probe"})

    async def submit_one() -> None:
        redis = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        rpc_client = JsonRpc(cfg.network.rpc_urls)
        keys = RedisKeys("queue-probe", "queue-probe:queue:", cfg.relayer_id)
        engine = Engine(cfg, keys, redis, rpc_client, KeySigner(b"\x01" * 32), None, Metrics(cfg.relayer_id))
        await engine.submit(EvmTransactionRequest(to=DEAD, value=1))
        await engine.submit(EvmTransactionRequest(to=DEAD, value=2))
        await rpc_client.aclose()
        await redis.aclose()

    asyncio.run(submit_one())
    sync = redis_client.Redis.from_url(redis_server.url)
    assert sync.llen("queue-probe:queue:transaction_request_queue:active") == 2


def test_killed_relayer_restarts_with_the_right_nonce(
    provisioned: dict[str, Any], chain: Chain, stack_logs: Path
) -> None:
    config_dir, env = provisioned["it-c"]
    address = env[ENV_EXPECTED_ADDRESS]
    start = tx_count(chain, address)
    rel = start_relayer(config_dir, env, stack_logs, "devrelayer-it-c")
    try:
        with client_for(rel) as http:
            first = [send(http, rel, {"to": DEAD, "value": i + 1})["id"] for i in range(60)]
        rel.kill()  # mid-flight: some are queued, some signed, some submitted
        rel = start_relayer(config_dir, env, stack_logs, "devrelayer-it-c")
        with client_for(rel) as http:
            second = [send(http, rel, {"to": DEAD, "value": 1000 + i})["id"] for i in range(10)]
            done = wait_final(http, rel, first + second)
            status = http.get(f"/api/v1/relayers/{rel.relayer_id}/status").json()["data"]
    finally:
        rel.stop()
    assert {d["status"] for d in done.values()} == {"confirmed"}
    assert chain_nonces(chain, [d["hash"] for d in done.values()]) == list(range(start, start + 70))
    assert tx_count(chain, address) == start + 70
    assert int(status["nonce"]) == start + 70 and status["pending_transactions_count"] == 0


def test_metrics_are_served(relayer_a: LocalRelayer) -> None:
    text = httpx.get(relayer_a.metrics_url, timeout=5).text
    assert 'relayer_transactions_created_total{relayer_id="it-a"}' in text
    assert 'relayer_transaction_status_changes_total{relayer_id="it-a",status="confirmed"}' in text


def test_no_private_key_in_any_log_or_response(
    openbao: OpenBao, provisioned: dict[str, Any], stack_logs: Path
) -> None:
    root = openbao.client()
    logs = "".join(p.read_text(errors="replace") for p in stack_logs.glob("devrelayer-*.log"))
    assert "signer loaded" in logs  # the logs being searched are the relayers' own
    responses = "\n".join(RESPONSES)
    assert len(RESPONSES) > 50
    for relayer_id, (_, env) in provisioned.items():
        key = root.secrets.kv.v2.read_secret_version(
            path=f"relayers/{relayer_id}", mount_point=openbao.kv_mount, raise_on_deleted_version=True
        )["data"]["data"]["value"]
        raw = key.lower().removeprefix("0x")
        assert len(raw) == 64
        for text in (logs, responses):
            assert raw not in text.lower()
        assert env["VAULT_SECRET_ID"] not in logs and env["VAULT_SECRET_ID"] not in responses
