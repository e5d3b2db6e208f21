"""Index the runs by end date, for the history's retention.

Revision ID: b7c2d9e4f130
Revises: a3e1f0c2d415
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "b7c2d9e4f130"
down_revision = "a3e1f0c2d415"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("aep_delivery_end_idx", "aep_delivery", ["end_date"])


def downgrade() -> None:
    op.drop_index("aep_delivery_end_idx", table_name="aep_delivery")
