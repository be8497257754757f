"""Pool sizing decisions: queue-depth autoscaling with a scale-down stabilization window, and which
relayers to drain, revive or create."""

from __future__ import annotations

import math
from dataclasses import dataclass


def desired_from_queue(
    queue_depth: int, target_per_relayer: int, min_replicas: int, max_replicas: int
) -> int:
    """clamp(ceil(queueDepth / target), min, max)."""
    raw = math.ceil(max(queue_depth, 0) / max(target_per_relayer, 1))
    return max(min_replicas, min(max_replicas, raw))


def stabilized(
    current: int, recommendations: list[tuple[float, int]], now: float, window_seconds: float
) -> int:
    """Scale up at once; scale down only to the highest recommendation seen within the window (as the HPA
    does), so a brief dip in the queue does not drain relayers that will be needed again."""
    recent = [r for t, r in recommendations if now - t <= window_seconds]
    if not recent:
        return current
    latest = recommendations[-1][1]
    if latest >= current:
        return latest
    return max(min(current, max(recent)), latest)


@dataclass(frozen=True)
class Member:
    name: str
    ordinal: int
    draining: bool
    pending: int
    queue_depth: int


@dataclass(frozen=True)
class ScalePlan:
    create_ordinals: tuple[int, ...]
    drain: tuple[str, ...]
    undrain: tuple[str, ...]


def plan_scale(members: list[Member], desired: int) -> ScalePlan:
    active = [m for m in members if not m.draining]
    draining = [m for m in members if m.draining]
    if len(active) < desired:
        need = desired - len(active)
        # A draining relayer already has its key, funds and warm state: bring those back before new ones.
        revive = sorted(draining, key=lambda m: m.ordinal)[:need]
        need -= len(revive)
        used = {m.ordinal for m in members}
        ordinals: list[int] = []
        candidate = 0
        while len(ordinals) < need:
            if candidate not in used:
                ordinals.append(candidate)
            candidate += 1
        return ScalePlan(tuple(ordinals), (), tuple(m.name for m in revive))
    if len(active) > desired:
        # Least pending work first, then the newest, so the drain is as short as possible.
        victims = sorted(active, key=lambda m: (m.pending + m.queue_depth, -m.ordinal))[
            : len(active) - desired
        ]
        return ScalePlan((), tuple(m.name for m in victims), ())
    return ScalePlan((), (), ())
