"""A stub for the relayer and gateway endpoints the operator polls, for runs without relayer processes (the
operator scale benchmark): every relayer answers `/status` as a funded, idle, unpaused relayer, and every
gateway answers `/readyz`. It relays nothing; it only lets the operator observe a thousand relayers that
do not run. Requests are counted by kind, so a run can say how often the operator asked."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kubernetes import client

from msq_devstack.pods import ANNOTATION_ENDPOINT, GROUP, VERSION

_STATUS = re.compile(r"^/api/v1/relayers/[^/]+/status$")
BALANCE_WEI = 10**21


class RelayerStub:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the operator's client expects

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if _STATUS.match(path):
                    kind = "relayer_status"
                    body = {
                        "success": True,
                        "data": {
                            "balance": str(BALANCE_WEI),
                            "nonce": 0,
                            "pending_transactions_count": 0,
                            "paused": False,
                            "system_disabled": False,
                        },
                    }
                elif path in ("/readyz", "/healthz", "/api/v1/health", "/api/v1/ready"):
                    kind, body = "ready", {"status": "ok"}
                else:
                    kind, body = "other", {"success": False, "error": "not stubbed"}
                with stub._lock:
                    stub.requests[kind] += 1
                raw = json.dumps(body).encode()
                self.send_response(200 if kind != "other" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="relayer-stub", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.requests)

    def start(self) -> RelayerStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


class EndpointAnnotator:
    """Points every Relayer the operator creates at the stub, as the pod runner points them at their pods."""

    def __init__(self, api: client.ApiClient, namespace: str, url: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.namespace, self.url = namespace, url
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="endpoint-annotator", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, "relayers")
                for r in items["items"]:
                    if (r["metadata"].get("annotations") or {}).get(ANNOTATION_ENDPOINT) != self.url:
                        self.custom.patch_namespaced_custom_object(
                            GROUP,
                            VERSION,
                            self.namespace,
                            "relayers",
                            r["metadata"]["name"],
                            {"metadata": {"annotations": {ANNOTATION_ENDPOINT: self.url}}},
                        )
            except client.ApiException as e:
                self.errors.append(f"{e.status} {e.reason}")
            self._stop.wait(1.0)

    def start(self) -> EndpointAnnotator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
