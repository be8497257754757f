"""Send one gasless (ERC-2771) request through a pool's gateway, as a client application would: a new signer
key made in memory (never printed or stored), its forwarder nonce asked of the gateway, the ForwardRequest
signed with EIP-712 for the pool's forwarder, posted, and its status followed until it is final.

    MSQ_API_KEY=... .venv/bin/python -m msq_devstack.send_gasless --gateway URL --chain-id 31337 \\
        --to 0xContract --data 0xCalldata [--forwarder-name MSQForwarder] [--timeout 120]

Prints the gateway's answers as JSON lines; exits 0 when the transaction is confirmed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import httpx
from eth_account import Account

from msq_contracts.forward_request import ForwarderDomain
from msq_devstack.scenario import FORWARDER_NAME
from msq_devstack.traffic import signed_gasless_body
from msq_gateway.store import TERMINAL


def send(
    http: httpx.Client, *, chain_id: int, forwarder_name: str, to: str, data: bytes, timeout: float
) -> dict[str, object]:
    signer = Account.create()
    nonce = http.get(f"/api/v1/relay/gasless/nonce/{signer.address}")
    nonce.raise_for_status()
    print(json.dumps(nonce.json()), flush=True)
    domain = ForwarderDomain(
        name=forwarder_name, chain_id=chain_id, verifying_contract=nonce.json()["forwarder"]
    )
    body = signed_gasless_body(
        signer.key.hex(),
        to=to,
        data=data,
        nonce=int(nonce.json()["nonce"]),
        domain=domain,
        deadline=int(time.time()) + 3600,
    )
    accepted = http.post("/api/v1/relay/gasless", json=body)
    print(json.dumps(accepted.json()), flush=True)
    accepted.raise_for_status()
    deadline = time.monotonic() + timeout
    while True:
        status = http.get(f"/api/v1/relay/status/{accepted.json()['id']}").json()
        if status.get("status") in TERMINAL or time.monotonic() > deadline:
            print(json.dumps(status), flush=True)
            return status  # type: ignore[no-any-return]
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="send_gasless", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gateway", required=True, help="the pool's gateway URL")
    parser.add_argument("--chain-id", type=int, required=True)
    parser.add_argument("--to", required=True, help="the contract to call (allowed by a ContractPolicy)")
    parser.add_argument("--data", required=True, help="0x-prefixed calldata")
    parser.add_argument("--forwarder-name", default=FORWARDER_NAME, help="the forwarder's EIP-712 name")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    api_key = os.environ.get("MSQ_API_KEY")
    if not api_key:
        parser.error("MSQ_API_KEY: set it to the gateway API key to use")
    try:
        data = bytes.fromhex(args.data.removeprefix("0x"))
    except ValueError:
        parser.error("--data: must be 0x-prefixed hex calldata")
    with httpx.Client(base_url=args.gateway, headers={"X-API-Key": api_key}, timeout=30) as http:
        status = send(
            http,
            chain_id=args.chain_id,
            forwarder_name=args.forwarder_name,
            to=args.to,
            data=data,
            timeout=args.timeout,
        )
    return 0 if status.get("status") == "confirmed" else 1


if __name__ == "__main__":
    sys.exit(main())
