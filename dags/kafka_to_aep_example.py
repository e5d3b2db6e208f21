"""
Example: every 5 minutes, drain Kafka topic ``aep.events`` into AEP; rejected records go to ``aep.events.dlq``.

Connections: ``kafka_default`` (type ``kafka``; extra = confluent-kafka config with
``bootstrap.servers`` and ``group.id``) and ``aep_default`` (type ``adobe_aep``).
Each run drains to the end offsets snapshotted at its start, stops by itself before the next
interval begins (``max_run_seconds``), and commits only what AEP acknowledged. The topic names
are DAG params, so a manual run can target another topic pair.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, Param

from aep_provider.operators.kafka_to_aep import KafkaToAEPOperator

with DAG(
    dag_id="kafka_to_aep_example",
    description="Drain Kafka topic aep.events into Adobe Experience Platform every 5 minutes",
    # Real data intervals (start < end), which replays/backfills of an interval rely on.
    schedule=CronDataIntervalTimetable("*/5 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    # One drain at a time per group; a manual trigger would wait instead of overlapping.
    max_active_runs=1,
    params={
        "topic": Param("aep.events", type="string", description="Kafka topic to drain"),
        "dlq_topic": Param("aep.events.dlq", type="string", description="Dead-letter topic for rejected records"),
    },
    tags=["kafka", "aep", "example"],
) as dag:
    KafkaToAEPOperator(
        task_id="drain_aep_events",
        topics="{{ params.topic }}",
        dlq_topic="{{ params.dlq_topic }}",
        kafka_config_id="kafka_default",
        aep_conn_id="aep_default",
        max_batch_records=500,
        max_in_flight=4,
        # Leave a minute of the 5-minute interval for settling, committing and the next run's start.
        max_run_seconds=240,
        # A run stops itself at max_run_seconds; the timeout is only a safety net (it calls on_kill).
        execution_timeout=timedelta(minutes=4, seconds=45),
        retries=2,
        retry_delay=timedelta(seconds=30),
    )
