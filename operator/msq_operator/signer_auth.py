"""The operator's own Vault login, from the Secret that `spec.signer.auth` names."""

from __future__ import annotations

import hvac

from msq_operator.kube_io import Kube
from msq_operator.resources.common import Signer


def vault_client(kube: Kube, namespace: str, signer: Signer) -> hvac.Client:
    secret = kube.read_secret(namespace, signer.auth.secret_ref.name)
    where = f"Secret {namespace}/{signer.auth.secret_ref.name}"
    if signer.auth.method == "Token":
        if "token" not in secret:
            raise LookupError(f"{where} has no key 'token' (spec.signer.auth.method is Token)")
        return hvac.Client(url=signer.vault_address, token=secret["token"], timeout=10)
    missing = [k for k in ("role_id", "secret_id") if k not in secret]
    if missing:
        raise LookupError(f"{where} lacks {', '.join(missing)} (spec.signer.auth.method is AppRole)")
    c = hvac.Client(url=signer.vault_address, timeout=10)
    c.auth.approle.login(
        role_id=secret["role_id"], secret_id=secret["secret_id"], mount_point=signer.approle_mount
    )
    return c
