"""The benchmarks' load generator: wrk (C, one thread), fed a file of request bodies, one JSON per line.

wrk costs a few microseconds of CPU per request, so on 2 shared cores it leaves the CPU to what is measured;
a Python client costs about as much per request as the server under test. Each request takes the next body
of the file (a gasless body can be used once only: its forwarder nonce); unless told the bodies may be reused,
the run ends when they run out.
wrk's own CPU time is read from the kernel's rusage of the finished process and reported like every part.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCRIPT = r"""
local bodies, n, i = {}, 0, 0
statuses, wrapped = {}, 0
local path, key = os.getenv("WRK_PATH"), os.getenv("WRK_API_KEY")

function init(args)
  for line in io.lines(os.getenv("WRK_BODIES")) do n = n + 1; bodies[n] = line end
  wrk.headers["Content-Type"] = "application/json"
  if key ~= nil and key ~= "" then wrk.headers["X-API-Key"] = key end
end

local reuse = os.getenv("WRK_REUSE") == "1"
local drained = false

local tail = os.getenv("WRK_TAIL")

function request()
  i = i + 1
  if i > n and not reuse then
    wrapped = wrapped + 1
    -- A request that is not a transaction, so the bodies' transactions are sent exactly once each.
    if tail ~= nil and tail ~= "" then return wrk.format("GET", tail) end
  end
  return wrk.format("POST", path, nil, bodies[((i - 1) % n) + 1])
end

function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
  -- Out of bodies: stop, and say so; the caller then interrupts wrk, which ends the run and prints it.
  if i >= n and not reuse and not drained then
    drained = true
    io.stderr:write("WRK_DRAINED\n")
    io.stderr:flush()
    wrk.thread:stop()
  end
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

function done(summary, latency, requests)
  local st, wr = {}, 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do st[k] = (st[k] or 0) + v end
    wr = wr + t:get("wrapped")
  end
  local parts = {}
  for k, v in pairs(st) do table.insert(parts, string.format('"%s": %d', k, v)) end
  io.stderr:write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "errors": %d, "wrapped": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout,
    wr, latency:percentile(50), latency:percentile(90), latency:percentile(99), table.concat(parts, ", ")))
end
"""


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    errors: int
    statuses: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    cpu_seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def ok(self, status: int) -> int:
        return self.statuses.get(str(status), 0)

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "statuses": dict(sorted(self.statuses.items())),
            "errors": self.errors,
        }


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: `make deps` installs it (Debian package wrk)")
    return found


def run_wrk(
    url: str,
    path: str,
    bodies: list[str],
    *,
    seconds: float,
    connections: int,
    api_key: str = "",
    timeout_s: float = 10,
    reuse: bool = False,
    tail_path: str = "",
) -> LoadResult:
    """POST the bodies in order to `url` + `path` for `seconds` over `connections` keep-alive connections,
    from one wrk thread. Each body is sent once and the run ends early when they run out, unless `reuse` lets
    the list start over. The few requests already on their way when the bodies run out repeat bodies, or with
    `tail_path` are a GET of that path instead, so that no body is sent twice."""
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        body_file = Path(tmp) / "bodies.jsonl"
        body_file.write_text("\n".join(bodies) + "\n")
        script = Path(tmp) / "post.lua"
        script.write_text(_SCRIPT)
        env = {
            **os.environ,
            "WRK_BODIES": str(body_file),
            "WRK_PATH": path,
            "WRK_API_KEY": api_key,
            "WRK_REUSE": "1" if reuse else "0",
            "WRK_TAIL": tail_path,
        }
        argv = [
            wrk_binary(),
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={int(timeout_s)}s",
            "-s",
            str(script),
            url,
        ]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if line.strip() == "WRK_DRAINED":
                proc.send_signal(signal.SIGINT)
        err = "".join(lines)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    line = next((x for x in err.splitlines() if x.startswith("WRK_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err[-2000:]}")
    out = json.loads(line.removeprefix("WRK_RESULT "))
    return LoadResult(
        requests=out["requests"],
        seconds=out["duration_us"] / 1e6,
        errors=out["errors"],
        statuses=out["statuses"],
        p50_ms=out["p50_us"] / 1000,
        p90_ms=out["p90_us"] / 1000,
        p99_ms=out["p99_us"] / 1000,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )
