"""Relayer: key in Vault, AppRole, Secret, OZ config, Deployment, Service; status from the running relayer."""

from __future__ import annotations

import base64
import contextlib
import secrets
import time
from typing import Any

import hvac
import hvac.exceptions
import kopf

from msq_operator import runtime, vault
from msq_operator.chain import RPC_ERRORS
from msq_operator.handlers import nonce_heal, sweep
from msq_operator.metrics import (
    CONDITION_STATUSES,
    RELAYER_BALANCE,
    RELAYER_CONDITION,
    RELAYER_NONCE,
    RELAYER_OLDEST_PENDING,
    RELAYER_PENDING,
    measured,
)
from msq_operator.relayer_api import RelayerApi
from msq_operator.render import relayer as render
from msq_operator.render.conditions import get_condition, set_condition
from msq_operator.render.meta import vault_name
from msq_operator.render.nonce_health import nonce_health
from msq_operator.resources import GROUP, VERSION
from msq_operator.resources.relayer import PLURAL, RelayerSpec
from msq_operator.rpc import rpc_secret_url, rpc_url
from msq_operator.signer_auth import vault_client

OBSERVE_INTERVAL = 5.0


def _spec(spec: Any) -> RelayerSpec:
    try:
        return RelayerSpec.model_validate(dict(spec))
    except ValueError as e:
        raise kopf.PermanentError(f"invalid spec: {e}") from None


