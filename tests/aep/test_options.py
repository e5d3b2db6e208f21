"""The adobe_aep connection's options are declared once: form fields, parsing, defaults and docs agree."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from aep_provider.aep import AEPConfigError, AEPSettings
from aep_provider.aep.options import BY_NAME, EXTRAS, OPTIONS, TYPES, Option
from aep_provider.get_provider_info import get_provider_info
from aep_provider.hooks.aep import CONNECTION_EXTRAS
from scripts import gen_docs

CONNECTION_DOC = Path(__file__).resolve().parents[2] / "docs" / "connection.md"


def _conn_type() -> dict:
    (conn_type,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "adobe_aep"]
    return conn_type


def test_every_option_has_a_known_type_a_label_and_help():
    assert len({o.name for o in OPTIONS}) == len(OPTIONS)
    for option in OPTIONS:
        assert option.type in TYPES, option.name
        assert option.label and option.help.endswith("."), option.name


def test_settings_fields_are_the_declared_options_with_their_defaults():
    fields = {f.name: f for f in dataclasses.fields(AEPSettings)}
    assert set(fields) == set(BY_NAME)
    for name, field in fields.items():
        option = BY_NAME[name]
        if name != "inlet_id":  # required: no default
            assert field.default == option.default, name
        # Secrets (and the proxy URL, which may hold a password) never show in repr.
        if option.secret:
            assert field.repr is False, name


def test_conn_fields_are_derived_from_the_declaration():
    conn_fields = _conn_type()["conn-fields"]
    assert list(conn_fields) == list(EXTRAS)
    assert set(CONNECTION_EXTRAS) == set(EXTRAS)
    for name, field in conn_fields.items():
        option = BY_NAME[name]
        assert field["label"] == option.label
        assert field["description"].startswith(option.help)
        assert field["schema"]["type"][0] == TYPES[option.type][1]
        if option.default is not None and not isinstance(option.default, tuple):
            assert field["schema"]["default"] == option.default
        assert (field["schema"].get("format") == "password") == option.secret
    relabeling = _conn_type()["ui-field-behaviour"]["relabeling"]
    assert relabeling == {"host": "Inlet URL", "login": "Client ID", "password": "Client secret"}


def test_connection_doc_tables_are_generated_from_the_declaration():
    assert gen_docs.DOC == CONNECTION_DOC
    text = CONNECTION_DOC.read_text(encoding="utf-8")
    assert gen_docs.render(text, CONNECTION_DOC.name) == text, (
        "docs/connection.md is out of date: run `python -m scripts.gen_docs`"
    )


def test_connection_doc_lists_every_option_with_its_default():
    text = CONNECTION_DOC.read_text(encoding="utf-8")
    for option in OPTIONS:
        cell = f"**{option.label}** (`{option.attr}`)" if option.attr else f"`{option.name}`"
        row = re.search(rf"^\| {re.escape(cell)} \| .* \| (.+) \|$", text, re.M)
        assert row, f"docs/connection.md has no row for {option.name}"
        assert row.group(1) == (option.shown_default or option.readme_row().rsplit(" | ", 1)[1][:-2])


def test_gen_docs_check_fails_on_a_stale_table(tmp_path):
    stale = tmp_path / "connection.md"
    stale.write_text(CONNECTION_DOC.read_text(encoding="utf-8").replace("| `pool_size` |", "| `pool_sizes` |"))
    assert gen_docs.main(["--check", "--file", str(stale)]) == 1
    assert gen_docs.main(["--file", str(stale)]) == 0
    assert gen_docs.main(["--check", "--file", str(stale)]) == 0


@pytest.mark.parametrize(
    ("option", "given", "expected"),
    [
        ("timeout", "5", (5.0, 5.0)),
        ("timeout", [1, 2], (1.0, 2.0)),
        ("verify", "false", False),
        ("verify", "/ca.pem", "/ca.pem"),
        ("max_requests_per_second", "0", None),
        ("max_requests_per_second", "off", None),
        ("max_attempts", "3", 3),
        ("auth", " Token ", "token"),
        ("scopes", ["a", "b"], "a,b"),
        ("client_secret", " s p ", " s p "),
    ],
)
def test_coercion_is_the_option_type(option, given, expected):
    assert BY_NAME[option].coerce(given) == expected


def test_a_bad_value_names_the_option():
    with pytest.raises(AEPConfigError, match="option 'pool_size' has an invalid value"):
        AEPSettings.from_values({"inlet_id": "i", "auth": "none", "pool_size": "0"})


def test_an_option_row_escapes_pipes():
    option = Option("x", "text", None, "X", "a | b.")
    assert "a \\| b." in option.readme_row()
