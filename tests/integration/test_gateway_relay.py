"""Gateway + 3 real dev relayers on anvil: rejections, idempotency, quotas, webhooks, routing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
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
    CallbackReceiver,
    address_of,
    balance_of,
    erc20_transfer,
    mint_tokens,
    nft_mint,
    random_address,
    signed_gasless,
    user_keys,
    wait_terminal,
)

CLIENT = "int-client-key-0123456789abcdef0123456789abcdef"
LIMITED = "int-limited-key-0123456789abcdef0123456789abcdef"
GASLIMITED = "int-gaslimited-key-0123456789abcdef0123456789ab"
CALLBACK = "int-callback-key-0123456789abcdef0123456789abcd"
CALLBACK_SECRET = "callback-hmac-secret-for-tests"
TX_WINDOW = 3
GASLESS_ONLY = "0x" + "5a" * 20  # a policy entry open to gasless calls only


@dataclass
class Env:
    pool: LocalPool
    samples: Samples
    users: list[str]
    receiver: CallbackReceiver
    chain: Chain

    @property
    def url(self) -> str:
        return self.pool.url


@pytest.fixture(scope="module")
def env(
    chain: Chain,
    redis_server: Redis,
    openbao: OpenBao,
    stack_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Env]:
    samples = deploy_samples(chain)
    users = user_keys(4, "gw-int")
    mint_tokens(chain.rpc_url, samples.token, samples.deployer_key, [address_of(k) for k in users], 10**21)
    receiver = CallbackReceiver()
    work = tmp_path_factory.mktemp("gw-int")
    (work / "gateway" / "secrets").mkdir(parents=True)
    (work / "gateway" / "secrets" / "callback").write_text(CALLBACK_SECRET)
    pool = LocalPool(
        name="gwint",
        chain=chain,
        redis_url=redis_server.url,
        openbao=openbao,
        work_dir=work,
        log_dir=stack_logs,
        size=3,
        forwarder=samples.forwarder,
        policies=[
            {
                "name": "samples",
                "contracts": [
                    {"address": samples.token, "methods": ["transfer(address,uint256)"], "maxValue": 0},
                    {"address": samples.nft, "methods": ["mint(address)"], "maxValue": 0, "gasless": False},
                    {"address": GASLESS_ONLY, "allowAllMethods": True, "direct": False},
                ],
                "blockedUsers": [address_of(users[3])],
            }
        ],
        api_keys=[
            {"name": "client", "sha256": sha256_hex(CLIENT)},
            {"name": "limited", "sha256": sha256_hex(LIMITED), "quota": "tiny-tx"},
            {"name": "gaslimited", "sha256": sha256_hex(GASLIMITED), "quota": "tiny-gas"},
            {
                "name": "callback",
                "sha256": sha256_hex(CALLBACK),
                "callbackUrl": receiver.url,
                "callbackSecretFile": "secrets/callback",
            },
        ],
        quotas=[
            {"name": "tiny-tx", "windowSeconds": TX_WINDOW, "maxTransactions": 3},
            {"name": "tiny-gas", "windowSeconds": 3600, "maxGas": 700_000},
        ],
    ).start()
    try:
        yield Env(pool, samples, users, receiver, chain)
    finally:
        pool.stop()
        receiver.stop()


def _post(env: Env, path: str, body: Any, key: str = CLIENT, **headers: str) -> httpx.Response:
    return httpx.post(f"{env.url}{path}", json=body, headers={"X-API-Key": key, **headers}, timeout=30)


def _direct_mint(to: str | None = None) -> dict[str, Any]:
    return {"to": ENV_NFT[0], "data": "0x" + nft_mint(to or random_address()).hex()}


ENV_NFT: list[str] = []  # set by the autouse fixture below, so request builders stay short


@pytest.fixture(autouse=True)
def _nft(env: Env) -> None:
    ENV_NFT[:] = [env.samples.nft]


def _gasless(
    env: Env, user: int, *, amount: int = 1, to: str | None = None, nonce: int | None = None, **kw: Any
) -> dict[str, Any]:
    key = env.users[user]
    if nonce is None:
        nonce = int(
            httpx.get(
                f"{env.url}/api/v1/relay/gasless/nonce/{address_of(key)}",
                headers={"X-API-Key": CLIENT},
                timeout=10,
            ).json()["nonce"]
        )
    args: dict[str, Any] = {"chain_id": env.chain.chain_id, "forwarder": env.samples.forwarder, **kw}
    return signed_gasless(
        key, to=to or env.samples.token, data=erc20_transfer(random_address(), amount), nonce=nonce, **args
    )


def _code(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["code"] == code, body
    return body


def _settled(pool: LocalPool, timeout: float = 30) -> dict[str, Any]:
    """Relayer nonces once nothing is pending: what changes if and only if a transaction was sent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = {r.relayer_id: r.status() for r in pool.relayers}
        if all(s["pending_transactions_count"] == 0 for s in statuses.values()):
            return {"chain": pool.chain_nonces(), "relayer": {k: s["nonce"] for k, s in statuses.items()}}
        time.sleep(0.1)
    raise AssertionError("relayers still have pending transactions")


