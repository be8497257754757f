"""A gateway client for the demo and the end-to-end tests: direct and gasless requests, status polling."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from eth_account import Account
from web3 import Web3

from msq_contracts.deploy import read_forwarder_nonce
from msq_contracts.forward_request import ForwarderDomain, ForwardRequest, sign_request

TERMINAL = {"confirmed", "failed", "canceled", "expired"}


def signed_gasless_body(
    private_key: str,
    *,
    to: str,
    data: bytes,
    nonce: int,
    domain: ForwarderDomain,
    deadline: int,
    value: int = 0,
    gas: int = 200_000,
) -> dict[str, Any]:
    """A `POST /api/v1/relay/gasless` body: the ForwardRequest signed by `private_key` for `domain`
    (integers as decimal strings, since uint256 values exceed what JSON numbers carry exactly)."""
    sender = Account.from_key(private_key).address
    req = ForwardRequest(from_=sender, to=to, value=value, gas=gas, nonce=nonce, deadline=deadline, data=data)
    sig = sign_request(req, private_key, domain)
    return {
        "request": {
            "from": sender,
            "to": to,
            "value": str(value),
            "gas": str(gas),
            "nonce": str(nonce),
            "deadline": str(deadline),
            "data": "0x" + data.hex(),
        },
        "signature": "0x" + sig.hex(),
    }


@dataclass
class GatewayClient:
    url: str
    api_key: str
    http: httpx.Client

    @classmethod
    def open(cls, url: str, api_key: str, timeout: float = 30) -> GatewayClient:
        return cls(url, api_key, httpx.Client(base_url=url, timeout=timeout, headers={"X-API-Key": api_key}))

    def direct(
        self,
        to: str,
        data: bytes,
        value: int = 0,
        gas_limit: int | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {"to": to, "data": "0x" + data.hex(), "value": str(value)}
        if gas_limit:
            body["gasLimit"] = gas_limit
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.http.post("/api/v1/relay/direct", json=body, headers=headers)

    def gasless(
        self,
        w3: Web3,
        domain: ForwarderDomain,
        user_key: str,
        to: str,
        data: bytes,
        gas: int = 200_000,
        value: int = 0,
        deadline_in: int = 3600,
        nonce: int | None = None,
    ) -> httpx.Response:
        user = Account.from_key(user_key).address
        if nonce is None:
            nonce = read_forwarder_nonce(w3, domain.verifying_contract, user)
        body = signed_gasless_body(
            user_key,
            to=to,
            data=data,
            nonce=nonce,
            domain=domain,
            value=value,
            gas=gas,
            deadline=int(time.time()) + deadline_in,
        )
        return self.http.post("/api/v1/relay/gasless", json=body)

    def status(self, tx_id: str) -> dict[str, Any]:
        r = self.http.get(f"/api/v1/relay/status/{tx_id}")
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    def wait(self, tx_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.status(tx_id)
            if last["status"] in TERMINAL:
                return last
            time.sleep(0.2)
        raise TimeoutError(f"transaction {tx_id} not terminal after {timeout}s (last: {last})")
