"""The dev relayer's requests and responses validate against OZ Relayer's own OpenAPI document.

The document is OZ's own file, kept unmodified under `tests/reference/` (its README says where it comes from).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from msq_devstack.chain import Chain
from msq_devstack.openbao import OpenBao
from msq_devstack.process import free_port
from msq_devstack.redis import Redis
from msq_devstack.relayers import LocalRelayer, provision_relayer, start_relayer

REPO = Path(__file__).resolve().parents[2]
OPENAPI_PATH = REPO / "tests" / "reference" / "oz-relayer-openapi.json"
DOC_URI = "urn:oz-relayer-openapi"
DEAD = "0x000000000000000000000000000000000000dEaD"


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    if not OPENAPI_PATH.exists():
        pytest.fail(f"OZ's OpenAPI document is missing at {OPENAPI_PATH}")
    return json.loads(OPENAPI_PATH.read_text())


@pytest.fixture(scope="module")
def registry(openapi: dict[str, Any]) -> Registry:
    return Registry().with_resource(DOC_URI, Resource(contents=openapi, specification=DRAFT202012))


def check(registry: Registry, schema_name: str, instance: Any) -> None:
    """Validate against `#/components/schemas/<schema_name>` of OZ's document, $refs resolved in place."""
    schema = {"$ref": f"{DOC_URI}#/components/schemas/{schema_name}"}
    validator = Draft202012Validator(schema, registry=registry)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"{schema_name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def response_schema(openapi: dict[str, Any], path: str, method: str, status: int) -> str:
    """The component name OZ documents for this operation's response (so the tests follow the document)."""
    content = openapi["paths"][path][method]["responses"][str(status)]["content"]
    ref = content["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def webhooks() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    server.shutdown()


@pytest.fixture(scope="module")
def relayer(
    openbao: OpenBao,
    redis_server: Redis,
    chain: Chain,
    stack_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
    webhooks: tuple[str, list[bytes]],
) -> Iterator[LocalRelayer]:
    config_dir, env = provision_relayer(
        openbao,
        redis_server.url,
        chain,
        relayer_id="oa-1",
        work_dir=tmp_path_factory.mktemp("openapi"),
        webhook_url=webhooks[0],
    )
    rel = start_relayer(config_dir, env, stack_logs, "devrelayer-oa-1")
    yield rel
    rel.stop()


@pytest.fixture(scope="module")
def http(relayer: LocalRelayer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=relayer.url, headers=relayer.headers, timeout=10) as client:
        yield client


REQUESTS = [
    {"to": DEAD, "value": 1, "speed": "fast"},
    {"to": DEAD, "value": 0, "data": "0x", "gas_limit": 21000, "gas_price": 2 * 10**9},
    {
        "to": DEAD,
        "value": 3,
        "max_fee_per_gas": 4 * 10**9,
        "max_priority_fee_per_gas": 10**9,
        "valid_until": "2099-01-01T00:00:00Z",
    },
]


def test_the_checker_is_not_vacuous(registry: Registry) -> None:
    with pytest.raises(AssertionError, match="balance"):
        check(
            registry,
            "ApiResponse_BalanceResponse",
            {"success": True, "data": {"balance": "1", "unit": "wei"}},
        )
    with pytest.raises(AssertionError):
        check(registry, "ApiResponse_TransactionResponse", {"success": True, "data": {"id": "x"}})


def test_requests_we_send_are_ozs_evm_transaction_requests(
    registry: Registry, openapi: dict[str, Any]
) -> None:
    body = openapi["paths"]["/api/v1/relayers/{relayer_id}/transactions"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/NetworkTransactionRequest")
    # NetworkTransactionRequest is a oneOf whose Solana branch has no required field, so any object matches
    # it too; OZ picks the branch by the relayer's network type. Validate against the EVM branch.
    for request in REQUESTS:
        check(registry, "EvmTransactionRequest", request)


def test_transaction_responses_match(
    registry: Registry, openapi: dict[str, Any], http: httpx.Client, relayer: LocalRelayer
) -> None:
    post_schema = response_schema(openapi, "/api/v1/relayers/{relayer_id}/transactions", "post", 200)
    get_schema = response_schema(
        openapi, "/api/v1/relayers/{relayer_id}/transactions/{transaction_id}", "get", 200
    )
    ids = []
    for request in REQUESTS:
        resp = http.post(f"/api/v1/relayers/{relayer.relayer_id}/transactions", json=request)
        assert resp.status_code == 200
        check(registry, post_schema, resp.json())
        ids.append(resp.json()["data"]["id"])
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        for tx_id in list(pending):
            resp = http.get(f"/api/v1/relayers/{relayer.relayer_id}/transactions/{tx_id}")
            check(registry, get_schema, resp.json())
            status = resp.json()["data"]["status"]
            seen.add(status)
            if status == "confirmed":
                pending.discard(tx_id)
        time.sleep(0.05)
    assert not pending
    assert "confirmed" in seen


def test_relayer_status_balance_and_details_match(
    registry: Registry, openapi: dict[str, Any], http: httpx.Client, relayer: LocalRelayer
) -> None:
    for suffix, path in (
        ("/status", "/api/v1/relayers/{relayer_id}/status"),
        ("/balance", "/api/v1/relayers/{relayer_id}/balance"),
        ("", "/api/v1/relayers/{relayer_id}"),
    ):
        resp = http.get(f"/api/v1/relayers/{relayer.relayer_id}{suffix}")
        assert resp.status_code == 200
        check(registry, response_schema(openapi, path, "get", 200), resp.json())


def test_error_responses_match(
    registry: Registry, openapi: dict[str, Any], http: httpx.Client, relayer: LocalRelayer
) -> None:
    tx_path = "/api/v1/relayers/{relayer_id}/transactions"
    url = f"/api/v1/relayers/{relayer.relayer_id}/transactions"
    cases = [
        (http.post(url, json={"to": DEAD}), tx_path, "post", 400),
        (
            http.post(url, json={"to": DEAD, "value": 1}, headers={"Authorization": "Bearer wrong"}),
            tx_path,
            "post",
            401,
        ),
        (http.get("/api/v1/relayers/ghost/status"), "/api/v1/relayers/{relayer_id}/status", "get", 404),
        (
            http.get(f"/api/v1/relayers/{relayer.relayer_id}/transactions/ghost"),
            "/api/v1/relayers/{relayer_id}/transactions/{transaction_id}",
            "get",
            404,
        ),
    ]
    for resp, path, method, status in cases:
        assert resp.status_code == status
        check(registry, response_schema(openapi, path, method, status), resp.json())


def test_health_and_readiness_match(
    registry: Registry, openapi: dict[str, Any], relayer: LocalRelayer
) -> None:
    health = httpx.get(f"{relayer.url}/api/v1/health", timeout=5)
    assert health.status_code == 200
    assert health.headers["content-type"].startswith("text/plain")
    assert health.text == "OK"
    ready = httpx.get(f"{relayer.url}/api/v1/ready", timeout=5)
    assert ready.status_code == 200
    content = openapi["paths"]["/api/v1/ready"]["get"]["responses"]["200"]["content"]
    check(registry, content["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1], ready.json())


def test_webhook_payloads_carry_ozs_transaction_response(
    registry: Registry, webhooks: tuple[str, list[bytes]]
) -> None:
    # Runs after the transactions above were relayed; each status change produced one webhook.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(webhooks[1]) < 4 * len(REQUESTS):
        time.sleep(0.1)
    assert len(webhooks[1]) >= 4 * len(REQUESTS)
    for body in webhooks[1]:
        event = json.loads(body)
        payload = dict(event["payload"])
        assert payload.pop("payload_type") == "transaction"
        check(registry, "EvmTransactionResponse", payload)
