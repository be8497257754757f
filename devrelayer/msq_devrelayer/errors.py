"""Errors that stop the dev relayer before it serves anything."""

from __future__ import annotations


class StartupError(RuntimeError):
    """A configuration or environment problem found at start; the message names the field at fault."""
