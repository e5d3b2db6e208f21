"""Plain-Python Kafka → AEP drain engine (no Airflow imports).

One run drains each assigned partition from its start offset to the end offset snapshotted
when the run began, sends records to AEP in bounded batches and commits only the contiguous
prefix that AEP acknowledged (or that a dead-letter topic holds). A replay
(:mod:`~aep_provider.engine.replay`) sends a past time interval again without joining the
group or committing.
The operator (:mod:`aep_provider.operators.kafka_to_aep`) is a thin Airflow adapter over
:class:`~aep_provider.engine.drain.DrainEngine` (:func:`~aep_provider.engine.drain.run_drain`
builds one and runs it, for scripts and benchmarks).

Where a record goes, by module: :mod:`.plan` (each partition's range), :mod:`.drain` (the run
and its loop), :mod:`.intake` (a consumed message becomes a record, a skip or a rejection),
:mod:`.payload` (shaping; :mod:`.jsonvalue` validates JSON), :mod:`.batching`, :mod:`.sending`
(requests in flight),
:mod:`.settle` (AEP's answers, rejections; :mod:`.dlq` for dead letters), :mod:`.ledger` and
:mod:`.commits` (what may be committed, and committing it), :mod:`.rebalance` (partitions
taken and handed over), :mod:`.watchdog` (bounds on waiting for Kafka), :mod:`.closing` (the
bounded ending), :mod:`.report` (the log lines);
:mod:`.state` holds what these share during a run.
"""

from __future__ import annotations

from aep_provider.engine.config import DrainConfig, OnReject, consumer_config, producer_config
from aep_provider.engine.drain import DrainEngine, Sender, run_drain
from aep_provider.engine.errors import (
    DeadLetterError,
    DrainError,
    KafkaSetupError,
    KafkaUnavailableError,
    RecordRejectedError,
    ReplayError,
    RunStopped,
)
from aep_provider.engine.payload import KafkaRecord, record_id
from aep_provider.engine.plan import GroupOffsetsPlanner, PartitionPlan, Planner
from aep_provider.engine.replay import ReplayPlanner, ReplayScope, ReplayWindow
from aep_provider.engine.summary import PartitionSummary, RejectionSample, RunSummary

__all__ = [
    "DeadLetterError",
    "DrainConfig",
    "DrainEngine",
    "DrainError",
    "GroupOffsetsPlanner",
    "KafkaRecord",
    "KafkaSetupError",
    "KafkaUnavailableError",
    "OnReject",
    "PartitionPlan",
    "PartitionSummary",
    "Planner",
    "RecordRejectedError",
    "RejectionSample",
    "ReplayError",
    "ReplayPlanner",
    "ReplayScope",
    "ReplayWindow",
    "RunStopped",
    "RunSummary",
    "Sender",
    "consumer_config",
    "producer_config",
    "record_id",
    "run_drain",
]
