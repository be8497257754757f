"""GatewayConfig: the operator contract. Every error names its field; reloads swap whole snapshots."""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msq_gateway.config import ConfigError, canonical_signature, json_schema, parse_config, read_config_file
from msq_gateway.runtime import ConfigWatcher, build_snapshot
from tests.support.gateway import config_doc

TOKEN = "0x" + "11" * 20
USER = "0x" + "22" * 20
REPO = Path(__file__).resolve().parents[2]


def _doc(**kw: Any) -> dict[str, Any]:
    doc = config_doc(
        contracts=[{"address": TOKEN, "methods": ["transfer(address,uint256)"], "maxValue": "0"}],
        relayers=[{"id": "rl-0", "url": "http://127.0.0.1:9", "apiKeyEnv": "GW_TEST_RL0_KEY"}],
        quotas=[{"name": "std", "windowSeconds": 60, "maxTransactions": 10, "maxGas": 1_000_000}],
        **kw,
    )
    doc["apiKeys"][0]["quota"] = "std"
    return doc


def _problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    return info.value.problems


def _one(doc: dict[str, Any]) -> str:
    problems = _problems(doc)
    assert len(problems) == 1, problems
    return problems[0]


def test_valid_document_parses_with_defaults() -> None:
    cfg = parse_config(_doc())
    assert cfg.routing.strategy == "RoundRobin"
    assert cfg.limits.max_body_bytes == 65536
    assert cfg.policies[0].contracts[0].max_value == 0
    assert cfg.api_keys[0].quota == "std"


def test_readme_example_is_valid() -> None:
    text = (REPO / "gateway" / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    examples = [yaml.safe_load(b) for b in blocks if "kind: GatewayConfig" in b]
    assert examples, "gateway/README.md must carry a GatewayConfig example"
    for example in examples:
        parse_config(example)


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda d: d["chain"].pop("chainId"), "chain.chainId", "required"),
        (lambda d: d["chain"].update(chainId=0), "chain.chainId", "greater than 0"),
        (lambda d: d.update(apiVersion="gateway.msq.io/v2"), "apiVersion", "gateway.msq.io/v1"),
        (lambda d: d.update(polices=[]), "polices", "not permitted"),
        (lambda d: d["forwarder"].update(address="0x1234"), "forwarder.address", "20-byte hex address"),
        (
            lambda d: d["policies"][0]["contracts"][0].update(address="0xZZ" + "1" * 38),
            "policies[0].contracts[0].address",
            "hex address",
        ),
        (
            lambda d: d["policies"][0]["contracts"][0].update(methods=["transfer(adress,uint256)"]),
            "policies[0].contracts[0]",
            "methods[0]",
        ),
        (
            lambda d: d["policies"][0]["contracts"][0].update(methods=["transfer address"]),
            "policies[0].contracts[0]",
            "not a function signature",
        ),
        (
            lambda d: d["policies"][0]["contracts"][0].update(methods=[]),
            "policies[0].contracts[0]",
            "allowAllMethods",
        ),
        (
            lambda d: d["policies"][0]["contracts"][0].update(maxValue="-1"),
            "policies[0].contracts[0].maxValue",
            "unsigned integer",
        ),
        (lambda d: d["relayers"][0].update(apiKeyFile="/x"), "relayers[0]", "apiKeyEnv, apiKeyFile"),
        (
            lambda d: d["relayers"][0].pop("apiKeyEnv"),
            "relayers[0]",
            "one of apiKeyEnv, apiKeyFile is required",
        ),
        (lambda d: d["relayers"][0].update(url="ftp://x"), "relayers[0].url", "pattern"),
        (lambda d: d["relayers"].append(dict(d["relayers"][0])), "relayers[1].id", "duplicate"),
        (lambda d: d["routing"].update(strategy="Random"), "routing.strategy", "RoundRobin"),
        (lambda d: d["apiKeys"][0].update(sha256="abc"), "apiKeys[0]", "64 lowercase hex"),
        (lambda d: d["apiKeys"][0].update(quota="gold"), "apiKeys[0].quota", "unknown quota 'gold'"),
        (
            lambda d: d["apiKeys"][0].update(callbackUrl="https://cb.example"),
            "apiKeys[0]",
            "callbackSecretEnv",
        ),
        (
            lambda d: d["quotas"][0].update(windowSeconds=0),
            "quotas[0].windowSeconds",
            "greater than or equal",
        ),
        (lambda d: d["redis"].pop("url"), "redis", "one of url, urlEnv, urlFile is required"),
        (lambda d: d["limits"].update(maxBodyBytes=10), "limits.maxBodyBytes", "greater than or equal"),
        (
            lambda d: d["policies"][0]["contracts"][0].update(address=d["forwarder"]["address"]),
            "policies[0].contracts[0].address",
            "forwarder itself",
        ),
    ],
)
def test_each_error_names_its_field(mutate: Any, field: str, words: str) -> None:
    doc = copy.deepcopy(_doc())
    mutate(doc)
    problem = _one(doc)
    assert problem.startswith(field) or f"{field}:" in problem or f"{field}." in problem, problem
    assert words in problem, problem


