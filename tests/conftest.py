"""Test-suite wiring. Airflow reads AIRFLOW_HOME at import time, so it is set here, first."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Every test process gets its own throw-away Airflow home (SQLite DB, logs); nothing leaks
# into ~/airflow or the developer's local stack.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="aep-provider-tests-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

pytest_plugins = [
    "tests.fixtures.kafka",  # kafka_bootstrap, make_topic (foundation)
    "tests.fixtures.emulator",  # aep_emulator (emulator)
    "tests.fixtures.connections",  # AIRFLOW_CONN_* for the AEP connection (hook)
    "tests.fixtures.airflow",  # metadata DB for dag.test(), kafka connection (operator)
]


def pytest_sessionstart(session: pytest.Session) -> None:
    """`make test-versions` runs the tests against an installed wheel: stop at once if they import another copy."""
    installed_in = os.environ.get("AEP_PROVIDER_INSTALLED_IN")
    if not installed_in:
        return
    import aep_provider

    where = Path(aep_provider.__file__).resolve()
    if not where.is_relative_to(Path(installed_in).resolve()):
        raise pytest.UsageError(f"aep_provider was imported from {where}, not from the environment {installed_in}")
    print(f"aep_provider under test: {where.parent}")
