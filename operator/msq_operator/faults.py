"""Named points where the operator can be made to die by SIGKILL, to test that a restart there loses
nothing and repeats nothing (a real kill at an exact step, which an outside `kill -9` cannot aim at).

Set MSQ_OPERATOR_KILL_AT to a comma-separated list of point names; unset, nothing happens."""

from __future__ import annotations

import os
import signal

ENV = "MSQ_OPERATOR_KILL_AT"


def point(name: str) -> None:
    if name in os.environ.get(ENV, "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)
