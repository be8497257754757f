"""ContractPolicy: is it usable as written, and which pools does it apply to."""

from __future__ import annotations

from typing import Any

import kopf

from msq_operator import runtime
from msq_operator.metrics import measured
from msq_operator.render.conditions import set_condition
from msq_operator.render.policy import problems, selects
from msq_operator.resources import API_VERSION, GROUP, VERSION
from msq_operator.resources.policy import PLURAL, ContractPolicySpec

RESYNC_SECONDS = 5.0


def policy_status(body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    generation = body["metadata"].get("generation")
    try:
        spec = ContractPolicySpec.model_validate(body.get("spec") or {})
        found = problems(spec)
    except ValueError as e:
        spec, found = None, [f"spec: {e}"]
    pools: list[str] = []
    if spec is not None:
        for pool in runtime.get().kube.list(API_VERSION, "RelayerPool", body["metadata"]["namespace"]):
            if selects(spec.pool_selector, pool["metadata"].get("labels") or {}):
                pools.append(pool["metadata"]["name"])
    accepted = not found
    conditions = set_condition(
        status.get("conditions"),
        "Accepted",
        accepted,
        "Valid" if accepted else "Invalid",
        "policy is enforced by the gateways of the selected pools" if accepted else "; ".join(found),
        generation,
    )
    return {"pools": sorted(pools), "conditions": conditions, "observedGeneration": generation}


def _write(body: kopf.Body, status: kopf.Status, patch: kopf.Patch) -> None:
    new = policy_status(dict(body), dict(status))
    for k, v in new.items():
        if status.get(k) != v:
            patch.status[k] = v
    was = next((c for c in status.get("conditions") or [] if c.get("type") == "Accepted"), {})
    now = next(c for c in new["conditions"] if c["type"] == "Accepted")
    if now["status"] == "False" and was.get("message") != now["message"]:
        kopf.warn(body, reason="Invalid", message=now["message"])


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile_policy(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
    with measured("ContractPolicy"):
        _write(body, status, patch)


@kopf.timer(GROUP, VERSION, PLURAL, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def resync_policy(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
    _write(body, status, patch)
