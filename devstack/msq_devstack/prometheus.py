"""A real Prometheus (Debian's package) scraping the local stack, with static targets standing in for the
chart's ServiceMonitor and PodMonitor: the same paths, the same `honor_labels`, the same target labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from msq_devstack import tools
from msq_devstack.process import ManagedProcess, free_port


@dataclass(frozen=True)
class ScrapeJob:
    name: str
    targets: list[str]  # host:port
    metrics_path: str = "/metrics"
    labels: dict[str, str] = field(default_factory=dict)
    honor_labels: bool = False


def scrape_config(jobs: list[ScrapeJob], interval_seconds: float) -> dict[str, Any]:
    every = f"{round(interval_seconds * 1000)}ms"  # Prometheus durations take no fractions
    return {
        "global": {"scrape_interval": every, "evaluation_interval": every},
        "scrape_configs": [
            {
                "job_name": j.name,
                "metrics_path": j.metrics_path,
                "honor_labels": j.honor_labels,
                "static_configs": [{"targets": j.targets, "labels": j.labels}],
            }
            for j in jobs
        ],
    }


@dataclass
class Prometheus:
    url: str
    process: ManagedProcess

    def query(self, expr: str) -> dict[str, Any]:
        """The HTTP API's answer to an instant query (`status`, `data` or `error`)."""
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        return r.json()  # type: ignore[no-any-return]

    def targets_up(self) -> dict[str, str]:
        """scrapeUrl -> health of every active target."""
        data = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        return {t["scrapeUrl"]: t["health"] for t in data}

    def stop(self) -> None:
        self.process.stop()


def start_prometheus(
    jobs: list[ScrapeJob], work_dir: Path, log_dir: Path, interval_seconds: float = 1.0, timeout: float = 30
) -> Prometheus:
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(jobs, interval_seconds), sort_keys=False))
    port = free_port()
    proc = ManagedProcess(
        "prometheus",
        [
            tools.prometheus(),
            f"--config.file={config}",
            f"--storage.tsdb.path={work_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log_dir,
    ).start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200, timeout)
    return Prometheus(url=url, process=proc)
