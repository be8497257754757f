"""Run the operator as a real process against the local control plane (tests and the demo)."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from msq_devstack.process import ManagedProcess, free_port


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        log_dir: Path,
        namespaces: list[str] | None = None,
        name: str = "operator",
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        argv = [
            sys.executable,
            "-m",
            "msq_operator.cli",
            "run",
            "--kubeconfig",
            str(kubeconfig),
            "--metrics-port",
            str(self.metrics_port),
            "--liveness-port",
            str(self.liveness_port),
            "--bind",
            "127.0.0.1",
        ]
        for ns in namespaces or []:
            argv += ["--namespace", ns]
        argv += extra_args or []
        # The local pod runner refreshes mounted files every half second, not kubelet's minute.
        self.process = ManagedProcess(
            name, argv, log_dir, env={"MSQ_DRAIN_GRACE_SECONDS": "5", **(env or {})}
        )

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def start(self, timeout: float = 60) -> OperatorProcess:
        self.process.start()
        url = f"http://127.0.0.1:{self.liveness_port}/healthz"
        self.process.wait_ready(lambda: httpx.get(url, timeout=1).status_code == 200, timeout)
        return self

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL, as a crashed or evicted operator pod would die."""
        import os
        import signal

        if self.process.proc and self.process.alive:
            os.killpg(self.process.proc.pid, signal.SIGKILL)
            self.process.proc.wait(10)
