"""`make demo`'s program: starts the stack, tells the story, hands over commands that work (every printed
command is run here against the live demo), stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time

from msq_devstack.demo import CONTROLS_HEADER, PROMPT


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_demo_runs_and_stops_cleanly_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "msq_devstack.cli", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 600
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Press Ctrl-C" in line:
            break
    out = "".join(lines)
    assert "Press Ctrl-C" in out, out
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", out)]
    assert {"kubernetes", "openbao", "redis", "anvil"} <= set(re.findall(r"^\s+(\w+)\s", out, re.M)), out
    assert ports and all(_listening(p) for p in ports)

    # Every command handed over works as printed: run through a shell, as a user would paste it.
    assert CONTROLS_HEADER in out, out
    commands = [line[len(PROMPT) :].rstrip("\n") for line in lines if line.startswith(PROMPT)]
    assert len(commands) >= 8, commands
    results = {}
    for command in commands:
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
        results[command] = done.stdout
    by_kind = {
        kind: next(out for c, out in results.items() if marker in c)
        for kind, marker in [
            ("get", " get rp,rl,cp"),
            ("relay", "/api/v1/relay/direct"),
            ("status", "/api/v1/relay/status/"),
            ("relayer_metrics", "/debug/metrics/scrape"),
            ("prometheus", "/api/v1/query"),
            ("gasless", "msq_devstack.send_gasless"),
        ]
    }
    assert "payments" in by_kind["get"] and "relayerpool" in by_kind["get"].lower(), by_kind["get"]
    assert json.loads(by_kind["relay"])["id"], by_kind["relay"]
    assert json.loads(by_kind["status"])["status"] == "confirmed", by_kind["status"]
    assert "# TYPE" in by_kind["relayer_metrics"]
    assert json.loads(by_kind["gasless"].splitlines()[-1])["status"] == "confirmed", by_kind["gasless"]
    # Prometheus has scraped the story's transactions (direct and gasless, confirmed).
    series = json.loads(by_kind["prometheus"])["data"]["result"]
    assert {(x["metric"]["kind"], x["metric"]["status"]) for x in series} >= {
        ("direct", "confirmed"),
        ("gasless", "confirmed"),
    }, series

    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "Stopped cleanly." in rest
    assert not any(_listening(p) for p in ports)
