"""Gateway config documents and signed requests for tests (unit, integration and e2e)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from eth_account import Account

from msq_contracts.forward_request import ForwarderDomain, ForwardRequest, sign_request
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
    sender = Account.from_key(private_key).address
    deadline = deadline if deadline is not None else int(time.time()) + 3600
    req = ForwardRequest(from_=sender, to=to, value=value, gas=gas, nonce=nonce, deadline=deadline, data=data)
    domain = ForwarderDomain(name=name, chain_id=chain_id, verifying_contract=forwarder)
    sig = sign_request(req, private_key, domain)
    return {
        "request": {
            "from": sender,
            "to": to,
            "value": str(value),
            "gas": gas,
            "nonce": str(nonce),
            "deadline": deadline,
            "data": "0x" + data.hex(),
        },
        "signature": "0x" + sig.hex(),
    }


def erc20_transfer(to: str, amount: int) -> bytes:
    return bytes.fromhex("a9059cbb") + bytes(12) + bytes.fromhex(to[2:]) + amount.to_bytes(32, "big")


def erc20_mint(to: str, amount: int) -> bytes:
    return bytes.fromhex("40c10f19") + bytes(12) + bytes.fromhex(to[2:]) + amount.to_bytes(32, "big")
