"""A real Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager (garbage collection,
Deployments, ReplicaSets, namespaces, service accounts). No scheduler or kubelet: pods stay Pending."""

from __future__ import annotations

import datetime as dt
import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from msq_devstack import tools
from msq_devstack.pki import ADMIN_USER, OPERATOR_USER, Pki, make_pki
from msq_devstack.process import ManagedProcess, free_port

CONTROLLERS = ",".join(
    [
        "garbage-collector-controller",
        "deployment-controller",
        "replicaset-controller",
        "namespace-controller",
        "serviceaccount-controller",
        "endpointslice-controller",
    ]
)


WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
# Write calls only, at Metadata level: enough to count who changed what (e.g. a steady operator's zero).
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
  - level: None
"""
# Every request (reads and watches too), for the scale benchmark and the steady-state test: opt-in, since
# it costs the API server a log line per request.
AUDIT_POLICY_ALL = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
"""


@dataclass
class KubeControlPlane:
    server: str
    kubeconfig: Path
    operator_kubeconfig: Path
    audit_log: Path
    pki: Pki
    bin_dir: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    def kubectl_argv(self, *args: str) -> list[str]:
        return [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]

    def audited_writes(self, user: str = OPERATOR_USER, since: int = 0) -> list[dict[str, Any]]:
        """Write requests `user` has made so far (after byte `since`), from the API server's audit log."""
        return [e for e in self.audited_requests(user, since) if e.get("verb") in WRITE_VERBS]

    def audit_offset(self) -> int:
        """Where the audit log ends now: `audited_requests(since=...)` counts from here."""
        return self.audit_log.stat().st_size if self.audit_log.exists() else 0

    def audited_requests(
        self,
        user: str = OPERATOR_USER,
        since: int = 0,
        received: tuple[dt.datetime, dt.datetime] | None = None,
    ) -> list[dict[str, Any]]:
        """Every request `user` made after byte `since` of the audit log, once each (a watch is logged when
        it starts and again when it ends: it counts at its start), and, with `received`, that the API server
        received between those two times (it shares this machine's clock; the log is written in batches, so
        a request of just before `since` may follow it). Reads are logged only by a control plane started
        with `audit_reads=True`."""
        if not self.audit_log.exists():
            return []
        with self.audit_log.open("rb") as f:
            f.seek(max(0, since - 1))
            data = f.read()
        # The API server may be half-way through a line at either end: only whole lines count.
        if since > 0:
            data = data[data.find(b"\n") + 1 :] if not data.startswith(b"\n") else data[1:]
        data = data[: data.rfind(b"\n") + 1]
        out: list[dict[str, Any]] = []
        for line in data.splitlines():
            if not line.strip():
                continue
            e = json.loads(line)
            if e.get("user", {}).get("username") != user:
                continue
            long_running = e.get("verb") == "watch"
            if e.get("stage") != ("ResponseStarted" if long_running else "ResponseComplete"):
                continue
            if received is not None:
                at = dt.datetime.fromisoformat(e["requestReceivedTimestamp"].replace("Z", "+00:00"))
                if not received[0] <= at <= received[1]:
                    continue
            out.append(e)
        return out

    def stop(self) -> None:
        for p in reversed(self.processes):
            p.stop()

    def restart_apiserver(self, down_seconds: float = 0.0, timeout: float = 90) -> None:
        """Stop kube-apiserver, keep it down `down_seconds`, start it again on the same port and etcd."""
        import time

        apiserver = next(p for p in self.processes if p.name == "kube-apiserver")
        apiserver.stop()
        time.sleep(down_seconds)
        apiserver.start()
        http = _client(self.pki)
        apiserver.wait_ready(lambda: http.get(f"{self.server}/readyz").status_code == 200, timeout)


def write_kubeconfig(path: Path, server: str, pki: Pki, cert: Path, key: Path, user: str) -> None:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "msq-devstack",
        "clusters": [
            {"name": "msq-devstack", "cluster": {"server": server, "certificate-authority": str(pki.ca_cert)}}
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate": str(cert), "client-key": str(key)},
            }
        ],
        "contexts": [
            {
                "name": "msq-devstack",
                "context": {"cluster": "msq-devstack", "user": user, "namespace": "default"},
            }
        ],
    }
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)


def _client(pki: Pki) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    return httpx.Client(verify=ctx, timeout=3)


def start_control_plane(
    work_dir: Path, log_dir: Path, timeout: float = 90, audit_reads: bool = False
) -> KubeControlPlane:
    """`audit_reads` logs every request in the audit log (AUDIT_POLICY_ALL), not only the writes."""
    bin_dir = tools.kube_bin_dir()
    pki = make_pki(work_dir / "pki")
    etcd_client, etcd_peer, api_port = free_port(), free_port(), free_port()
    audit_policy = work_dir / "audit-policy.yaml"
    audit_policy.write_text(AUDIT_POLICY_ALL if audit_reads else AUDIT_POLICY)
    plane = KubeControlPlane(
        server=f"https://127.0.0.1:{api_port}",
        kubeconfig=work_dir / "kubeconfig",
        operator_kubeconfig=work_dir / "kubeconfig-operator",
        audit_log=log_dir / "kube-audit.log",
        pki=pki,
        bin_dir=bin_dir,
    )
    try:
        etcd = ManagedProcess(
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name",
                "devstack",
                "--data-dir",
                str(work_dir / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{etcd_client}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{etcd_client}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{etcd_peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{etcd_peer}",
                "--initial-cluster",
                f"devstack=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ],
            log_dir,
        ).start()
        plane.processes.append(etcd)
        etcd.wait_ready(
            lambda: httpx.get(f"http://127.0.0.1:{etcd_client}/health", timeout=1).json()["health"] == "true",
            30,
        )

        apiserver = ManagedProcess(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--tls-cert-file={pki.server_cert}",
                f"--tls-private-key-file={pki.server_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--api-audiences=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.0.0.0/16",  # room for a Service per relayer of 100 pools of 10
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--endpoint-reconciler-type=none",
                f"--audit-policy-file={audit_policy}",
                f"--audit-log-path={plane.audit_log}",
                "--audit-log-mode=batch",
                "--audit-log-batch-max-wait=1s",
                "--v=1",
            ],
            log_dir,
        ).start()
        plane.processes.append(apiserver)
        http = _client(pki)
        apiserver.wait_ready(lambda: http.get(f"{plane.server}/readyz").status_code == 200, timeout)

        write_kubeconfig(plane.kubeconfig, plane.server, pki, pki.admin_cert, pki.admin_key, ADMIN_USER)
        write_kubeconfig(
            plane.operator_kubeconfig, plane.server, pki, pki.operator_cert, pki.operator_key, OPERATOR_USER
        )
        manager = ManagedProcess(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={plane.kubeconfig}",
                f"--authentication-kubeconfig={plane.kubeconfig}",
                f"--authorization-kubeconfig={plane.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
                f"--controllers={CONTROLLERS}",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                "--concurrent-gc-syncs=5",
                "--v=1",
            ],
            log_dir,
        ).start()
        plane.processes.append(manager)
        # Ready once the service-account controller has made the default account (pods need it).
        manager.wait_ready(
            lambda: (
                http.get(f"{plane.server}/api/v1/namespaces/default/serviceaccounts/default").status_code
                == 200
            ),
            timeout,
        )
    except BaseException:
        plane.stop()
        raise
    return plane