def _credentials(
    vault_c: hvac.Client, spec: RelayerSpec, relayer: dict[str, Any], path: str
) -> dict[str, str]:
    """Keep what the relayer already has; mint a new secret_id only when there is none or the AppRole was
    recreated (a new role_id), so restarts and repeated reconciles do not churn credentials."""
    kube = runtime.get().kube
    n = render.names_of(relayer)
    try:
        # From the server: a copy the watch has not delivered yet would mint new credentials over the old.
        current = kube.read_secret(n.namespace, n.secret, fresh=True)
    except LookupError:
        current = {}
    role = vault_name(n.namespace, n.relayer)
    try:
        live_role_id = vault_c.auth.approle.read_role_id(role, mount_point=spec.signer.approle_mount)["data"][
            "role_id"
        ]
    except hvac.exceptions.InvalidPath:
        live_role_id = None
    values = {
        render.SECRET_API_KEY: current.get(render.SECRET_API_KEY) or secrets.token_urlsafe(36),
        render.SECRET_WEBHOOK_SIGNING_KEY: current.get(render.SECRET_WEBHOOK_SIGNING_KEY)
        or secrets.token_urlsafe(36),
        render.SECRET_STORAGE_ENCRYPTION_KEY: current.get(render.SECRET_STORAGE_ENCRYPTION_KEY)
        or base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    if (
        live_role_id
        and current.get(render.SECRET_ROLE_ID) == live_role_id
        and current.get(render.SECRET_SECRET_ID)
    ):
        values[render.SECRET_ROLE_ID] = live_role_id
        values[render.SECRET_SECRET_ID] = current[render.SECRET_SECRET_ID]
        return values
    creds = vault.ensure_approle(
        vault_c,
        role_name=role,
        policy_name=role,
        mount=spec.signer.kv_mount,
        key_path=path,
        approle_mount=spec.signer.approle_mount,
    )
    values[render.SECRET_ROLE_ID] = creds.role_id
    values[render.SECRET_SECRET_ID] = creds.secret_id
    return values


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile_relayer(
    body: kopf.Body, spec: kopf.Spec, status: kopf.Status, patch: kopf.Patch, **_: Any
) -> None:
    with measured("Relayer"):
        relayer = dict(body)
        rspec = _spec(spec)
        kube = runtime.get().kube
        n = render.names_of(relayer)
        generation = body["metadata"].get("generation")
        conditions = list(status.get("conditions") or [])

        vault_c = vault_client(kube, n.namespace, rspec.signer)
        path = render.key_path(rspec, n.namespace, n.relayer)
        existed = vault.read_relayer_address(vault_c, rspec.signer.kv_mount, path)
        address = vault.ensure_relayer_key(vault_c, rspec.signer.kv_mount, path)
        if existed is None:
            kopf.info(
                body,
                reason="KeyProvisioned",
                message=f"key generated in Vault at {rspec.signer.kv_mount}/{path}; address {address}",
            )
        conditions = set_condition(
            conditions,
            "KeyProvisioned",
            True,
            "InVault",
            f"key at {rspec.signer.kv_mount}/{path}",
            generation,
        )

        config = render.build_config_secret(relayer, rspec, rpc_secret_url(n.namespace, rspec.network))
        kube.apply(render.build_secret(relayer, _credentials(vault_c, rspec, relayer, path)))
        kube.apply(config)
        kube.apply(render.build_deployment(relayer, rspec, config))
        kube.apply(render.build_service(relayer))

        was_draining = (get_condition(conditions, "Draining") or {}).get("status") == "True"
        conditions = _with_draining(conditions, rspec, generation)
        if rspec.draining and not was_draining:
            kopf.info(
                body, reason="Draining", message="relayer is draining: no new transactions are routed to it"
            )
        patch.status["address"] = address
        patch.status["keyPath"] = f"{rspec.signer.kv_mount}/{path}"
        patch.status["endpoint"] = render.endpoint(relayer)
        patch.status["conditions"] = conditions
        patch.status["observedGeneration"] = generation


def _with_draining(
    conditions: list[dict[str, Any]], rspec: RelayerSpec, generation: int | None
) -> list[dict[str, Any]]:
    """The Draining condition follows the spec alone. Both the reconcile and the observe timer write the
    whole conditions list, so each sets it: a timer pass that started before a reconcile's write would
    otherwise put back the old Draining condition, and the drain would wait for a reconcile that never
    comes."""
    return set_condition(
        conditions,
        "Draining",
        rspec.draining,
        "ScaleDown" if rspec.draining else "Active",
        "removed from routing; deleted once nothing is pending" if rspec.draining else "receiving traffic",
        generation,
    )


def observed_status(relayer: dict[str, Any], rspec: RelayerSpec, status: dict[str, Any]) -> dict[str, Any]:
    """The status fields that come from the running relayer; unchanged fields render identically."""
    rt = runtime.get()
    n = render.names_of(relayer)
    generation = relayer["metadata"].get("generation")
    endpoint = render.endpoint(relayer)
    conditions = list(status.get("conditions") or [])
    try:
        api_key = rt.kube.read_secret(n.namespace, n.secret)[render.SECRET_API_KEY]
    except (LookupError, KeyError):
        api_key = ""
    # The chain's nonce before the relayer's counter (see render/nonce_health.py).
    chain_nonce = _chain_nonce(n.namespace, rspec, str(status.get("address", "")))
    observed = rt.observer.relayer_status(endpoint, n.oz_id, api_key) if api_key else None
    out: dict[str, Any] = {"endpoint": endpoint}
    if observed is None:
        conditions = set_condition(
            conditions,
            "Ready",
            False,
            "Unreachable",
            f"relayer API at {endpoint} does not answer",
            generation,
        )
    else:
        out.update(balance=observed.balance, nonce=observed.nonce, pending=observed.pending)
        ready = not observed.paused
        conditions = set_condition(
            conditions,
            "Ready",
            ready,
            "Serving" if ready else "Paused",
            "relayer API answers" if ready else "relayer is paused",
            generation,
        )
        min_balance = int(rspec.policies.min_balance or 1)
        funded = int(observed.balance) >= min_balance
        conditions = set_condition(
            conditions,
            "Funded",
            funded,
            "BalanceOK" if funded else "LowBalance",
            f"balance {observed.balance} wei, minimum {min_balance}",
            generation,
        )
        RELAYER_BALANCE.labels(n.namespace, n.relayer, status.get("address", "")).set(int(observed.balance))
        RELAYER_PENDING.labels(n.namespace, n.relayer).set(observed.pending)
    try:
        redis_url = rt.kube.read_secret(n.namespace, rspec.redis.url_secret_ref.name)[
            rspec.redis.url_secret_ref.key
        ]
        # The relayer's backlog (OZ's pending_transactions_count, read from its Redis status index, see
        # observe.PENDING_STATUSES): the request list alone is empty while a burst waits for the chain.
        snapshot = rt.observer.backlog(
            redis_url, render.redis_key_prefix(rspec, n.namespace, n.relayer), n.oz_id
        )
    except (LookupError, KeyError):
        snapshot = None
    if snapshot is not None:
        out["queueDepth"] = snapshot.queued
        # Pending for the drain means "not yet final": OZ's own count leaves out Mined transactions, whose
        # `confirmed` webhook is still to come (observe.UNSETTLED_STATUSES).
        if snapshot.unsettled is not None and "pending" in out:
            out["pending"] = max(out["pending"], snapshot.unsettled)
    age = None
    if snapshot is not None and snapshot.oldest_pending_ms is not None:
        age = max(0.0, time.time() - snapshot.oldest_pending_ms / 1000)
    RELAYER_OLDEST_PENDING.labels(n.namespace, n.relayer).set(age or 0)
    relayer_nonce = observed.nonce if observed is not None else None
    for source, value in (("chain", chain_nonce), ("relayer", relayer_nonce)):
        if value is not None:
            RELAYER_NONCE.labels(n.namespace, n.relayer, source).set(value)
    still = (
        None
        if chain_nonce is None
        else rt.unchanged_for(f"{n.namespace}/{n.relayer}", chain_nonce, time.time())
    )
    health = nonce_health(chain_nonce, relayer_nonce, age, rspec.stuck_after_seconds, still)
    if snapshot is not None:
        stuck_id = snapshot.oldest_pending_id
        nonce_heal.settle(relayer, status, stuck_id)
        if health[1] == "Stuck" and stuck_id and api_key and chain_nonce is not None:
            api = RelayerApi(rt.observer.http, endpoint, n.oz_id, api_key)
            note = nonce_heal.heal_stuck(relayer, rspec, api, stuck_id, chain_nonce)
            health = (health[0], health[1], f"{health[2]}; {note}")
    if health[1] == "Drift" and chain_nonce is not None and relayer_nonce is not None:
        note = nonce_heal.resync_drift(relayer, rspec, chain_nonce, relayer_nonce)
        health = (health[0], health[1], f"{health[2]}; {note}")
    conditions = set_condition(conditions, "NonceHealthy", *health, generation)
    out["conditions"] = _with_draining(conditions, rspec, generation)
    _export_conditions(n.namespace, n.relayer, out["conditions"])
    return out


def _chain_nonce(namespace: str, rspec: RelayerSpec, address: str) -> int | None:
    if not address:
        return None
    try:
        return runtime.get().chain(rpc_url(namespace, rspec.network)).nonce(address)
    except (*RPC_ERRORS, kopf.TemporaryError):
        return None


# The conditions alerts read (charts/.../templates/prometheusrule.yaml).
EXPORTED_CONDITIONS = ("Ready", "Funded", "Draining", "NonceHealthy")


def _export_conditions(namespace: str, relayer: str, conditions: list[dict[str, Any]]) -> None:
    for type_ in EXPORTED_CONDITIONS:
        current = (get_condition(conditions, type_) or {}).get("status", "Unknown")
        for value in CONDITION_STATUSES:
            RELAYER_CONDITION.labels(namespace, relayer, type_, value).set(1 if current == value else 0)


def _forget_metrics(namespace: str, relayer: str, address: str) -> None:
    """A removed relayer's series go with it: a stale Ready=False would keep an alert firing for ever."""
    for type_ in EXPORTED_CONDITIONS:
        for value in CONDITION_STATUSES:
            with contextlib.suppress(KeyError):
                RELAYER_CONDITION.remove(namespace, relayer, type_, value)
    for gauge, labels in (
        (RELAYER_PENDING, (namespace, relayer)),
        (RELAYER_OLDEST_PENDING, (namespace, relayer)),
        (RELAYER_NONCE, (namespace, relayer, "chain")),
        (RELAYER_NONCE, (namespace, relayer, "relayer")),
    ):
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)
    with contextlib.suppress(KeyError):
        RELAYER_BALANCE.remove(namespace, relayer, address)


