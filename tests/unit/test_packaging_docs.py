"""Generated docs are current: docs/crd-reference.md from crds/, docs/gateway-openapi.json from the app."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from msq_devstack import docgen


def test_crd_reference_is_up_to_date() -> None:
    assert docgen.CRD_REFERENCE.read_text() == docgen.crd_reference(), (
        "docs/crd-reference.md is stale: run `python -m msq_devstack.docgen`"
    )


def test_gateway_openapi_is_up_to_date() -> None:
    assert docgen.GATEWAY_OPENAPI.read_text() == docgen.gateway_openapi(), (
        "docs/gateway-openapi.json is stale: run `python -m msq_devstack.docgen`"
    )


def test_crd_reference_documents_every_spec_field() -> None:
    text = docgen.CRD_REFERENCE.read_text()
    for path in sorted(docgen.CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        for name in spec["properties"]:
            assert f"| `spec.{name}` |" in text, (crd["spec"]["names"]["kind"], name)


def test_openapi_documents_the_gateway_api() -> None:
    doc = json.loads(docgen.GATEWAY_OPENAPI.read_text())
    assert {"/api/v1/relay/direct", "/api/v1/relay/gasless", "/api/v1/webhooks/relayer"} <= set(doc["paths"])


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    out = ["--docs-dir", str(tmp_path)]
    assert docgen.main(["--check", *out]) == 1
    assert docgen.main(out) == 0
    assert (tmp_path / "crd-reference.md").read_text() == docgen.CRD_REFERENCE.read_text()
    assert docgen.main(["--check", *out]) == 0
