"""Names, labels and owner references shared by every rendered object."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from msq_operator.resources import API_VERSION

MANAGED_BY = "msq-relayer-operator"
LABEL_POOL = "relayer.msq.io/pool"
LABEL_RELAYER = "relayer.msq.io/relayer"
LABEL_COMPONENT = "app.kubernetes.io/component"
ANNOTATION_ENDPOINT = "relayer.msq.io/endpoint"
ANNOTATION_CONFIG_HASH = "relayer.msq.io/config-hash"
# On a Relayer and its pod template: the chain nonce its counter was last restarted to (NonceHealthy Drift).
# Not under relayer.msq.io/: Kopf keeps its own state there and leaves those annotations out of the diff that
# triggers the reconcile, which must run to roll the Deployment.
ANNOTATION_NONCE_RESYNC = "healing.msq.io/nonce-resync"

_OZ_ID_BAD = re.compile(r"[^A-Za-z0-9_-]")


def owner_reference(owner: dict[str, Any], *, controller: bool = True) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", API_VERSION),
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def content_hash(value: Any) -> str:
    """A short stable hash, used to roll pods when their rendered config changes."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def oz_relayer_id(name: str) -> str:
    """OZ relayer ids are at most 36 characters of [A-Za-z0-9_-]; Kubernetes names may be longer or dotted."""
    clean = _OZ_ID_BAD.sub("-", name)
    if len(clean) <= 36:
        return clean
    return f"{clean[:27]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def vault_name(namespace: str, name: str) -> str:
    """Policy and AppRole name for one relayer (Vault names: letters, digits, '_' and '-')."""
    raw = _OZ_ID_BAD.sub("-", f"msq-{namespace}-{name}")
    if len(raw) <= 128:
        return raw
    return f"{raw[:110]}-{hashlib.sha256(raw.encode()).hexdigest()[:16]}"


def owned_meta(owner: dict[str, Any], name: str, labels: dict[str, str]) -> dict[str, Any]:
    """Metadata of an object `owner` controls: same namespace, garbage-collected with it."""
    return {
        "name": name,
        "namespace": owner["metadata"]["namespace"],
        "labels": labels,
        "ownerReferences": [owner_reference(owner)],
    }


def secret_data(values: dict[str, str]) -> dict[str, str]:
    """Secret `data` (base64), in a stable order so an unchanged Secret renders identically."""
    return {k: base64.b64encode(v.encode()).decode() for k, v in sorted(values.items())}


# Every container the operator renders runs with no privilege escalation, no capabilities and a read-only
# root filesystem (writable paths are explicit volumes).
CONTAINER_SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
