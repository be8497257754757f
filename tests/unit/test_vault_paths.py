"""Pure parts of the Vault provisioning: path checks and the one-path policy."""

from __future__ import annotations

import pytest

from msq_operator.vault import (
    AppRoleCredentials,
    kv2_data_path,
    relayer_policy_hcl,
    validate_name,
    validate_path,
)


def test_policy_reads_exactly_the_kv2_data_path_of_one_key() -> None:
    hcl = relayer_policy_hcl("secret", "msq/payments/payments-0")
    assert hcl == 'path "secret/data/msq/payments/payments-0" {\n  capabilities = ["read"]\n}\n'
    assert kv2_data_path("kv", "a/b") == "kv/data/a/b"


@pytest.mark.parametrize(
    "path",
    [
        "",
        "a//b",
        "/a",
        "a/",
        "a/../b",
        "..",
        "a/./b",
        "a/*",
        "a/+/b",
        'a"b',
        "a b",
        "a\nb",
        "a{b}",
    ],
)
def test_paths_that_could_widen_or_break_a_policy_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        validate_path(path, "key path")
    with pytest.raises(ValueError):
        relayer_policy_hcl("secret", path)


@pytest.mark.parametrize("path", ["a", "msq/payments/payments-0", "ns_1/key.v2"])
def test_ordinary_paths_pass(path: str) -> None:
    assert validate_path(path, "key path") == path


@pytest.mark.parametrize("name", ["", "a/b", "a b", "x" * 129, "ro:le"])
def test_role_and_policy_names_are_checked(name: str) -> None:
    with pytest.raises(ValueError):
        validate_name(name, "role name")


def test_credentials_repr_hides_the_secret_id() -> None:
    creds = AppRoleCredentials(role_id="role-1", secret_id="super-secret-id")
    assert "super-secret-id" not in repr(creds)
    assert "role-1" in repr(creds)
