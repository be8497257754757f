"""A steady client load through the gateway, as a careful client sends it, and what it saw.

Every request has its own Idempotency-Key and a unique effect on chain (an NFT minted to a fresh address, or a
gasless token transfer to a fresh address); on a connection error, a 5xx without a record id, or an
`idempotency_in_progress`, the client sends the same request again with the same key until it has a definite
answer or gives up. A poller follows accepted requests to a terminal status.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from msq_contracts.deploy import encode_nonces_call
from msq_contracts.forward_request import ForwarderDomain
from msq_devstack.traffic import signed_gasless_body
from tests.support.gateway import TERMINAL, address_of, erc20_transfer, nft_mint, random_address, rpc

# 5xx codes that say nothing was recorded yet: the same request may be sent again with its key.
RETRY_CODES = frozenset(
    {"no_relayer_available", "chain_unavailable", "store_unavailable", "not_ready", "internal_error"}
)


@dataclass
class Request:
    key: str
    kind: str  # direct | gasless
    recipient: str
    amount: int  # gasless: the tokens moved; direct: 0 (one NFT)
    user: str | None
    body: dict[str, Any]
    started: float
    answers: list[str] = field(default_factory=list)  # what each attempt got: "202", "conn", "503:code"
    gid: str | None = None
    refused: str | None = None  # a definite answer without a record: its code
    final: dict[str, Any] | None = None  # the last status body seen
    not_found: int = 0  # status lookups answered 404

    @property
    def accepted(self) -> bool:
        return self.gid is not None

    @property
    def terminal(self) -> bool:
        return self.final is not None and self.final.get("status") in TERMINAL


@dataclass
class Target:
    gateway_url: str
    api_key: str
    rpc_url: str
    nft: str
    token: str
    domain: ForwarderDomain


class Load:
    """`rate` requests a second, one in `gasless_every` gasless (by a user with nothing in flight)."""

    def __init__(
        self,
        target: Target,
        users: list[str],
        *,
        rate: float = 5.0,
        gasless_every: int = 3,
        give_up_after: float = 20.0,
    ) -> None:
        self.t = target
        self.users = users
        self.rate = rate
        self.gasless_every = gasless_every
        self.give_up_after = give_up_after
        self.requests: list[Request] = []
        self._free_users = list(users)
        # A user's next forwarder nonce as this client knows it (no chain read per request, so a chain
        # outage reaches the gateway's own checks); forgotten, and read again, after anything but a success.
        self._nonces: dict[str, int] = {}
        self._lock = threading.Lock()
        self._sending = threading.Event()
        self._polling = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="load")
        self._threads: list[threading.Thread] = []
        self._http = httpx.Client(
            base_url=target.gateway_url,
            headers={"X-API-Key": target.api_key},
            # Longer than the gateway's wait for a first request with the same key (30 s), so a retry sees
            # its 409 `idempotency_in_progress` rather than a timeout of its own.
            timeout=httpx.Timeout(35, connect=2),
            limits=httpx.Limits(max_connections=40),
        )

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> Load:
        for key in self.users:  # read while the chain is up, so a user can send during a chain outage
            self._nonces[key] = _forwarder_nonce(
                self.t.rpc_url, self.t.domain.verifying_contract, address_of(key)
            )
        self._sending.set()
        self._polling.set()
        for fn, name in ((self._send_loop, "load-send"), (self._poll_loop, "load-poll")):
            th = threading.Thread(target=fn, name=name, daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def stop_sending(self) -> None:
        self._sending.clear()

    def settle(self, timeout: float) -> float:
        """Wait until every request has its answer and every accepted one is terminal (or `timeout`);
        returns the seconds waited."""
        started = time.monotonic()
        self._pool.shutdown(wait=True)  # every request has its definite answer or gave up
        while time.monotonic() - started < timeout:
            with self._lock:
                open_ = [r for r in self.requests if r.accepted and not r.terminal]
            if not open_:
                break
            time.sleep(0.5)
        self._polling.clear()
        for th in self._threads:
            th.join(15)
        self._http.close()
        return time.monotonic() - started

    # -- sending -----------------------------------------------------------------------------------------

    def _send_loop(self) -> None:
        period = 1.0 / self.rate
        next_at = time.monotonic()
        for n in itertools.count():
            if not self._sending.is_set():
                return
            user = self._take_user() if n % self.gasless_every == 0 else None
            self._pool.submit(self._one, user)
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _take_user(self) -> str | None:
        with self._lock:
            return self._free_users.pop(0) if self._free_users else None

    def _free(self, r: Request) -> None:
        if r.user is not None:
            with self._lock:
                if (r.final or {}).get("status") == "confirmed":
                    self._nonces[r.user] = int(r.body["request"]["nonce"]) + 1
                else:
                    self._nonces.pop(r.user, None)
                self._free_users.append(r.user)

    def _one(self, user_key: str | None) -> None:
        try:
            r = self._build(user_key)
        except Exception:
            if user_key is not None:  # the chain did not answer the nonce read: nothing was sent
                with self._lock:
                    self._free_users.append(user_key)
            return
        with self._lock:
            self.requests.append(r)
        path = "/api/v1/relay/gasless" if r.kind == "gasless" else "/api/v1/relay/direct"
        while time.monotonic() - r.started < self.give_up_after:
            try:
                resp = self._http.post(path, json=r.body, headers={"Idempotency-Key": r.key})
            except httpx.TransportError:
                r.answers.append("conn")
                time.sleep(0.5)
                continue
            body = _json(resp)
            code = str(body.get("code") or "")
            r.answers.append(f"{resp.status_code}:{code}" if code else str(resp.status_code))
            if body.get("id"):  # 202, or 504 relay_outcome_unknown: a record to follow
                r.gid = str(body["id"])
                return
            if code in RETRY_CODES or code == "idempotency_in_progress" or resp.status_code >= 500:
                time.sleep(0.5)
                continue
            r.refused = code or str(resp.status_code)
            self._free(r)
            return
        self._free(r)  # never a definite answer: counted as unanswered

    def _build(self, user_key: str | None) -> Request:
        recipient = random_address()
        if user_key is None:
            body = {"to": self.t.nft, "data": "0x" + nft_mint(recipient).hex()}
            return Request(secrets.token_hex(16), "direct", recipient, 0, None, body, time.monotonic())
        with self._lock:
            nonce = self._nonces.get(user_key)
        if nonce is None:
            nonce = _forwarder_nonce(self.t.rpc_url, self.t.domain.verifying_contract, address_of(user_key))
        amount = 1 + secrets.randbelow(10**6)
        body = signed_gasless_body(
            user_key,
            to=self.t.token,
            data=erc20_transfer(recipient, amount),
            nonce=nonce,
            domain=self.t.domain,
            deadline=int(time.time()) + 600,
            gas=100_000,
        )
        return Request(secrets.token_hex(16), "gasless", recipient, amount, user_key, body, time.monotonic())

    # -- following ---------------------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        while self._polling.is_set():
            with self._lock:
                open_ = [r for r in self.requests if r.accepted and not r.terminal]
            for r in open_:
                self._poll(r)
            time.sleep(0.3)

    def _poll(self, r: Request) -> None:
        try:
            resp = self._http.get(f"/api/v1/relay/status/{r.gid}")
        except httpx.TransportError:
            return
        if resp.status_code == 404:
            r.not_found += 1
            return
        if resp.status_code != 200:
            return
        r.final = resp.json()
        if r.terminal:
            self._free(r)


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _forwarder_nonce(rpc_url: str, forwarder: str, owner: str) -> int:
    data = "0x" + encode_nonces_call(owner).hex()
    return int(rpc(rpc_url, "eth_call", [{"to": forwarder, "data": data}, "latest"]), 16)
