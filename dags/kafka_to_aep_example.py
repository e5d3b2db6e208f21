"""
Example: every 5 minutes, drain Kafka topic ``aep.events`` into AEP; rejected records go to ``aep.events.dlq``.

Connections: ``kafka_default`` (type ``kafka``; extra = confluent-kafka config with
``bootstrap.servers`` and ``group.id``) and ``aep_default`` (type ``adobe_aep``).

- Scheduled, manual and cleared/re-run runs *drain*: they send what the consumer group has not
  committed yet, up to the end offsets snapshotted at the run's start, and commit only what AEP
  acknowledged. Each stops by itself before the next interval begins (``max_run_seconds``).
- Backfill runs *replay*: they send the records stamped inside their data interval again,
  without joining the consumer group or committing. A manual run whose data interval was set in
  the Trigger form (Data Interval → Specify Manually), or whose conf sets ``replay_start`` and
  ``replay_end``, replays that interval the same way.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, Param

from aep_provider.assets.aep import create_asset
from aep_provider.operators.kafka_to_aep import KafkaToAEPOperator

# The AEP dataset the sample events name (scripts/sample_events.py). `make run` passes the AEP_*
# variables it was started with, so against real AEP this is your dataset, org and sandbox.
DATASET_ID = os.environ.get("AEP_DATASET_ID") or "aep-provider-example-dataset"
AEP_DATASET = create_asset(
    ims_org_id=os.environ.get("AEP_IMS_ORG_ID") or "0123456789ABCDEF01234567@AdobeOrg",  # the emulator's org
    sandbox=os.environ.get("AEP_SANDBOX_NAME") or "prod",
    dataset_id=DATASET_ID,
)

DOC = """
### Kafka → Adobe Experience Platform

Every 5 minutes this DAG drains Kafka topic `aep.events` into an AEP streaming inlet
(connection `aep_default`). Rejected records go to `aep.events.dlq` with the reason in their headers.
The task's XCom `return_value` (or `summary` for a failed run) says what moved, what was
rejected and why, and how far the group is behind the topic. Each successful run also records an
event with those counts on the AEP dataset's asset (Assets in the menu), and the task's
"AEP dataset" link opens the dataset in AEP.

**Re-send a past interval**
- *Backfill* (DAG page → Trigger → Backfill, or `airflow backfill create`): each backfill run
  replays its own 5-minute interval. Set "Reprocess behaviour" to "All Runs" for intervals that already have runs.
- *Manual replay*: Trigger → Data Interval → **Specify Manually**, set start and end (keep the
  logical date: Airflow ignores a data interval without one). That one run replays the interval.
  From the REST API or CLI, a run conf with `replay_start` and `replay_end` does the same.

A replay sends the records whose Kafka timestamps fall in the interval, reads with `assign()`
(it never joins the consumer group) and commits nothing. By default (`replay_scope=handed_over`)
it re-sends only what the live drain already delivered and counts the rest as
`left_to_live_drain`; `replay_scope=all` sends every record of the interval.
Re-sent records keep their XDM `_id`, so AEP Profile deduplicates them (the data lake does not).
"""

with DAG(
    dag_id="kafka_to_aep_example",
    description="Drain Kafka topic aep.events into Adobe Experience Platform every 5 minutes",
    # Real data intervals (start < end): a backfill run replays exactly its interval. A plain
    # cron string would mean CronTriggerTimetable (zero-length intervals) in Airflow 3.
    schedule=CronDataIntervalTimetable("*/5 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    # One drain at a time per group. Backfill runs are replays: they neither join the group nor
    # commit, so they may run in parallel with it (their limit is the backfill's max_active_runs).
    max_active_runs=1,
    doc_md=DOC,
    params={
        "topic": Param("aep.events", type="string", description="Kafka topic to drain"),
        "dlq_topic": Param("aep.events.dlq", type="string", description="Dead-letter topic for rejected records"),
        # A manual replay's interval is the Trigger form's own "Data Interval → Specify Manually",
        # which Airflow refuses half filled; two params here would let a half interval through.
        "replay_scope": Param(
            "handed_over",
            enum=["handed_over", "all"],
            description=(
                "Replays (a data interval set by hand, backfill runs): handed_over re-sends only what the "
                "live drain delivered; all sends the whole interval"
            ),
        ),
    },
    tags=["kafka", "aep", "example"],
) as dag:
    KafkaToAEPOperator(
        task_id="drain_aep_events",
        topics="{{ params.topic }}",
        dlq_topic="{{ params.dlq_topic }}",
        kafka_config_id="kafka_default",
        aep_conn_id="aep_default",
        # Names the dataset in lineage, metrics' asset events and the "AEP dataset" link; the
        # outlet puts each run's counts on the dataset's page under Assets.
        dataset_id=DATASET_ID,
        outlets=[AEP_DATASET],
        max_batch_records=500,
        max_in_flight=4,
        # Leave a minute of the 5-minute interval for settling, committing and the next run's start.
        max_run_seconds=240,
        # A run stops itself at max_run_seconds; the timeout is only a safety net.
        execution_timeout=timedelta(minutes=4, seconds=45),
        retries=2,
        retry_delay=timedelta(seconds=30),
    )
