"""Test-suite wiring. Airflow reads AIRFLOW_HOME at import time, so it is set here, first."""

from __future__ import annotations

import os
import tempfile

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
