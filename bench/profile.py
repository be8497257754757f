"""py-spy sampling of benchmark processes while an arm runs: collapsed stacks (one line per stack, with its
sample count, only samples holding the GIL), the input of any flame graph tool and greppable as it is."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def profiling(pids: dict[str, int], out_dir: Path | None, arm: str) -> Iterator[None]:
    """Sample each process of `pids` into `out_dir/<arm>.<name>.txt` (nothing when out_dir is None)."""
    if out_dir is None:
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).with_name("py-spy")
    procs = [
        subprocess.Popen(
            [str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--gil", "--rate", "200",
             "-o", str(out_dir / f"{arm}.{name}.txt")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]  # fmt: skip
    time.sleep(1.0)  # attached before the load starts
    try:
        yield
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait(timeout=60)
