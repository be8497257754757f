"""Start the whole local stack (or a part of it) and stop it cleanly."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from msq_devstack.chain import Chain, start_chain
from msq_devstack.kube import KubeControlPlane, start_control_plane
from msq_devstack.openbao import OpenBao, start_openbao
from msq_devstack.redis import Redis, start_redis


@dataclass
class Stack:
    work_dir: Path
    chain: Chain | None = None
    redis: Redis | None = None
    openbao: OpenBao | None = None
    kube: KubeControlPlane | None = None

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "logs"

    def endpoints(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.kube:
            out["kubernetes"] = self.kube.server
            out["kubeconfig"] = str(self.kube.kubeconfig)
        if self.openbao:
            out["openbao"] = self.openbao.addr
        if self.redis:
            out["redis"] = self.redis.url
        if self.chain:
            out["anvil"] = self.chain.rpc_url
        out["logs"] = str(self.log_dir)
        return out


class StackRunner:
    """Context manager: starts the requested parts, stops every one of them on exit, even after a failure."""

    def __init__(
        self,
        *,
        kube: bool = True,
        openbao: bool = True,
        redis: bool = True,
        chain: bool = True,
        work_dir: Path | None = None,
        keep_work_dir: bool = False,
        audit_reads: bool = False,
    ) -> None:
        self.audit_reads = audit_reads  # the API server's audit log records reads too (see kube.py)
        self.want = {"kube": kube, "openbao": openbao, "redis": redis, "chain": chain}
        self._own_dir = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="msq-devstack-"))
        self.keep = keep_work_dir
        self._exit = ExitStack()

    def __enter__(self) -> Stack:
        stack = Stack(work_dir=self.work_dir)
        logs = stack.log_dir
        try:
            if self.want["chain"]:
                stack.chain = start_chain(logs)
                self._exit.callback(stack.chain.stop)
            if self.want["redis"]:
                stack.redis = start_redis(logs)
                self._exit.callback(stack.redis.stop)
            if self.want["openbao"]:
                stack.openbao = start_openbao(logs)
                self._exit.callback(stack.openbao.stop)
            if self.want["kube"]:
                stack.kube = start_control_plane(self.work_dir / "kube", logs, audit_reads=self.audit_reads)
                self._exit.callback(stack.kube.stop)
        except BaseException:
            self._exit.close()
            raise
        return stack

    def __exit__(self, *exc: object) -> None:
        self._exit.close()
        if self._own_dir and not self.keep:
            shutil.rmtree(self.work_dir, ignore_errors=True)
