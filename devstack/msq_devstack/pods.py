"""A kubelet stand-in for the local stack: runs each Deployment the operator renders as a local process.

There is no container runtime here, so for every operator-managed Deployment this resolves the pod's env
(values, Secret and ConfigMap references) and volumes (ConfigMap/Secret files, emptyDirs) the way kubelet
would, and starts the process the image would run: the OZ Relayer engine chosen for the run (the real binary
or the local stand-in, `msq_devstack.engine`) for the OZ Relayer image, `msq-gateway` for the gateway image.
Ports are remapped to free loopback ports (pods have their own network namespace, local processes share one)
and the resulting address is published as the owner's endpoint annotation, which is how an out-of-cluster
operator finds a pod. Secret/ConfigMap volume contents are kept in sync while the
process runs, as kubelet does, and a changed pod template restarts the process (a Recreate rollout).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client

from msq_devstack import engine as engines
from msq_devstack.process import ManagedProcess, free_port

MANAGED_BY = "msq-relayer-operator"
ANNOTATION_ENDPOINT = "relayer.msq.io/endpoint"
GROUP, VERSION = "relayer.msq.io", "v1alpha1"


@dataclass
class LocalPod:
    name: str
    component: str
    template_hash: str
    root: Path
    port: int
    process: ManagedProcess
    frozen: bool = False
    metrics_port: int | None = None  # relayers: OZ's metrics listener (METRICS_PORT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


class LocalPods:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        log_dir: Path,
        work_dir: Path,
        engine: engines.Engine | None = None,
    ) -> None:
        self.engine: engines.Engine = engine or engines.selected()
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.log_dir = log_dir
        self.work_dir = work_dir
        self.pods: dict[str, LocalPod] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self.errors: list[str] = []

    # -- reading what kubelet would read -------------------------------------------------------------

    def _secret(self, name: str) -> dict[str, str]:
        s = self.core.read_namespaced_secret(name, self.namespace)
        return {k: base64.b64decode(v).decode() for k, v in (s.data or {}).items()}

    def _config_map(self, name: str) -> dict[str, str]:
        return dict(self.core.read_namespaced_config_map(name, self.namespace).data or {})

    def _volume_files(self, pod_spec: dict[str, Any], container: dict[str, Any]) -> dict[str, dict[str, str]]:
        volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
        out: dict[str, dict[str, str]] = {}
        for mount in container.get("volumeMounts") or []:
            vol = volumes[mount["name"]]
            if "configMap" in vol:
                out[mount["mountPath"]] = self._config_map(vol["configMap"]["name"])
            elif "secret" in vol:
                out[mount["mountPath"]] = self._secret(vol["secret"]["secretName"])
            else:
                out[mount["mountPath"]] = {}
        return out

    def _env(self, container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for e in container.get("env") or []:
            if "value" in e:
                env[e["name"]] = str(e["value"])
            elif "secretKeyRef" in (e.get("valueFrom") or {}):
                ref = e["valueFrom"]["secretKeyRef"]
                env[e["name"]] = self._secret(ref["name"])[ref["key"]]
            elif "configMapKeyRef" in (e.get("valueFrom") or {}):
                ref = e["valueFrom"]["configMapKeyRef"]
                env[e["name"]] = self._config_map(ref["name"])[ref["key"]]
        return env

    # -- materialising -----------------------------------------------------------------------------------

    @staticmethod
    def _write_volumes(root: Path, files: dict[str, dict[str, str]]) -> None:
        for mount_path, entries in files.items():
            folder = root / mount_path.lstrip("/")
            folder.mkdir(parents=True, exist_ok=True)
            for key, value in entries.items():
                target = folder / key
                if not target.exists() or target.read_text() != value:
                    tmp = folder / f".{key}.tmp"
                    tmp.write_text(value)
                    tmp.replace(target)

    def _start(self, dep: dict[str, Any], component: str, port: int | None = None) -> LocalPod:
        """`port`: the previous process's, so a restarted pod keeps its address as behind a Service."""
        name = dep["metadata"]["name"]
        pod_spec = dep["spec"]["template"]["spec"]
        container = pod_spec["containers"][0]
        root = self.work_dir / name
        files = self._volume_files(pod_spec, container)
        self._write_volumes(root, files)
        env = self._env(container)
        # Paths inside the pod live under the pod's root folder here.
        for key, value in list(env.items()):
            for mount_path in files:
                if value == mount_path or value.startswith(mount_path + "/"):
                    env[key] = str(root / value.lstrip("/"))
        port = port or free_port()
        cwd = None
        metrics_port = None
        if component == "relayer":
            metrics_port = free_port()
            env.update(HOST="127.0.0.1", APP_PORT=str(port), METRICS_PORT=str(metrics_port))
            argv = engines.relayer_argv(self.engine)
            live_path = "/api/v1/health"
            cwd = root
        else:
            args = list(container.get("args") or [])
            for i, a in enumerate(args):
                if a == "--config":
                    args[i + 1] = str(root / args[i + 1].lstrip("/"))
                elif a == "--host":
                    args[i + 1] = "127.0.0.1"
                elif a == "--port":
                    args[i + 1] = str(port)
            argv = [sys.executable, "-m", "msq_gateway.cli", *args, "--watch-interval", "0.5"]
            live_path = "/healthz"
        proc = ManagedProcess(f"pod-{self.namespace}-{name}", argv, self.log_dir, env=env, cwd=cwd).start()
        pod = LocalPod(
            name, component, _hash(dep["spec"]["template"]), root, port, proc, metrics_port=metrics_port
        )
        # Like kubelet, wait for the process to be alive; readiness is the owner's business (the gateway is
        # not ready until a relayer is, and relayers start after it).
        proc.wait_ready(lambda: httpx.get(pod.url + live_path, timeout=1).status_code == 200, 60)
        self._publish_endpoint(dep, component, pod.url)
        return pod

    def _publish_endpoint(self, dep: dict[str, Any], component: str, url: str) -> None:
        owner = (dep["metadata"].get("ownerReferences") or [{}])[0]
        plural = "relayers" if component == "relayer" else "relayerpools"
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            plural,
            owner["name"],
            {"metadata": {"annotations": {ANNOTATION_ENDPOINT: url}}},
        )

    # -- the sync loop ------------------------------------------------------------------------------------

    def sync(self) -> None:
        deps = self.api.sanitize_for_serialization(
            self.apps.list_namespaced_deployment(
                self.namespace, label_selector=f"app.kubernetes.io/managed-by={MANAGED_BY}"
            ).items
        )
        # The gateway first: relayers send their webhooks to it.
        deps.sort(key=lambda d: d["metadata"]["labels"].get("app.kubernetes.io/component") != "gateway")
        seen = set()
        with self._lock:
            for dep in deps:
                name = dep["metadata"]["name"]
                component = dep["metadata"]["labels"].get("app.kubernetes.io/component", "")
                if component not in ("relayer", "gateway") or dep["spec"].get("replicas", 1) == 0:
                    continue
                seen.add(name)
                pod = self.pods.get(name)
                if pod is not None and pod.frozen:
                    continue
                if (
                    pod is not None
                    and pod.template_hash == _hash(dep["spec"]["template"])
                    and pod.process.alive
                ):
                    pod_spec = dep["spec"]["template"]["spec"]
                    self._write_volumes(pod.root, self._volume_files(pod_spec, pod_spec["containers"][0]))
                    continue
                if pod is not None:
                    pod.process.stop()
                try:
                    self.pods[name] = self._start(dep, component, pod.port if pod is not None else None)
                except Exception as e:
                    self.errors.append(f"{name}: {e}")
                    self.pods.pop(name, None)
            for name in set(self.pods) - seen:
                self.pods.pop(name).process.stop()

    def start(self, interval: float = 0.5) -> LocalPods:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.sync()
                except Exception as e:
                    self.errors.append(str(e))
                self._stop.wait(interval)

        self._thread = threading.Thread(target=loop, name="local-pods", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(30)
        with self._lock:
            for pod in self.pods.values():
                if pod.frozen and pod.process.proc:
                    os.killpg(pod.process.proc.pid, signal.SIGCONT)
                pod.process.stop()
            self.pods.clear()

    def kill(self, name: str) -> None:
        """SIGKILL a pod's process, as a crashed container; the sync loop starts it again on the same port."""
        with self._lock:
            proc = self.pods[name].process.proc
            assert proc is not None
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def freeze(self, name: str) -> None:
        """SIGSTOP a pod's process: a relayer whose workers cannot keep up (a fault this machine cannot
        produce on demand)."""
        with self._lock:
            pod = self.pods[name]
            pod.frozen = True
            assert pod.process.proc is not None
            os.killpg(pod.process.proc.pid, signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        with self._lock:
            pod = self.pods[name]
            assert pod.process.proc is not None
            os.killpg(pod.process.proc.pid, signal.SIGCONT)
            pod.frozen = False
