"""OpenBao is real: KV v2 round trip, AppRole login confined by its policy."""

import hvac
import hvac.exceptions
import pytest

from msq_devstack.openbao import OpenBao


def test_kv2_approle_can_read_only_its_path(openbao: OpenBao) -> None:
    root = openbao.client()
    root.secrets.kv.v2.create_or_update_secret(
        path="smoke/allowed", secret={"value": "a"}, mount_point=openbao.kv_mount
    )
    root.secrets.kv.v2.create_or_update_secret(
        path="smoke/other", secret={"value": "b"}, mount_point=openbao.kv_mount
    )
    root.sys.create_or_update_policy(
        "smoke-allowed", 'path "secret/data/smoke/allowed" { capabilities = ["read"] }'
    )
    root.auth.approle.create_or_update_approle("smoke", token_policies=["smoke-allowed"])
    role_id = root.auth.approle.read_role_id("smoke")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("smoke")["data"]["secret_id"]

    app = hvac.Client(url=openbao.addr)
    app.auth.approle.login(role_id=role_id, secret_id=secret_id)
    got = app.secrets.kv.v2.read_secret_version(
        path="smoke/allowed", mount_point="secret", raise_on_deleted_version=True
    )
    assert got["data"]["data"] == {"value": "a"}
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.kv.v2.read_secret_version(
            path="smoke/other", mount_point="secret", raise_on_deleted_version=True
        )
