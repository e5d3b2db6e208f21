"""Running a one-task KafkaToAEPOperator DAG under a real Airflow task runner (dag.test())."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

DAG_TEMPLATE = """
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from aep_provider.operators.kafka_to_aep import KafkaToAEPOperator

with DAG(
    dag_id={dag_id!r},
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    KafkaToAEPOperator(
        task_id="drain",
        topics={topic!r},
        kafka_config_id={kafka_conn!r},
        aep_conn_id={aep_conn!r},
        retries={retries},
        retry_delay=timedelta(seconds=1),
        {extra}
    )
"""


def write_dag(airflow_db: str, topic: str, kafka_conn: str, aep_conn: str, extra: str = "", retries: int = 1):
    """Write a one-task DAG (task ``drain``) into the dags-folder bundle and import it; return its module."""
    dag_id = f"aep_fault_{uuid.uuid4().hex[:8]}"
    bundle = Path(airflow_db) / "dags"
    bundle.mkdir(exist_ok=True)
    path = bundle / f"{dag_id}.py"
    path.write_text(
        DAG_TEMPLATE.format(
            dag_id=dag_id, topic=topic, kafka_conn=kafka_conn, aep_conn=aep_conn, extra=extra, retries=retries
        )
    )
    spec = importlib.util.spec_from_file_location(dag_id, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_dag(airflow_db: str, topic: str, kafka_conn: str, aep_conn: str, extra: str = "", retries: int = 1):
    """Write a one-task DAG into the dags-folder bundle, run it with dag.test(), return (dag_run, ti)."""
    dag_run = write_dag(airflow_db, topic, kafka_conn, aep_conn, extra, retries).dag.test()
    return dag_run, dag_run.get_task_instance("drain")
