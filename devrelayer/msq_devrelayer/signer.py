"""The relayer's signing key, fetched from Vault/OpenBao KV v2 with the AppRole, as OZ's vault signer does.

OZ logs in at `approle/`, reads `{mount_point}/{key_name}` and takes field `value` as 64 hex characters
with or without `0x`. The key stays inside this module's signer object: no repr, log line or error message
carries it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import hvac
import hvac.exceptions
from eth_account import Account
from eth_account.datastructures import SignedTransaction

from msq_devrelayer.config import VaultSigner
from msq_devrelayer.errors import StartupError

log = logging.getLogger(__name__)


class KeySigner:
    """Signs EVM transactions with a key it never exposes."""

    __slots__ = ("_account", "address")

    def __init__(self, key: bytes) -> None:
        self._account = Account.from_key(key)
        self.address: str = self._account.address

    def sign(self, tx: dict[str, Any]) -> SignedTransaction:
        return self._account.sign_transaction(tx)

    def __repr__(self) -> str:
        return f"KeySigner(address={self.address})"


def _decode_key(value: object) -> bytes:
    if not isinstance(value, str):
        raise StartupError("signer: the Vault secret has no string field 'value'")
    raw = value.strip()
    if raw[:2] in ("0x", "0X"):
        raw = raw[2:]
    if not raw:
        raise StartupError("signer: empty key received from Vault")
    if not all(c in "0123456789abcdefABCDEF" for c in raw):
        raise StartupError("signer: invalid hex characters in the Vault secret")
    if len(raw) != 64:
        raise StartupError(f"signer: invalid key length: expected 64 hex characters, got {len(raw)}")
    return bytes.fromhex(raw)


def load_vault_signer(cfg: VaultSigner, expected_address: str | None) -> KeySigner:
    where = f"{cfg.vault_address} {cfg.mount_point}/{cfg.key_name}"
    client = hvac.Client(url=cfg.vault_address, namespace=cfg.namespace, timeout=10)
    try:
        client.auth.approle.login(role_id=cfg.role_id.reveal(), secret_id=cfg.secret_id.reveal())
    except hvac.exceptions.VaultError as exc:
        raise StartupError(
            f"signer: AppRole login to {cfg.vault_address} failed: {type(exc).__name__}"
        ) from None
    except OSError as exc:
        raise StartupError(f"signer: cannot reach Vault at {cfg.vault_address}: {exc}") from None
    try:
        resp = client.secrets.kv.v2.read_secret_version(
            path=cfg.key_name, mount_point=cfg.mount_point, raise_on_deleted_version=True
        )
    except hvac.exceptions.Forbidden:
        raise StartupError(f"signer: permission denied reading {where}") from None
    except hvac.exceptions.InvalidPath:
        raise StartupError(f"signer: no key at {where}") from None
    except hvac.exceptions.VaultError as exc:
        raise StartupError(f"signer: reading {where} failed: {type(exc).__name__}") from None
    finally:
        # The token only served this one read; revoke it so it cannot be reused from memory or logs.
        with contextlib.suppress(Exception):  # best effort: the token also expires on its own
            client.auth.token.revoke_self()
    signer = KeySigner(_decode_key(resp["data"]["data"].get("value")))
    if expected_address is not None and signer.address.lower() != expected_address.lower():
        raise StartupError(
            f"signer: key at {where} belongs to {signer.address}, not the expected {expected_address}"
        )
    log.info("signer loaded from %s: address %s", where, signer.address)
    return signer
