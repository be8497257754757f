"""Stable error codes and the one JSON error shape every non-2xx response uses.

Clients branch on `code`, so codes never change meaning; `message` is for humans and names the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# code -> HTTP status. One table so the OpenAPI document, the handlers and the tests agree.
ERROR_STATUS: dict[str, int] = {
    # request shape
    "malformed_json": 400,
    "invalid_field": 422,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    # auth
    "missing_api_key": 401,
    "unknown_api_key": 401,
    "bad_webhook_signature": 401,
    # gasless checks
    "wrong_chain": 400,
    "wrong_forwarder": 400,
    "expired": 400,
    "bad_signature": 400,
    "nonce_mismatch": 409,
    # policy
    "contract_not_allowed": 403,
    "method_not_allowed": 403,
    "value_too_high": 403,
    "user_blocked": 403,
    "gasless_not_allowed": 403,
    "direct_not_allowed": 403,
    # quota and idempotency
    "quota_exceeded": 429,
    "idempotency_conflict": 409,
    "idempotency_in_progress": 409,
    # relaying
    "no_relayer_available": 503,
    "relayer_rejected": 502,
    "relay_outcome_unknown": 504,
    "chain_unavailable": 503,
    "store_unavailable": 503,
    # generic HTTP
    "not_ready": 503,
    "not_found": 404,
    "http_method_not_allowed": 405,
    "internal_error": 500,
}


class ErrorBody(BaseModel):
    """Body of every error response."""

    code: str = Field(description="Stable machine-readable code, e.g. `bad_signature`, `quota_exceeded`.")
    message: str = Field(description="Human-readable explanation naming the offending field.")
    field: str | None = Field(default=None, description="Dotted path of the offending field, if any.")
    id: str | None = Field(
        default=None,
        description="Gateway transaction id, when a transaction may exist (e.g. `relay_outcome_unknown`).",
    )


class GatewayError(Exception):
    """Raised anywhere in request handling; turned into an `ErrorBody` response by the app."""

    def __init__(
        self,
        code: str,
        message: str,
        field: str | None = None,
        *,
        id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if code not in ERROR_STATUS:
            raise ValueError(f"unregistered error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.id = id
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return ERROR_STATUS[self.code]

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message, "field": self.field}
        if self.id is not None:
            out["id"] = self.id
        return out


def openapi_errors(*codes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the given codes, grouped by HTTP status."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(ERROR_STATUS[code], []).append(code)
    return {
        status: {"model": ErrorBody, "description": "Error; `code` is one of: " + ", ".join(sorted(cs))}
        for status, cs in sorted(by_status.items())
    }
