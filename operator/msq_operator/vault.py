"""Relayer signing keys in Vault/OpenBao KV v2, and the AppRole each relayer reads its key with.

Transit has no secp256k1, so an EVM key lives in KV v2 as OZ Relayer's `vault` signer reads it: field
`value` at `{mount}/{key_path}`, 64 hex characters (OZ accepts them with or without `0x`). The key is
written once with check-and-set 0, so a second reconcile, a restarted operator or two racing workers can
never replace a key that may already hold funds. Nothing here logs, returns or raises the private key.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from dataclasses import dataclass

import hvac
import hvac.exceptions
from eth_account import Account
from eth_keys import keys

# Vault paths and names end up inside policy HCL: keep them to a charset that cannot break out of a
# quoted path or widen it with globs (`*`, `+`) or traversal.
_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]+$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

# OZ Relayer caches its Vault token for 45 minutes by default and logs in again with the same
# secret_id afterwards, so tokens must outlive that and the secret_id must be reusable.
TOKEN_TTL = "1h"
TOKEN_MAX_TTL = "2h"


class VaultKeyError(RuntimeError):
    """A relayer key could not be provisioned or read. The message never contains key material."""


@dataclass(frozen=True)
class AppRoleCredentials:
    role_id: str
    secret_id: str

    def __repr__(self) -> str:
        return f"AppRoleCredentials(role_id={self.role_id!r}, secret_id=<redacted>)"


def validate_path(value: str, what: str) -> str:
    """A KV mount or key path: `/`-separated segments of `[A-Za-z0-9_.-]`, no `.`/`..`, no globs."""
    segments = value.split("/")
    if not value or any(not _SEGMENT.match(s) or s in {".", ".."} for s in segments):
        raise ValueError(f"{what} {value!r} must be '/'-separated segments of letters, digits, '_', '.', '-'")
    return value


def validate_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{what} {value!r} must be 1-128 letters, digits, '_' or '-'")
    return value


def kv2_data_path(mount: str, key_path: str) -> str:
    """The API path a KV v2 read goes to, which is what a policy must name."""
    return f"{validate_path(mount, 'mount')}/data/{validate_path(key_path, 'key path')}"


def relayer_policy_hcl(mount: str, key_path: str) -> str:
    """A policy that can read exactly one secret: no list, no metadata, no other version paths."""
    return f'path "{kv2_data_path(mount, key_path)}" {{\n  capabilities = ["read"]\n}}\n'


def _key_bytes(hex_key: str) -> bytes:
    raw = hex_key.strip()
    if raw[:2] in ("0x", "0X"):
        raw = raw[2:]
    if len(raw) != 64 or not all(c in "0123456789abcdefABCDEF" for c in raw):
        raise VaultKeyError("stored relayer key is not 64 hex characters")
    return bytes.fromhex(raw)


def _address_of(hex_key: str) -> str:
    return keys.PrivateKey(_key_bytes(hex_key)).public_key.to_checksum_address()


def _new_key_hex() -> str:
    while True:
        candidate = secrets.token_bytes(32)
        if 0 < int.from_bytes(candidate, "big") < _SECP256K1_ORDER:
            return candidate.hex()


def _read_value(client: hvac.Client, mount: str, key_path: str) -> str | None:
    try:
        resp = client.secrets.kv.v2.read_secret_version(
            path=key_path, mount_point=mount, raise_on_deleted_version=True
        )
    except hvac.exceptions.InvalidPath:
        return None
    value = resp["data"]["data"].get("value")
    if not isinstance(value, str):
        raise VaultKeyError(f"secret {mount}/{key_path} has no string field 'value'")
    return value


def read_relayer_address(client: hvac.Client, mount: str, key_path: str) -> str | None:
    """The checksum address of the key at `{mount}/{key_path}`, or None when there is no key."""
    validate_path(mount, "mount")
    validate_path(key_path, "key path")
    value = _read_value(client, mount, key_path)
    return None if value is None else _address_of(value)


def ensure_relayer_key(client: hvac.Client, mount: str, key_path: str) -> str:
    """Create the relayer key once (KV v2 check-and-set 0) and return its checksum address.

    If a key is already there, by an earlier call or a concurrent one, it is kept and its address returned.
    """
    validate_path(mount, "mount")
    validate_path(key_path, "key path")
    existing = read_relayer_address(client, mount, key_path)
    if existing is not None:
        return existing
    new_key = _new_key_hex()
    try:
        client.secrets.kv.v2.create_or_update_secret(
            path=key_path, secret={"value": new_key}, cas=0, mount_point=mount
        )
    except hvac.exceptions.InvalidRequest:
        # cas=0 refused: someone wrote the key between our read and our write. Theirs wins.
        address = read_relayer_address(client, mount, key_path)
        if address is None:
            # A deleted latest version also refuses cas=0; never resurrect or replace it silently.
            raise VaultKeyError(
                f"key at {mount}/{key_path} exists but its latest version is deleted or "
                "destroyed; refusing to overwrite"
            ) from None
        return address
    except hvac.exceptions.VaultError as exc:
        # The hvac error carries Vault's message, never our request body, but keep the chain out anyway.
        raise VaultKeyError(f"writing key {mount}/{key_path} failed: {type(exc).__name__}: {exc}") from None
    return _address_of(new_key)


def sign_transaction(
    client: hvac.Client, mount: str, key_path: str, tx: dict[str, object]
) -> tuple[str, str]:
    """Sign `tx` with the key at `{mount}/{key_path}`; returns (raw transaction, hash), both 0x-hex. The key
    is read, used and dropped inside this call (Transit has no secp256k1 to sign with in Vault)."""
    validate_path(mount, "mount")
    validate_path(key_path, "key path")
    value = _read_value(client, mount, key_path)
    if value is None:
        raise VaultKeyError(f"no key at {mount}/{key_path}")
    signed = Account.sign_transaction(tx, _key_bytes(value))
    return "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()


def ensure_approle(
    client: hvac.Client,
    *,
    role_name: str,
    policy_name: str,
    mount: str,
    key_path: str,
    approle_mount: str = "approle",
) -> AppRoleCredentials:
    """Create or update the read-one-key policy and its AppRole; return the role_id and a new secret_id.

    Every call issues a fresh secret_id (older ones stay valid until `revoke_approle`), so call it when the
    relayer's credentials Secret is being (re)created, not on every reconcile.
    """
    validate_name(role_name, "role name")
    validate_name(policy_name, "policy name")
    validate_path(approle_mount, "approle mount")
    client.sys.create_or_update_policy(name=policy_name, policy=relayer_policy_hcl(mount, key_path))
    client.auth.approle.create_or_update_approle(
        role_name,
        token_policies=[policy_name],
        token_type="service",
        token_ttl=TOKEN_TTL,
        token_max_ttl=TOKEN_MAX_TTL,
        token_num_uses=0,
        secret_id_ttl="0",
        secret_id_num_uses=0,
        bind_secret_id=True,
        mount_point=approle_mount,
    )
    role_id = client.auth.approle.read_role_id(role_name, mount_point=approle_mount)["data"]["role_id"]
    generated = client.auth.approle.generate_secret_id(role_name, mount_point=approle_mount)
    secret_id = generated["data"]["secret_id"]
    return AppRoleCredentials(role_id=role_id, secret_id=secret_id)


def revoke_approle(
    client: hvac.Client, *, role_name: str, policy_name: str, approle_mount: str = "approle"
) -> None:
    """Delete the AppRole (and with it every secret_id) and its policy. Missing pieces are fine."""
    validate_name(role_name, "role name")
    validate_name(policy_name, "policy name")
    validate_path(approle_mount, "approle mount")
    with contextlib.suppress(hvac.exceptions.InvalidPath):
        client.auth.approle.delete_role(role_name, mount_point=approle_mount)
    with contextlib.suppress(hvac.exceptions.InvalidPath):
        client.sys.delete_policy(name=policy_name)
