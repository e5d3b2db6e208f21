"""
The history tables' Alembic migrations against a real Airflow metadata database (SQLite, in a
process of its own: Airflow binds its engine at import).

An existing database is upgraded the way ``airflow db migrate`` does it (Airflow's ``upgradedb``
runs every registered db manager's), keeping its rows, and the migrated schema is exactly the
models' (Alembic's autogenerate comparison finds no difference).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent(
    """
    import json
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect, insert, select

    from airflow import settings
    from airflow.utils import db
    from airflow.utils.session import create_session
    from aep_provider.history.db import HistoryDBManager
    from aep_provider.history.models import deliveries, metadata

    FIRST = "a3e1f0c2d415"
    out = {}

    def revision():
        with create_session() as session:
            return HistoryDBManager(session).get_current_revision()

    def indexes():
        return sorted(i["name"] for i in inspect(settings.engine).get_indexes("aep_delivery"))

    db.initdb()  # a new database: the tables from the models, stamped at the head revision
    out["new"] = [revision(), indexes()]
    with create_session() as session:
        HistoryDBManager(session).downgrade(FIRST)  # the database of the provider's first version
    out["first"] = [revision(), indexes()]
    with settings.engine.begin() as conn:
        conn.execute(insert(deliveries).values(
            dag_id="d", task_id="t", run_id="r", map_index=-1, try_number=1, mode="drain",
            delivered=5, rejected=0, dead_lettered=0, skipped=0))
    db.upgradedb()  # what `airflow db migrate` runs
    out["upgraded"] = [revision(), indexes()]
    with settings.engine.connect() as conn:
        out["rows"] = [list(r) for r in conn.execute(select(deliveries.c.run_id, deliveries.c.delivered))]
        context = MigrationContext.configure(conn, opts={"include_object": lambda o, name, type_, *a: (
            type_ != "table" or name in metadata.tables)})
        out["diff"] = [str(d) for d in compare_metadata(context, metadata)]
    print("RESULT " + json.dumps(out))
    """
)


def test_an_existing_database_is_upgraded_to_the_models_schema_keeping_its_rows(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")},
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=240)
    results = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and results, done.stderr[-3000:]
    out = json.loads(results[-1].removeprefix("RESULT "))
    head_indexes = ["aep_delivery_dag_task_end_idx", "aep_delivery_end_idx"]
    assert out["new"] == ["b7c2d9e4f130", head_indexes]
    assert out["first"] == ["a3e1f0c2d415", ["aep_delivery_dag_task_end_idx"]]
    assert out["upgraded"] == ["b7c2d9e4f130", head_indexes]
    assert out["rows"] == [["r", 5]]
    assert out["diff"] == []
