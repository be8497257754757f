"""Gateway config documents and signed requests for tests (unit, integration and e2e)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from eth_account import Account

from msq_contracts.forward_request import ForwarderDomain
from msq_devstack.traffic import signed_gasless_body
from msq_gateway.config import API_VERSION, KIND, parse_config
from msq_gateway.runtime import Snapshot, build_snapshot

# Client API keys of the tests (secrets only in the sense of the test: the config holds their hashes).
CLIENT_KEY = "test-client-key-0123456789abcdef0123456789"
OTHER_KEY = "test-other-key-0123456789abcdef0123456789ab"
FORWARDER_NAME = "MSQForwarder"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def config_doc(
    *,
    chain_id: int = 31337,
    rpc_url: str = "http://127.0.0.1:9",
    forwarder: str = "0x" + "f0" * 20,
    relayers: list[dict[str, Any]] | None = None,
    redis_url: str = "redis://127.0.0.1:9/0",
    key_prefix: str = "msq-gw-test",
    contracts: list[dict[str, Any]] | None = None,
    blocked: list[str] | None = None,
    quotas: list[dict[str, Any]] | None = None,
    api_keys: list[dict[str, Any]] | None = None,
    routing: str = "RoundRobin",
    refresh: float = 0.2,
    limits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete GatewayConfig document, as the operator would render it."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "chain": {"chainId": chain_id, "rpcUrl": rpc_url},
        "forwarder": {"address": forwarder, "name": FORWARDER_NAME},
        "relayers": relayers if relayers is not None else [],
        "routing": {"strategy": routing, "statusRefreshSeconds": refresh, "statusTimeoutSeconds": 1.0},
        "apiKeys": api_keys
        if api_keys is not None
        else [
            {"name": "client", "sha256": sha256_hex(CLIENT_KEY)},
            {"name": "other", "sha256": sha256_hex(OTHER_KEY)},
        ],
        "quotas": quotas or [],
        "policies": [{"name": "main", "contracts": contracts or [], "blockedUsers": blocked or []}],
        "redis": {"url": redis_url, "keyPrefix": key_prefix},
        "limits": limits or {},
    }


def snapshot_of(doc: dict[str, Any], base_dir: Any = ".") -> Snapshot:
    from pathlib import Path

    return build_snapshot(parse_config(doc), Path(base_dir), "test")


def signed_gasless(
    private_key: str,
    *,
    to: str,
    data: bytes,
    nonce: int,
    chain_id: int,
    forwarder: str,
    value: int = 0,
    gas: int = 100_000,
    deadline: int | None = None,
    name: str = FORWARDER_NAME,
) -> dict[str, Any]:
    """A /relay/gasless body signed by `private_key` for the given forwarder domain."""
    return signed_gasless_body(
        private_key,
        to=to,
        data=data,
        nonce=nonce,
        domain=ForwarderDomain(name=name, chain_id=chain_id, verifying_contract=forwarder),
        deadline=deadline if deadline is not None else int(time.time()) + 3600,
        value=value,
        gas=gas,
    )


def erc20_transfer(to: str, amount: int) -> bytes:
    return bytes.fromhex("a9059cbb") + bytes(12) + bytes.fromhex(to[2:]) + amount.to_bytes(32, "big")


def erc20_mint(to: str, amount: int) -> bytes:
    return bytes.fromhex("40c10f19") + bytes(12) + bytes.fromhex(to[2:]) + amount.to_bytes(32, "big")


# --- helpers for tests against a running pool ---

TERMINAL = frozenset({"confirmed", "failed", "canceled", "expired"})


def user_keys(count: int, tag: str = "gw-user") -> list[str]:
    """Deterministic private keys of users with no ETH: gasless users need none."""
    from eth_hash.auto import keccak

    return ["0x" + keccak(f"{tag}-{i}".encode()).hex() for i in range(count)]


def address_of(private_key: str) -> str:
    return str(Account.from_key(private_key).address)


def rpc(rpc_url: str, method: str, params: list[Any]) -> Any:
    import httpx

    reply = httpx.post(
        rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=10
    )
    body = reply.json()
    if "error" in body:
        raise RuntimeError(f"{method}: {body['error']}")
    return body["result"]


def mint_tokens(rpc_url: str, token: str, owner_key: str, recipients: list[str], amount: int) -> None:
    """Owner-only mints, sent by the owner itself (set-up, not through the gateway)."""
    from web3 import Web3

    from msq_contracts.deploy import send_signed

    w3 = Web3(Web3.HTTPProvider(rpc_url))
    for to in recipients:
        send_signed(w3, owner_key, {"to": Web3.to_checksum_address(token), "data": erc20_mint(to, amount)})


def balance_of(rpc_url: str, token: str, owner: str) -> int:
    data = "0x70a08231" + "00" * 12 + owner[2:].lower()
    return int(rpc(rpc_url, "eth_call", [{"to": token, "data": data}, "latest"]), 16)


def nft_mint(to: str) -> bytes:
    return bytes.fromhex("6a627842") + bytes(12) + bytes.fromhex(to[2:])


def random_address() -> str:
    import secrets

    return "0x" + secrets.token_hex(20)


def wait_terminal(url: str, api_key: str, ids: list[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
    """Poll the gateway's status endpoint until every id is terminal; return the last status bodies."""
    import httpx

    out: dict[str, dict[str, Any]] = {}
    left = set(ids)
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, headers={"X-API-Key": api_key}, timeout=10) as client:
        while left and time.monotonic() < deadline:
            for gid in list(left):
                body = client.get(f"/api/v1/relay/status/{gid}").json()
                out[gid] = body
                if body.get("status") in TERMINAL:
                    left.discard(gid)
            if left:
                time.sleep(0.2)
    if left:
        raise AssertionError(
            f"{len(left)} transactions not terminal after {timeout}s: {[out.get(g) for g in list(left)[:3]]}"
        )
    return out


class CallbackReceiver:
    """A real HTTP server on 127.0.0.1 that records what it receives (the client's callback endpoint)."""

    def __init__(self) -> None:
        import http.server
        import threading

        received: list[tuple[dict[str, str], bytes]] = []
        self.received = received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callbacks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
