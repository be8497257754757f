"""The one chain read on the hot path: the forwarder's `nonces(from)`, by async JSON-RPC eth_call."""

from __future__ import annotations

import itertools
import json

import aiohttp

from msq_gateway.errors import GatewayError
from msq_gateway.upstreams import HTTP_ERRORS, error_name, post_json

# keccak("nonces(address)")[:4]
_NONCES = "7ecebe00"
_ids = itertools.count(1)


async def forwarder_nonce(
    http: aiohttp.ClientSession, rpc_url: str, forwarder: str, owner: str, timeout: float
) -> int:
    data = "0x" + _NONCES + "0" * 24 + owner[2:].lower()
    body = {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": "eth_call",
        "params": [{"to": forwarder, "data": data}, "latest"],
    }
    try:
        resp = await post_json(
            http, rpc_url, json.dumps(body).encode(), timeout=aiohttp.ClientTimeout(total=timeout)
        )
        reply = json.loads(resp.content)
    except (*HTTP_ERRORS, ValueError) as exc:
        raise GatewayError(
            "chain_unavailable",
            f"chain RPC unreachable reading nonces(from): {error_name(exc)}",
            "request.nonce",
        ) from exc
    result = reply.get("result") if isinstance(reply, dict) else None
    if not isinstance(result, str) or not result.startswith("0x"):
        err = reply.get("error") if isinstance(reply, dict) else None
        raise GatewayError(
            "chain_unavailable", f"chain RPC error reading nonces(from): {err}", "request.nonce"
        )
    if result == "0x":
        # No code at the forwarder address: a deployment/config mismatch, not the client's fault.
        raise GatewayError(
            "chain_unavailable", "the configured forwarder has no code on this chain", "request.nonce"
        )
    return int(result, 16)
