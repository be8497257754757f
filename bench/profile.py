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


def summarize(collapsed: Path, top: int = 40) -> str:
    """The functions with the largest share of samples, inclusive (the function and what it called) and
    self (the function's own lines), from a collapsed-stacks file."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " " + f.rsplit("(", 1)[-1].split(":")[0] for f in stack.split(";")]
        for name in set(frames):
            inclusive[name] = inclusive.get(name, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
    out = [f"{collapsed.name}: {total} samples", "inclusive:"]
    for name, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * n / total:5.1f}%  {name}")
    out.append("self:")
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[: top // 2]:
        out.append(f"  {100 * n / total:5.1f}%  {name}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(summarize(Path(arg)))