def _sent(before: dict[str, Any], after: dict[str, Any]) -> int:
    return sum(after["chain"][k] - before["chain"][k] for k in before["chain"])


def test_direct_and_gasless_are_confirmed_with_their_effects(env: Env) -> None:
    recipient = random_address()
    user = address_of(env.users[0])
    start = balance_of(env.chain.rpc_url, env.samples.token, user)
    body = signed_gasless(
        env.users[0],
        to=env.samples.token,
        data=erc20_transfer(recipient, 7),
        nonce=int(
            httpx.get(f"{env.url}/api/v1/relay/gasless/nonce/{user}", headers={"X-API-Key": CLIENT}).json()[
                "nonce"
            ]
        ),
        chain_id=env.chain.chain_id,
        forwarder=env.samples.forwarder,
    )
    gasless = _post(env, "/api/v1/relay/gasless", body)
    assert gasless.status_code == 202, gasless.text
    direct = _post(env, "/api/v1/relay/direct", _direct_mint(recipient))
    assert direct.status_code == 202, direct.text
    final = wait_terminal(env.url, CLIENT, [gasless.json()["id"], direct.json()["id"]])
    assert {b["status"] for b in final.values()} == {"confirmed"}
    # _msgSender() was the user: the tokens left the user's balance, not the relayer's.
    assert balance_of(env.chain.rpc_url, env.samples.token, recipient) == 7
    assert balance_of(env.chain.rpc_url, env.samples.token, user) == start - 7
    nft_balance = "0x70a08231" + "00" * 12 + recipient[2:].lower()
    reply = httpx.post(
        env.chain.rpc_url,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_call",
            "params": [{"to": env.samples.nft, "data": nft_balance}, "latest"],
        },
    )
    assert int(reply.json()["result"], 16) == 1