def test_several_errors_are_all_reported() -> None:
    doc = _doc()
    doc["chain"]["chainId"] = -1
    doc["forwarder"]["address"] = "nope"
    problems = _problems(doc)
    assert any(p.startswith("chain.chainId") for p in problems)
    assert any(p.startswith("forwarder.address") for p in problems)


def test_bad_checksum_is_refused() -> None:
    doc = _doc()
    doc["forwarder"]["address"] = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # one letter's case flipped
    assert "checksum" in _one(doc)


def test_signatures_are_canonicalized() -> None:
    assert canonical_signature("approve(address, uint)") == "approve(address,uint256)"
    assert canonical_signature(" pause ( ) ") == "pause()"
    assert canonical_signature("f((address,uint)[],bytes)") == "f((address,uint256)[],bytes)"


def test_missing_secret_names_field(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GW_TEST_RL0_KEY", raising=False)
    with pytest.raises(ConfigError) as info:
        build_snapshot(parse_config(_doc()), tmp_path)
    assert info.value.problems == ["relayers[0].apiKeyEnv: environment variable 'GW_TEST_RL0_KEY' is not set"]
    doc = _doc()
    doc["relayers"][0] = {"id": "rl-0", "url": "http://x:1", "apiKeyFile": "keys/rl0"}
    with pytest.raises(ConfigError) as info:
        build_snapshot(parse_config(doc), tmp_path)
    assert info.value.problems[0].startswith("relayers[0].apiKeyFile: cannot read")


def test_secrets_resolve_from_env_and_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GW_TEST_RL0_KEY", "k" * 40)
    (tmp_path / "sign").write_text("signing-key\n")
    doc = _doc()
    doc["relayers"][0]["webhookSigningKeyFile"] = "sign"
    snap = build_snapshot(parse_config(doc), tmp_path)
    relayer = snap.relayers_by_id["rl-0"]
    assert relayer.api_key == "k" * 40
    assert relayer.signing_key == b"signing-key"
    assert relayer.transactions_url == "http://127.0.0.1:9/api/v1/relayers/rl-0/transactions"


def test_json_schema_uses_file_names() -> None:
    schema = json_schema()
    assert set(schema["required"]) >= {"apiVersion", "kind", "chain", "forwarder", "redis"}
    assert "apiKeys" in schema["properties"]


def _write(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc) if path.suffix == ".yaml" else json.dumps(doc))
    os.replace(tmp, path)  # atomic, as a kubelet ConfigMap update is


