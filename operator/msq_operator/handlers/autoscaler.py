"""Internal autoscaling: queue depth in Redis -> replicas, written through the pool's /scale subresource."""

from __future__ import annotations

import time
from typing import Any

import kopf

from msq_operator import runtime
from msq_operator.metrics import SCALE_EVENTS
from msq_operator.render import pool as render
from msq_operator.render.conditions import now_rfc3339
from msq_operator.render.relayer import redis_key_prefix
from msq_operator.render.scaling import desired_from_queue, stabilized
from msq_operator.resources import API_VERSION, GROUP, VERSION
from msq_operator.resources.pool import PLURAL, RelayerPoolSpec
from msq_operator.resources.relayer import RelayerSpec

TICK_SECONDS = 1.0


def pool_queue_depth(namespace: str, pool_name: str) -> int | None:
    """Fresh depth straight from Redis (status may lag a few seconds); None if any relayer's queue is
    unreadable, because scaling on a partial sum would shrink a busy pool."""
    rt = runtime.get()
    total = 0
    for child in rt.kube.list(API_VERSION, "Relayer", namespace, render.selector(pool_name)):
        rspec = RelayerSpec.model_validate(child["spec"])
        ref = rspec.redis.url_secret_ref
        url = rt.kube.read_secret(namespace, ref.name)[ref.key]
        depth = rt.observer.queue_depth(url, redis_key_prefix(rspec, namespace, child["metadata"]["name"]))
        if depth is None:
            return None
        total += depth
    return total


@kopf.timer(GROUP, VERSION, PLURAL, interval=TICK_SECONDS, initial_delay=TICK_SECONDS)
def autoscale(body: kopf.Body, spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
    pspec = RelayerPoolSpec.model_validate(dict(spec))
    auto = pspec.autoscaling
    if auto.mode != "Internal":
        return  # Disabled: replicas are the user's; External: KEDA/HPA own spec.replicas
    rt = runtime.get()
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    key = f"{ns}/{name}"
    now = time.monotonic()
    if now - rt.last_autoscale.get(key, -1e9) < auto.poll_interval_seconds:
        return
    rt.last_autoscale[key] = now
    for way in ("up", "down"):
        # A pool that has not scaled yet shows 0 on the dashboard, not "no data".
        SCALE_EVENTS.labels(ns, name, way)
    depth = pool_queue_depth(ns, name)
    if depth is None:
        return
    recommendation = desired_from_queue(
        depth, auto.target_queue_depth_per_relayer, auto.min_replicas, auto.max_replicas
    )
    history = rt.recommendations.setdefault(key, [])
    history.append((now, recommendation))
    history[:] = [(t, r) for t, r in history if now - t <= auto.scale_down_stabilization_seconds] or history[
        -1:
    ]
    target = stabilized(pspec.replicas, history, now, auto.scale_down_stabilization_seconds)
    target = max(auto.min_replicas, min(auto.max_replicas, target))
    if target == pspec.replicas:
        return
    rt.kube.scale(API_VERSION, PLURAL, ns, name, target)
    direction = "up" if target > pspec.replicas else "down"
    SCALE_EVENTS.labels(ns, name, direction).inc()
    patch.status["lastScaleTime"] = now_rfc3339()
    kopf.info(
        body,
        reason="Scaled",
        message=f"queue depth {depth}: replicas {pspec.replicas} -> {target} "
        f"(target {auto.target_queue_depth_per_relayer} per relayer)",
    )
