"""`msq-devstack`: start the local stack (`up`) or tell the demo story on it (`demo`)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from msq_devstack import demo
from msq_devstack.stack import StackRunner


def _say(line: str) -> None:
    print(line, flush=True)


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    _say("Press Ctrl-C to stop.")
    stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="msq-devstack", description=__doc__)
    parser.add_argument("command", choices=["up", "demo"])
    parser.add_argument("--no-wait", action="store_true", help="stop right after starting (and the story)")
    parser.add_argument("--work-dir", type=Path, help="keep state and logs here instead of a temp folder")
    args = parser.parse_args(argv)

    started = time.monotonic()
    _say("Starting the local stack (Kubernetes API server, OpenBao, Redis, anvil) ...")
    with StackRunner(work_dir=args.work_dir) as stack:
        _say(f"Stack ready in {time.monotonic() - started:.1f}s.")
        cleanups = demo.run(stack, _say) if args.command == "demo" else []
        if args.command == "up":
            demo.show_stack(stack, _say)
        try:
            if not args.no_wait:
                _wait_for_interrupt()
            _say("Stopping ...")
        finally:
            for cleanup in reversed(cleanups):
                cleanup()
    _say("Stopped cleanly.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
