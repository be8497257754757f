"""One suite, two engines: the real OZ Relayer v1.8.0 binary and the local stand-in (`msq_devrelayer`) get the
same requests and the same assertions.

Each engine runs one relayer for the module, provisioned and started exactly as the operator renders it
(`msq_devstack.relayers`), with its webhooks pointed at a receiver in this process. Where the engines still
differ on purpose, the assertion stays and is marked `known_difference(...)`: an expected failure on the
stand-in only, strict, so a fix shows up as XPASS and devrelayer/CONFORMANCE.md gets updated with it.

Timing: OZ checks a transaction's status on a job scheduled 8 s after creation and then every 8-12 s, so its
transfer confirms 7-10 s after the POST here (one block a second); the transfer is submitted by the first test
that needs it and tracked in a background thread while the others run.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_client
from jsonschema import Draft202012Validator
from prometheus_client.parser import text_string_to_metric_families
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from msq_devstack import engine as engines
from msq_devstack.chain import Chain
from msq_devstack.openbao import OpenBao
from msq_devstack.redis import Redis
from msq_devstack.relayers import ENV_EXPECTED_ADDRESS, LocalRelayer, provision_relayer, start_relayer
from tests.support.relayer_io import Delivery, WebhookReceiver, rpc, wait_for

REPO = Path(__file__).resolve().parents[2]
OPENAPI_PATH = REPO / "tests" / "reference" / "oz-relayer-openapi.json"
DOC_URI = "urn:oz-relayer-openapi"
DEAD = "0x000000000000000000000000000000000000dEaD"
FLOW = ("pending", "sent", "submitted", "mined", "confirmed")
FINAL = frozenset({"confirmed", "failed", "expired", "canceled"})
TRANSFER = {"to": DEAD, "value": 1, "data": "0x", "gas_limit": 21_000, "speed": "fast"}
CONFIRM_TIMEOUT = 75.0
# Fields of OZ's EvmTransactionResponse (models/transaction/response.rs), every one always serialised.
EVM_TX_FIELDS = frozenset(
    {
        "id",
        "hash",
        "status",
        "status_reason",
        "created_at",
        "sent_at",
        "confirmed_at",
        "gas_price",
        "gas_limit",
        "nonce",
        "value",
        "from",
        "to",
        "relayer_id",
        "data",
        "max_fee_per_gas",
        "max_priority_fee_per_gas",
        "signature",
        "speed",
        "is_canceled",
    }
)
STATUS_FIELDS = frozenset(
    {
        "network_type",
        "balance",
        "nonce",
        "pending_transactions_count",
        "last_confirmed_transaction_timestamp",
        "system_disabled",
        "paused",
    }
)


def known_difference(request: pytest.FixtureRequest, reason: str) -> None:
    """The stand-in differs here on purpose (devrelayer/CONFORMANCE.md); OZ must still pass the assertion."""
    if request.node.callspec.params.get("subject") == "dev":
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"known difference: {reason}"))


def strip_nulls(value: Any) -> Any:
    """OZ serialises an absent `Option` as null where its own OpenAPI document says "non-nullable string"
    (utoipa's `nullable = false` without `skip_serializing_if`); the document is checked with nulls removed,
    and whether null or absent is the wire format is asserted separately."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


@dataclass
class Transfer:
    """A plain transfer, polled every 50 ms from submission to a final status in a background thread."""

    id: str
    accepted: dict[str, Any]
    seen: list[str] = field(default_factory=list)
    final: dict[str, Any] | None = None
    head_when_final: int | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float = CONFIRM_TIMEOUT) -> dict[str, Any]:
        assert self.done.wait(timeout), (
            f"transfer {self.id} not final within {timeout:.0f}s (seen {self.seen})"
        )
        assert self.final is not None, self.error
        return self.final


