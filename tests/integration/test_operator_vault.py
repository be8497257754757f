"""Relayer key and AppRole provisioning against a real OpenBao."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import hvac
import hvac.exceptions
import pytest
from eth_keys import keys

from msq_devstack.openbao import OpenBao
from msq_operator.vault import (
    AppRoleCredentials,
    VaultKeyError,
    ensure_approle,
    ensure_relayer_key,
    read_relayer_address,
    revoke_approle,
)


def _stored(openbao: OpenBao, path: str) -> str:
    resp = openbao.client().secrets.kv.v2.read_secret_version(
        path=path, mount_point=openbao.kv_mount, raise_on_deleted_version=True
    )
    return str(resp["data"]["data"]["value"])


def test_key_is_created_once_in_ozs_format_and_its_address_returned(openbao: OpenBao) -> None:
    client = openbao.client()
    assert read_relayer_address(client, openbao.kv_mount, "vault-test/once") is None
    address = ensure_relayer_key(client, openbao.kv_mount, "vault-test/once")
    stored = _stored(openbao, "vault-test/once")
    # OZ's vault signer wants 64 hex characters (it also accepts a 0x prefix).
    assert len(stored) == 64 and int(stored, 16) > 0
    assert keys.PrivateKey(bytes.fromhex(stored)).public_key.to_checksum_address() == address
    assert ensure_relayer_key(client, openbao.kv_mount, "vault-test/once") == address
    assert _stored(openbao, "vault-test/once") == stored
    assert read_relayer_address(client, openbao.kv_mount, "vault-test/once") == address
    meta = client.secrets.kv.v2.read_secret_metadata(path="vault-test/once", mount_point=openbao.kv_mount)
    assert meta["data"]["current_version"] == 1


def test_concurrent_calls_agree_on_one_key(openbao: OpenBao) -> None:
    def provision(_: int) -> str:
        return ensure_relayer_key(
            hvac.Client(url=openbao.addr, token=openbao.root_token), openbao.kv_mount, "vault-test/race"
        )

    with ThreadPoolExecutor(8) as pool:
        addresses = set(pool.map(provision, range(16)))
    assert len(addresses) == 1
    meta = openbao.client().secrets.kv.v2.read_secret_metadata(
        path="vault-test/race", mount_point=openbao.kv_mount
    )
    assert meta["data"]["current_version"] == 1


def test_an_existing_key_with_0x_prefix_is_read_not_replaced(openbao: OpenBao) -> None:
    client = openbao.client()
    key = "0x" + "11" * 32
    client.secrets.kv.v2.create_or_update_secret(
        path="vault-test/prefixed", secret={"value": key}, mount_point=openbao.kv_mount
    )
    expected = keys.PrivateKey(b"\x11" * 32).public_key.to_checksum_address()
    assert ensure_relayer_key(client, openbao.kv_mount, "vault-test/prefixed") == expected
    assert _stored(openbao, "vault-test/prefixed") == key


def test_a_deleted_key_is_never_silently_replaced(openbao: OpenBao) -> None:
    client = openbao.client()
    ensure_relayer_key(client, openbao.kv_mount, "vault-test/deleted")
    client.secrets.kv.v2.delete_latest_version_of_secret(
        path="vault-test/deleted", mount_point=openbao.kv_mount
    )
    with pytest.raises(VaultKeyError, match="refusing to overwrite"):
        ensure_relayer_key(client, openbao.kv_mount, "vault-test/deleted")


def test_approle_reads_only_its_key_and_revocation_is_idempotent(openbao: OpenBao) -> None:
    root = openbao.client()
    ensure_relayer_key(root, openbao.kv_mount, "vault-test/role-a")
    ensure_relayer_key(root, openbao.kv_mount, "vault-test/role-b")
    creds = ensure_approle(
        root,
        role_name="vault-test-a",
        policy_name="vault-test-a",
        mount=openbao.kv_mount,
        key_path="vault-test/role-a",
    )
    assert isinstance(creds, AppRoleCredentials)
    again = ensure_approle(
        root,
        role_name="vault-test-a",
        policy_name="vault-test-a",
        mount=openbao.kv_mount,
        key_path="vault-test/role-a",
    )
    assert again.role_id == creds.role_id and again.secret_id != creds.secret_id

    role = root.auth.approle.read_role("vault-test-a")["data"]
    assert role["token_policies"] == ["vault-test-a"]
    assert role["token_ttl"] == 3600 and role["secret_id_num_uses"] == 0

    app = hvac.Client(url=openbao.addr)
    app.auth.approle.login(role_id=creds.role_id, secret_id=creds.secret_id)
    app.secrets.kv.v2.read_secret_version(
        path="vault-test/role-a", mount_point=openbao.kv_mount, raise_on_deleted_version=True
    )
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.kv.v2.read_secret_version(
            path="vault-test/role-b", mount_point=openbao.kv_mount, raise_on_deleted_version=True
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.kv.v2.list_secrets(path="vault-test", mount_point=openbao.kv_mount)

    revoke_approle(root, role_name="vault-test-a", policy_name="vault-test-a")
    revoke_approle(root, role_name="vault-test-a", policy_name="vault-test-a")
    with pytest.raises(hvac.exceptions.VaultError):
        hvac.Client(url=openbao.addr).auth.approle.login(role_id=creds.role_id, secret_id=creds.secret_id)
    assert "vault-test-a" not in root.sys.list_policies()["data"]["policies"]
