"""The HTTP surface without services: every rejection before the first Redis or chain call, by its code.

Redis and the relayers point at closed local ports, so any request that got past the checks under test would
fail loudly with another code rather than pass by accident.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from msq_devstack.chain import ANVIL_KEYS
from msq_gateway.app import create_app
from tests.support.gateway import (
    CLIENT_KEY,
    config_doc,
    erc20_transfer,
    signed_gasless,
    snapshot_of,
)

TOKEN = "0x" + "11" * 20
NFT = "0x" + "33" * 20
FORWARDER = "0x" + "f0" * 20
USER_KEY = ANVIL_KEYS[3]
BLOCKED_KEY = ANVIL_KEYS[4]
BLOCKED = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"  # address of ANVIL_KEYS[4]
SIGNING_KEY = "unit-webhook-signing-key"
H = {"X-API-Key": CLIENT_KEY}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    os.environ["GW_UNIT_RL_KEY"] = "r" * 40
    os.environ["GW_UNIT_SIGNING"] = SIGNING_KEY
    relayers = [
        {
            "id": f"rl-{i}",
            "url": f"http://127.0.0.1:{9 + i}",
            "apiKeyEnv": "GW_UNIT_RL_KEY",
            "webhookSigningKeyEnv": "GW_UNIT_SIGNING",
        }
        for i in range(2)
    ]
    doc = config_doc(
        forwarder=FORWARDER,
        relayers=relayers,
        contracts=[
            {"address": TOKEN, "methods": ["transfer(address,uint256)"], "maxValue": 0},
            {"address": NFT, "methods": ["mint(address)"], "maxValue": 10, "direct": False},
        ],
        blocked=[BLOCKED],
        limits={"maxBodyBytes": 2048},
    )
    app = create_app(snapshot_of(doc))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _err(resp: Any, status: int, code: str, field: str | None = ...) -> dict[str, Any]:  # type: ignore[assignment]
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["code"] == code, body
    assert set(body) >= {"code", "message", "field"}
    if field is not ...:
        assert body["field"] == field, body
        if field:
            assert field.split(".")[-1] in body["message"], body
    return body


def _gasless(**kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "to": TOKEN,
        "data": erc20_transfer("0x" + "22" * 20, 1),
        "nonce": 0,
        "chain_id": 31337,
        "forwarder": FORWARDER,
    }
    args.update(kw)
    return signed_gasless(
        kw.pop("key", USER_KEY) if "key" in kw else USER_KEY, **{k: v for k, v in args.items() if k != "key"}
    )


def test_health_docs_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {
        "/api/v1/relay/direct",
        "/api/v1/relay/gasless",
        "/api/v1/relay/gasless/nonce/{address}",
        "/api/v1/relay/status/{id}",
        "/api/v1/webhooks/relayer",
    } <= set(spec["paths"])
    assert "X-API-Key" in json.dumps(spec["components"]["securitySchemes"])


def test_readyz_reports_what_is_missing(client: TestClient) -> None:
    body = _err(client.get("/readyz"), 503, "not_ready", None)
    assert "redis" in body["message"]


def test_auth(client: TestClient) -> None:
    body = {"to": TOKEN, "data": "0x"}
    _err(client.post("/api/v1/relay/direct", json=body), 401, "missing_api_key", "X-API-Key")
    _err(
        client.post("/api/v1/relay/direct", json=body, headers={"X-API-Key": "nope"}),
        401,
        "unknown_api_key",
        "X-API-Key",
    )
    # Bearer works as well: this one gets past auth and is refused by policy (empty data is no method).
    _err(
        client.post("/api/v1/relay/direct", json=body, headers={"Authorization": f"Bearer {CLIENT_KEY}"}),
        403,
        "method_not_allowed",
        "data",
    )


def test_body_limits_and_parsing(client: TestClient) -> None:
    big = {"to": TOKEN, "data": "0x" + "00" * 2000}
    _err(client.post("/api/v1/relay/direct", json=big, headers=H), 413, "body_too_large", "body")

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    # No Content-Length (chunked): counted while reading.
    resp = client.post(
        "/api/v1/relay/direct", content=chunks(), headers={**H, "Content-Type": "application/json"}
    )
    _err(resp, 413, "body_too_large", "body")
    resp = client.post(
        "/api/v1/relay/direct", content=b'{"to": "0x', headers={**H, "Content-Type": "application/json"}
    )
    _err(resp, 400, "malformed_json", "body")
    resp = client.post(
        "/api/v1/relay/direct", content=b"\xff\xfe", headers={**H, "Content-Type": "application/json"}
    )
    _err(resp, 400, "malformed_json", "body")
    resp = client.post("/api/v1/relay/direct", content=b"to=x", headers={**H, "Content-Type": "text/plain"})
    _err(resp, 415, "unsupported_media_type", "Content-Type")
    _err(client.post("/api/v1/relay/direct", json=[1, 2], headers=H), 422, "invalid_field", "body")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"data": "0x"}, "to"),
        ({"to": "0x1234", "data": "0x"}, "to"),
        ({"to": TOKEN, "data": "abcd"}, "data"),
        ({"to": TOKEN, "data": "0xabc"}, "data"),
        ({"to": TOKEN, "data": "0x", "value": -1}, "value"),
        ({"to": TOKEN, "data": "0x", "value": str(2**256)}, "value"),
        ({"to": TOKEN, "data": "0x", "gasLimit": 5}, "gasLimit"),
        ({"to": TOKEN, "data": "0x", "speed": "ludicrous"}, "speed"),
        ({"to": TOKEN, "data": "0x", "extra": 1}, "extra"),
    ],
)
def test_invalid_fields_are_named(client: TestClient, body: dict[str, Any], field: str) -> None:
    _err(client.post("/api/v1/relay/direct", json=body, headers=H), 422, "invalid_field", field)


def test_direct_policy_codes(client: TestClient) -> None:
    transfer = "0x" + erc20_transfer("0x" + "22" * 20, 5).hex()
    _err(
        client.post("/api/v1/relay/direct", json={"to": "0x" + "99" * 20, "data": transfer}, headers=H),
        403,
        "contract_not_allowed",
        "to",
    )
    _err(
        client.post("/api/v1/relay/direct", json={"to": TOKEN, "data": "0x095ea7b3" + "00" * 64}, headers=H),
        403,
        "method_not_allowed",
        "data",
    )
    _err(
        client.post("/api/v1/relay/direct", json={"to": TOKEN, "data": transfer, "value": "1"}, headers=H),
        403,
        "value_too_high",
        "value",
    )
    _err(
        client.post("/api/v1/relay/direct", json={"to": NFT, "data": "0x6a627842" + "00" * 32}, headers=H),
        403,
        "direct_not_allowed",
        "to",
    )
    _err(
        client.post(
            "/api/v1/relay/direct", json={"to": TOKEN, "data": transfer, "gasLimit": 10**9}, headers=H
        ),
        422,
        "invalid_field",
        "gasLimit",
    )


def test_direct_without_reachable_relayer(client: TestClient) -> None:
    """Connection refused is certain non-acceptance: every relayer is tried, then 503 (quota-less client)."""
    transfer = "0x" + erc20_transfer("0x" + "22" * 20, 5).hex()
    _err(
        client.post("/api/v1/relay/direct", json={"to": TOKEN, "data": transfer}, headers=H),
        503,
        "no_relayer_available",
        None,
    )


def test_gasless_checks(client: TestClient) -> None:
    url = "/api/v1/relay/gasless"
    _err(client.post(url, json={**_gasless(), "chainId": 1}, headers=H), 400, "wrong_chain", "chainId")
    _err(
        client.post(url, json={**_gasless(), "forwarder": TOKEN}, headers=H),
        400,
        "wrong_forwarder",
        "forwarder",
    )
    _err(
        client.post(url, json=_gasless(deadline=int(time.time()) - 10), headers=H),
        400,
        "expired",
        "request.deadline",
    )
    # Signed for another chain (or forwarder) recovers to someone else.
    _err(client.post(url, json=_gasless(chain_id=1), headers=H), 400, "bad_signature", "signature")
    _err(client.post(url, json=_gasless(forwarder=TOKEN), headers=H), 400, "bad_signature", "signature")
    tampered = _gasless()
    tampered["request"]["gas"] = 100_001
    _err(client.post(url, json=tampered, headers=H), 400, "bad_signature", "signature")
    garbage = _gasless()
    garbage["signature"] = "0x" + "00" * 65
    _err(client.post(url, json=garbage, headers=H), 400, "bad_signature", "signature")
    short = _gasless()
    short["signature"] = "0x" + "00" * 64
    _err(client.post(url, json=short, headers=H), 422, "invalid_field", "signature")
    missing = _gasless()
    del missing["request"]["from"]
    _err(client.post(url, json=missing, headers=H), 422, "invalid_field", "request.from")
    huge = _gasless()
    huge["request"]["deadline"] = 2**48
    _err(client.post(url, json=huge, headers=H), 422, "invalid_field", "request.deadline")
    _err(
        client.post(url, json=_gasless(deadline=2**48 - 1), headers=H),
        422,
        "invalid_field",
        "request.deadline",
    )
    _err(client.post(url, json=_gasless(gas=10**12), headers=H), 422, "invalid_field", "request.gas")


def test_gasless_policy_codes(client: TestClient) -> None:
    url = "/api/v1/relay/gasless"
    _err(client.post(url, json=_gasless(key=BLOCKED_KEY), headers=H), 403, "user_blocked", "request.from")
    _err(
        client.post(url, json=_gasless(to="0x" + "99" * 20), headers=H),
        403,
        "contract_not_allowed",
        "request.to",
    )
    _err(
        client.post(url, json=_gasless(data=b"\x09\x5e\xa7\xb3" + bytes(64)), headers=H),
        403,
        "method_not_allowed",
        "request.data",
    )
    _err(client.post(url, json=_gasless(value=1), headers=H), 403, "value_too_high", "request.value")
    # Everything passes up to the nonce read, whose chain is unreachable here.
    _err(client.post(url, json=_gasless(), headers=H), 503, "chain_unavailable", "request.nonce")


def test_nonce_and_status_endpoints(client: TestClient) -> None:
    _err(client.get("/api/v1/relay/gasless/nonce/0x12", headers=H), 422, "invalid_field", "address")
    _err(client.get("/api/v1/relay/gasless/nonce/" + "0x" + "22" * 20), 401, "missing_api_key", "X-API-Key")
    _err(client.get("/api/v1/relay/status/not-an-id", headers=H), 404, "not_found", "id")


def test_http_level_errors(client: TestClient) -> None:
    _err(client.get("/nope"), 404, "not_found", "path")
    _err(client.get("/api/v1/relay/direct"), 405, "http_method_not_allowed", "method")


def _signed(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def test_webhook_signature(client: TestClient) -> None:
    body = json.dumps(
        {
            "id": "n1",
            "event": "transaction_update",
            "payload": {
                "payload_type": "transaction",
                "id": "tx-unknown",
                "status": "mined",
                "relayer_id": "rl-0",
            },
            "timestamp": "2025-01-01T00:00:00Z",
        }
    ).encode()
    url = "/api/v1/webhooks/relayer"
    ct = {"Content-Type": "application/json"}
    _err(client.post(url, content=body, headers=ct), 401, "bad_webhook_signature", "X-Signature")
    _err(
        client.post(url, content=body, headers={**ct, "X-Signature": _signed(body, "wrong")}),
        401,
        "bad_webhook_signature",
        "X-Signature",
    )
    _err(
        client.post(url, content=body, headers={**ct, "X-Signature": "%%%not-base64"}),
        401,
        "bad_webhook_signature",
        "X-Signature",
    )
    # A valid signature over other bytes is refused too.
    _err(
        client.post(url, content=body + b" ", headers={**ct, "X-Signature": _signed(body, SIGNING_KEY)}),
        401,
        "bad_webhook_signature",
        "X-Signature",
    )
    # Naming a relayer that is not in the pool.
    other = body.replace(b'"rl-0"', b'"rl-9"')
    _err(
        client.post(url, content=other, headers={**ct, "X-Signature": _signed(other, SIGNING_KEY)}),
        401,
        "bad_webhook_signature",
        "X-Signature",
    )


def test_metrics_count_codes(client: TestClient) -> None:
    client.post("/api/v1/relay/direct", json={"to": TOKEN}, headers={"X-API-Key": "nope"})
    text = client.get("/metrics").text
    assert 'msq_gateway_requests_total{code="unknown_api_key",route="/api/v1/relay/direct"}' in text
    assert 'msq_gateway_request_duration_seconds_bucket{le="0.001",route="/api/v1/relay/direct"}' in text


def test_store_outage_is_503_not_500(client: TestClient) -> None:
    """Redis here is a closed port: a request that needs the store is refused cleanly, and nothing is sent."""
    transfer = "0x" + erc20_transfer("0x" + "22" * 20, 5).hex()
    resp = client.post(
        "/api/v1/relay/direct", json={"to": TOKEN, "data": transfer}, headers={**H, "Idempotency-Key": "k1"}
    )
    _err(resp, 503, "store_unavailable", None)
