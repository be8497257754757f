"""Output of the benchmarks: percentiles, one JSON document on stdout, progress on stderr."""

from __future__ import annotations

import json
import logging
import math
import sys
from typing import Any


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def emit(result: dict[str, Any]) -> None:
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()


def progress(message: str) -> None:
    # Progress goes to stderr so stdout stays one JSON document.
    print(message, file=sys.stderr, flush=True)


def quiet_logs() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
