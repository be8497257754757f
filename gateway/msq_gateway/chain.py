"""The one chain read on the hot path: the forwarder's `nonces(from)`, by async JSON-RPC eth_call."""

from __future__ import annotations

import itertools

import httpx

from msq_gateway.errors import GatewayError

# keccak("nonces(address)")[:4]
_NONCES = "7ecebe00"
_ids = itertools.count(1)


async def forwarder_nonce(
    http: httpx.AsyncClient, rpc_url: str, forwarder: str, owner: str, timeout: float
) -> int:
    data = "0x" + _NONCES + "0" * 24 + owner[2:].lower()
    body = {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": "eth_call",
        "params": [{"to": forwarder, "data": data}, "latest"],
    }
    try:
        resp = await http.post(rpc_url, json=body, timeout=timeout)
        reply = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise GatewayError(
            "chain_unavailable",
            f"chain RPC unreachable reading nonces(from): {type(exc).__name__}",
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
