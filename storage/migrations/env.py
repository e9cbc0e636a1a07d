"""Alembic environment: runs on the connection storage/migrate.py hands over, inside the
transaction that holds the migration lock (so concurrent starts never migrate twice)."""

from __future__ import annotations

from alembic import context

from storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through storage.migrate (`python -m storage upgrade`), "
                       "which takes the lock that makes concurrent starts safe")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters tables by copying them; batch mode does that for later migrations.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
