"""What tests read around a running relayer: the webhooks it delivers and the chain's JSON-RPC answers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from msq_devstack.chain import Chain
from msq_devstack.process import free_port


def rpc(chain: Chain, method: str, params: list[Any]) -> Any:
    """One JSON-RPC call to the chain; an error answer fails the test."""
    reply = httpx.post(
        chain.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=10
    ).json()
    assert "error" not in reply, reply
    return reply["result"]


def tx_count(chain: Chain, address: str) -> int:
    return int(rpc(chain, "eth_getTransactionCount", [address, "latest"]), 16)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30, interval: float = 0.1) -> Any:
    """`check()` until it is truthy (and return it); any exception it raises fails at once."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]  # lower-case names
    body: bytes  # exactly as received, for signature checks
    event: dict[str, Any]


class WebhookReceiver:
    """A webhook endpoint on 127.0.0.1 keeping every delivery's headers and exact body."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        deliveries = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/webhooks/relayer"
        threading.Thread(target=self.server.serve_forever, name="webhooks", daemon=True).start()

    def for_tx(self, tx_id: str) -> list[Delivery]:
        out = []
        for headers, body in list(self.deliveries):
            event = json.loads(body)
            if isinstance(event.get("payload"), dict) and event["payload"].get("id") == tx_id:
                out.append(Delivery(headers, body, event))
        return out

    def payloads(self, tx_id: str) -> list[dict[str, Any]]:
        return [d.event["payload"] for d in self.for_tx(tx_id)]

    def close(self) -> None:
        self.server.shutdown()
