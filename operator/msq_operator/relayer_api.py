"""The OZ Relayer transaction endpoints the operator heals through: read, replace (PUT), cancel (DELETE)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class RelayerApiError(Exception):
    """The relayer refused (its status code and message) or did not answer (status None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RelayerApi:
    http: httpx.Client
    endpoint: str
    relayer_id: str
    api_key: str

    def _call(self, method: str, tx_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.endpoint}/api/v1/relayers/{self.relayer_id}/transactions/{tx_id}"
        try:
            r = self.http.request(method, url, json=body, headers={"Authorization": f"Bearer {self.api_key}"})
        except httpx.HTTPError as exc:
            raise RelayerApiError(f"{method} transaction {tx_id}: {type(exc).__name__}") from None
        try:
            envelope = r.json()
        except ValueError:
            envelope = None
        data = envelope.get("data") if isinstance(envelope, dict) else None
        if r.status_code != 200 or not isinstance(data, dict):
            reason = envelope.get("error") if isinstance(envelope, dict) else r.text[:200]
            raise RelayerApiError(
                f"{method} transaction {tx_id}: HTTP {r.status_code}: {reason}", r.status_code
            )
        return data

    def transaction(self, tx_id: str) -> dict[str, Any]:
        return self._call("GET", tx_id)

    def replace(self, tx_id: str, request: dict[str, Any]) -> dict[str, Any]:
        return self._call("PUT", tx_id, request)

    def cancel(self, tx_id: str) -> dict[str, Any]:
        return self._call("DELETE", tx_id)
