"""Registers the history tables with ``airflow db migrate`` (provider info ``db-managers``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.utils.db_manager import BaseDBManager
from sqlalchemy import inspect

from aep_provider.history.models import CHILD_TABLES, deliveries, metadata

_HERE = Path(__file__).parent


class HistoryDBManager(BaseDBManager):
    """The deliveries history tables, with their own Alembic migrations and version table."""

    metadata = metadata
    version_table_name = "alembic_version_aep_provider"
    migration_dir = (_HERE / "migrations").as_posix()
    alembic_file = (_HERE / "alembic.ini").as_posix()
    supports_table_dropping = True

    def drop_tables(self, connection: Any) -> None:
        """Children first (``airflow db reset``)."""
        inspector = inspect(connection)
        for table in (*CHILD_TABLES, deliveries):
            if inspector.has_table(table.name, schema=table.schema):
                table.drop(connection)
        version = self._get_migration_ctx()._version
        if inspector.has_table(version.name):
            version.drop(connection)
