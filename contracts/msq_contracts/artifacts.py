"""Committed ABI + bytecode of the forwarder and the sample contracts (built by contracts/build.mjs)."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any, Literal, TypedDict

ArtifactName = Literal["ERC2771Forwarder", "SampleToken", "SampleNFT"]
ARTIFACT_NAMES: tuple[ArtifactName, ...] = ("ERC2771Forwarder", "SampleToken", "SampleNFT")


class Artifact(TypedDict):
    contractName: str
    abi: list[dict[str, Any]]
    bytecode: str
    compiler: dict[str, Any]


@cache
def _parsed(name: str) -> Artifact:
    if name not in ARTIFACT_NAMES:
        raise ValueError(f"unknown artifact {name!r}; known: {', '.join(ARTIFACT_NAMES)}")
    text = resources.files("msq_contracts").joinpath("artifacts", f"{name}.json").read_text("utf-8")
    artifact: Artifact = json.loads(text)
    return artifact


def load_artifact(name: ArtifactName | str) -> Artifact:
    """Return `{"contractName", "abi", "bytecode", "compiler"}` for one committed artifact.

    The file is parsed once per process; each call gets its own copy, so a caller that edits the ABI
    cannot corrupt what the next caller sees.
    """
    return copy.deepcopy(_parsed(name))