def test_every_rejection_has_its_code_and_sends_nothing(env: Env) -> None:
    before = _settled(env.pool)
    token, nft = env.samples.token, env.samples.nft
    cases: list[tuple[str, int, httpx.Response]] = []

    def case(code: str, status: int, resp: httpx.Response) -> None:
        cases.append((code, status, resp))

    url = env.url
    case("missing_api_key", 401, httpx.post(f"{url}/api/v1/relay/direct", json=_direct_mint()))
    case("unknown_api_key", 401, _post(env, "/api/v1/relay/direct", _direct_mint(), key="wrong"))
    case("body_too_large", 413, _post(env, "/api/v1/relay/direct", {**_direct_mint(), "pad": "x" * 70_000}))
    case(
        "malformed_json",
        400,
        httpx.post(
            f"{url}/api/v1/relay/direct",
            content=b'{"to": 0x',
            headers={"X-API-Key": CLIENT, "Content-Type": "application/json"},
        ),
    )
    case("invalid_field", 422, _post(env, "/api/v1/relay/direct", {"to": "0x12", "data": "0x"}))
    case(
        "contract_not_allowed",
        403,
        _post(
            env,
            "/api/v1/relay/direct",
            {"to": random_address(), "data": "0x" + nft_mint(random_address()).hex()},
        ),
    )
    case(
        "method_not_allowed",
        403,
        _post(env, "/api/v1/relay/direct", {"to": token, "data": "0x095ea7b3" + "00" * 64}),
    )
    case("value_too_high", 403, _post(env, "/api/v1/relay/direct", {**_direct_mint(), "value": "1"}))
    case(
        "gasless_not_allowed",
        403,
        _post(
            env,
            "/api/v1/relay/gasless",
            signed_gasless(
                env.users[0],
                to=nft,
                data=nft_mint(random_address()),
                nonce=0,
                chain_id=env.chain.chain_id,
                forwarder=env.samples.forwarder,
            ),
        ),
    )
    case("direct_not_allowed", 403, _post(env, "/api/v1/relay/direct", {"to": GASLESS_ONLY, "data": "0x"}))
    case("bad_signature", 400, _post(env, "/api/v1/relay/gasless", _gasless(env, 0, chain_id=1)))
    case("wrong_chain", 400, _post(env, "/api/v1/relay/gasless", {**_gasless(env, 0), "chainId": 1}))
    case("expired", 400, _post(env, "/api/v1/relay/gasless", _gasless(env, 0, deadline=int(time.time()) - 1)))
    nonce = int(
        httpx.get(
            f"{url}/api/v1/relay/gasless/nonce/{address_of(env.users[0])}", headers={"X-API-Key": CLIENT}
        ).json()["nonce"]
    )
    case("nonce_mismatch", 409, _post(env, "/api/v1/relay/gasless", _gasless(env, 0, nonce=nonce + 1)))
    case("value_too_high", 403, _post(env, "/api/v1/relay/gasless", _gasless(env, 0, value=1)))
    case("user_blocked", 403, _post(env, "/api/v1/relay/gasless", _gasless(env, 3)))
    for code, status, resp in cases:
        body = _code(resp, status, code)
        assert body["message"], body
    time.sleep(0.5)
    assert _settled(env.pool) == before


def test_idempotency_under_concurrent_retries(env: Env) -> None:
    before = _settled(env.pool)
    body = _direct_mint()

    async def burst(payload: dict[str, Any], key: str, n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=env.url, timeout=30, headers={"X-API-Key": CLIENT, "Idempotency-Key": key}
        ) as client:
            return await asyncio.gather(
                *(client.post("/api/v1/relay/direct", json=payload) for _ in range(n))
            )

    responses = asyncio.run(burst(body, f"idem-{time.time()}", 10))
    assert [r.status_code for r in responses] == [202] * 10, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 9
    wait_terminal(env.url, CLIENT, [responses[0].json()["id"]])
    assert _sent(before, _settled(env.pool)) == 1

    # Same key, another body: refused, and nothing sent.
    key = f"idem-conflict-{time.time()}"
    first = _post(env, "/api/v1/relay/direct", _direct_mint(), **{"Idempotency-Key": key})
    assert first.status_code == 202
    _code(
        _post(env, "/api/v1/relay/direct", _direct_mint(), **{"Idempotency-Key": key}),
        409,
        "idempotency_conflict",
    )
    # The key is per client: another API key may use the same text for its own request.
    other = _post(env, "/api/v1/relay/direct", _direct_mint(), key=CALLBACK, **{"Idempotency-Key": key})
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"]
    wait_terminal(env.url, CLIENT, [first.json()["id"]])

    # Gasless: ten concurrent copies of one signed request are one transaction, under one key...
    before = _settled(env.pool)
    signed = _gasless(env, 1)
    responses = asyncio.run(_gasless_burst(env, signed, f"idem-gl-{time.time()}", 10))
    assert [r.status_code for r in responses] == [202] * 10
    assert len({r.json()["id"] for r in responses}) == 1
    # ...and a copy without a key, while the first is in flight or after, cannot spend the nonce twice.
    _code(_post(env, "/api/v1/relay/gasless", signed), 409, "nonce_mismatch")
    wait_terminal(env.url, CLIENT, [responses[0].json()["id"]])
    assert _sent(before, _settled(env.pool)) == 1