def test_yaml_and_json_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("gw.yaml", "gw.json"):
        _write(tmp_path / name, _doc())
        assert read_config_file(tmp_path / name).chain.chain_id == 31337
    (tmp_path / "bad.yaml").write_text("chain: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_config_file(tmp_path / "bad.yaml")


def test_reload_swaps_snapshot_and_keeps_old_one_on_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GW_TEST_RL0_KEY", "k" * 40)
    path = tmp_path / "gw.yaml"
    _write(path, _doc())
    watcher = ConfigWatcher(path, interval=0.1)
    first = watcher.current
    assert watcher.poll() is False  # nothing changed

    os.utime(path, (time.time() + 5, time.time() + 5))
    assert watcher.poll() is False  # touched, same content: same version

    doc = _doc()
    doc["relayers"][0]["draining"] = True
    _write(path, doc)
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert watcher.poll() is True
    second = watcher.current
    assert second.version != first.version
    assert second.relayers[0].draining and not first.relayers[0].draining  # the old snapshot is untouched

    bad = _doc()
    bad["chain"]["chainId"] = "x"
    _write(path, bad)
    os.utime(path, (time.time() + 15, time.time() + 15))
    assert watcher.poll() is False
    assert watcher.current is second
    assert watcher.last_error is not None and "chain.chainId" in watcher.last_error


def test_secret_file_change_is_a_reload(tmp_path: Path) -> None:
    (tmp_path / "rl0").write_text("a" * 40)
    doc = _doc()
    doc["relayers"][0] = {"id": "rl-0", "url": "http://127.0.0.1:9", "apiKeyFile": "rl0"}
    path = tmp_path / "gw.json"
    _write(path, doc)
    watcher = ConfigWatcher(path, interval=0.1)
    assert watcher.current.relayers[0].api_key == "a" * 40
    (tmp_path / "rl0").write_text("b" * 40)
    os.utime(tmp_path / "rl0", (time.time() + 5, time.time() + 5))
    assert watcher.poll() is True
    assert watcher.current.relayers[0].api_key == "b" * 40


# Hostile files: arbitrary bytes, YAML that is valid but not a config (scalars, lists, deep nesting, anchors
# expanding a billion times), and configs with one field replaced by junk of any JSON type.
_JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_BILLION_LAUGHS = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n"
    for i in range(9)
)
_HOSTILE_BYTES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    _JUNK.map(lambda j: yaml.safe_dump(j).encode()),
    st.just(b"[" * 5000 + b"]" * 5000),
    st.just(b"a:\n" + b"".join(b"  " * i + b"b:\n" for i in range(1, 3000))),
    st.just(_BILLION_LAUGHS.encode()),
    st.just(b"\x00\xff\xfe"),
    st.just(b""),
)


def _hostile_field_doc(data: st.DataObject) -> str:
    doc = _doc()
    section = data.draw(st.sampled_from(sorted(doc)))
    if isinstance(doc[section], dict) and doc[section]:
        key = data.draw(st.sampled_from(sorted(doc[section])))
        doc[section][key] = data.draw(_JUNK)
    elif isinstance(doc[section], list) and doc[section] and isinstance(doc[section][0], dict):
        key = data.draw(st.sampled_from(sorted(doc[section][0])))
        doc[section][0][key] = data.draw(_JUNK)
    else:
        doc[section] = data.draw(_JUNK)
    return yaml.safe_dump(doc)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def test_a_hostile_config_file_is_refused_clearly_and_the_old_snapshot_kept(data: st.DataObject) -> None:
    os.environ["GW_TEST_RL0_KEY"] = "k" * 40
    content = data.draw(_HOSTILE_BYTES)
    if data.draw(st.booleans()):
        content = _hostile_field_doc(data).encode()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "gw.yaml"
        _write(path, _doc())
        watcher = ConfigWatcher(path, interval=0.1)
        good, original = watcher.current, path.read_bytes()
        path.write_bytes(content)
        os.utime(path, (time.time() + 5, time.time() + 5))
        try:
            changed = watcher.poll()
        except Exception as exc:  # anything but a refusal recorded on the watcher is a crash
            raise AssertionError(f"poll raised {type(exc).__name__}: {exc} for {content[:200]!r}") from None
        if changed:
            # Junk that still makes a valid config (junk where any value is allowed) is a new snapshot.
            assert watcher.current is not good and watcher.last_error is None
        elif watcher.last_error is None:
            assert content == original  # drawn equal to the file it replaced: nothing to load
        else:
            assert watcher.current is good
            error = watcher.last_error or ""
            assert error and len(error) < 20_000, error[:500]
            assert "Traceback" not in error
