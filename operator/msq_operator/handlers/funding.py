"""RelayerPool funding: a timer that keeps the pool's active relayers at or above `spec.funding.minBalance`
from a treasury key in Vault, each transfer exactly once (the rules are in render/funding.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import hvac
import kopf

from msq_operator import faults, runtime, vault
from msq_operator.chain import RPC_ERRORS, ChainClient
from msq_operator.metrics import (
    FUNDING_STATE,
    TOP_UP_WEI,
    TOP_UPS,
    TREASURY_BALANCE,
    TREASURY_RESERVE,
    measured,
)
from msq_operator.render import pool as render
from msq_operator.render.conditions import now_rfc3339
from msq_operator.render.funding import (
    STATES,
    TRANSFER_GAS,
    Balance,
    Blocked,
    Transfer,
    kept,
    plan_top_up,
    sent_within,
    transfer_tx,
)
from msq_operator.resources import API_VERSION, GROUP, VERSION
from msq_operator.resources.pool import PLURAL, RelayerPoolSpec
from msq_operator.rpc import rpc_url
from msq_operator.signer_auth import vault_client

FUNDING_INTERVAL = 5.0
# States a person has to act on: each becomes a Warning event when the pool enters it.
NEEDS_A_PERSON = ("TreasuryEmpty", "DailyCapReached", "TreasuryMissing", "ChainUnreachable")


def treasury_key_path(spec: RelayerPoolSpec, namespace: str, pool: str) -> str:
    assert spec.funding
    return (
        spec.funding.treasury_key_path
        or f"{spec.signer.key_path_prefix.strip('/')}/{namespace}/{pool}-treasury"
    )


def _export_state(namespace: str, pool: str, state: str) -> None:
    for s in STATES:
        FUNDING_STATE.labels(namespace, pool, s).set(1 if s == state else 0)


@kopf.timer(GROUP, VERSION, PLURAL, interval=FUNDING_INTERVAL, initial_delay=2.0)
def fund_relayers(body: kopf.Body, spec: kopf.Spec, **_: Any) -> None:
    try:
        pspec = RelayerPoolSpec.model_validate(dict(spec))
    except ValueError:
        return  # the pool's reconcile reports the invalid spec
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    if pspec.funding is None:
        _export_state(ns, name, "Unconfigured")
        return
    with measured("Funding"):
        fund_pool(dict(body), pspec)


class _Stale(Exception):
    """A pass planned from the watched status would change something: it is done again from the server's."""


class _Pass:
    """One funding pass over one pool: what it read, and the status.funding it writes. A `steady_only` pass
    plans from the watched copy of the status, so it may only find that nothing changes: it raises _Stale
    before any write, event, signature or transfer."""

    def __init__(
        self, pool: dict[str, Any], spec: RelayerPoolSpec, current: dict[str, Any], steady_only: bool = False
    ) -> None:
        self.pool, self.spec, self.current = pool, spec, current
        self.ns, self.name = pool["metadata"]["namespace"], pool["metadata"]["name"]
        self.out: dict[str, Any] = dict(current)
        self.steady_only = steady_only

    def acting(self) -> None:
        if self.steady_only:
            raise _Stale

    def write(self, state: str, message: str) -> None:
        self.out.update(state=state, message=message)
        _export_state(self.ns, self.name, state)
        if self.out == self.current:
            return  # a steady pool causes no write
        self.acting()
        patch = dict(self.out)
        if "inFlight" not in patch and "inFlight" in self.current:
            patch["inFlight"] = None  # merge patch: null removes the field
        runtime.get().kube.patch_status(API_VERSION, PLURAL, self.ns, self.name, {"funding": patch})
        if state in NEEDS_A_PERSON and self.current.get("state") != state:
            kopf.warn(self.pool, reason=state, message=message)
        self.current = dict(self.out)


def fund_pool(pool: dict[str, Any], spec: RelayerPoolSpec) -> None:
    assert spec.funding
    watched = dict((pool.get("status") or {}).get("funding") or {})
    if not watched.get("inFlight"):
        # A steady pool is found steady from the status the watch delivered, without a read of the server.
        try:
            _pass(_Pass(pool, spec, watched, steady_only=True))
            return
        except _Stale:
            pass
    # Never act on a cached status: a transfer recorded by the previous pass (or the previous operator
    # process) must be seen, or it would be sent a second time.
    ns, name = pool["metadata"]["namespace"], pool["metadata"]["name"]
    fresh = runtime.get().kube.get(API_VERSION, "RelayerPool", ns, name)
    if fresh is None:
        return
    _pass(_Pass(pool, spec, dict((fresh.get("status") or {}).get("funding") or {})))


def _pass(run: _Pass) -> None:
    spec, ns, name = run.spec, run.ns, run.name
    kube = runtime.get().kube
    mount, path = spec.signer.kv_mount, treasury_key_path(spec, ns, name)
    where = f"{mount}/{path}"
    treasury = run.current.get("treasuryAddress") if run.current.get("treasuryKeyPath") == where else None
    if treasury is None:  # Vault is asked once per treasury key, and then only to sign
        run.acting()
        treasury = _treasury(run, vault_client(kube, ns, spec.signer), mount, path)
        if treasury is None:
            return
    run.out.update(treasuryAddress=treasury, treasuryKeyPath=where)
    chain = runtime.get().chain(rpc_url(ns, spec.network))

    def sign(tx: dict[str, Any]) -> tuple[str, str]:
        return vault.sign_transaction(vault_client(kube, ns, spec.signer), mount, path, tx)

    try:
        _fund(run, chain, sign, treasury)
    except RPC_ERRORS as e:
        run.write("ChainUnreachable", f"RPC {type(e).__name__}: {str(e)[:300]}")


