"""Sweep on removal: before a Relayer with `spec.sweepTo` is deleted (a drained relayer on scale-down, or
every relayer of a deleted pool), its balance less the fee goes to the pool's treasury, exactly once: the
transfer is recorded in the Relayer's status.sweep before it is sent and settled by nonce and hash (the
rules are in render/funding.py). The removal waits, through the Relayer's finalizer, until it settles."""

from __future__ import annotations

from typing import Any

import kopf

from msq_operator import faults, runtime, vault
from msq_operator.chain import RPC_ERRORS, ChainClient
from msq_operator.render.conditions import now_rfc3339
from msq_operator.render.funding import Transfer, sweep_tx
from msq_operator.render.relayer import key_path, names_of
from msq_operator.resources import API_VERSION
from msq_operator.resources.relayer import PLURAL, RelayerSpec
from msq_operator.rpc import rpc_url
from msq_operator.signer_auth import vault_client

RETRY_SECONDS = 3


def sweep_relayer(relayer: dict[str, Any], spec: RelayerSpec) -> None:
    """Returns once nothing is left to sweep; raises kopf.TemporaryError while a sweep is on its way."""
    kube = runtime.get().kube
    n = names_of(relayer)
    # A sweep recorded by an earlier pass (or an earlier operator process) must be seen: read it fresh.
    fresh = kube.get(API_VERSION, "Relayer", n.namespace, n.relayer) or relayer
    status = fresh.get("status") or {}
    address = status.get("address")
    if not address or not spec.sweep_to:
        return
    chain = runtime.get().chain(rpc_url(n.namespace, spec.network))
    recorded = status.get("sweep") or {}
    try:
        if recorded.get("result") == "Confirmed":
            return
        if recorded and not recorded.get("result"):
            transfer = Transfer.from_status(recorded)
            outcome = chain.settle_recorded(address, transfer)
            if outcome == "InFlight":
                raise kopf.TemporaryError(f"sweep {transfer.hash} not mined yet", delay=RETRY_SECONDS)
            _write(n.namespace, n.relayer, {"result": outcome, "settledAt": now_rfc3339(), "raw": None})
            what = f"{transfer.value} wei from {address} to the treasury {transfer.to}, tx {transfer.hash}"
            if outcome == "Confirmed":
                kopf.info(relayer, reason="SweepConfirmed", message=what)
                return
            kopf.warn(relayer, reason=f"Sweep{outcome}", message=f"not moved, sweeping again: {what}")
        _send(relayer, spec, chain, address)
    except RPC_ERRORS as e:
        raise kopf.TemporaryError(f"sweep: RPC {type(e).__name__}: {str(e)[:300]}", delay=15) from None


def _write(namespace: str, name: str, sweep: dict[str, Any]) -> None:
    runtime.get().kube.patch_status(API_VERSION, PLURAL, namespace, name, {"sweep": sweep})


def _send(relayer: dict[str, Any], spec: RelayerSpec, chain: ChainClient, address: str) -> None:
    assert spec.sweep_to
    n = names_of(relayer)
    balance = chain.balance(address)
    gas_price, _ = chain.fees()
    nonce = chain.nonce(address, "pending")
    tx = sweep_tx(balance, gas_price, nonce, spec.network.chain_id, spec.sweep_to, spec.network.eip1559)
    if tx is None:
        if balance:
            kopf.warn(
                relayer, reason="SweepSkipped", message=f"{balance} wei left at {address}: less than the fee"
            )
        return
    vault_c = vault_client(runtime.get().kube, n.namespace, spec.signer)
    raw, tx_hash = vault.sign_transaction(
        vault_c, spec.signer.kv_mount, key_path(spec, n.namespace, n.relayer), tx
    )
    transfer = Transfer(
        n.relayer, spec.sweep_to, str(tx["value"]), int(tx["nonce"]), tx_hash, raw, now_rfc3339()
    )
    # Recorded before it is sent: a crash from here on re-sends these same bytes, never a second sweep.
    _write(n.namespace, n.relayer, {**transfer.to_status(), "result": None, "settledAt": None})
    faults.point("sweep.recorded")
    chain.send_raw(raw)
    kopf.info(
        relayer,
        reason="SweepSent",
        message=f"{tx['value']} wei from {address} to the treasury {spec.sweep_to}, nonce {tx['nonce']}, "
        f"tx {tx_hash}",
    )
    faults.point("sweep.sent")
    raise kopf.TemporaryError(f"sweep {tx_hash} sent", delay=RETRY_SECONDS)


def funds_left_message(relayer: dict[str, Any], spec: RelayerSpec) -> str | None:
    """For a relayer removed without a sweep: what stays at its address, if anything (never silent)."""
    address = (relayer.get("status") or {}).get("address")
    if not address:
        return None
    n = names_of(relayer)
    try:
        balance = runtime.get().chain(rpc_url(n.namespace, spec.network)).balance(address)
    except RPC_ERRORS:
        balance = int((relayer.get("status") or {}).get("balance") or 0)
    if not balance:
        return None
    path = f"{spec.signer.kv_mount}/{key_path(spec, n.namespace, n.relayer)}"
    return f"{balance} wei remain at {address}; its key stays in Vault at {path} (spec.funding.sweepOnRemove)"
