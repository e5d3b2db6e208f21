"""The operator's arguments agree with the engine's DrainConfig and with the table in docs/operator.md."""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import re
from pathlib import Path

from aep_provider.engine.config import DrainConfig
from aep_provider.operators.kafka_to_aep import KafkaToAEPOperator

OPERATOR_DOC = Path(__file__).resolve().parents[2] / "docs" / "operator.md"


def _init_defaults() -> dict[str, object]:
    params = inspect.signature(KafkaToAEPOperator.__init__).parameters
    return {
        name: p.default for name, p in params.items() if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
    }


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def test_operator_and_drain_config_defaults_agree():
    operator = _init_defaults()
    shared = {f.name: f.default for f in dataclasses.fields(DrainConfig) if f.name in operator}
    assert len(shared) >= 10  # the test must keep comparing something
    drift = {name: (operator[name], _plain(d)) for name, d in shared.items() if operator[name] != _plain(d)}
    assert not drift, f"operator default != DrainConfig default: {drift}"


def _doc_operator_table() -> dict[str, str]:
    text = OPERATOR_DOC.read_text(encoding="utf-8")
    start = text.index("| argument | default | meaning |")
    table = text[start : text.index("\n\n", start)]
    rows: dict[str, str] = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for name in re.findall(r"`([a-z_]+)`", cells[0]):
            rows[name] = cells[1]
    return rows


def test_operator_doc_lists_every_operator_argument_with_its_default():
    rows = _doc_operator_table()
    operator = _init_defaults()
    missing = sorted(set(operator) - set(rows))
    assert not missing, f"docs/operator.md argument table lacks: {missing}"
    unknown = sorted(set(rows) - set(operator))
    assert not unknown, f"docs/operator.md argument table lists arguments the operator does not take: {unknown}"
    for name, default in operator.items():
        shown = rows[name]
        if default is inspect.Parameter.empty:
            assert shown == "required", name
            continue
        assert ast.literal_eval(shown.strip("`")) == default, (
            f"{name}: docs/operator.md says {shown}, __init__ says {default!r}"
        )
