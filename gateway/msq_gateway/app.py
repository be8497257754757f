"""The gateway's ASGI application: routes, auth, error mapping, body limits, metrics, lifecycle."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import Depends, FastAPI, Header, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from msq_gateway import metrics, reconcile
from msq_gateway.chain import forwarder_nonce
from msq_gateway.errors import ErrorBody, GatewayError, openapi_errors
from msq_gateway.idempotency import StoredResponse, fingerprint
from msq_gateway.models import (
    DirectRelayRequest,
    GaslessRelayRequest,
    HealthResponse,
    Kind,
    NonceResponse,
    RelayAccepted,
    TransactionStatusResponse,
    TxStatus,
    WebhookAck,
    _address,
)
from msq_gateway.relay import Services, after_update, refresh_from_relayer, relay_direct, relay_gasless
from msq_gateway.routing import Router
from msq_gateway.runtime import Client, ConfigWatcher, Snapshot, load_snapshot
from msq_gateway.store import new_id
from msq_gateway.upstreams import Upstreams
from msq_gateway.webhooks import parse_notification, signers_of

log = logging.getLogger("msq_gateway")

DIRECT = "/api/v1/relay/direct"
GASLESS = "/api/v1/relay/gasless"
WEBHOOK = "/api/v1/webhooks/relayer"
_JSON_POSTS = frozenset({DIRECT, GASLESS, WEBHOOK})
_AUTH_ERRORS = ("missing_api_key", "unknown_api_key")
_ACK = {"ok": True, "id": None}


@dataclass
class GatewayState:
    watcher: ConfigWatcher
    svc: Services | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


def _gw(request: Request) -> GatewayState:
    return request.app.state.gw  # type: ignore[no-any-return]


def _svc(gw: GatewayState) -> Services:
    assert gw.svc is not None, "services are created by the app lifespan"
    return gw.svc


# --- request edge: size limit and content type before any parsing ---------------------------------


class EdgeMiddleware:
    """Rejects oversized or non-JSON bodies before anything parses them, and records request metrics."""

    def __init__(self, app: ASGIApp, gw: GatewayState) -> None:
        self.app = app
        self.gw = gw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        code: str | None = None
        try:
            if scope["method"] == "POST":
                rejected = await self._read_body(scope, receive)
                if isinstance(rejected, GatewayError):
                    code = rejected.code
                    await _send_error(rejected, send_wrapper)
                    return
                receive = _replay(rejected)
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or (
                scope["path"] if scope["path"] in _JSON_POSTS else "unmatched"
            )
            code = (
                code or scope.get("state", {}).get("gw_code") or ("ok" if status < 400 else f"http_{status}")
            )
            metrics.REQUESTS.labels(route=path, code=code).inc()
            metrics.LATENCY.labels(route=path).observe(time.perf_counter() - started)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | GatewayError:
        limit = self.gw.watcher.current.config.limits.max_body_bytes
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        too_large = GatewayError("body_too_large", f"body: larger than the limit of {limit} bytes", "body")
        if declared is not None:
            try:
                if int(declared) > limit:
                    return too_large
            except ValueError:
                return GatewayError("malformed_json", "body: invalid Content-Length header", "Content-Length")
        if scope["path"] in _JSON_POSTS:
            ctype = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
            if ctype != b"application/json" and not (
                ctype.startswith(b"application/") and ctype.endswith(b"+json")
            ):
                return GatewayError(
                    "unsupported_media_type", "Content-Type: must be application/json", "Content-Type"
                )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # After the body, behave like a client that is still connected and waiting.
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}  # pragma: no cover

    return receive


async def _send_error(exc: GatewayError, send: Send) -> None:
    response = JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:  # pragma: no cover - a JSONResponse never reads
    return {"type": "http.disconnect"}


# --- error mapping --------------------------------------------------------------------------------


def _error_response(request: Request, exc: GatewayError) -> JSONResponse:
    request.state.gw_code = exc.code
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + str(p)
    return out or "body"


async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"type": "value_error", "loc": ("body",), "msg": "invalid"}
    if first.get("type") == "json_invalid":
        ctx = first.get("ctx")
        detail = ctx.get("error", "invalid JSON") if isinstance(ctx, dict) else "invalid JSON"
        pos = first["loc"][1] if len(first["loc"]) > 1 else "?"
        return _error_response(
            request,
            GatewayError("malformed_json", f"body: not valid JSON ({detail} at position {pos})", "body"),
        )
    fld = _field_of(tuple(first.get("loc", ())))
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "missing" and fld == "body":
        msg = "a JSON object body is required"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return _error_response(request, GatewayError("invalid_field", f"{fld}: {msg}{more}", fld))


async def _on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 404:
        err = GatewayError("not_found", f"path: no route {request.url.path}", "path")
    elif exc.status_code == 405:
        err = GatewayError(
            "http_method_not_allowed", f"method: {request.method} not allowed on {request.url.path}", "method"
        )
    elif exc.status_code == 413:
        err = GatewayError("body_too_large", "body: too large", "body")
    elif exc.status_code == 400:
        err = GatewayError("malformed_json", f"body: could not be parsed ({exc.detail})", "body")
    else:
        request.state.gw_code = f"http_{exc.status_code}"
        body = {"code": f"http_{exc.status_code}", "message": str(exc.detail), "field": None}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))
    return _error_response(request, err)


async def _on_gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
    return _error_response(request, exc)


async def _on_redis_error(request: Request, exc: RedisError) -> JSONResponse:
    log.error("redis unavailable on %s %s: %s", request.method, request.url.path, exc)
    return _error_response(
        request,
        GatewayError(
            "store_unavailable", f"the gateway's store (Redis) is unavailable: {type(exc).__name__}"
        ),
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_response(
        request, GatewayError("internal_error", "internal error; see the gateway log", None)
    )


# --- auth -----------------------------------------------------------------------------------------

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Client API key.")
_bearer = HTTPBearer(
    auto_error=False, description="Client API key as a bearer token (alternative to X-API-Key)."
)


@dataclass(frozen=True)
class Ctx:
    gw: GatewayState
    snap: Snapshot
    client: Client

    @property
    def svc(self) -> Services:
        return _svc(self.gw)


def _snapshot(request: Request) -> tuple[GatewayState, Snapshot]:
    gw = _gw(request)
    # One snapshot per request: a config reload mid-request does not mix versions.
    return gw, gw.watcher.current


async def authenticate(
    request: Request,
    api_key: Annotated[str | None, Security(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Ctx:
    gw, snap = _snapshot(request)
    key = api_key if api_key else (bearer.credentials if bearer else None)
    if not key:
        raise GatewayError(
            "missing_api_key", "X-API-Key: no API key (send X-API-Key or Authorization: Bearer)", "X-API-Key"
        )
    client = snap.clients_by_hash.get(hashlib.sha256(key.encode()).hexdigest())
    if client is None:
        raise GatewayError("unknown_api_key", "X-API-Key: unknown API key", "X-API-Key")
    request.state.client = client.name
    return Ctx(gw, snap, client)


AuthCtx = Annotated[Ctx, Depends(authenticate)]
IdemKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retries with the same key and body return the first result, never a second transaction.",
    ),
]


async def _idempotent(
    ctx: Ctx,
    route: str,
    idem_key: str | None,
    body: BaseModel,
    run: Callable[[str], Awaitable[RelayAccepted]],
) -> JSONResponse:
    """`run(gid)` relays under record id `gid`."""
    limits = ctx.snap.config.limits
    gid = new_id()
    if idem_key is None:
        result = await run(gid)
        return JSONResponse(result.model_dump(by_alias=True, mode="json"), status_code=202)
    store = ctx.svc.idempotency
    fp = fingerprint(route, body.model_dump_json(by_alias=True))
    records = ctx.svc.store

    async def record_exists(first: str) -> bool:
        return await records.get(first) is not None

    got = await store.begin(
        ctx.client.name,
        idem_key,
        fp,
        limits.idempotency_wait_seconds,
        gid=gid,
        record_exists=record_exists,
        done_ttl=limits.idempotency_ttl_seconds,
    )
    if isinstance(got, StoredResponse):
        return JSONResponse(got.body, status_code=got.status, headers={"Idempotent-Replayed": "true"})
    # A failure other than a GatewayError keeps the claim until it expires: whether a transaction was sent is
    # not known then, so retries must not start another.
    try:
        result = await run(gid)
    except GatewayError as exc:
        if exc.id is not None:
            # A transaction may exist: every retry must see this same answer.
            await store.finish(got, exc.status, exc.body(), limits.idempotency_ttl_seconds)
        else:
            await store.release(got)
        raise
    payload = result.model_dump(by_alias=True, mode="json")
    try:
        await store.finish(got, 202, payload, limits.idempotency_ttl_seconds)
    except RedisError:
        # Sent: the answer must be 202. The claim stays pending, so retries wait or get 409 until it expires.
        log.exception("could not record the idempotent result of transaction %s", result.id)
    return JSONResponse(payload, status_code=202)


# --- the app --------------------------------------------------------------------------------------


def _redis(snap: Snapshot) -> Redis:
    return Redis.from_url(
        snap.redis_url,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
    )


def create_app(config: Path | str | Snapshot | ConfigWatcher, *, watch_interval: float = 1.0) -> FastAPI:
    """The gateway app. A path is watched for changes (every `watch_interval` s); a Snapshot is fixed."""
    if isinstance(config, ConfigWatcher):
        watcher = config
    elif isinstance(config, Snapshot):
        watcher = ConfigWatcher.from_snapshot(config)
    else:
        watcher = (
            ConfigWatcher(Path(config), watch_interval)
            if watch_interval > 0
            else ConfigWatcher.from_snapshot(load_snapshot(Path(config)))
        )
    gw = GatewayState(watcher)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        snap = watcher.current
        upstreams = Upstreams()
        router = Router()
        gw.svc = Services.create(upstreams, _redis(snap), snap.config.redis.key_prefix, router)
        old_clients: list[Redis] = []

        def on_change(new: Snapshot) -> None:
            svc = _svc(gw)
            upstreams.retire_except({r.url for r in new.relayers})
            if (new.redis_url, new.config.redis.key_prefix) != (snap_redis[0], snap_redis[1]):
                old_clients.append(svc.redis)
                gw.svc = Services.create(upstreams, _redis(new), new.config.redis.key_prefix, router)
                snap_redis[:] = [new.redis_url, new.config.redis.key_prefix]

        snap_redis = [snap.redis_url, snap.config.redis.key_prefix]
        watcher.on_change(on_change)
        gw.tasks.append(asyncio.create_task(router.run(upstreams, lambda: watcher.current)))
        gw.tasks.append(asyncio.create_task(reconcile.run(lambda: _svc(gw), lambda: watcher.current)))
        if watcher.interval > 0:
            gw.tasks.append(asyncio.create_task(watcher.run()))
        try:
            yield
        finally:
            for task in gw.tasks:
                task.cancel()
            for task in gw.tasks:
                with suppress(asyncio.CancelledError):
                    await task
            gw.tasks.clear()
            svc = _svc(gw)
            await svc.callbacks.drain()
            await upstreams.aclose()
            for r in [svc.redis, *old_clients]:
                await r.aclose()

    app = FastAPI(
        title="MSQ Relayer gateway",
        version="1",
        description="Direct and gasless (ERC-2771 / EIP-712) transactions relayed through a pool of "
        "OZ Relayers. Every error is a JSON body with a stable `code`.",
        lifespan=lifespan,
    )
    app.state.gw = gw
    app.add_middleware(EdgeMiddleware, gw=gw)
    app.add_exception_handler(GatewayError, _on_gateway_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RedisError, _on_redis_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_unexpected)

    common = ("malformed_json", "invalid_field", "body_too_large", "unsupported_media_type", *_AUTH_ERRORS)
    relay_errors = (
        "quota_exceeded",
        "idempotency_conflict",
        "idempotency_in_progress",
        "no_relayer_available",
        "relayer_rejected",
        "relay_outcome_unknown",
        "store_unavailable",
    )
    policy_errors = ("contract_not_allowed", "method_not_allowed", "value_too_high")

    @app.post(
        DIRECT,
        status_code=202,
        response_model=RelayAccepted,
        tags=["relay"],
        summary="Relay a call sent by a relayer itself (msg.sender is the relayer)",
        responses=openapi_errors(*common, *policy_errors, "direct_not_allowed", *relay_errors),
    )
    async def direct(body: DirectRelayRequest, ctx: AuthCtx, idempotency_key: IdemKey = None) -> JSONResponse:
        return await _idempotent(
            ctx,
            DIRECT,
            idempotency_key,
            body,
            lambda gid: relay_direct(ctx.svc, ctx.snap, ctx.client, body, gid),
        )

    @app.post(
        GASLESS,
        status_code=202,
        response_model=RelayAccepted,
        tags=["relay"],
        summary="Relay a signed ERC-2771 ForwardRequest through the forwarder",
        responses=openapi_errors(
            *common,
            "wrong_chain",
            "wrong_forwarder",
            "expired",
            "bad_signature",
            "nonce_mismatch",
            "user_blocked",
            "gasless_not_allowed",
            *policy_errors,
            "chain_unavailable",
            *relay_errors,
        ),
    )
    async def gasless(
        body: GaslessRelayRequest, ctx: AuthCtx, idempotency_key: IdemKey = None
    ) -> JSONResponse:
        return await _idempotent(
            ctx,
            GASLESS,
            idempotency_key,
            body,
            lambda gid: relay_gasless(ctx.svc, ctx.snap, ctx.client, body, gid),
        )

    @app.get(
        "/api/v1/relay/gasless/nonce/{address}",
        response_model=NonceResponse,
        tags=["relay"],
        summary="The forwarder nonce to sign into the next ForwardRequest of `address`",
        responses=openapi_errors("invalid_field", "chain_unavailable", *_AUTH_ERRORS),
    )
    async def nonce(
        ctx: AuthCtx, address: Annotated[str, PathParam(description="Signer address.")]
    ) -> NonceResponse:
        try:
            owner = _address(address)
        except ValueError as exc:
            raise GatewayError("invalid_field", f"address: {exc}", "address") from None
        forwarder = ctx.snap.config.forwarder.address
        value = await forwarder_nonce(
            ctx.svc.upstreams.rpc,
            ctx.snap.rpc_url,
            forwarder,
            owner,
            ctx.snap.config.limits.rpc_timeout_seconds,
        )
        return NonceResponse(address=owner, forwarder=forwarder, nonce=str(value))

    @app.get(
        "/api/v1/relay/status/{id}",
        response_model=TransactionStatusResponse,
        tags=["relay"],
        response_model_by_alias=True,
        summary="Current status of a relayed transaction",
        responses=openapi_errors("not_found", *_AUTH_ERRORS),
    )
    async def status(
        ctx: AuthCtx, id: Annotated[str, PathParam(description="Gateway transaction id.")]
    ) -> TransactionStatusResponse:
        rec = await ctx.svc.store.get(id) if len(id) == 32 and id.isalnum() else None
        if rec is None or rec.client != ctx.client.name:
            # Another client's transaction is reported as absent, not as forbidden: ids leak nothing.
            raise GatewayError("not_found", f"id: no transaction {id!r} for this API key", "id")
        rec = await refresh_from_relayer(ctx.svc, ctx.snap, rec)
        return TransactionStatusResponse(
            id=rec.id,
            kind=cast(Kind, rec.kind),
            status=cast(TxStatus, rec.status),
            relayer_id=rec.relayer_id,
            transaction_id=rec.tx_id,
            hash=rec.hash,
            status_reason=rec.reason,
            created_at=rec.created_at,
            updated_at=rec.updated_at,
        )

    @app.post(
        WEBHOOK,
        response_model=WebhookAck,
        tags=["webhooks"],
        summary="Transaction notifications from the pool's relayers (OZ webhook format, X-Signature)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "description": "OZ Relayer notification: {id, event, payload, timestamp}.",
                        }
                    }
                },
            }
        },
        responses=openapi_errors("bad_webhook_signature", "body_too_large", "unsupported_media_type"),
    )
    async def webhook(
        request: Request,
        x_signature: Annotated[
            str | None, Header(alias="X-Signature", description="base64 HMAC-SHA256")
        ] = None,
        relayer_id: Annotated[
            str | None, Query(alias="relayerId", description="Sending relayer, if known")
        ] = None,
    ) -> JSONResponse:
        # Five or so per transaction: kept lean (raw body, no response-model pass).
        gw, snap = _snapshot(request)
        svc = _svc(gw)
        body = await request.body()
        relayers = snap.relayers
        if relayer_id is not None:
            relayers = tuple(r for r in relayers if r.id == relayer_id)
        signers = signers_of(body, x_signature, relayers)
        if not signers:
            metrics.WEBHOOKS.labels(result="bad_signature").inc()
            raise GatewayError(
                "bad_webhook_signature",
                "X-Signature: does not verify with the signing key of any relayer of this pool",
                "X-Signature",
            )
        update = parse_notification(body)
        if update is None:
            metrics.WEBHOOKS.labels(result="ignored").inc()
            return JSONResponse(_ACK)
        source = update.relayer_id or (next(iter(signers)) if len(signers) == 1 else None)
        if source not in signers:
            metrics.WEBHOOKS.labels(result="bad_signature").inc()
            raise GatewayError(
                "bad_webhook_signature",
                f"X-Signature: not signed by relayer {source!r} that the notification names",
                "X-Signature",
            )
        upd = await svc.store.update_by_transaction(
            source, update.tx_id, update.status, update.hash, update.reason
        )
        if upd is None:
            # Normal for a relayer's first ("pending") notification, sent before it answers the submission:
            # the record is created as pending anyway, and later notifications find it.
            metrics.WEBHOOKS.labels(result="unknown_transaction").inc()
            return JSONResponse(_ACK)
        await after_update(svc, snap, upd)
        metrics.WEBHOOKS.labels(result="ok").inc()
        return JSONResponse({"ok": True, "id": upd.record.id})

    @app.get("/healthz", response_model=HealthResponse, tags=["ops"], summary="Liveness")
    async def healthz() -> HealthResponse:
        return HealthResponse(status="ok")

    @app.get(
        "/readyz",
        response_model=HealthResponse,
        tags=["ops"],
        summary="Readiness: Redis and a routable relayer",
        responses=openapi_errors("not_ready"),
    )
    async def readyz(request: Request) -> HealthResponse:
        gw, snap = _snapshot(request)
        svc = _svc(gw)
        checks: dict[str, str] = {"config": snap.version}
        try:
            await asyncio.wait_for(svc.redis.ping(), 1.0)
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
        routable = svc.router.routable(snap.relayers)
        checks["relayers"] = f"{len(routable)}/{len(snap.relayers)} routable"
        if checks["redis"] != "ok" or not routable:
            raise GatewayError("not_ready", "; ".join(f"{k}: {v}" for k, v in checks.items()), None)
        return HealthResponse(status="ready", checks=checks)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


__all__ = ["ErrorBody", "create_app"]
