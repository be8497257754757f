"""The relayer's signing key, fetched from Vault/OpenBao KV v2 with the AppRole, as OZ's vault signer does.

OZ logs in at `approle/`, reads `{mount_point}/{key_name}` and takes field `value` as 64 hex characters
with or without `0x`. The key stays inside this module's signer object: no repr, log line or error message
carries it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import coincurve
import hvac
import hvac.exceptions
import rlp
from eth_account import Account
from eth_account.datastructures import SignedTransaction
from eth_hash.auto import keccak
from hexbytes import HexBytes

from msq_devrelayer.config import VaultSigner
from msq_devrelayer.errors import StartupError

log = logging.getLogger(__name__)


_UINT256 = 2**256


def _uint(tx: dict[str, Any], name: str) -> int:
    value = tx[name]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _UINT256:
        raise ValueError(f"{name}: not an unsigned 256-bit integer")
    return value


def _hex(value: Any, name: str, size: int | None = None) -> bytes:
    if not isinstance(value, str) or value[:2] not in ("0x", "0X"):
        raise ValueError(f"{name}: not 0x-prefixed hex")
    raw = bytes.fromhex(value[2:])
    if size is not None and len(raw) != size:
        raise ValueError(f"{name}: {len(raw)} bytes, not {size}")
    return raw


class KeySigner:
    """Signs EVM transactions with a key it never exposes.

    Legacy (EIP-155) and EIP-1559 transactions are encoded with `rlp` and signed with libsecp256k1 directly:
    the same bytes eth_account produces (tests/unit/test_devrelayer_signer.py compares them), at about a fifth
    of its CPU, which was a quarter of the stand-in's cost per transaction (bench/README.md, pool_scaling).
    """

    __slots__ = ("_key", "address")

    def __init__(self, key: bytes) -> None:
        self._key = coincurve.PrivateKey(key)
        self.address: str = Account.from_key(key).address

    def sign(self, tx: dict[str, Any]) -> SignedTransaction:
        chain_id, nonce, gas, value = (_uint(tx, n) for n in ("chainId", "nonce", "gas", "value"))
        to = _hex(tx["to"], "to", 20) if tx.get("to") is not None else b""
        data = _hex(tx.get("data") or "0x", "data")
        if tx.get("type") == 2:
            fees = [_uint(tx, "maxPriorityFeePerGas"), _uint(tx, "maxFeePerGas")]
            fields = [chain_id, nonce, *fees, gas, to, value, data, []]
            r, s, parity = self._sign_hash(keccak(b"\x02" + rlp.encode(fields)))
            v = parity
            raw = b"\x02" + rlp.encode([*fields, v, r, s])
        else:
            fields = [nonce, _uint(tx, "gasPrice"), gas, to, value, data]
            r, s, parity = self._sign_hash(keccak(rlp.encode([*fields, chain_id, 0, 0])))
            v = chain_id * 2 + 35 + parity
            raw = rlp.encode([*fields, v, r, s])
        return SignedTransaction(HexBytes(raw), HexBytes(keccak(raw)), r, s, v)

    def _sign_hash(self, digest: bytes) -> tuple[int, int, int]:
        # libsecp256k1 signs deterministically (RFC 6979) with a low s, as eth_account does.
        sig = self._key.sign_recoverable(digest, hasher=None)
        return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]

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
