"""The OZ Relayer REST subset: `{success, data, error}` envelopes, Bearer API key, OZ's status codes."""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from msq_devrelayer.api_models import EvmTransactionRequest
from msq_devrelayer.engine import Engine, Rejected, UnknownTransaction
from msq_devrelayer.records import STATUSES
from msq_devrelayer.rpc import RpcError, RpcTransportError


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class QueryError(Exception):
    """A query string OZ's extractor would not deserialize."""


def ok(data: Any) -> JSONResponse:
    return JSONResponse({"success": True, "data": data})


def paginated(items: list[Any], page: int, per_page: int, total: int) -> JSONResponse:
    return JSONResponse(
        {
            "success": True,
            "data": items,
            "pagination": {"current_page": page, "per_page": per_page, "total_items": total},
        }
    )


# actix-web's default JSON payload limit (types/json.rs DEFAULT_LIMIT), which OZ does not change.
JSON_LIMIT = 2_097_152


async def _json_body(request: Request) -> tuple[Any, Response | None]:
    """The body as actix's Json extractor reads it, or the plain-text refusal it answers with."""
    mime = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    subtype = mime.partition("/")[2]
    if not (subtype == "json" or subtype.endswith("+json")):
        return None, PlainTextResponse("Content type error", status_code=400)
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > JSON_LIMIT:
        return None, PlainTextResponse(
            f"JSON payload ({length} bytes) is larger than allowed (limit: {JSON_LIMIT} bytes).",
            status_code=413,
        )
    raw = await request.body()
    if len(raw) > JSON_LIMIT:
        return None, PlainTextResponse(
            f"JSON payload has exceeded limit ({JSON_LIMIT} bytes).", status_code=413
        )
    try:
        return json.loads(raw), None
    except ValueError as exc:  # also a body that is not UTF-8
        return None, PlainTextResponse(f"Json deserialize error: {exc}", status_code=400)


def _u32(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # serde's u32 from a query string: ASCII digits only (an optional "+"), within 32 bits.
    digits = raw.removeprefix("+")
    if not digits.isascii() or not digits.isdigit():
        raise QueryError("invalid digit found in string" if raw else "cannot parse integer from empty string")
    value = int(digits)
    if value >= 2**32:
        raise QueryError("number too large to fit in target type")
    return value


def _pagination(request: Request) -> tuple[int, int]:
    """`page` (default 1) and `per_page` (default 10), as OZ's PaginationQuery reads them."""
    return _u32(request, "page", 1), _u32(request, "per_page", 10)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "error": message}, status_code=status)


def _validation_message(errors: list[Any]) -> str:
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        parts.append(f"{'.'.join(loc) or 'body'}: {err.get('msg')}")
    return "; ".join(parts)


def _system_health() -> dict[str, Any]:
    try:
        fd_count = len(os.listdir("/proc/self/fd"))
    except OSError:
        fd_count = 0
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    usage = int(100 * fd_count / fd_limit) if fd_limit > 0 else 0
    return {
        "status": "healthy" if usage < 80 else "degraded",
        "fd_count": fd_count,
        "fd_limit": fd_limit,
        "fd_usage_percent": usage,
        "close_wait_count": 0,
    }


