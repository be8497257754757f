"""Request and response bodies of the gateway API: pydantic at the edge, and the OpenAPI schemas."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from msq_contracts.forward_request import checksum_address
from msq_gateway.config import UINT256_MAX, parse_uint

_HEX = frozenset("0123456789abcdefABCDEF")
UINT48_MAX = 2**48 - 1
Speed = Literal["fastest", "fast", "average", "safeLow"]
Kind = Literal["direct", "gasless"]
TxStatus = Literal[
    "pending", "sent", "submitted", "mined", "confirmed", "failed", "canceled", "expired", "unknown"
]


def _address(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 42 or value[:2] != "0x" or not _HEX.issuperset(value[2:]):
        raise ValueError("must be a 0x-prefixed 20-byte hex address")
    digits = value[2:]
    checksummed = checksum_address(bytes.fromhex(digits))
    if digits != digits.lower() and digits != digits.upper() and value != checksummed:
        raise ValueError("has an invalid EIP-55 checksum")
    return checksummed


def _hex_bytes(value: Any) -> bytes:
    if not isinstance(value, str) or value[:2] != "0x":
        raise ValueError("must be a 0x-prefixed hex string")
    digits = value[2:]
    if len(digits) % 2 or not _HEX.issuperset(digits):
        raise ValueError("must be an even number of hex digits after 0x")
    return bytes.fromhex(digits)


def _uint48(value: Any) -> int:
    out = parse_uint(value)
    if out > UINT48_MAX:
        raise ValueError("must fit uint48")
    return out


def _signature(value: Any) -> bytes:
    raw = _hex_bytes(value)
    if len(raw) != 65:
        raise ValueError("must be 65 bytes (r, s, v) as 0x + 130 hex digits")
    return raw


_UINT_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": UINT256_MAX},
        {"type": "string", "pattern": r"^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$"},
    ],
    "description": "Unsigned integer: JSON number, decimal string or 0x hex (use strings above 2**53).",
}

HexAddress = Annotated[
    str,
    BeforeValidator(_address),
    WithJsonSchema({"type": "string", "pattern": r"^0x[0-9a-fA-F]{40}$", "example": "0x" + "ab" * 20}),
]
HexData = Annotated[
    bytes,
    BeforeValidator(_hex_bytes),
    WithJsonSchema(
        {"type": "string", "pattern": r"^0x([0-9a-fA-F]{2})*$", "description": "0x-prefixed bytes."}
    ),
]
Uint256 = Annotated[int, BeforeValidator(parse_uint), WithJsonSchema(_UINT_SCHEMA)]
Uint48 = Annotated[int, BeforeValidator(_uint48), WithJsonSchema({**_UINT_SCHEMA, "description": "uint48."})]
Signature = Annotated[
    bytes,
    BeforeValidator(_signature),
    WithJsonSchema({"type": "string", "pattern": r"^0x[0-9a-fA-F]{130}$", "description": "65-byte r||s||v."}),
]


class _Body(BaseModel):
    # hex: the canonical JSON of a body (idempotency fingerprint) must not depend on bytes being UTF-8.
    model_config = ConfigDict(extra="forbid", ser_json_bytes="hex")


class DirectRelayRequest(_Body):
    """A call the relayer makes itself (msg.sender is the relayer)."""

    to: HexAddress = Field(description="Target contract; must be allowed by policy for direct calls.")
    data: HexData = Field(default=b"", description="Calldata; its 4-byte selector must be an allowed method.")
    value: Uint256 = Field(default=0, description="Native value in wei.")
    gas_limit: Annotated[int, Field(ge=21000, le=2**63 - 1)] | None = Field(
        default=None, alias="gasLimit", description="Gas limit; the configured default when absent."
    )
    speed: Speed | None = Field(default=None, description="OZ Relayer gas price speed.")


class ForwardRequestBody(_Body):
    """The ERC-2771 ForwardRequest the user signed (EIP-712, domain of the configured forwarder)."""

    from_: HexAddress = Field(alias="from", description="The signer; becomes _msgSender() in the target.")
    to: HexAddress
    value: Uint256 = Field(description="Wei forwarded with the call (paid by the relayer).")
    gas: Uint256 = Field(description="Gas for the inner call.")
    nonce: Uint256 = Field(description="Must equal the forwarder's nonces(from).")
    deadline: Uint48 = Field(description="Unix time after which the request is void.")
    data: HexData


class GaslessRelayRequest(_Body):
    """A signed meta-transaction, executed through ERC2771Forwarder.execute by a relayer."""

    request: ForwardRequestBody
    signature: Signature
    chain_id: int | None = Field(
        default=None,
        alias="chainId",
        ge=0,
        le=UINT256_MAX,
        description="Optional: the chain id the client signed for; refused with wrong_chain if it differs.",
    )
    forwarder: HexAddress | None = Field(
        default=None, description="Optional: the forwarder the client signed for; refused if it differs."
    )


class RelayAccepted(BaseModel):
    """The transaction was accepted by a relayer; follow it with GET /api/v1/relay/status/{id}."""

    id: str = Field(description="Gateway transaction id.")
    kind: Kind
    status: TxStatus
    relayer_id: str = Field(serialization_alias="relayerId")
    transaction_id: str = Field(
        serialization_alias="transactionId", description="The relayer's transaction id."
    )
    hash: str | None = None
    created_at: float = Field(serialization_alias="createdAt", description="Unix time.")


class TransactionStatusResponse(BaseModel):
    id: str
    kind: Kind
    status: TxStatus
    relayer_id: str = Field(serialization_alias="relayerId")
    transaction_id: str | None = Field(default=None, serialization_alias="transactionId")
    hash: str | None = None
    status_reason: str | None = Field(default=None, serialization_alias="statusReason")
    created_at: float = Field(serialization_alias="createdAt")
    updated_at: float = Field(serialization_alias="updatedAt")


class NonceResponse(BaseModel):
    address: str
    forwarder: str
    nonce: str = Field(description="Decimal string: the nonce to sign into the next ForwardRequest.")


class WebhookAck(BaseModel):
    ok: bool = True
    id: str | None = Field(
        default=None, description="Gateway transaction id the notification updated, if known."
    )


class HealthResponse(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
