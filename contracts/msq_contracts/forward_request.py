"""EIP-712 ForwardRequest of OpenZeppelin's ERC2771Forwarder (v5): hash, sign, recover, execute calldata.

The gateway checks every gasless request here before it spends relayer gas, so hashing, recovery and
calldata encoding are written out directly (precomputed type hash, cached domain separators, fixed ABI
layout) instead of going through eth_account's generic typed-data encoder, which re-parses the type
description on every call. Unit tests prove the fast paths equal the generic ones.

Rules mirror the forwarder exactly, so anything accepted here is accepted on chain:
- a signature is 65 bytes r || s || v with v in {27, 28} and s in the lower half order (OZ's ECDSA
  rejects v in {0, 1} and high s; `normalize_signature` converts the former);
- the nonce is signed but not sent: the forwarder uses its own `nonces(from)`, so a request whose nonce
  differs from the on-chain one recovers to another address and fails as an invalid signer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_hash.auto import keccak
from eth_keys.exceptions import BadSignature
from eth_keys.main import KeyAPI
from eth_utils.exceptions import ValidationError

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
# OZ ECDSA.tryRecover's bound on s (0x7FFF...20A0).
SECP256K1_HALF_N = SECP256K1_N // 2
UINT256_MAX = 2**256 - 1
UINT48_MAX = 2**48 - 1

FORWARD_REQUEST_TYPE = (
    "ForwardRequest(address from,address to,uint256 value,uint256 gas,uint256 nonce,uint48 deadline,"
    "bytes data)"
)
EIP712_DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
FORWARD_REQUEST_TYPEHASH = keccak(FORWARD_REQUEST_TYPE.encode())
EIP712_DOMAIN_TYPEHASH = keccak(EIP712_DOMAIN_TYPE.encode())

EXECUTE_SIGNATURE = "execute((address,address,uint256,uint256,uint48,bytes,bytes))"
EXECUTE_SELECTOR = keccak(EXECUTE_SIGNATURE.encode())[:4]

_EIP712_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "ForwardRequest": [
        {"name": "from", "type": "address"},
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "gas", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint48"},
        {"name": "data", "type": "bytes"},
    ],
}

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_HIGH_NIBBLES = frozenset("89abcdef")
_ZERO12 = bytes(12)
_KEYS = KeyAPI()


def ecc_backend_name() -> str:
    """Class name of the secp256k1 backend in use: `CoinCurveECCBackend` (libsecp256k1) is ~50x faster
    than the pure-Python `NativeECCBackend`, so a gateway should refuse to start on the latter."""
    return type(_KEYS.backend).__name__


class InvalidSignature(ValueError):
    """The signature cannot be the forwarder-acceptable signature of any request."""


def checksum_address(raw: bytes) -> str:
    """EIP-55 form of a 20-byte address; a few times faster than eth_utils.to_checksum_address, which
    validates and converts its input generically and dominated the cost of a recovery."""
    lower = raw.hex()
    digest = keccak(lower.encode()).hex()
    return "0x" + "".join(
        c.upper() if d in _HIGH_NIBBLES else c for c, d in zip(lower, digest[:40], strict=True)
    )


def _check_address(value: object, field: str) -> None:
    if not isinstance(value, str) or len(value) != 42 or value[:2] not in ("0x", "0X"):
        raise ValueError(f"{field} must be a 0x-prefixed 20-byte hex address, got {value!r}")
    digits = value[2:]
    if not _HEX_DIGITS.issuperset(digits):
        raise ValueError(f"{field} is not hexadecimal: {value!r}")
    # Mixed case claims an EIP-55 checksum; a wrong one is almost always a mistyped address.
    mixed_case = digits != digits.lower() and digits != digits.upper()
    if mixed_case and checksum_address(bytes.fromhex(digits)) != value:
        raise ValueError(f"{field} has an invalid EIP-55 checksum: {value!r}")


def _check_uint(value: object, field: str, maximum: int, bits: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{field} must be an integer, got {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValueError(f"{field} must fit uint{bits} (0..{maximum}), got {value}")


@dataclass(frozen=True)
class ForwardRequest:
    """What the user signs. Validated on construction, so an instance is always encodable."""

    from_: str
    to: str
    value: int
    gas: int
    nonce: int
    deadline: int
    data: bytes

    def __post_init__(self) -> None:
        _check_address(self.from_, "from")
        _check_address(self.to, "to")
        _check_uint(self.value, "value", UINT256_MAX, 256)
        _check_uint(self.gas, "gas", UINT256_MAX, 256)
        _check_uint(self.nonce, "nonce", UINT256_MAX, 256)
        _check_uint(self.deadline, "deadline", UINT48_MAX, 48)
        if not isinstance(self.data, bytes):
            raise ValueError(f"data must be bytes, got {type(self.data).__name__}")


@dataclass(frozen=True)
class ForwarderDomain:
    """EIP-712 domain of one deployed forwarder (its constructor name, version "1")."""

    name: str
    chain_id: int
    verifying_contract: str
    version: str = "1"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not isinstance(self.version, str):
            raise ValueError("domain name and version must be strings")
        _check_uint(self.chain_id, "chain_id", UINT256_MAX, 256)
        _check_address(self.verifying_contract, "verifying_contract")


@lru_cache(maxsize=256)
def domain_separator(domain: ForwarderDomain) -> bytes:
    """keccak256 of the encoded domain; cached because a gateway serves one or a few forwarders."""
    return keccak(
        EIP712_DOMAIN_TYPEHASH
        + keccak(domain.name.encode())
        + keccak(domain.version.encode())
        + domain.chain_id.to_bytes(32, "big")
        + _ZERO12
        + bytes.fromhex(domain.verifying_contract[2:])
    )


def _struct_hash(req: ForwardRequest) -> bytes:
    # abi.encode of static words: the layout OZ hashes in _recoverForwardRequestSigner.
    return keccak(
        b"".join(
            (
                FORWARD_REQUEST_TYPEHASH,
                _ZERO12,
                bytes.fromhex(req.from_[2:]),
                _ZERO12,
                bytes.fromhex(req.to[2:]),
                req.value.to_bytes(32, "big"),
                req.gas.to_bytes(32, "big"),
                req.nonce.to_bytes(32, "big"),
                req.deadline.to_bytes(32, "big"),
                keccak(req.data),
            )
        )
    )


def hash_typed_request(req: ForwardRequest, domain: ForwarderDomain) -> bytes:
    """The 32-byte EIP-712 digest the user signs (`_hashTypedDataV4` of the forwarder)."""
    return keccak(b"\x19\x01" + domain_separator(domain) + _struct_hash(req))


def typed_data(req: ForwardRequest, domain: ForwarderDomain) -> dict[str, Any]:
    """Full EIP-712 typed data, as wallets take it for `eth_signTypedData_v4` (JSON-serialisable)."""
    return {
        "types": {k: [dict(f) for f in v] for k, v in _EIP712_TYPES.items()},
        "primaryType": "ForwardRequest",
        "domain": {
            "name": domain.name,
            "version": domain.version,
            "chainId": domain.chain_id,
            "verifyingContract": checksum_address(bytes.fromhex(domain.verifying_contract[2:])),
        },
        "message": {
            "from": checksum_address(bytes.fromhex(req.from_[2:])),
            "to": checksum_address(bytes.fromhex(req.to[2:])),
            "value": req.value,
            "gas": req.gas,
            "nonce": req.nonce,
            "deadline": req.deadline,
            "data": "0x" + req.data.hex(),
        },
    }


def _split_signature(signature: bytes) -> tuple[int, int, int]:
    if not isinstance(signature, bytes | bytearray):
        raise InvalidSignature(f"signature must be bytes, got {type(signature).__name__}")
    if len(signature) != 65:
        raise InvalidSignature(f"signature must be 65 bytes (r, s, v), got {len(signature)}")
    r = int.from_bytes(signature[0:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28):
        hint = " (use normalize_signature for v in {0, 1})" if v in (0, 1) else ""
        raise InvalidSignature(f"signature v must be 27 or 28, got {v}{hint}")
    if not 0 < r < SECP256K1_N:
        raise InvalidSignature("signature r is out of range (must be 1..n-1)")
    if not 0 < s <= SECP256K1_HALF_N:
        raise InvalidSignature(
            "signature s is out of range (must be 1..n/2: high-s signatures are malleable)"
        )
    return r, s, v


def normalize_signature(signature: bytes) -> bytes:
    """Rewrite v from {0, 1} (some hardware wallets) to the {27, 28} the forwarder accepts."""
    if len(signature) == 65 and signature[64] in (0, 1):
        return bytes(signature[:64]) + bytes((signature[64] + 27,))
    return bytes(signature)


def recover_signer(req: ForwardRequest, signature: bytes, domain: ForwarderDomain) -> str:
    """Checksum address that signed `req` for `domain`; raises InvalidSignature when none did.

    Whether that address is `req.from_`, and whether `req.nonce` is the forwarder's current nonce,
    is the caller's check.
    """
    r, s, v = _split_signature(signature)
    digest = hash_typed_request(req, domain)
    try:
        public_key = _KEYS.Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(digest)
    except (BadSignature, ValidationError, ValueError) as exc:
        # r is not the x coordinate of a curve point: ecrecover returns address(0) for these.
        raise InvalidSignature(f"signature does not recover to any public key: {exc}") from exc
    return checksum_address(public_key.to_canonical_address())


def sign_request(req: ForwardRequest, private_key: str | bytes, domain: ForwarderDomain) -> bytes:
    """65-byte r || s || v (v in {27, 28}) signature, for tests, demos and tools."""
    key_bytes = bytes.fromhex(private_key.removeprefix("0x")) if isinstance(private_key, str) else private_key
    signature = _KEYS.PrivateKey(key_bytes).sign_msg_hash(hash_typed_request(req, domain))
    r: int = signature.r
    s: int = signature.s
    v: int = signature.v
    # libsecp256k1 always returns low s, so this is acceptable to OZ's ECDSA as is.
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((v + 27,))


def _padded(blob: bytes) -> bytes:
    return len(blob).to_bytes(32, "big") + blob + bytes(-len(blob) % 32)


# Tuple head: from, to, value, gas, deadline, offset(data), offset(signature) = 7 words.
_TUPLE_HEAD = 7 * 32
_OUTER_OFFSET = (32).to_bytes(32, "big")


def encode_execute(req: ForwardRequest, signature: bytes) -> bytes:
    """Calldata of `ERC2771Forwarder.execute(ForwardRequestData)`.

    ForwardRequestData is (from, to, value, gas, deadline, data, signature): no nonce. The layout is the
    standard ABI encoding of one dynamic tuple argument, written out because this runs per request; the
    unit tests decode it with eth_abi.
    """
    signature = bytes(signature)
    data_tail = _padded(req.data)
    return b"".join(
        (
            EXECUTE_SELECTOR,
            _OUTER_OFFSET,
            _ZERO12,
            bytes.fromhex(req.from_[2:]),
            _ZERO12,
            bytes.fromhex(req.to[2:]),
            req.value.to_bytes(32, "big"),
            req.gas.to_bytes(32, "big"),
            req.deadline.to_bytes(32, "big"),
            _TUPLE_HEAD.to_bytes(32, "big"),
            (_TUPLE_HEAD + len(data_tail)).to_bytes(32, "big"),
            data_tail,
            _padded(signature),
        )
    )


# Measured on anvil (Cancun/Prague schedule) with a target that burns all the gas it gets: the forwarder
# spends at most ~36k outside the forwarded call for requests up to 10 kB (first use of a nonce slot);
# 45k leaves headroom. Memory for the copied data grows quadratically and is added on top.
_FORWARDER_OVERHEAD = 45_000
# CALL with value: 9,000, plus 25,000 when it creates the recipient account.
_VALUE_TRANSFER_GAS = 34_000


def execute_gas_limit(req: ForwardRequest, signature: bytes) -> int:
    """A transaction gas limit for `execute(req)` that can never trip the forwarder's 63/64 check.

    The forwarder ends in `invalid()` (burning the whole limit, nonce unused) when the target was given
    less than `req.gas`, which happens whenever the outer limit leaves less than ~64/63 of `req.gas` at
    the call. Unused gas is refunded, so this ceiling costs nothing over an exact estimate; it assumes
    the Ethereum gas schedule (chains that add L1 data gas, such as Arbitrum, need their own estimate).
    """
    calldata = encode_execute(req, signature)
    zeros = calldata.count(0)
    nonzeros = len(calldata) - zeros
    intrinsic = 21_000 + 4 * zeros + 16 * nonzeros
    # EIP-7623 (Prague): a data-heavy transaction pays at least 10 gas per calldata token.
    floor = 21_000 + 10 * (zeros + 4 * nonzeros)
    words = (len(req.data) + 20 + 31) // 32
    # The data is copied to memory twice (hashing, then data ++ from for the call).
    memory = 2 * (3 * words + words * words // 512) + 6 * words
    forwarded = req.gas + req.gas // 63 + 1
    value = _VALUE_TRANSFER_GAS if req.value else 0
    return max(floor, intrinsic + _FORWARDER_OVERHEAD + memory + forwarded + value)
