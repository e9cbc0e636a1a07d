"""Schema migrations (Alembic, run programmatically), safe when several processes start at once.

Every API and worker process migrates on start (`Store.open(migrate=True)`), so a deployment needs
no separate step, and two of them starting together must not both create the tables. The upgrade
runs in one transaction that first takes a lock: on PostgreSQL a transaction-scoped advisory lock
(released by the commit, or by the server if the process dies), on SQLite the database's write
lock (BEGIN IMMEDIATE). The second process waits, then finds the schema at head and does nothing.
PostgreSQL and SQLite both run DDL inside transactions, so a failed upgrade leaves no half schema.

A database already migrated by a newer release (a revision this code does not know) is left alone
with a warning, so a rolling deploy's older processes keep starting.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection

from storage.db import WRITE, log, make_engine, safe_url, unavailable_as

# pg_advisory_xact_lock key of the migration lock (any constant; "kleer" in ASCII).
MIGRATION_LOCK_KEY = 0x6B6C656572
# Waiting for another process's migration may take a while; ordinary statements do not.
MIGRATION_TIMEOUT_S = 300.0


class SchemaMismatch(RuntimeError):
    """The database's schema is older than this code needs (opened with migrate=False)."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    revision = _scripts().get_current_head()
    assert revision is not None
    return revision


def _known(revision: str) -> bool:
    return any(s.revision == revision for s in _scripts().walk_revisions())


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> tuple[str | None, str | None]:
    before = _current(connection)
    if before is not None and not _known(before):
        return before, before
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    return before, _current(connection)


async def upgrade(url: str | URL, *, timeout_s: float = 10.0) -> str | None:
    """Upgrade the database to head under the migration lock; the revision it is at afterwards.
    `timeout_s` bounds connecting; waiting for another process's migration may take longer."""
    engine = make_engine(url, timeout_s=timeout_s, wait_s=MIGRATION_TIMEOUT_S, pooled=False)
    try:
        with unavailable_as("migrating the schema"):
            async with engine.execution_options(**{WRITE: True}).begin() as connection:
                if connection.dialect.name == "postgresql":
                    await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                             {"key": MIGRATION_LOCK_KEY})
                before, after = await connection.run_sync(_upgrade)
    finally:
        await engine.dispose()
    if before != after:
        log.info("database %s: schema upgraded from %s to %s", safe_url(url), before or "empty", after)
    elif after is not None and not _known(after):
        log.warning("database %s is at schema revision %s, which this release does not know (a newer "
                    "release migrated it); left as it is", safe_url(url), after)
    return after


async def current(url: str | URL, *, timeout_s: float = 10.0) -> str | None:
    """The database's schema revision (None: never migrated)."""
    engine = make_engine(url, timeout_s=timeout_s, pooled=False)
    try:
        with unavailable_as("reading the schema revision"):
            async with engine.connect() as connection:
                return await connection.run_sync(_current)
    finally:
        await engine.dispose()


async def check(url: str | URL, *, timeout_s: float = 10.0) -> None:
    """`SchemaMismatch` unless the schema is at head (or newer: a later release migrated it)."""
    revision = await current(url, timeout_s=timeout_s)
    if revision == head() or (revision is not None and not _known(revision)):
        return
    raise SchemaMismatch(f"database {safe_url(url)} is at schema revision {revision or '(none)'}, this "
                         f"code needs {head()}: run `python -m storage upgrade` (or open with migrate=True)")