class BearerAuth:
    """Plain ASGI middleware (Starlette's BaseHTTPMiddleware costs a task per request on the hot path)."""

    OPEN = frozenset({"/api/v1/health", "/api/v1/ready"})  # probes, unauthenticated as in OZ

    def __init__(self, app: ASGIApp, expected: bytes) -> None:
        self.app = app
        self.expected = expected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.OPEN:
            given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            if not secrets.compare_digest(given, self.expected):
                await error(401, "Unauthorized")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(engine: Engine, api_key: str) -> FastAPI:
    app = FastAPI(
        title="msq-devrelayer (OZ Relayer REST subset)", docs_url=None, redoc_url=None, openapi_url=None
    )
    cfg = engine.cfg
    expected_auth = f"Bearer {api_key}".encode()

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.message)

    @app.exception_handler(QueryError)
    async def _query(_: Request, exc: QueryError) -> PlainTextResponse:
        # OZ's query extractor (actix web::Query) answers a bad query string with its own plain-text 400,
        # not the JSON envelope.
        return PlainTextResponse(f"Query deserialize error: {exc}", status_code=400)

    @app.exception_handler(Rejected)
    async def _rejected(_: Request, exc: Rejected) -> JSONResponse:
        return error(400, str(exc))

    @app.exception_handler(UnknownTransaction)
    async def _unknown_tx(_: Request, exc: UnknownTransaction) -> JSONResponse:
        return error(404, f"Transaction with ID {exc} not found")

    @app.exception_handler(RpcTransportError)
    async def _node_unreachable(_: Request, exc: RpcTransportError) -> JSONResponse:
        # A replace or cancel prices at the node; OZ answers provider failures with a 500 in the envelope.
        return error(500, f"node unreachable: {exc}")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, _validation_message(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    app.add_middleware(BearerAuth, expected=expected_auth)

    def relayer(relayer_id: str) -> None:
        if relayer_id != cfg.relayer_id:
            raise ApiError(404, f"Relayer with ID {relayer_id} not found")

    def relayer_response() -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": cfg.relayer_id,
            "name": cfg.name,
            "network": cfg.network.name,
            "network_type": "evm",
            "paused": cfg.paused,
            "signer_id": cfg.signer.signer_id,
            "address": engine.signer.address.lower(),  # as OZ renders it (models/address.rs)
            "system_disabled": False,
        }
        if cfg.webhook is not None:
            out["notification_id"] = cfg.webhook.notification_id
        if cfg.policies_explicit:
            out["policies"] = cfg.policies.model_dump(exclude_none=True)
        return out

    @app.get("/api/v1/health")
    async def health() -> PlainTextResponse:
        return PlainTextResponse("OK")

    @app.get("/api/v1/ready")
    async def ready() -> JSONResponse:
        system = _system_health()
        try:
            await engine.redis.ping()
            redis_ok, reason = True, None
        except Exception as exc:  # any failure to PING means Redis is unusable for us
            redis_ok, reason = False, f"Redis primary pool: {type(exc).__name__}"
        pool = {"connected": redis_ok, "available": 1 if redis_ok else 0, "max_size": 64}
        if not engine.ready and reason is None:
            reason = "relayer is starting or stopping"
        is_ready = redis_ok and engine.ready
        body: dict[str, Any] = {
            "ready": is_ready,
            "status": "healthy" if is_ready else "unhealthy",
            "components": {
                "system": system,
                "redis": {
                    "status": "healthy" if redis_ok else "unhealthy",
                    "primary_pool": pool,
                    "reader_pool": pool,
                },
                "queue": {"status": "healthy" if redis_ok else "unhealthy"},
            },
            "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if reason is not None:
            body["reason"] = reason
        return JSONResponse(body, status_code=200 if is_ready else 503)

    @app.get("/api/v1/relayers")
    async def list_relayers(request: Request) -> JSONResponse:
        page, per_page = _pagination(request)
        if page == 0 or per_page == 0:
            # OZ's relayer repository refuses these as InvalidData, which the API maps to a bare 500
            # (repositories/relayer/relayer_redis.rs list_paginated, models/error/repository.rs).
            raise ApiError(500, "An unknown error occurred")
        return paginated([relayer_response()] if page == 1 else [], page, per_page, 1)

    @app.get("/api/v1/relayers/{relayer_id}")
    async def get_relayer(relayer_id: str) -> JSONResponse:
        relayer(relayer_id)
        return ok(relayer_response())

    @app.get("/api/v1/relayers/{relayer_id}/status")
    async def status(relayer_id: str) -> JSONResponse:
        relayer(relayer_id)
        try:
            balance = await engine.live_balance()
        except (RpcError, RpcTransportError) as exc:
            raise ApiError(500, f"balance unavailable: {exc}") from None
        return ok(
            {
                "network_type": "evm",
                "balance": str(balance),
                "nonce": str(engine.nonces.next),
                "pending_transactions_count": await engine.pending_count(),
                "last_confirmed_transaction_timestamp": await engine.last_confirmed_at(),
                "system_disabled": False,
                "paused": cfg.paused,
            }
        )

    @app.get("/api/v1/relayers/{relayer_id}/balance")
    async def balance(relayer_id: str) -> JSONResponse:
        relayer(relayer_id)
        try:
            value = await engine.live_balance()
        except (RpcError, RpcTransportError) as exc:
            raise ApiError(500, f"balance unavailable: {exc}") from None
        return ok({"balance": value, "unit": "wei"})

    @app.post("/api/v1/relayers/{relayer_id}/transactions")
    async def send_transaction(relayer_id: str, request: Request) -> Response:
        # OZ's route takes `web::Json<serde_json::Value>` (api/routes/relayer.rs): actix's extractor answers a
        # non-JSON content type, an oversized or an unparsable body itself, in plain text, before the handler
        # looks at the relayer.
        body, refusal = await _json_body(request)
        if refusal is not None:
            return refusal
        active_relayer(relayer_id)  # before the body is read as a transaction
        try:
            req = EvmTransactionRequest.model_validate(body)
        except ValidationError as exc:
            raise ApiError(400, _validation_message(list(exc.errors()))) from None
        rec = await engine.submit(req)
        return ok(rec.response())

    def active_relayer(relayer_id: str) -> None:
        relayer(relayer_id)
        if cfg.paused:
            # validate_active_state (models/relayer/repository.rs): RelayerPaused -> 403 "Relayer paused"
            # (models/error/relayer.rs), before anything else is looked at.
            raise ApiError(403, "Relayer paused")

    @app.put("/api/v1/relayers/{relayer_id}/transactions/{transaction_id}")
    async def replace_transaction(relayer_id: str, transaction_id: str, request: Request) -> Response:
        # OZ's order (api/controllers/relayer.rs replace_transaction): actix's Json extractor, the relayer,
        # paused, the body as a new transaction request, then the transaction, then its status.
        body, refusal = await _json_body(request)
        if refusal is not None:
            return refusal
        active_relayer(relayer_id)
        try:
            req = EvmTransactionRequest.model_validate(body)
        except ValidationError as exc:
            raise ApiError(400, _validation_message(list(exc.errors()))) from None
        return ok((await engine.replace(transaction_id, req)).response())

    @app.delete("/api/v1/relayers/{relayer_id}/transactions/{transaction_id}")
    async def cancel_transaction(relayer_id: str, transaction_id: str) -> JSONResponse:
        active_relayer(relayer_id)
        return ok((await engine.cancel(transaction_id)).response())

    @app.get("/api/v1/relayers/{relayer_id}/transactions")
    async def list_transactions(relayer_id: str, request: Request) -> JSONResponse:
        relayer(relayer_id)
        page, per_page = _pagination(request)
        status = request.query_params.get("status")
        if status is not None:
            status = status.lower()  # OZ accepts it case-insensitively (models/pagination.rs)
            if status not in STATUSES:
                raise QueryError(f"unknown transaction status: {request.query_params['status']}")
        records, total = await engine.list_page(page, per_page, status)
        return paginated([r.response() for r in records], page, per_page, total)

    @app.get("/api/v1/relayers/{relayer_id}/transactions/{transaction_id}")
    async def get_transaction(relayer_id: str, transaction_id: str) -> JSONResponse:
        relayer(relayer_id)
        rec = await engine.get(transaction_id)
        if rec is None:
            raise ApiError(404, f"Transaction with ID {transaction_id} not found")
        return ok(rec.response())

    return app
