"""The Vault policy docs/install.md tells operators to give the operator is enough for everything the
operator does in Vault, and no more than the docs claim (real OpenBao)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import hvac
import hvac.exceptions
import pytest

from msq_devstack.openbao import OpenBao
from msq_operator import vault
from msq_operator.render.meta import vault_name

INSTALL_MD = Path(__file__).resolve().parents[2] / "docs" / "install.md"


def _documented_policy() -> str:
    blocks = re.findall(r"```hcl\n(.*?)```", INSTALL_MD.read_text(), re.S)
    assert len(blocks) == 1, "docs/install.md has one HCL block: the operator's Vault policy"
    return blocks[0]


@pytest.fixture(scope="module")
def operator_client(openbao: OpenBao) -> hvac.Client:
    root = openbao.client()
    name = f"msq-operator-docs-{uuid.uuid4().hex[:6]}"
    root.sys.create_or_update_policy(name=name, policy=_documented_policy())
    token = root.auth.token.create(policies=[name], ttl="1h")["auth"]["client_token"]
    return hvac.Client(url=openbao.addr, token=token)


def test_documented_policy_covers_the_relayer_lifecycle(
    openbao: OpenBao, operator_client: hvac.Client
) -> None:
    ns, relayer = f"docs-{uuid.uuid4().hex[:6]}", "payments-0"
    path = f"msq-relayer/{ns}/{relayer}"
    role = vault_name(ns, relayer)
    # Provision: the key once, then the read-one-key policy and AppRole, as the Relayer handler does.
    address = vault.ensure_relayer_key(operator_client, "secret", path)
    assert vault.ensure_relayer_key(operator_client, "secret", path) == address  # kept, not replaced
    creds = vault.ensure_approle(
        operator_client, role_name=role, policy_name=role, mount="secret", key_path=path
    )
    assert operator_client.auth.approle.read_role_id(role)["data"]["role_id"] == creds.role_id
    # The relayer's AppRole reads its key (as the OZ Relayer's vault signer does).
    relayer_client = hvac.Client(url=openbao.addr)
    relayer_client.auth.approle.login(role_id=creds.role_id, secret_id=creds.secret_id)
    key = relayer_client.secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", raise_on_deleted_version=True
    )
    assert key["data"]["data"]["value"]
    # Deleting the Relayer revokes its access and keeps the key.
    vault.revoke_approle(operator_client, role_name=role, policy_name=role)
    assert vault.read_relayer_address(operator_client, "secret", path) == address


def test_documented_policy_cannot_replace_or_wander(operator_client: hvac.Client, openbao: OpenBao) -> None:
    path = f"msq-relayer/docs-{uuid.uuid4().hex[:6]}/payments-0"
    vault.ensure_relayer_key(operator_client, "secret", path)
    with pytest.raises(hvac.exceptions.Forbidden):
        operator_client.secrets.kv.v2.create_or_update_secret(
            path=path, secret={"value": "00" * 32}, mount_point="secret"
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        operator_client.secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point="secret")
    openbao.client().secrets.kv.v2.create_or_update_secret(
        path="other-team/db", secret={"password": "x"}, mount_point="secret"
    )
    with pytest.raises(hvac.exceptions.Forbidden):
        operator_client.secrets.kv.v2.read_secret_version(
            path="other-team/db", mount_point="secret", raise_on_deleted_version=True
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        operator_client.sys.create_or_update_policy(
            name="not-msq", policy='path "*" { capabilities = ["read"] }'
        )
