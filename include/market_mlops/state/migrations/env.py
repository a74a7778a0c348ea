"""Alembic environment of the suite's SQL store: run on the connection `store._upgrade` passes in."""

from __future__ import annotations

from alembic import context

from market_mlops.state.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, version_table="mlops_alembic_version")
with context.begin_transaction():
    context.run_migrations()
