"""scripts.test_versions: which pins each supported Airflow is tested with (`make test-versions` runs it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts import test_versions

REPO_ROOT = Path(__file__).resolve().parents[2]


def _pins(path: Path) -> dict[str, str]:
    """``name == spec`` lines of a requirements file (comments dropped), names lower-cased."""
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.split("#")[0].strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_each_version_gets_its_own_pins_and_a_missing_one_names_the_fix():
    assert test_versions.constraints_for("3.2") == REPO_ROOT / "constraints" / "airflow-3.2.txt"
    assert _pins(REPO_ROOT / "constraints.txt")["apache-airflow"].startswith("3.3.")
    assert test_versions.constraints_for("3.3") == REPO_ROOT / "constraints.txt"
    with pytest.raises(SystemExit, match=r"constraints/airflow-3\.1\.in and run `make lock`"):
        test_versions.constraints_for("3.1")


@pytest.mark.parametrize("source", sorted((REPO_ROOT / "constraints").glob("airflow-*.in")), ids=lambda p: p.name)
def test_compiled_pins_agree_with_their_source(source: Path):
    """`make lock` was run after the last change of constraints/airflow-X.in."""
    wanted, compiled = _pins(source), _pins(source.with_suffix(".txt"))
    assert wanted, f"{source.name} pins nothing"
    for name, spec in wanted.items():
        prefix = spec.removesuffix("*")
        assert compiled.get(name, "").startswith(prefix), (
            f"{name}: {source.name} wants {spec}, the .txt has {compiled.get(name)}"
        )
