"""Create the deliveries history tables.

Revision ID: a3e1f0c2d415
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from airflow.utils.sqlalchemy import UtcDateTime
from alembic import op

revision = "a3e1f0c2d415"
down_revision = None
branch_labels = None
depends_on = None


def _offsets_columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "delivery_id",
            sa.Integer,
            sa.ForeignKey("aep_delivery.id", name="aep_delivery_fk_child", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("kafka_partition", sa.Integer, nullable=False),
        sa.Column("start_offset", sa.BigInteger, nullable=False),
        sa.Column("end_offset", sa.BigInteger, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "aep_delivery",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("task_id", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("map_index", sa.Integer, nullable=False),
        sa.Column("try_number", sa.Integer, nullable=False),
        sa.Column("run_type", sa.String(50)),
        sa.Column("state", sa.String(20)),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("group_id", sa.String(250)),
        sa.Column("dlq_topic", sa.String(249)),
        sa.Column("start_date", UtcDateTime),
        sa.Column("end_date", UtcDateTime),
        sa.Column("delivered", sa.BigInteger, nullable=False),
        sa.Column("rejected", sa.BigInteger, nullable=False),
        sa.Column("dead_lettered", sa.BigInteger, nullable=False),
        sa.Column("skipped", sa.BigInteger, nullable=False),
        sa.Column("failed_in_aep", sa.BigInteger),
        sa.Column("lag", sa.BigInteger),
        sa.Column("topic_lag", sa.BigInteger),
        sa.Column("seconds", sa.Float),
        sa.Column("stopped_by", sa.String(100)),
        sa.Column("detail", sa.Text),
        sa.UniqueConstraint("dag_id", "task_id", "run_id", "map_index", "try_number", name="aep_delivery_ti_try_uq"),
    )
    op.create_index("aep_delivery_dag_task_end_idx", "aep_delivery", ["dag_id", "task_id", "end_date"])
    op.create_table(
        "aep_delivery_range",
        *_offsets_columns(),
        sa.Column("snapshot_end", sa.BigInteger),
        sa.Column("topic_end", sa.BigInteger),
        sa.Column("marks_cut_at", sa.BigInteger),
    )
    op.create_index(
        "aep_delivery_range_tp_start_idx", "aep_delivery_range", ["topic", "kafka_partition", "start_offset"]
    )
    op.create_index("aep_delivery_range_delivery_idx", "aep_delivery_range", ["delivery_id"])
    op.create_table(
        "aep_delivery_mark",
        *_offsets_columns(),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
    )
    op.create_index("aep_delivery_mark_tp_start_idx", "aep_delivery_mark", ["topic", "kafka_partition", "start_offset"])
    op.create_index("aep_delivery_mark_delivery_idx", "aep_delivery_mark", ["delivery_id"])
    op.create_table(
        "aep_delivery_reason",
        sa.Column(
            "delivery_id",
            sa.Integer,
            sa.ForeignKey("aep_delivery.id", name="aep_delivery_fk_reason", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("reason", sa.String(100), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("aep_delivery_reason", "aep_delivery_mark", "aep_delivery_range", "aep_delivery"):
        op.drop_table(table)
