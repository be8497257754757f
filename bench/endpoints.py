"""The two servers the gateway is measured against, each one uvicorn worker like the gateway:

- `sink`: answers OZ Relayer's transaction and status calls at once, with no chain behind it, so a run
  measures the gateway's own cost per request and nothing downstream.
- `trivial`: a FastAPI POST that parses a JSON body and answers a small JSON: the ceiling any FastAPI
  service reaches on this machine, against which the gateway's req/s is a ratio.

    .venv/bin/python -m bench.endpoints sink|trivial --port P
"""

from __future__ import annotations

import argparse
import itertools
import json
from typing import Any

from starlette.types import Receive, Scope, Send

_JSON = [(b"content-type", b"application/json")]
_STATUS = json.dumps(
    {
        "success": True,
        "data": {
            "pending_transactions_count": 0,
            "paused": False,
            "system_disabled": False,
            "nonce": "0",
            "balance": str(10**20),
        },
        "error": None,
    }
).encode()


async def _read_all(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def sink_app() -> Any:
    ids = itertools.count()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await _read_all(receive)
        if scope["method"] == "POST" and scope["path"].endswith("/transactions"):
            body = json.dumps(
                {
                    "success": True,
                    "data": {"id": f"sink-{next(ids):012d}", "status": "pending", "hash": None},
                    "error": None,
                }
            ).encode()
        elif scope["path"].endswith("/status"):
            body = _STATUS
        else:
            body = b'{"success": false, "data": null, "error": "not found"}'
        await send({"type": "http.response.start", "status": 200, "headers": _JSON})
        await send({"type": "http.response.body", "body": body})

    return app


def trivial_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "fields": len(body)}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("which", choices=["sink", "trivial"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = sink_app() if args.which == "sink" else trivial_app()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
