"""Alembic environment of the aep-provider history tables (run by ``airflow db migrate``)."""

from __future__ import annotations

import contextlib

from airflow import settings
from alembic import context

from aep_provider.history.db import HistoryDBManager

config = context.config
version_table = HistoryDBManager.version_table_name
target_metadata = HistoryDBManager.metadata


def include_object(_, name, type_, *args):
    # Only this provider's tables: Airflow's own are migrated by Airflow.
    return not (type_ == "table" and name not in target_metadata.tables)


def run_migrations_offline() -> None:
    context.configure(
        url=settings.SQL_ALCHEMY_CONN,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        version_table=version_table,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    with contextlib.ExitStack() as stack:
        connection = config.attributes.get("connection", None)
        if not connection:
            assert settings.engine is not None, "Airflow's database engine is not configured"
            connection = stack.enter_context(settings.engine.connect())
        context.configure(
            connection=connection,
            transaction_per_migration=True,
            target_metadata=target_metadata,
            include_object=include_object,
            render_as_batch=True,
            version_table=version_table,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