@kopf.timer(GROUP, VERSION, PLURAL, interval=OBSERVE_INTERVAL, initial_delay=1.0)
def observe_relayer(
    body: kopf.Body, spec: kopf.Spec, status: kopf.Status, patch: kopf.Patch, **_: Any
) -> None:
    if not status.get("address"):
        return  # not reconciled yet
    relayer = dict(body)
    new = observed_status(relayer, _spec(spec), dict(status))
    changed = {k: v for k, v in new.items() if status.get(k) != v}
    for k, v in changed.items():
        patch.status[k] = v


@kopf.on.delete(GROUP, VERSION, PLURAL)
def delete_relayer(body: kopf.Body, spec: kopf.Spec, **_: Any) -> None:
    """The balance goes to the treasury first where the pool sweeps (sweepOnRemove), else a Warning says
    what stays behind; then the AppRole and policy go. The key stays in Vault either way."""
    rspec = _spec(spec)
    n = render.names_of(dict(body))
    if rspec.sweep_to:
        sweep.sweep_relayer(dict(body), rspec)  # holds the removal (TemporaryError) until the sweep settles
    else:
        left = sweep.funds_left_message(dict(body), rspec)
        if left:
            kopf.warn(body, reason="RemovedWithFunds", message=left)
    vault_c = vault_client(runtime.get().kube, n.namespace, rspec.signer)
    role = vault_name(n.namespace, n.relayer)
    vault.revoke_approle(vault_c, role_name=role, policy_name=role, approle_mount=rspec.signer.approle_mount)
    kept = render.key_path(rspec, n.namespace, n.relayer)
    kopf.info(body, reason="AccessRevoked", message=f"AppRole {role} revoked; key kept in Vault at {kept}")
    _forget_metrics(n.namespace, n.relayer, str((body.get("status") or {}).get("address", "")))
    runtime.get().chain_nonce_since.pop(f"{n.namespace}/{n.relayer}", None)