@dataclass
class Subject:
    engine: str
    relayer: LocalRelayer
    http: httpx.Client
    receiver: WebhookReceiver
    redis: redis_client.Redis
    redis_key_prefix: str
    address: str
    signing_key: str
    chain: Chain
    stop: threading.Event = field(default_factory=threading.Event)
    submitted: list[str] = field(default_factory=list)
    _transfer: Transfer | None = None

    @property
    def base(self) -> str:
        return f"/api/v1/relayers/{self.relayer.relayer_id}"

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.http.post(f"{self.base}/transactions", json=body)
        assert resp.status_code == 200, resp.text
        data = resp.json()["data"]
        self.submitted.append(data["id"])
        return data

    def transaction(self, tx_id: str) -> dict[str, Any]:
        resp = self.http.get(f"{self.base}/transactions/{tx_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]

    def transfer(self) -> Transfer:
        """The module's plain transfer, submitted on first use."""
        if self._transfer is None:
            accepted = self.submit(TRANSFER)
            self._transfer = Transfer(id=accepted["id"], accepted=accepted, seen=[accepted["status"]])
            threading.Thread(target=self._track, args=(self._transfer,), daemon=True).start()
        return self._transfer

    def _track(self, t: Transfer) -> None:
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        try:
            with httpx.Client(base_url=self.relayer.url, headers=self.relayer.headers, timeout=5) as http:
                while not self.stop.is_set() and time.monotonic() < deadline:
                    try:
                        data = http.get(f"{self.base}/transactions/{t.id}").json()["data"]
                        if data["status"] != t.seen[-1]:
                            t.seen.append(data["status"])
                        if data["status"] in FINAL:
                            t.head_when_final = int(rpc(self.chain, "eth_blockNumber", []), 16)
                            t.final = data
                            return
                    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                        t.error = f"{type(exc).__name__}: {exc}"  # kept for the report; polling goes on
                    time.sleep(0.05)
        finally:
            t.done.set()

    def wait_all_final(self, timeout: float = CONFIRM_TIMEOUT) -> dict[str, dict[str, Any]]:
        def check() -> dict[str, dict[str, Any]] | None:
            records = {i: self.transaction(i) for i in self.submitted}
            return records if all(r["status"] in FINAL for r in records.values()) else None

        return wait_for("every submitted transaction final", check, timeout, interval=0.5)


@pytest.fixture(scope="module", params=["oz", "dev"], ids=["oz", "dev"])
def subject(
    request: pytest.FixtureRequest,
    openbao: OpenBao,
    redis_server: Redis,
    chain: Chain,
    stack_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Subject]:
    engine: engines.Engine = request.param
    if engine == "oz" and engines.oz_binary() is None:
        pytest.skip(engines.HOW_TO_ENABLE)
    receiver = WebhookReceiver()
    try:
        # Unique per session: OZ keeps its repositories in Redis under the prefix derived from the id.
        relayer_id = f"conformance-{engine}"
        config_dir, env = provision_relayer(
            openbao,
            redis_server.url,
            chain,
            relayer_id=relayer_id,
            work_dir=tmp_path_factory.mktemp(f"conformance-{engine}"),
            webhook_url=receiver.url,
        )
        relayer = start_relayer(
            config_dir, env, stack_logs, f"conformance-{engine}", timeout=120, engine=engine
        )
    except BaseException:
        receiver.close()
        raise
    http = httpx.Client(base_url=relayer.url, headers=relayer.headers, timeout=10)
    redis = redis_client.Redis.from_url(redis_server.url, decode_responses=True, socket_timeout=5)
    subj = Subject(
        engine=engine,
        relayer=relayer,
        http=http,
        receiver=receiver,
        redis=redis,
        redis_key_prefix=env["REDIS_KEY_PREFIX"],
        address=env[ENV_EXPECTED_ADDRESS],
        signing_key=env["WEBHOOK_SIGNING_KEY"],
        chain=chain,
    )
    try:
        yield subj
    finally:
        subj.stop.set()  # the transfer's poller
        relayer.stop()
        http.close()
        redis.close()
        receiver.close()


@pytest.fixture(scope="module")
def openapi() -> Registry:
    doc = json.loads(OPENAPI_PATH.read_text())
    return Registry().with_resource(DOC_URI, Resource(contents=doc, specification=DRAFT202012))


def check_schema(registry: Registry, schema_name: str, instance: Any) -> None:
    validator = Draft202012Validator(
        {"$ref": f"{DOC_URI}#/components/schemas/{schema_name}"}, registry=registry
    )
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"{schema_name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def json_body(resp: httpx.Response) -> dict[str, Any]:
    body = json.loads(resp.content)
    assert isinstance(body, dict), resp.text
    return body


# ---- envelope and errors ---------------------------------------------------------------------------------


def test_probes_are_open_and_the_api_is_not(subject: Subject) -> None:
    with httpx.Client(base_url=subject.relayer.url, timeout=10) as anon:
        health = anon.get("/api/v1/health")
        ready = anon.get("/api/v1/ready")
        status = anon.get(f"{subject.base}/status")
    assert health.status_code == 200 and health.text == "OK"
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert status.status_code == 401


UNAUTHORIZED_HEADERS = {
    "no header": {},
    "wrong key": {"Authorization": "Bearer " + "x" * 43},
    "no Bearer scheme": None,  # the right key without "Bearer "
}


@pytest.mark.parametrize("case", list(UNAUTHORIZED_HEADERS))
def test_unauthorized_is_a_401_envelope(subject: Subject, case: str) -> None:
    headers = UNAUTHORIZED_HEADERS[case]
    if headers is None:
        headers = {"Authorization": subject.relayer.api_key}
    with httpx.Client(base_url=subject.relayer.url, headers=headers, timeout=10) as anon:
        responses = [
            anon.get(f"{subject.base}/status"),
            anon.post(f"{subject.base}/transactions", json=TRANSFER),
            anon.get("/api/v1/relayers/no-such-relayer"),  # auth comes before routing
        ]
    for resp in responses:
        assert resp.status_code == 401
        body = json_body(resp)
        assert body["success"] is False and body["error"] == "Unauthorized"
        assert body.get("data") is None


def test_unauthorized_body_is_ozs(subject: Subject, request: pytest.FixtureRequest) -> None:
    known_difference(request, "401 body without OZ's code/message fields (pinned by test_devrelayer.py)")
    # Two fixed bodies in OZ, same JSON: the rate limiter's key extractor when there is no Authorization
    # header at all (config/rate_limit.rs), the auth wrapper when it is wrong (main.rs).
    with httpx.Client(base_url=subject.relayer.url, timeout=10) as anon:
        none = anon.get(f"{subject.base}/status")
        wrong = anon.get(f"{subject.base}/status", headers={"Authorization": "Bearer " + "x" * 43})
    for resp in (none, wrong):
        assert json_body(resp) == {
            "success": False,
            "code": 401,
            "error": "Unauthorized",
            "message": "Unauthorized",
        }


def test_success_envelope(subject: Subject) -> None:
    resp = subject.http.get(subject.base)
    assert resp.status_code == 200
    body = json_body(resp)
    assert body["success"] is True and isinstance(body["data"], dict)
    assert body.get("error") is None
    assert body["data"]["id"] == subject.relayer.relayer_id
    assert body["data"]["address"].lower() == subject.address.lower()


def test_envelope_always_carries_data_and_error(subject: Subject, request: pytest.FixtureRequest) -> None:
    known_difference(request, "absent envelope members left out instead of null (OpenAPI-checked stand-in)")
    ok = json_body(subject.http.get(subject.base))
    missing = json_body(subject.http.get(f"{subject.base}/transactions/no-such-transaction"))
    # ApiResponse (models/api_response.rs) serialises `data` and `error` always, null when absent.
    assert "error" in ok and ok["error"] is None
    assert "data" in missing and missing["data"] is None


NOT_FOUND = {
    "relayer": ("GET", "/api/v1/relayers/no-such-relayer", None),
    "relayer status": ("GET", "/api/v1/relayers/no-such-relayer/status", None),
    "relayer transactions": ("GET", "/api/v1/relayers/no-such-relayer/transactions", None),
    "submit to unknown relayer": ("POST", "/api/v1/relayers/no-such-relayer/transactions", TRANSFER),
}


@pytest.mark.parametrize("case", list(NOT_FOUND))
def test_unknown_relayer_is_a_404_envelope(subject: Subject, case: str) -> None:
    method, path, body = NOT_FOUND[case]
    resp = subject.http.request(method, path, json=body)
    assert resp.status_code == 404
    env = json_body(resp)
    assert env["success"] is False and env.get("data") is None
    assert env["error"] == "Relayer with ID no-such-relayer not found"


def test_unknown_transaction_is_a_404_envelope(subject: Subject) -> None:
    resp = subject.http.get(f"{subject.base}/transactions/no-such-transaction")
    assert resp.status_code == 404
    env = json_body(resp)
    assert env["success"] is False and env.get("data") is None
    assert env["error"] == "Transaction with ID no-such-transaction not found"


BAD_BODIES: dict[str, Any] = {
    "speed and gas_price": {**TRANSFER, "gas_price": 10**9},
    "gas_price and max fees": {
        "to": DEAD,
        "value": 1,
        "gas_price": 10**9,
        "max_fee_per_gas": 2 * 10**9,
        "max_priority_fee_per_gas": 10**9,
    },
    "max fee without priority fee": {"to": DEAD, "value": 1, "max_fee_per_gas": 10**9},
    "priority fee above max fee": {
        "to": DEAD,
        "value": 1,
        "max_fee_per_gas": 10**9,
        "max_priority_fee_per_gas": 2 * 10**9,
    },
    "value missing": {"to": DEAD, "speed": "fast"},
    "value negative": {**TRANSFER, "value": -1},
    "value not a number": {**TRANSFER, "value": "one"},
    "value a float": {**TRANSFER, "value": 1.5},
    "value a JSON number of 2**64": {**TRANSFER, "value": 2**64},
    "gas_limit a string": {**TRANSFER, "gas_limit": "21000"},
    "gas_limit below intrinsic gas": {**TRANSFER, "gas_limit": 20_999},
    "gas_price a string": {"to": DEAD, "value": 1, "gas_price": "1000000000"},
    "unknown speed": {**TRANSFER, "speed": "ludicrous"},
    "neither to nor data": {"value": 1, "speed": "fast"},
    "valid_until not RFC 3339": {**TRANSFER, "valid_until": "tomorrow"},
    "body is a list": [TRANSFER],
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_body_is_a_400_envelope(subject: Subject, case: str) -> None:
    before = subject.redis.llen(queue_key(subject))
    resp = subject.http.post(f"{subject.base}/transactions", json=BAD_BODIES[case])
    assert resp.status_code == 400, resp.text
    env = json_body(resp)
    assert env["success"] is False and env.get("data") is None
    assert isinstance(env["error"], str) and env["error"]
    assert subject.redis.llen(queue_key(subject)) <= before  # nothing was queued


def test_body_refused_by_the_json_extractor_in_plain_text(subject: Subject) -> None:
    """OZ's route extracts `web::Json<serde_json::Value>`: actix refuses a wrong content type, a body that is
    not JSON and one over its 2 MiB default limit itself, in plain text, before the relayer is even looked up
    (api/routes/relayer.rs, actix-web types/json.rs). A client must not expect the envelope here."""
    url = f"{subject.base}/transactions"
    text = subject.http.post(url, content=json.dumps(TRANSFER), headers={"Content-Type": "text/plain"})
    broken = subject.http.post(url, content=b"{", headers={"Content-Type": "application/json"})
    ghost = subject.http.post(
        "/api/v1/relayers/no-such-relayer/transactions",
        content=b"{",
        headers={"Content-Type": "application/json"},
    )
    big = subject.http.post(url, json={**TRANSFER, "data": "0x" + "00" * 1_100_000})
    assert (text.status_code, text.text) == (400, "Content type error"), text.headers
    for resp in (broken, ghost):
        assert resp.status_code == 400 and resp.text.startswith("Json deserialize error: "), resp.text
    assert big.status_code == 413, (big.status_code, big.text[:200])
    assert "is larger than allowed (limit: 2097152 bytes)" in big.text, big.text[:200]
    for resp in (text, broken, ghost, big):
        assert resp.headers.get("content-type", "").startswith("text/plain"), (resp.url, resp.headers)


PERMISSIVE_ON_OZ: dict[str, tuple[dict[str, Any], str]] = {
    "no pricing at all": ({"to": DEAD, "value": 1}, "accepted, priced at speed fast (pinned by tests)"),
    "valid_until in the past": (
        {**TRANSFER, "valid_until": "2000-01-01T00:00:00Z"},
        "accepted, then expired (pinned by test_devrelayer.py)",
    ),
}


@pytest.mark.parametrize("case", list(PERMISSIVE_ON_OZ))
def test_refused_by_oz_but_not_by_the_stand_in(
    subject: Subject, case: str, request: pytest.FixtureRequest
) -> None:
    body, stand_in = PERMISSIVE_ON_OZ[case]
    known_difference(request, f"{case}: the stand-in {stand_in}")
    resp = subject.http.post(f"{subject.base}/transactions", json=body)
    if resp.status_code == 200:
        subject.submitted.append(resp.json()["data"]["id"])
    assert resp.status_code == 400, resp.text
    assert json_body(resp)["success"] is False


def test_unknown_fields_are_ignored(subject: Subject, request: pytest.FixtureRequest) -> None:
    known_difference(request, "unknown request fields refused (pinned by test_devrelayer_units.py)")
    # serde without deny_unknown_fields (models/transaction/request/evm.rs): `nonce` is silently dropped.
    data = subject.submit({**TRANSFER, "nonce": 5})
    assert data["nonce"] is None


def test_value_may_be_a_string(subject: Subject) -> None:
    # U256 reads a decimal or 0x string as well as a JSON number; the string is the only way past 2**64 - 1.
    for value in ("1", "0x1"):
        data = subject.submit({**TRANSFER, "value": value})
        assert int(data["value"], 0) == 1


# ---- a plain transfer: status flow and record ----------------------------------------------------------


def test_transfer_walks_the_status_flow(subject: Subject) -> None:
    t = subject.transfer()
    assert t.accepted["status"] == "pending"
    final = t.wait()
    assert final["status"] == "confirmed", final
    # Statuses only move forward; which intermediate ones a poller catches depends on the engine.
    assert t.seen == [s for s in FLOW if s in t.seen], t.seen
    assert t.seen[0] == "pending" and t.seen[-1] == "confirmed"
    # Not asserted: which intermediate statuses a poller catches. OZ holds `submitted` until its first status
    # check (8 s after creation) and, with a block a second, jumps from there to `confirmed`; the stand-in
    # polls receipts every 100 ms, so `mined` shows and `sent`/`submitted` may not. The webhooks test checks
    # that every change is reported.
    print(f"{subject.engine}: statuses observed by a 50 ms poller: {t.seen}")


def test_transfer_record(subject: Subject) -> None:
    t = subject.transfer()
    final = t.wait()
    tx = rpc(subject.chain, "eth_getTransactionByHash", [final["hash"]])
    receipt = rpc(subject.chain, "eth_getTransactionReceipt", [final["hash"]])
    assert receipt["status"] == "0x1"
    # One required confirmation means a block after the one that mined it (OZ's has_enough_confirmations:
    # head >= mined + required). Seen within ~0.1 s of the change, well inside the 1 s block time, so an
    # engine confirming on the mining block itself is caught here.
    assert t.head_when_final is not None and t.head_when_final >= int(receipt["blockNumber"], 16) + 1
    assert re.fullmatch(r"0x[0-9a-f]{64}", final["hash"])
    assert final["nonce"] == int(tx["nonce"], 16)
    assert final["from"].lower() == subject.address.lower() == tx["from"].lower()
    assert final["to"].lower() == DEAD.lower()
    assert final["relayer_id"] == subject.relayer.relayer_id
    assert final["gas_limit"] == 21_000 and final["speed"] == "fast"
    assert int(final["value"], 0) == 1
    assert final["status_reason"] is None
    # `sent_at` is when the node took it (OZ stamps it on `submitted`), so never before `created_at`.
    assert dt.datetime.fromisoformat(final["sent_at"]) >= dt.datetime.fromisoformat(final["created_at"])
    assert set(final["signature"]) == {"r", "s", "v", "sig"}
    # Priced as EIP-1559 on this network: the fee caps are decimal strings.
    assert int(final["max_fee_per_gas"]) >= int(final["max_priority_fee_per_gas"]) >= 0
    # Block time (1 s on this chain) and OZ's status checks separate mining from confirming.
    for stamp in ("created_at", "sent_at", "confirmed_at"):
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", final[stamp]), (stamp, final[stamp])


def test_transaction_fields_are_ozs(subject: Subject, request: pytest.FixtureRequest) -> None:
    known_difference(request, "absent optional fields left out instead of null")
    final = subject.transfer().wait()
    accepted = subject.transfer().accepted
    assert set(final) == EVM_TX_FIELDS
    assert set(accepted) == EVM_TX_FIELDS
    assert accepted["hash"] is None and accepted["nonce"] is None and accepted["sent_at"] is None


def test_value_is_a_hex_string(subject: Subject, request: pytest.FixtureRequest) -> None:
    known_difference(request, "`value` rendered as a decimal string (pinned by test_devrelayer_units.py)")
    # OZ's U256 serialises human-readable as a 0x-prefixed lower-case hex string (ruint serde).
    assert subject.transfer().accepted["value"] == "0x1"


def test_to_is_kept_as_given(subject: Subject, request: pytest.FixtureRequest) -> None:
    known_difference(request, "stand-in checksums `to` (pinned by test_devrelayer.py)")
    data = subject.submit({**TRANSFER, "to": DEAD.lower()})
    assert data["to"] == DEAD.lower()


# ---- relayer status ------------------------------------------------------------------------------------


def test_relayer_status(subject: Subject) -> None:
    subject.transfer().wait()
    subject.wait_all_final()
    resp = subject.http.get(f"{subject.base}/status")
    assert resp.status_code == 200
    body = json_body(resp)
    data = body["data"]
    assert body["success"] is True
    assert set(data) == STATUS_FIELDS
    assert data["network_type"] == "evm"
    assert isinstance(data["balance"], str) and isinstance(data["nonce"], str)
    balance = int(rpc(subject.chain, "eth_getBalance", [subject.address, "latest"]), 16)
    assert int(data["balance"]) == balance
    # The next nonce the relayer will use: one past the last one it spent.
    assert int(data["nonce"]) == int(
        rpc(subject.chain, "eth_getTransactionCount", [subject.address, "latest"]), 16
    )
    assert data["pending_transactions_count"] == 0
    assert data["paused"] is False and data["system_disabled"] is False
    confirmed = [r for r in subject.wait_all_final().values() if r["status"] == "confirmed"]
    assert data["last_confirmed_transaction_timestamp"] in {r["confirmed_at"] for r in confirmed}


STATUS_NAMES = ("Pending", "Sent", "Submitted", "Mined", "Confirmed", "Failed", "Canceled", "Expired")


def test_status_indexes_in_redis(subject: Subject) -> None:
    """OZ keeps one sorted set per status under `{prefix}:relayer:{id}:status_sorted:{Status}` and counts
    Pending + Sent + Submitted as `pending_transactions_count`; the operator reads those sets (and
    `{prefix}:relayer_list`) straight from Redis as a relayer's backlog, so both engines must keep them."""
    final = subject.transfer().wait()
    subject.wait_all_final()
    prefix, rid = subject.redis_key_prefix, subject.relayer.relayer_id

    def key(status: str) -> str:
        return f"{prefix}:relayer:{rid}:status_sorted:{status}"

    assert rid in subject.redis.smembers(f"{prefix}:relayer_list")
    status = subject.http.get(f"{subject.base}/status").json()["data"]
    assert sum(subject.redis.zcard(key(s)) for s in ("Pending", "Sent", "Submitted")) == 0
    assert status["pending_transactions_count"] == 0
    # Scored by confirmation time in ms for Confirmed (transaction_redis.rs status_sorted_score).
    score = subject.redis.zscore(key("Confirmed"), final["id"])
    assert score is not None
    assert abs(score - dt.datetime.fromisoformat(final["confirmed_at"]).timestamp() * 1000) <= 1
    # At any instant a transaction sits in exactly one of them (read atomically: MULTI).
    tx = subject.submit(TRANSFER)
    with subject.redis.pipeline(transaction=True) as pipe:
        for s in STATUS_NAMES:
            pipe.zscore(key(s), tx["id"])
        hits = pipe.execute()
    assert sum(h is not None for h in hits) == 1, dict(zip(STATUS_NAMES, hits, strict=True))


# ---- transaction list pagination -----------------------------------------------------------------------


def test_transaction_list_pagination(subject: Subject) -> None:
    subject.transfer()
    ids = [subject.submit(TRANSFER)["id"] for _ in range(2)]
    list_url = f"{subject.base}/transactions"

    def page(**params: Any) -> dict[str, Any]:
        resp = subject.http.get(list_url, params=params)
        assert resp.status_code == 200, resp.text
        body = json_body(resp)
        assert body["success"] is True and isinstance(body["data"], list)
        return body

    default = page()
    total = default["pagination"]["total_items"]
    assert total == len(subject.submitted) >= 3
    assert default["pagination"] == {"current_page": 1, "per_page": 10, "total_items": total}
    assert len(default["data"]) == min(10, total)
    # Newest first: the two just submitted lead the first page.
    first = page(page=1, per_page=2)
    assert first["pagination"] == {"current_page": 1, "per_page": 2, "total_items": total}
    assert [t["id"] for t in first["data"]] == ids[::-1]
    second = page(page=2, per_page=2)
    assert second["pagination"]["current_page"] == 2 and len(second["data"]) == min(2, total - 2)
    assert not {t["id"] for t in second["data"]} & set(ids)
    beyond = page(page=1000, per_page=2)
    assert beyond["data"] == [] and beyond["pagination"]["total_items"] == total
    # OZ's u32 index arithmetic: page 0 wraps past the end (empty), per_page 0 ends the range before it
    # starts, which Redis reads as "to the end" (repositories/transaction/transaction_redis.rs).
    assert page(page=0)["data"] == []
    assert {t["id"] for t in page(per_page=0)["data"]} == set(subject.submitted)


def test_transaction_list_refuses_a_bad_query_in_plain_text(subject: Subject) -> None:
    # actix's Query extractor answers before the handler, with its own text body, not the envelope.
    for params in ({"page": "first"}, {"per_page": "-1"}):
        resp = subject.http.get(f"{subject.base}/transactions", params=params)
        assert resp.status_code == 400
        assert resp.text.startswith("Query deserialize error:"), resp.text


# ---- the Redis queue a submit passes through -----------------------------------------------------------


def queue_key(subject: Subject) -> str:
    return f"{subject.redis_key_prefix}:queue:transaction_request_queue:active"


def test_submit_passes_through_the_transaction_request_queue(subject: Subject, redis_server: Redis) -> None:
    """Watch every Redis command during one submit (MONITOR sees those run inside Lua scripts too): the
    request must be pushed onto `{REDIS_KEY_PREFIX}:queue:transaction_request_queue:active`, the list whose
    length the operator reads as queue depth."""
    watcher = redis_client.Redis.from_url(redis_server.url, decode_responses=True, socket_timeout=0.5)
    pushes: list[str] = []
    stop = threading.Event()
    started = threading.Event()

    def watch() -> None:
        with watcher.monitor() as monitor:
            started.set()
            while not stop.is_set():
                try:
                    command = monitor.next_command()["command"]
                except redis_client.TimeoutError:
                    continue
                if queue_key(subject) in command and re.match(r"(?i)^[lr]push ", command):
                    pushes.append(command)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        assert started.wait(5)  # set once the server has answered MONITOR: from here on nothing is missed
        subject.submit(TRANSFER)
        wait_for("a push onto the request queue", lambda: pushes, timeout=5)
    finally:
        stop.set()
        thread.join(5)
        watcher.close()
    keys = sorted(subject.redis.scan_iter(f"{subject.redis_key_prefix}:queue:transaction_request_queue*"))
    print(f"{subject.engine}: pushes {pushes}; request-queue keys now {keys}")
    assert all(re.match(r"(?i)^rpush ", p) for p in pushes)


# ---- metrics -------------------------------------------------------------------------------------------

# OZ's transaction families (metrics/mod.rs) and the labels the stand-in mirrors.
TX_METRICS = (
    "transactions_created",
    "transactions_submitted",
    "transactions_success",
    "transactions_by_status",
)


def scrape(subject: Subject) -> dict[str, list[Any]]:
    base = subject.relayer.metrics_url.removesuffix("/metrics")
    resp = httpx.get(f"{base}/debug/metrics/scrape", timeout=10)
    assert resp.status_code == 200
    return {f.name: f.samples for f in text_string_to_metric_families(resp.text)}


def test_metrics_scrape_has_ozs_transaction_families(subject: Subject) -> None:
    subject.transfer().wait()

    def mine(samples: list[Any]) -> list[Any]:
        return [s for s in samples if s.labels.get("relayer_id") == subject.relayer.relayer_id]

    def counted() -> dict[str, list[Any]] | None:
        families = scrape(subject)
        ok = all(mine(families.get(name, [])) for name in TX_METRICS)
        return families if ok else None

    families = wait_for("OZ's transaction metric families", counted, timeout=10, interval=0.5)
    total = {n: sum(s.value for s in mine(families[n]) if s.name == f"{n}_total") for n in TX_METRICS[:3]}
    assert total["transactions_created"] >= 1
    assert total["transactions_submitted"] >= 1
    assert total["transactions_success"] >= 1
    for sample in mine(families["transactions_by_status"]):
        assert sample.labels["network_type"] == "evm" and sample.labels["status"] in {*FLOW, *FINAL}
    print(f"{subject.engine}: metric families {sorted(families)}")


def test_one_metric_family_by_name(subject: Subject) -> None:
    base = subject.relayer.metrics_url.removesuffix("/metrics")
    one = httpx.get(f"{base}/metrics/transactions_created_total", timeout=10)
    assert one.status_code == 200
    assert [f.name for f in text_string_to_metric_families(one.text)] == ["transactions_created"]
    missing = httpx.get(f"{base}/metrics/no_such_metric", timeout=10)
    assert missing.status_code == 404


def test_metrics_endpoint_lists_names(subject: Subject, request: pytest.FixtureRequest) -> None:
    known_difference(request, "/metrics answers Prometheus text (test_devrelayer.py scrapes it)")
    resp = httpx.get(subject.relayer.metrics_url, timeout=10)
    assert resp.status_code == 200
    names = resp.json()  # OZ: a JSON list of family names (api/routes/metrics.rs list_metrics)
    assert isinstance(names, list) and "transactions_created_total" in names


# ---- webhooks ------------------------------------------------------------------------------------------


def test_webhooks_are_signed_and_carry_the_transaction(subject: Subject) -> None:
    t = subject.transfer()
    final = t.wait()
    expected_statuses = {"sent", "submitted", "confirmed"}

    def delivered() -> list[Delivery] | None:
        # Deliveries may arrive out of order (the stand-in posts concurrently, OZ retries from a queue).
        deliveries = subject.receiver.for_tx(t.id)
        return deliveries if expected_statuses <= {d.event["payload"]["status"] for d in deliveries} else None

    try:
        deliveries = wait_for("webhooks for sent, submitted and confirmed", delivered, timeout=20)
    except AssertionError:
        got = [p["status"] for p in subject.receiver.payloads(t.id)]
        raise AssertionError(f"webhook statuses received: {got}") from None
    statuses = [d.event["payload"]["status"] for d in deliveries]
    for d in deliveries:
        expected = base64.b64encode(
            hmac.new(subject.signing_key.encode(), d.body, hashlib.sha256).digest()
        ).decode()
        assert hmac.compare_digest(d.headers["x-signature"], expected)
        assert d.headers["content-type"].startswith("application/json")
        assert set(d.event) == {"id", "event", "payload", "timestamp"}
        assert d.event["event"] == "transaction_update"
        assert d.event["payload"]["payload_type"] == "transaction"
        assert d.event["payload"]["relayer_id"] == subject.relayer.relayer_id
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", d.event["timestamp"])
    confirmed = next(d.event for d in deliveries if d.event["payload"]["status"] == "confirmed")
    payload = {k: v for k, v in confirmed["payload"].items() if k != "payload_type"}
    assert payload == final
    # One delivery per status change after acceptance; none for `pending`, which the POST answered.
    assert "pending" not in statuses and len(statuses) == len(set(statuses))
    assert set(statuses) <= set(FLOW)
    print(f"{subject.engine}: webhook statuses {sorted(statuses, key=FLOW.index)}")


# ---- OZ's own OpenAPI document -------------------------------------------------------------------------


def test_responses_match_ozs_openapi_document(subject: Subject, openapi: Registry) -> None:
    final = subject.transfer().wait()
    cases = [
        ("ApiResponse_TransactionResponse", subject.http.get(f"{subject.base}/transactions/{final['id']}")),
        ("ApiResponse_Vec_TransactionResponse", subject.http.get(f"{subject.base}/transactions")),
        ("ApiResponse_RelayerStatus", subject.http.get(f"{subject.base}/status")),
        ("ApiResponse_RelayerResponse", subject.http.get(subject.base)),
        ("ApiResponse_BalanceResponse", subject.http.get(f"{subject.base}/balance")),
        ("ApiResponse_String", subject.http.get(f"{subject.base}/transactions/no-such-transaction")),
        ("ApiResponse_String", subject.http.post(f"{subject.base}/transactions", json={"to": DEAD})),
    ]
    for schema, resp in cases:
        check_schema(openapi, schema, strip_nulls(json_body(resp)))


# ---- healing: replace (PUT) and cancel (DELETE) a transaction -----------------------------------------

HEALABLE = "[Pending, Sent, Submitted]"
CANCELED_WITH_NOOP = "Transaction canceled by user, replacing with NOOP"


def min_bump(price: int) -> int:
    """OZ's calculate_min_bump (domain/transaction/evm/price_calculator.rs): +10 %, at least 1 wei."""
    return max(price * 11 // 10, price + 1)


def fresh_address() -> str:
    return "0x" + secrets.token_hex(20)


def balance_of(subject: Subject, address: str) -> int:
    return int(rpc(subject.chain, "eth_getBalance", [address, "latest"]), 16)


def submitted_while_congested(subject: Subject, body: dict[str, Any]) -> dict[str, Any]:
    """Submit with mining paused and wait until the relayer reports it `submitted` (OZ: about 1 s)."""
    tx_id = subject.submit(body)["id"]
    return wait_for(
        f"{tx_id} submitted",
        lambda: (d := subject.transaction(tx_id))["status"] == "submitted" and d,
        timeout=20,
        interval=0.2,
    )


def wait_broadcast(subject: Subject, tx_id: str, to: str) -> dict[str, Any]:
    """Wait until the node holds the transaction's current version, sent to `to`. OZ answers a replace or a
    cancel before it broadcasts anything: a resubmit job signs and sends the new version afterwards
    (evm_transaction.rs replace_transaction, cancel_transaction), so mining must stay paused until then, or
    the original mines first."""

    def pooled() -> dict[str, Any] | None:
        record = subject.transaction(tx_id)
        node_tx = record["hash"] and rpc(subject.chain, "eth_getTransactionByHash", [record["hash"]])
        return record if node_tx and (node_tx.get("to") or "").lower() == to.lower() else None

    return wait_for(f"{tx_id} broadcast to {to}", pooled, timeout=20, interval=0.2)


def wait_final(subject: Subject, tx_id: str, timeout: float = CONFIRM_TIMEOUT) -> dict[str, Any]:
    return wait_for(
        f"{tx_id} final",
        lambda: (d := subject.transaction(tx_id))["status"] in FINAL and d,
        timeout=timeout,
        interval=0.2,
    )


def test_healing_an_unknown_transaction_is_a_404(subject: Subject) -> None:
    url = f"{subject.base}/transactions/no-such-transaction"
    for resp in (subject.http.put(url, json=TRANSFER), subject.http.delete(url)):
        assert resp.status_code == 404
        env = json_body(resp)
        assert env["success"] is False and env.get("data") is None
        assert env["error"] == "Transaction with ID no-such-transaction not found"


def test_healing_a_final_transaction_is_refused(subject: Subject) -> None:
    final = subject.transfer().wait()
    assert final["status"] == "confirmed"
    url = f"{subject.base}/transactions/{final['id']}"
    put, delete = subject.http.put(url, json=TRANSFER), subject.http.delete(url)
    # ensure_status_one_of (domain/transaction/evm/utils.rs): a ValidationError, so a 400.
    for resp, op in ((put, "replace_transaction"), (delete, "cancel_transaction")):
        assert resp.status_code == 400, resp.text
        env = json_body(resp)
        assert env["success"] is False and env.get("data") is None
        assert env["error"] == (
            f"Invalid transaction state for {op}. Current: Confirmed, Expected one of: {HEALABLE}"
        )
    assert subject.transaction(final["id"]) == final


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_replace_reads_the_body_as_a_new_transaction(subject: Subject, case: str) -> None:
    # Before the transaction is looked up (api/controllers/relayer.rs replace_transaction).
    resp = subject.http.put(f"{subject.base}/transactions/no-such-transaction", json=BAD_BODIES[case])
    assert resp.status_code == 400, resp.text
    env = json_body(resp)
    assert env["success"] is False and isinstance(env["error"], str) and env["error"]


def test_replace_body_goes_through_the_json_extractor(subject: Subject) -> None:
    url = f"{subject.base}/transactions/no-such-transaction"
    text = subject.http.put(url, content=json.dumps(TRANSFER), headers={"Content-Type": "text/plain"})
    broken = subject.http.put(url, content=b"{", headers={"Content-Type": "application/json"})
    assert (text.status_code, text.text) == (400, "Content type error")
    assert broken.status_code == 400 and broken.text.startswith("Json deserialize error: "), broken.text


def test_replace_of_a_submitted_transaction(subject: Subject) -> None:
    first_to, second_to = fresh_address(), fresh_address()
    with subject.chain.congested():
        old = submitted_while_congested(subject, {**TRANSFER, "to": first_to})
        resp = subject.http.put(
            f"{subject.base}/transactions/{old['id']}",
            json={"to": second_to, "value": 2, "data": "0x", "gas_limit": 21_000, "speed": "fast"},
        )
        assert resp.status_code == 200, resp.text
        body = json_body(resp)
        assert body["success"] is True
        new = body["data"]
        sent = wait_broadcast(subject, old["id"], second_to)
    print(
        f"{subject.engine}: replace answered {new['status']}, hash {old['hash']} -> {new['hash']}, "
        f"broadcast {sent['hash']}"
    )
    assert new["id"] == old["id"] and new["nonce"] == old["nonce"]
    assert new["status"] == "submitted" and new["is_canceled"] is False
    assert new["to"].lower() == second_to and int(new["value"], 0) == 2 and new["gas_limit"] == 21_000
    assert new["hash"] != old["hash"]
    # Market price for the speed, each fee at least the minimum bump over the old one (replacement.rs).
    assert int(new["max_fee_per_gas"]) >= min_bump(int(old["max_fee_per_gas"]))
    assert int(new["max_priority_fee_per_gas"]) >= min_bump(int(old["max_priority_fee_per_gas"]))
    final = wait_final(subject, old["id"])
    assert final["status"] == "confirmed", final
    mined = rpc(subject.chain, "eth_getTransactionByHash", [final["hash"]])
    assert int(mined["nonce"], 16) == old["nonce"] and mined["to"].lower() == second_to
    assert balance_of(subject, second_to) == 2 and balance_of(subject, first_to) == 0
    # The change itself is announced (send_transaction_update_notification after the replace).
    wait_for(
        "a webhook with the replacement",
        lambda: any(
            (p.get("to") or "").lower() == second_to and p["status"] != "confirmed"
            for p in subject.receiver.payloads(old["id"])
        ),
        timeout=20,
    )


def test_cancel_of_a_submitted_transaction(subject: Subject) -> None:
    to = fresh_address()
    with subject.chain.congested():
        old = submitted_while_congested(subject, {**TRANSFER, "to": to, "value": 12_345})
        resp = subject.http.delete(f"{subject.base}/transactions/{old['id']}")
        assert resp.status_code == 200, resp.text
        noop = json_body(resp)["data"]
        sent = wait_broadcast(subject, old["id"], subject.address)
    print(
        f"{subject.engine}: cancel answered hash {noop['hash']} (was {old['hash']}), broadcast {sent['hash']}"
    )
    # prepare_noop_update_request / make_noop (domain/transaction/evm/status.rs, utils.rs): a 21000-gas
    # self-transfer of nothing at the same nonce; the transaction stays `submitted` until it mines.
    assert noop["id"] == old["id"] and noop["nonce"] == old["nonce"]
    assert noop["status"] == "submitted" and noop["is_canceled"] is True
    assert noop["status_reason"] == CANCELED_WITH_NOOP
    assert noop["to"].lower() == subject.address.lower() and int(noop["value"], 0) == 0
    assert noop["data"] == "0x" and noop["gas_limit"] == 21_000 and noop["speed"] == "fast"
    final = wait_final(subject, old["id"])
    assert final["status"] == "canceled", final
    assert final["is_canceled"] is True and final.get("confirmed_at") is None
    assert final["status_reason"] == CANCELED_WITH_NOOP
    mined = rpc(subject.chain, "eth_getTransactionByHash", [final["hash"]])
    assert int(mined["nonce"], 16) == old["nonce"] and mined["to"].lower() == subject.address.lower()
    assert balance_of(subject, to) == 0
    again = subject.http.delete(f"{subject.base}/transactions/{old['id']}")
    assert again.status_code == 400
    assert json_body(again)["error"] == (
        f"Invalid transaction state for cancel_transaction. Current: Canceled, Expected one of: {HEALABLE}"
    )


# ---- last, because on OZ it wedges the relayer: a malformed `to` ---------------------------------------


def test_malformed_to_is_accepted_and_holds_a_nonce(subject: Subject, request: pytest.FixtureRequest) -> None:
    """OZ does not check `to` at the API (it is an `Option<String>`, models/transaction/request/evm.rs): the
    request is accepted, gets the next nonce before signing (evm_transaction.rs prepare_transaction), then
    signing fails on the address (models/transaction/repository.rs to_address) and is retried with that
    nonce held: it stays `pending`, and every later transaction waits behind the gap. The stand-in refuses
    it with a 400, which is what a client should rely on: nothing malformed may reach OZ."""
    known_difference(request, "a malformed `to` is refused with 400 before it can take a nonce")
    resp = subject.http.post(f"{subject.base}/transactions", json={**TRANSFER, "to": "0x1234"})
    assert resp.status_code == 200, resp.text
    tx_id = resp.json()["data"]["id"]
    held = wait_for(
        "the malformed transaction to take a nonce",
        lambda: (d := subject.transaction(tx_id))["nonce"] is not None and d,
        timeout=10,
    )
    assert held["status"] == "pending" and held["hash"] is None and held["signature"] is None