async def _gasless_burst(env: Env, body: dict[str, Any], key: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(
        base_url=env.url, timeout=30, headers={"X-API-Key": CLIENT, "Idempotency-Key": key}
    ) as client:
        return await asyncio.gather(*(client.post("/api/v1/relay/gasless", json=body) for _ in range(n)))


def test_transaction_quota_exhaustion_and_reset(env: Env) -> None:
    # Start right after a window boundary so the burst below stays inside one window.
    time.sleep(TX_WINDOW - time.time() % TX_WINDOW + 0.05)
    accepted = [_post(env, "/api/v1/relay/direct", _direct_mint(), key=LIMITED) for _ in range(3)]
    assert [r.status_code for r in accepted] == [202] * 3, [r.text for r in accepted]
    wait_terminal(env.url, LIMITED, [r.json()["id"] for r in accepted])
    before = _settled(env.pool)
    refused = _post(env, "/api/v1/relay/direct", _direct_mint(), key=LIMITED)
    body = _code(refused, 429, "quota_exceeded")
    assert body["field"] == "quota.maxTransactions" and int(refused.headers["Retry-After"]) >= 1
    # Another client is not affected by this client's quota.
    ok = _post(env, "/api/v1/relay/direct", _direct_mint(), key=CLIENT)
    assert ok.status_code == 202
    wait_terminal(env.url, CLIENT, [ok.json()["id"]])
    assert _sent(before, _settled(env.pool)) == 1
    time.sleep(int(refused.headers["Retry-After"]) + 0.1)
    again = _post(env, "/api/v1/relay/direct", _direct_mint(), key=LIMITED)
    assert again.status_code == 202, again.text
    wait_terminal(env.url, LIMITED, [again.json()["id"]])


def test_gas_quota(env: Env) -> None:
    ids = []
    for gas in (300_000, 300_000):
        r = _post(env, "/api/v1/relay/direct", {**_direct_mint(), "gasLimit": gas}, key=GASLIMITED)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    before = _settled(env.pool)
    body = _code(
        _post(env, "/api/v1/relay/direct", {**_direct_mint(), "gasLimit": 300_000}, key=GASLIMITED),
        429,
        "quota_exceeded",
    )
    assert body["field"] == "quota.maxGas"
    assert _sent(before, _settled(env.pool)) == 0
    fits = _post(env, "/api/v1/relay/direct", {**_direct_mint(), "gasLimit": 100_000}, key=GASLIMITED)
    assert fits.status_code == 202, fits.text
    wait_terminal(env.url, GASLIMITED, [*ids, fits.json()["id"]])


def _sign(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def test_webhooks_and_callbacks(env: Env) -> None:
    resp = _post(env, "/api/v1/relay/direct", _direct_mint(), key=CALLBACK)
    assert resp.status_code == 202
    gid, relayer_id, tx_id = resp.json()["id"], resp.json()["relayerId"], resp.json()["transactionId"]
    wait_terminal(env.url, CALLBACK, [gid])

    # The client's callback endpoint got the status changes, signed with its callback secret.
    deadline = time.monotonic() + 10
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events = [
            json.loads(b)
            for h, b in env.receiver.received
            if h.get("x-signature") == _sign(b, CALLBACK_SECRET) and json.loads(b)["id"] == gid
        ]
        if any(e["status"] == "confirmed" for e in events):
            break
        time.sleep(0.1)
    assert any(e["status"] == "confirmed" for e in events), env.receiver.received
    assert all(h.get("x-signature") == _sign(b, CALLBACK_SECRET) for h, b in env.receiver.received)

    relayer = next(r for r in env.pool.relayers if r.relayer_id == relayer_id)
    other = next(r for r in env.pool.relayers if r.relayer_id != relayer_id)
    note = json.dumps(
        {
            "id": "n-test",
            "event": "transaction_update",
            "timestamp": "2030-01-01T00:00:00Z",
            "payload": {
                "payload_type": "transaction",
                "id": tx_id,
                "relayer_id": relayer_id,
                "status": "submitted",
                "hash": "0x" + "ab" * 32,
            },
        }
    ).encode()
    hook = f"{env.url}/api/v1/webhooks/relayer"
    ct = {"Content-Type": "application/json"}
    # Signed by the relayer it names: accepted, and a late "submitted" does not undo "confirmed".
    signing = relayer.env["WEBHOOK_SIGNING_KEY"]
    ok = httpx.post(hook, content=note, headers={**ct, "X-Signature": _sign(note, signing)})
    assert ok.status_code == 200 and ok.json() == {"ok": True, "id": gid}
    status = httpx.get(f"{env.url}/api/v1/relay/status/{gid}", headers={"X-API-Key": CALLBACK}).json()
    assert status["status"] == "confirmed" and status["hash"] != "0x" + "ab" * 32
    # Refused: no signature, a wrong key, or another relayer's key.
    for sig in (None, _sign(note, "not-the-key"), _sign(note, other.env["WEBHOOK_SIGNING_KEY"])):
        headers = {**ct, **({"X-Signature": sig} if sig else {})}
        _code(httpx.post(hook, content=note, headers=headers), 401, "bad_webhook_signature")
    # Status of another client's transaction is not visible.
    _code(httpx.get(f"{env.url}/api/v1/relay/status/{gid}", headers={"X-API-Key": CLIENT}), 404, "not_found")


def test_least_load_prefers_idle_relayers(env: Env) -> None:
    """A relayer with a backlog gets (almost) nothing while the others are idle.

    The backlog is real: block production is paused on the chain (no automine, no interval blocks, as a
    congested chain would hold transactions), then one relayer is loaded directly; the gateway sees its
    pending count grow.
    """
    pool = env.pool
    pool.routing = "LeastLoad"
    pool.apply()
    busy = pool.relayers[0]
    try:
        with env.chain.congested():
            with httpx.Client(
                base_url=busy.url, timeout=30, headers={"Authorization": f"Bearer {busy.api_key}"}
            ) as c:
                for _ in range(40):
                    tx = {
                        "to": random_address(),
                        "value": 0,
                        "data": "0x",
                        "gas_limit": 21000,
                        "speed": "fast",
                    }
                    assert (
                        c.post(f"/api/v1/relayers/{busy.relayer_id}/transactions", json=tx).status_code == 200
                    )
            deadline = time.monotonic() + 10
            while _gateway_pending(env, busy.relayer_id) < 40:
                assert time.monotonic() < deadline, "the gateway never saw the backlog"
                time.sleep(0.05)
            picks: Counter[str] = Counter()
            for _ in range(30):
                r = _post(env, "/api/v1/relay/direct", _direct_mint())
                assert r.status_code == 202, r.text
                picks[r.json()["relayerId"]] += 1
            assert picks[busy.relayer_id] == 0, picks
            # Near-even, not exact: a status poll can answer between a hand-off and the relayer counting it.
            idle = [picks[r.relayer_id] for r in pool.relayers[1:]]
            assert sum(idle) == 30 and abs(idle[0] - idle[1]) <= 4, picks
    finally:
        pool.routing = "RoundRobin"
        pool.apply()
        _settled(pool, timeout=60)


def _gateway_pending(env: Env, relayer_id: str) -> float:
    for line in httpx.get(f"{env.url}/metrics", timeout=5).text.splitlines():
        if line.startswith(f'msq_gateway_relayer_pending{{relayer="{relayer_id}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_draining_relayers_get_nothing(env: Env) -> None:
    pool = env.pool
    pool.relayers[0].draining = True
    pool.apply()
    try:
        got = Counter(
            _post(env, "/api/v1/relay/direct", _direct_mint()).json()["relayerId"] for _ in range(6)
        )
        assert got == {pool.relayers[1].relayer_id: 3, pool.relayers[2].relayer_id: 3}
        for r in pool.relayers:
            r.draining = True
        pool.apply()
        before = _settled(pool)
        _code(_post(env, "/api/v1/relay/direct", _direct_mint()), 503, "no_relayer_available")
        _code(httpx.get(f"{env.url}/readyz"), 503, "not_ready")
        time.sleep(0.3)
        assert _settled(pool) == before
    finally:
        for r in pool.relayers:
            r.draining = False
        pool.apply()


class _Hang(http.server.BaseHTTPRequestHandler):
    """A relayer endpoint that answers /status but never answers a submission.

    A relayer that stalls after reading a request cannot be produced on demand from the dev relayer, so this
    stands in for one; it is a real HTTP server and the gateway really sends it the request."""

    release = threading.Event()

    def do_GET(self) -> None:
        body = json.dumps(
            {
                "success": True,
                "data": {
                    "network_type": "evm",
                    "balance": "1",
                    "nonce": "0",
                    "pending_transactions_count": 0,
                    "paused": False,
                    "system_disabled": False,
                },
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.release.wait(30)

    def log_message(self, *args: Any) -> None:
        pass


def test_unknown_outcome_is_not_retried_and_refused_connections_are(env: Env) -> None:
    pool = env.pool
    hang = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hang)
    threading.Thread(target=hang.serve_forever, daemon=True).start()
    secrets = pool.work_dir / "gateway" / "secrets"
    (secrets / "stub.api-key").write_text("stub-key")
    from msq_devstack.process import free_port

    pool.extra_relayers = [
        {
            "id": "hanging",
            "url": f"http://127.0.0.1:{hang.server_address[1]}",
            "apiKeyFile": "secrets/stub.api-key",
        },
        {"id": "refusing", "url": f"http://127.0.0.1:{free_port()}", "apiKeyFile": "secrets/stub.api-key"},
    ]
    pool.limits = {"relayTimeoutSeconds": 1.0}
    pool.apply()
    try:
        before = _settled(pool)
        results = [
            _post(env, "/api/v1/relay/direct", _direct_mint(), **{"Idempotency-Key": f"u-{i}-{time.time()}"})
            for i in range(10)
        ]
        unknown = [r for r in results if r.status_code == 504]
        accepted = [r for r in results if r.status_code == 202]
        assert unknown and len(unknown) + len(accepted) == 10, [r.text for r in results]
        assert all(r.json()["relayerId"] not in ("hanging", "refusing") for r in accepted)
        for r in unknown:
            body = _code(r, 504, "relay_outcome_unknown")
            # A retry under the same key gets the same answer: never a second attempt.
            key = r.request.headers["Idempotency-Key"]
            again = _post(
                env, "/api/v1/relay/direct", json.loads(r.request.content), **{"Idempotency-Key": key}
            )
            assert again.status_code == 504 and again.json() == body
            status = httpx.get(
                f"{env.url}/api/v1/relay/status/{body['id']}", headers={"X-API-Key": CLIENT}
            ).json()
            assert status["status"] == "unknown" and status["relayerId"] == "hanging"
        wait_terminal(env.url, CLIENT, [r.json()["id"] for r in accepted])
        # Exactly the accepted ones were sent: the unknown ones were not retried on a real relayer.
        assert _sent(before, _settled(pool)) == len(accepted)
    finally:
        _Hang.release.set()
        pool.extra_relayers = []
        pool.limits = {}
        pool.apply()
        hang.shutdown()
        hang.server_close()


class _Throttled(_Hang):
    """A relayer endpoint whose rate limiter refuses every submission the way OZ's does (actix-governor: 429,
    plain text, before any handler). Reaching OZ's limit takes a burst of 300 requests on the real engine;
    this stub gives the same answer on demand."""

    posts = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).posts += 1
        body = b"Too many requests, retry after 1s"
        self.send_response(429)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_plain_text_refusal_is_not_an_unknown_outcome(env: Env) -> None:
    pool = env.pool
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Throttled)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    (pool.work_dir / "gateway" / "secrets" / "stub.api-key").write_text("stub-key")
    pool.extra_relayers = [
        {
            "id": "throttled",
            "url": f"http://127.0.0.1:{stub.server_address[1]}",
            "apiKeyFile": "secrets/stub.api-key",
        }
    ]
    pool.apply()
    try:
        results = [
            _post(env, "/api/v1/relay/direct", _direct_mint(), **{"Idempotency-Key": f"t-{i}-{time.time()}"})
            for i in range(8)
        ]
        # The throttled relayer was asked, refused, and the transaction went to a real relayer instead.
        assert _Throttled.posts > 0
        assert [r.status_code for r in results] == [202] * 8, [r.text for r in results]
        assert all(r.json()["relayerId"] != "throttled" for r in results)
        wait_terminal(env.url, CLIENT, [r.json()["id"] for r in results])
    finally:
        pool.extra_relayers = []
        pool.apply()
        stub.shutdown()
        stub.server_close()
