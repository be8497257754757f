"""The demo story told by `make demo`: each step prints what it did and what a user can look at."""

from __future__ import annotations

from collections.abc import Callable

from msq_devstack.stack import Stack

Say = Callable[[str], None]


def show_stack(stack: Stack, say: Say) -> None:
    say("Local stack is up (all on 127.0.0.1):")
    for name, where in stack.endpoints().items():
        say(f"  {name:<11} {where}")
    if stack.kube:
        say(f"  try: {' '.join(stack.kube.kubectl_argv('get', 'namespaces'))}")


STEPS: list[Callable[[Stack, Say], None]] = [show_stack]


def run(stack: Stack, say: Say) -> None:
    for step in STEPS:
        step(stack, say)
