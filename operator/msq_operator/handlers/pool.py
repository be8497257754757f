"""RelayerPool: owns its Relayers (scale up, drain, remove), its gateway, and a truthful status."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import kopf

from msq_operator import runtime
from msq_operator.metrics import POOL_QUEUE_DEPTH, POOL_QUEUE_TARGET, POOL_REPLICAS, measured
from msq_operator.render import gateway as gw
from msq_operator.render import pool as render
from msq_operator.render.conditions import get_condition, is_true, set_condition
from msq_operator.render.policy import problems, selects
from msq_operator.render.relayer import SECRET_API_KEY, SECRET_WEBHOOK_SIGNING_KEY, endpoint, names_of
from msq_operator.render.scaling import Member, plan_scale
from msq_operator.resources import API_VERSION, GROUP, VERSION
from msq_operator.resources.policy import ContractPolicySpec
from msq_operator.resources.pool import PLURAL, RelayerPoolSpec
from msq_operator.rpc import rpc_secret_url

RECONCILE_INTERVAL = 3.0
# A drained relayer is deleted only after the gateway has had time to reload a config without it: kubelet
# refreshes a mounted ConfigMap within about a minute, plus the gateway's own reload interval.
DRAIN_GRACE_SECONDS = float(os.environ.get("MSQ_DRAIN_GRACE_SECONDS", "90"))


def _spec(spec: Any) -> RelayerPoolSpec:
    try:
        return RelayerPoolSpec.model_validate(dict(spec))
    except ValueError as e:
        raise kopf.PermanentError(f"invalid spec: {e}") from None


def _age_seconds(timestamp: str | None) -> float:
    if not timestamp:
        return 0.0
    then = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return (dt.datetime.now(dt.UTC) - then).total_seconds()


def _drained(relayer: dict[str, Any]) -> bool:
    """Safe to delete: draining was observed by the relayer's controller, the gateway has had time to stop
    routing to it, and the running relayer itself reports nothing pending and nothing queued."""
    status = relayer.get("status") or {}
    cond = get_condition(status.get("conditions"), "Draining")
    if not cond or cond.get("status") != "True":
        return False
    if cond.get("observedGeneration") != relayer["metadata"].get("generation"):
        return False
    if not is_true(status.get("conditions"), "Ready"):
        return False  # unknown pending is not zero pending
    return (
        _age_seconds(cond.get("lastTransitionTime")) >= DRAIN_GRACE_SECONDS
        and status.get("pending") == 0
        and status.get("queueDepth", 0) == 0
    )


def _members(children: list[dict[str, Any]]) -> list[Member]:
    return [
        Member(
            name=c["metadata"]["name"],
            ordinal=render.ordinal_of(c),
            draining=bool(c["spec"].get("draining", False)),
            pending=int((c.get("status") or {}).get("pending") or 0),
            queue_depth=int((c.get("status") or {}).get("queueDepth") or 0),
        )
        for c in children
    ]


def _policies(namespace: str, labels: dict[str, str]) -> list[tuple[str, ContractPolicySpec]]:
    kube = runtime.get().kube
    out = []
    for obj in kube.list(API_VERSION, "ContractPolicy", namespace):
        try:
            spec = ContractPolicySpec.model_validate(obj.get("spec") or {})
        except ValueError:
            continue
        if selects(spec.pool_selector, labels) and not problems(spec):
            out.append((obj["metadata"]["name"], spec))
    return out


def _reconcile_gateway(pool: dict[str, Any], spec: RelayerPoolSpec, children: list[dict[str, Any]]) -> None:
    kube = runtime.get().kube
    meta = pool["metadata"]
    ns = meta["namespace"]
    values: dict[str, str] = {}
    redis_ref = spec.redis.url_secret_ref
    values[gw.REDIS_URL_KEY] = kube.read_secret(ns, redis_ref.name)[redis_ref.key]
    secret_url = rpc_secret_url(ns, spec.network)
    if secret_url:
        values[gw.RPC_URL_KEY] = secret_url
    relayers: list[tuple[dict[str, Any], str]] = []
    for child in children:
        name = child["metadata"]["name"]
        try:
            creds = kube.read_secret(ns, names_of(child).secret)
        except LookupError:
            continue  # not provisioned yet: the gateway gets it on a later pass
        values[f"{name}.{SECRET_API_KEY}"] = creds[SECRET_API_KEY]
        values[f"{name}.{SECRET_WEBHOOK_SIGNING_KEY}"] = creds[SECRET_WEBHOOK_SIGNING_KEY]
        relayers.append((child, endpoint(child)))
    api_keys = (
        kube.read_secret(ns, spec.gateway.api_keys_secret_ref.name)
        if spec.gateway.api_keys_secret_ref
        else {}
    )
    config = gw.build_gateway_config(pool, spec, relayers, api_keys, _policies(ns, meta.get("labels") or {}))
    kube.apply(gw.build_secret(pool, values))
    kube.apply(gw.build_config_map(pool, config))
    kube.apply(gw.build_deployment(pool, spec))
    kube.apply(gw.build_service(pool, spec))


def reconcile(pool: dict[str, Any]) -> dict[str, Any]:
    """One pass; returns the status the pool should have. Writes only what differs."""
    kube = runtime.get().kube
    spec = _spec(pool["spec"])
    meta = pool["metadata"]
    ns, name = meta["namespace"], meta["name"]
    children = kube.list(API_VERSION, "Relayer", ns, render.selector(name))

    plan = plan_scale(_members(children), spec.replicas)
    draining = {c["metadata"]["name"] for c in children if c["spec"].get("draining")}
    draining = (draining | set(plan.drain)) - set(plan.undrain)
    for n in plan.drain:
        kopf.info(pool, reason="Draining", message=f"scaling down: draining relayer {n}")
    for ordinal in plan.create_ordinals:
        kopf.info(pool, reason="ScalingUp", message=f"creating relayer {render.relayer_name(name, ordinal)}")
    ordinals = sorted({render.ordinal_of(c) for c in children} | set(plan.create_ordinals))
    for ordinal in ordinals:
        child_name = render.relayer_name(name, ordinal)
        kube.apply(render.build_relayer(pool, spec, ordinal, draining=child_name in draining))

    removed = []
    for child in children:
        if child["spec"].get("draining") and child["metadata"]["name"] in draining and _drained(child):
            # The list may be the watch's copy: the deletion is decided on the server's.
            fresh = kube.get(API_VERSION, "Relayer", ns, child["metadata"]["name"])
            if fresh is None or not _drained(fresh):
                continue
            kube.delete(API_VERSION, "Relayer", ns, child["metadata"]["name"])
            removed.append(child["metadata"]["name"])
            kopf.info(
                pool,
                reason="RelayerRemoved",
                message=f"relayer {child['metadata']['name']} drained with nothing pending and removed; "
                "its key stays in Vault",
            )
    children = [
        c
        for c in kube.list(API_VERSION, "Relayer", ns, render.selector(name))
        if c["metadata"]["name"] not in removed
    ]

    if spec.gateway.enabled:
        _reconcile_gateway(pool, spec, children)
    return build_status(pool, spec, children)


def build_status(
    pool: dict[str, Any], spec: RelayerPoolSpec, children: list[dict[str, Any]]
) -> dict[str, Any]:
    meta = pool["metadata"]
    status = pool.get("status") or {}
    generation = meta.get("generation")
    active = [c for c in children if not c["spec"].get("draining")]
    draining = [c for c in children if c["spec"].get("draining")]
    ready = [c for c in active if is_true((c.get("status") or {}).get("conditions"), "Ready")]
    queue = sum(int((c.get("status") or {}).get("queueDepth") or 0) for c in children)
    summary = [
        {
            "name": c["metadata"]["name"],
            "address": (c.get("status") or {}).get("address", ""),
            "balance": (c.get("status") or {}).get("balance", ""),
            "pending": int((c.get("status") or {}).get("pending") or 0),
            "ready": is_true((c.get("status") or {}).get("conditions"), "Ready"),
            "draining": bool(c["spec"].get("draining")),
        }
        for c in sorted(children, key=lambda c: render.ordinal_of(c))
    ]
    conditions = list(status.get("conditions") or [])
    relayers_ready = len(ready) == spec.replicas and len(active) == spec.replicas
    gateway_ready = not spec.gateway.enabled or runtime.get().observer.ready(
        render.gateway_url(pool, spec) + "/readyz"
    )
    all_ready = relayers_ready and gateway_ready
    reason = "AllRelayersReady" if all_ready else ("NotAllReady" if not relayers_ready else "GatewayNotReady")
    message = f"{len(ready)}/{spec.replicas} relayers ready"
    if spec.gateway.enabled:
        message += "; gateway " + ("ready" if gateway_ready else "not ready")
    conditions = set_condition(conditions, "Ready", all_ready, reason, message, generation)
    scaling = len(active) != spec.replicas or bool(draining)
    conditions = set_condition(
        conditions,
        "Scaling",
        scaling,
        "Reconciling" if scaling else "Stable",
        f"{len(active)} active, {len(draining)} draining, {spec.replicas} desired",
        generation,
    )
    unready = [c["metadata"]["name"] for c in active if c not in ready]
    degraded = bool(unready) and not scaling
    conditions = set_condition(
        conditions,
        "Degraded",
        degraded,
        "RelayersNotReady" if degraded else "AsExpected",
        f"not ready: {', '.join(unready)}" if degraded else "all active relayers ready",
        generation,
    )
    conditions = set_condition(conditions, "Funded", *funded_condition(spec, status, active), generation)
    out: dict[str, Any] = {
        "replicas": len(active),
        "readyReplicas": len(ready),
        "replicaSummary": f"{len(ready)}/{spec.replicas}",
        "selector": render.selector(meta["name"]),
        "queueDepth": queue,
        "relayers": summary,
        "conditions": conditions,
        "observedGeneration": generation,
    }
    if spec.gateway.enabled:
        out["gatewayEndpoint"] = render.gateway_url(pool, spec)
    POOL_REPLICAS.labels(meta["namespace"], meta["name"], "ready").set(len(ready))
    POOL_REPLICAS.labels(meta["namespace"], meta["name"], "active").set(len(active))
    POOL_REPLICAS.labels(meta["namespace"], meta["name"], "draining").set(len(draining))
    POOL_REPLICAS.labels(meta["namespace"], meta["name"], "desired").set(spec.replicas)
    POOL_QUEUE_DEPTH.labels(meta["namespace"], meta["name"]).set(queue)
    sized_for = spec.autoscaling.target_queue_depth_per_relayer * len(active)
    POOL_QUEUE_TARGET.labels(meta["namespace"], meta["name"]).set(
        sized_for if spec.autoscaling.mode != "Disabled" else 0
    )
    return out


def funded_condition(
    spec: RelayerPoolSpec, status: dict[str, Any], active: list[dict[str, Any]]
) -> tuple[str, str, str]:
    """(status, reason, message) of the pool's Funded condition. With spec.funding it is the funding
    timer's state (status.funding, which only that timer writes); without, the relayers' own Funded."""
    if spec.funding is not None:
        funding = status.get("funding") or {}
        state = funding.get("state")
        if not state:
            return "Unknown", "NotObserved", "the funding timer has not run yet"
        return ("True" if state == "Funded" else "False"), state, str(funding.get("message", ""))
    low = [
        c["metadata"]["name"]
        for c in active
        if (get_condition((c.get("status") or {}).get("conditions"), "Funded") or {}).get("status") == "False"
    ]
    if low:
        return "False", "LowBalance", f"below minBalance: {', '.join(low)} (spec.funding tops relayers up)"
    if active and all(is_true((c.get("status") or {}).get("conditions"), "Funded") for c in active):
        return "True", "AllFunded", f"{len(active)} relayers at or above minBalance"
    return "Unknown", "NotObserved", "not every relayer's balance is known yet"


def _write_status(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, new: dict[str, Any]) -> None:
    for k, v in new.items():
        if status.get(k) != v:
            patch.status[k] = v
    degraded_now = is_true(new.get("conditions"), "Degraded")
    if degraded_now and not is_true(status.get("conditions"), "Degraded"):
        kopf.warn(
            body, reason="Degraded", message=str(get_condition(new["conditions"], "Degraded")["message"])
        )  # type: ignore[index]


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile_pool(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
    with measured("RelayerPool"):
        _write_status(body, status, patch, reconcile(dict(body)))


@kopf.timer(GROUP, VERSION, PLURAL, interval=RECONCILE_INTERVAL, initial_delay=RECONCILE_INTERVAL)
def resync_pool(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
    """Children change without touching the pool (readiness, pending counts, drains finishing)."""
    with measured("RelayerPool"):
        _write_status(body, status, patch, reconcile(dict(body)))
