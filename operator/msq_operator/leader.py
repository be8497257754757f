"""Leader election on a coordination.k8s.io Lease (the Kubernetes client's own implementation): of the
operator's replicas only the Lease holder runs the handlers; a standby takes over once the holder stops
renewing it (killed, evicted, cut off from the API server).

Two operators acting at once would both top up and both sweep, so the holder that cannot renew within
`renew_seconds` exits at once, before its Lease (`lease_seconds`) can pass to another replica.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kubernetes import config
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

log = logging.getLogger("msq_operator.leader")

LOST_LEADERSHIP_EXIT = 3


@dataclass(frozen=True)
class Election:
    lease: str
    namespace: str
    identity: str
    lease_seconds: int = 15

    @property
    def renew_seconds(self) -> int:
        return max(2, self.lease_seconds * 2 // 3)

    @property
    def retry_seconds(self) -> int:
        return max(1, self.lease_seconds // 7)


def default_identity() -> str:
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def wait_for_leadership(election: Election, kubeconfig: str | None = None) -> None:
    """Block until this process holds the Lease; a background thread renews it from then on, and ends the
    process if it cannot."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig)
    acquired = threading.Event()

    def lead() -> None:
        log.info("%s holds Lease %s/%s", election.identity, election.namespace, election.lease)
        acquired.set()
        threading.Event().wait()  # leads as long as the process lives

    def lost() -> None:
        log.error("%s could not renew Lease %s: stopping", election.identity, election.lease)
        os._exit(LOST_LEADERSHIP_EXIT)

    settings = electionconfig.Config(
        LeaseLock(election.lease, election.namespace, election.identity),
        lease_duration=election.lease_seconds,
        renew_deadline=election.renew_seconds,
        retry_period=election.retry_seconds,
        onstarted_leading=lead,
        onstopped_leading=lost,
    )
    log.info("%s waits for Lease %s/%s", election.identity, election.namespace, election.lease)
    threading.Thread(
        target=leaderelection.LeaderElection(settings).run, name="leader-election", daemon=True
    ).start()
    acquired.wait()


class _Standby(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"standby\n")

    def log_message(self, format: str, *args: object) -> None:  # probes are not news
        pass


@contextmanager
def standby_liveness(bind: str, port: int) -> Iterator[None]:
    """A waiting replica is alive: it answers the liveness probe on the port Kopf's probe takes over once
    it leads (a probe failing all the while would restart the standby for ever)."""
    if not port:
        yield
        return
    server = ThreadingHTTPServer((bind, port), _Standby)
    threading.Thread(target=server.serve_forever, name="standby-liveness", daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
