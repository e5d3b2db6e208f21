"""The provider's own tables (their own MetaData, migrated by :class:`~aep_provider.history.db.HistoryDBManager`)."""

from __future__ import annotations

from airflow.models.base import _get_schema, naming_convention
from airflow.utils.sqlalchemy import UtcDateTime
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(schema=_get_schema(), naming_convention=naming_convention)

#: One row per finished task-instance try that left a run summary.
deliveries = Table(
    "aep_delivery",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dag_id", String(250), nullable=False),
    Column("task_id", String(250), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("map_index", Integer, nullable=False, default=-1),
    Column("try_number", Integer, nullable=False),
    Column("run_type", String(50)),
    Column("state", String(20)),
    Column("mode", String(16), nullable=False),
    Column("group_id", String(250)),
    Column("dlq_topic", String(249)),
    Column("start_date", UtcDateTime),
    Column("end_date", UtcDateTime),
    Column("delivered", BigInteger, nullable=False, default=0),
    Column("rejected", BigInteger, nullable=False, default=0),
    Column("dead_lettered", BigInteger, nullable=False, default=0),
    Column("skipped", BigInteger, nullable=False, default=0),
    Column("failed_in_aep", BigInteger),
    Column("lag", BigInteger),
    Column("topic_lag", BigInteger),
    Column("seconds", Float),
    Column("stopped_by", String(100)),
    # The summary without its per-partition part (reasons, samples, interval): bounded by the summary's own bounds.
    Column("detail", Text),
    UniqueConstraint("dag_id", "task_id", "run_id", "map_index", "try_number", name="aep_delivery_ti_try_uq"),
    Index("aep_delivery_dag_task_end_idx", "dag_id", "task_id", "end_date"),
)

#: The offsets each run handled per partition: ``[start_offset, end_offset)``.
ranges = Table(
    "aep_delivery_range",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", Integer, ForeignKey("aep_delivery.id", ondelete="CASCADE"), nullable=False),
    Column("topic", String(249), nullable=False),
    Column("kafka_partition", Integer, nullable=False),
    Column("start_offset", BigInteger, nullable=False),
    Column("end_offset", BigInteger, nullable=False),
    Column("snapshot_end", BigInteger),
    Column("topic_end", BigInteger),
    Column("marks_cut_at", BigInteger),
    Index("aep_delivery_range_tp_start_idx", "topic", "kafka_partition", "start_offset"),
    Index("aep_delivery_range_delivery_idx", "delivery_id"),
)

#: Records of a range settled without being delivered: dead-lettered, skipped or rejected.
marks = Table(
    "aep_delivery_mark",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", Integer, ForeignKey("aep_delivery.id", ondelete="CASCADE"), nullable=False),
    Column("topic", String(249), nullable=False),
    Column("kafka_partition", Integer, nullable=False),
    Column("start_offset", BigInteger, nullable=False),
    Column("end_offset", BigInteger, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("label", String(100), nullable=False),
    Index("aep_delivery_mark_tp_start_idx", "topic", "kafka_partition", "start_offset"),
    Index("aep_delivery_mark_delivery_idx", "delivery_id"),
)

#: Rejections of each run counted by reason class.
reasons = Table(
    "aep_delivery_reason",
    metadata,
    Column("delivery_id", Integer, ForeignKey("aep_delivery.id", ondelete="CASCADE"), primary_key=True),
    Column("reason", String(100), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

CHILD_TABLES = (ranges, marks, reasons)