def _treasury(run: _Pass, vault_c: hvac.Client, mount: str, path: str) -> str | None:
    """The treasury's address: an existing key at treasuryKeyPath, or one generated once."""
    assert run.spec.funding
    if run.spec.funding.treasury_key_path:
        treasury = vault.read_relayer_address(vault_c, mount, path)
        if treasury is None:
            run.write("TreasuryMissing", f"no key at {mount}/{path} (spec.funding.treasuryKeyPath)")
        return treasury
    created = vault.read_relayer_address(vault_c, mount, path) is None
    treasury = vault.ensure_relayer_key(vault_c, mount, path)
    if created:
        kopf.info(
            run.pool,
            reason="TreasuryCreated",
            message=f"treasury key generated in Vault at {mount}/{path}; fund its address {treasury}",
        )
    return treasury


def _fund(
    run: _Pass, chain: ChainClient, sign: Callable[[dict[str, Any]], tuple[str, str]], treasury: str
) -> None:
    spec, ns, name = run.spec, run.ns, run.name
    assert spec.funding
    treasury_wei = chain.balance(treasury)
    run.out["treasuryBalance"] = str(treasury_wei)
    TREASURY_BALANCE.labels(ns, name, treasury).set(treasury_wei)
    now = dt.datetime.now(dt.UTC)
    transfers = list(run.out.get("transfers") or [])

    recorded = run.out.get("inFlight")
    if recorded:
        transfer = Transfer.from_status(recorded)
        outcome = chain.settle_recorded(treasury, transfer)
        if outcome == "InFlight":
            run.write(
                "ToppingUp",
                f"{transfer.value} wei to {transfer.relayer}: nonce {transfer.nonce}, tx {transfer.hash}",
            )
            return
        _settled(run, transfer, outcome)
        transfers = list(run.out.get("transfers") or [])
        run.out.pop("inFlight")

    sent_today = sent_within(transfers, now)
    run.out["sentLast24h"] = str(sent_today)
    kube = runtime.get().kube
    balances = [
        Balance(c["metadata"]["name"], c["status"]["address"], chain.balance(c["status"]["address"]))
        for c in kube.list(API_VERSION, "Relayer", ns, render.selector(name))
        if not c["spec"].get("draining") and (c.get("status") or {}).get("address")
    ]
    TREASURY_RESERVE.labels(ns, name).set(
        (spec.funding.target_balance - spec.funding.min_balance) * len(balances)
    )
    max_fee, tip = chain.fees()
    plan = plan_top_up(spec.funding, balances, treasury_wei, TRANSFER_GAS * max_fee, sent_today)
    if plan is None:
        run.write("Funded", f"{len(balances)} relayers at or above minBalance {spec.funding.min_balance} wei")
        return
    if isinstance(plan, Blocked):
        run.write(plan.state, plan.message)
        return

    run.acting()
    nonce = chain.nonce(treasury, "pending")
    tx = transfer_tx(plan, nonce, spec.network.chain_id, max_fee, tip, spec.network.eip1559)
    raw, tx_hash = sign(tx)
    transfer = Transfer(plan.relayer, plan.to, str(plan.value), nonce, tx_hash, raw, now_rfc3339())
    run.out["inFlight"] = transfer.to_status()
    # Recorded before it is sent: a crash from here on re-sends these same bytes, never a second transfer.
    run.write("ToppingUp", f"{plan.value} wei to {plan.relayer}: nonce {nonce}, tx {tx_hash}")
    faults.point("funding.recorded")
    chain.send_raw(raw)
    TOP_UPS.labels(ns, name, "sent").inc()
    kopf.info(
        run.pool,
        reason="TopUpSent",
        message=f"{plan.value} wei from treasury {treasury} to {plan.relayer} ({plan.to}), nonce {nonce}, "
        f"tx {tx_hash}",
    )
    faults.point("funding.sent")


def _settled(run: _Pass, transfer: Transfer, outcome: str) -> None:
    now = dt.datetime.now(dt.UTC)
    done = dataclasses.replace(transfer, raw="", result=outcome, settledAt=now_rfc3339())
    run.out["transfers"] = kept([*(run.out.get("transfers") or []), done.to_status()], now)
    TOP_UPS.labels(run.ns, run.name, outcome.lower()).inc()
    what = f"{transfer.value} wei to {transfer.relayer} ({transfer.to}), nonce {transfer.nonce}"
    what += f", tx {transfer.hash}"
    if outcome == "Confirmed":
        TOP_UP_WEI.labels(run.ns, run.name).inc(int(transfer.value))
        kopf.info(run.pool, reason="TopUpConfirmed", message=what)
    elif outcome == "Failed":
        kopf.warn(run.pool, reason="TopUpFailed", message=f"reverted: {what}")
    else:
        kopf.warn(
            run.pool,
            reason="TopUpDropped",
            message=f"the treasury's nonce {transfer.nonce} went to another transaction; not sent: {what}",
        )
