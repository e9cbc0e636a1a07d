"""Engines for PostgreSQL (asyncpg) and SQLite (aiosqlite) through the same code, and the one rule
for database faults: a database that cannot be reached, a dropped connection or a timeout becomes
`StorageUnavailable` (retryable), never a wrong answer.

SQLite is set up so an API process and a worker process can share one file: WAL (readers never
block the writer), a busy timeout (a writer waits for the other instead of failing at once), and
transactions that write start with BEGIN IMMEDIATE (the write lock is taken up front, so no
transaction has to upgrade a read lock, which SQLite may refuse without waiting). pysqlite's own
implicit transactions are switched off so those BEGINs are ours (SQLAlchemy's documented recipe).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, exc, make_url
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger("storage")

# Execution option of the engine that write transactions use (SQLite: BEGIN IMMEDIATE).
WRITE = "kleer_write"

_DRIVERS = {"postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg",
            "postgresql+asyncpg": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite",
            "sqlite+aiosqlite": "sqlite+aiosqlite"}
# SQLSTATE classes that mean "try again": connection exception, insufficient resources (too many
# connections), operator intervention (shutdown, cannot connect now, statement cancelled),
# transaction rollback (serialization failure, deadlock).
_RETRYABLE_SQLSTATE = {"08", "53", "57", "40"}
# SQLite reports these as OperationalError too, but they are code or schema faults, not outages.
_SQLITE_PERMANENT = ("no such table", "no such column", "has no column", "syntax error")


class StorageUnavailable(Exception):
    """The database could not be reached or the connection dropped: retryable.

    Raised instead of any answer, so a caller never mistakes an outage for "portal unknown". The
    message names the operation and the driver's error (never parameters, rows or secrets); the
    original exception is chained for the traceback (SQL parameters hidden: `hide_parameters`).
    """


def database_url(url: str | URL) -> URL:
    """The URL with the async driver each database is used through; plain postgresql:// and
    sqlite:/// are accepted too (what operators type)."""
    parsed = make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}: use "
                         "postgresql://user:password@host:5432/db or sqlite:///path/to/file.db")
    parsed = parsed.set(drivername=driver)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValueError("SQLite needs a file (sqlite:///path/to/file.db): an in-memory database "
                         "is not shared between connections, let alone processes")
    return parsed


def safe_url(url: str | URL) -> str:
    """For messages and logs: the URL without its password."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str | URL, *, timeout_s: float, wait_s: float | None = None,
                pooled: bool = True, pre_ping: bool = True) -> AsyncEngine:
    """An engine with connection checks (`pool_pre_ping`: a dropped pooled connection is replaced
    before use), bounded waits (`timeout_s` to connect and for a pooled connection; `wait_s`,
    default the same, per statement and for SQLite's write lock) and SQL parameters kept out of
    logs and exception messages."""
    url = database_url(url)
    wait_s = timeout_s if wait_s is None else wait_s
    kwargs: dict[str, Any] = {"pool_pre_ping": pre_ping, "hide_parameters": True}
    if pooled:
        kwargs["pool_timeout"] = timeout_s
    else:
        from sqlalchemy.pool import NullPool

        kwargs["poolclass"] = NullPool
    if url.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"timeout": timeout_s, "command_timeout": wait_s,
                                  "server_settings": {"application_name": "kleer-hubspot"}}
    else:
        kwargs["connect_args"] = {"timeout": wait_s}  # sqlite3's busy timeout
    engine = create_async_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        _sqlite_setup(engine)
    return engine


def _sqlite_setup(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGINs: ours below
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The exception, what it wraps (`.orig`) and what caused it, each once."""
    todo, seen = [error], set()
    while todo and len(seen) < 12:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [x for x in (getattr(e, "orig", None), e.__cause__, e.__context__)
                 if isinstance(x, BaseException)]


def is_unavailable(error: BaseException) -> bool:
    """A fault of the connection or the server's availability, worth retrying."""
    for e in _chain(error):
        if isinstance(e, exc.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, (exc.DisconnectionError, exc.TimeoutError, OSError)):  # OSError: refused,
            return True                                                       # reset, timeouts
        code = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(code, str) and code[:2] in _RETRYABLE_SQLSTATE:
            return True
        if isinstance(e, (exc.OperationalError, exc.InterfaceError)):
            return not any(m in str(e.orig).lower() for m in _SQLITE_PERMANENT)
    return False


def describe(error: BaseException) -> str:
    """The driver's own words, first line, short: enough to tell "refused" from "locked"."""
    inner = getattr(error, "orig", None) or error
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    return f"{type(inner).__name__}: {text[:200]}" if text else type(inner).__name__


@contextmanager
def unavailable_as(operation: str) -> Iterator[None]:
    """Turn outages inside the block into `StorageUnavailable`; let every other error through."""
    try:
        yield
    except StorageUnavailable:
        raise
    except Exception as error:
        if is_unavailable(error):
            raise StorageUnavailable(f"database unavailable ({operation}): {describe(error)}") from error
        raise
