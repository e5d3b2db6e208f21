"""The operator's arguments are declared once (operators/arguments.py): signature, docstring, engine and docs agree."""

from __future__ import annotations

import dataclasses
import enum
import inspect

from aep_provider.engine.config import DrainConfig
from aep_provider.operators.arguments import ARGUMENTS, REQUIRED, doc_table
from aep_provider.operators.kafka_to_aep import KafkaToAEPOperator
from scripts import gen_docs


def _init_parameters() -> dict[str, inspect.Parameter]:
    params = inspect.signature(KafkaToAEPOperator.__init__).parameters
    return {name: p for name, p in params.items() if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD}


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def test_the_signature_takes_exactly_the_declared_arguments_with_their_defaults():
    params = _init_parameters()
    assert list(params) == [a.name for a in ARGUMENTS], "declare new arguments in aep_provider/operators/arguments.py"
    for argument in ARGUMENTS:
        default = params[argument.name].default
        expected = inspect.Parameter.empty if argument.default is REQUIRED else argument.default
        assert default == expected, f"{argument.name}: __init__ has {default!r}, the declaration {argument.default!r}"


def test_template_fields_and_docstring_come_from_the_declaration():
    assert list(KafkaToAEPOperator.template_fields) == [a.name for a in ARGUMENTS if a.templated]
    doc = inspect.getdoc(KafkaToAEPOperator) or ""
    params = [line for line in doc.splitlines() if line.startswith(":param ")]
    assert params == [a.param_line() for a in ARGUMENTS]


def test_operator_and_drain_config_defaults_agree():
    operator = {name: p.default for name, p in _init_parameters().items()}
    shared = {f.name: f.default for f in dataclasses.fields(DrainConfig) if f.name in operator}
    assert len(shared) >= 10  # the test must keep comparing something
    drift = {name: (operator[name], _plain(d)) for name, d in shared.items() if operator[name] != _plain(d)}
    assert not drift, f"operator default != DrainConfig default: {drift}"


def test_operator_doc_table_is_generated_from_the_declaration():
    text = gen_docs.OPERATOR_DOC.read_text(encoding="utf-8")
    assert doc_table() in text
    assert gen_docs.render(text, gen_docs.OPERATOR_DOC.name) == text, (
        "docs/operator.md is out of date: run `python -m scripts.gen_docs`"
    )
    for argument in ARGUMENTS:
        assert f"| `{argument.name}`" in text, argument.name
