"""ContractPolicy: which pools it selects, and whether the gateway can enforce it as written."""

from __future__ import annotations

from msq_gateway.config import canonical_signature, normalize_address
from msq_operator.resources.policy import ContractPolicySpec, LabelSelector


def selects(selector: LabelSelector, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels AND every matchExpression); an empty selector
    selects nothing, so a policy never applies to every pool by accident."""
    if not selector.match_labels and not selector.match_expressions:
        return False
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for expr in selector.match_expressions:
        present = expr.key in labels
        if expr.operator == "In" and (not present or labels[expr.key] not in expr.values):
            return False
        if expr.operator == "NotIn" and present and labels[expr.key] in expr.values:
            return False
        if expr.operator == "Exists" and not present:
            return False
        if expr.operator == "DoesNotExist" and present:
            return False
    return True


def problems(spec: ContractPolicySpec) -> list[str]:
    """What the gateway would refuse, each naming the field; empty when the policy is usable."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, c in enumerate(spec.contracts):
        try:
            addr = normalize_address(c.address)
        except ValueError as e:
            out.append(f"spec.contracts[{i}].address: {e}")
            continue
        if addr in seen:
            out.append(f"spec.contracts[{i}].address: duplicate of spec.contracts[{seen[addr]}]")
        seen.setdefault(addr, i)
        if not c.methods:
            out.append(f"spec.contracts[{i}].methods: list at least one method signature")
        for j, m in enumerate(c.methods):
            try:
                canonical_signature(m)
            except ValueError as e:
                out.append(f"spec.contracts[{i}].methods[{j}]: {e}")
    for i, u in enumerate(spec.blocked_users):
        try:
            normalize_address(u)
        except ValueError as e:
            out.append(f"spec.blockedUsers[{i}]: {e}")
    return out
