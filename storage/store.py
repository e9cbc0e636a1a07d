"""The one way into the database for the API and the workers.

Every method is one short transaction, safe to call from any number of processes at once, and
either answers correctly or raises: `StorageUnavailable` when the database cannot be reached (the
caller retries; an activity's retry policy does), `PortalNotInstalled` when a write names a portal
that was never installed. Secrets go in and come out as plaintext but are stored encrypted
(storage/crypto.py). The two cross-process primitives, the token-refresh lease and the rate
limiter, are single atomic statements (no row locks needed, so SQLite gets the same guarantees).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Row, case, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from actions.mappings import FieldMapping, mapping_problems
from settings import UnknownPortalError
from storage import migrate as migrations
from storage.crypto import SecretBox
from storage.db import (
    WRITE,
    StorageUnavailable,
    database_url,
    make_engine,
    safe_url,
    unavailable_as,
)
from storage.records import (
    KleerCredentials,
    OAuthTokens,
    PortalRecord,
    RecordLease,
    SyncedRecord,
    UnmatchedClient,
)
from storage.schema import (
    db_now,
    field_mappings,
    portal_users,
    portals,
    rate_limits,
    record_leases,
    sync_records,
    sync_unmatched,
)

__all__ = ["PortalNotInstalled", "StorageUnavailable", "Store"]

_MAPPINGS = TypeAdapter(list[FieldMapping])
# Denied acquire() answers wait at least this long, so 0.0 always means "granted".
_MIN_WAIT_S = 0.001
# PostgreSQL's acquire() in one round trip, in autocommit: the grant (INSERT ... ON CONFLICT DO
# UPDATE ... WHERE, atomic) and, when refused, how far ahead the TAT is (the wait hint; read from
# the statement's snapshot, so at worst the caller asks again a little early). The generic path
# below takes a transaction with a ping, the update and a second read: four to five round trips,
# and in a bulk enrollment a fifth of a worker's CPU (py-spy, bench/README.md).
_NOW_PG = str(db_now().compile(dialect=postgresql.dialect()))
_ACQUIRE_PG = text(f"""
WITH current AS (SELECT tat FROM rate_limits WHERE key = :key),
granted AS (
    INSERT INTO rate_limits AS r (key, tat) VALUES (:key, {_NOW_PG} + :interval)
    ON CONFLICT (key) DO UPDATE SET tat = GREATEST(r.tat, {_NOW_PG}) + :interval
    WHERE r.tat - {_NOW_PG} <= :tolerance
    RETURNING tat)
SELECT (SELECT tat FROM granted) AS granted, (SELECT tat FROM current) - {_NOW_PG} AS ahead
""")


class PortalNotInstalled(UnknownPortalError):
    """A write named a portal that was never installed (no row to attach it to). A LookupError,
    like settings.UnknownPortalError, so callers handle "unknown portal" one way."""

    def __init__(self, portal_id: int) -> None:
        super().__init__(portal_id)
        self.args = (f"portal {portal_id} is not installed (install the app in that HubSpot portal first)",)


def _now() -> datetime:
    return datetime.now(UTC)


def _guarded(method: Any) -> Any:
    """Outages inside the method become StorageUnavailable naming the method."""

    @functools.wraps(method)
    async def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        with unavailable_as(method.__name__):
            return await method(self, *args, **kwargs)

    return wrapper


class Store:
    """Portals, OAuth tokens, Kleer credentials, field mappings and shared rate limits.

    Open one per process (`await Store.open(settings.database_url, settings.database_secrets_key)`)
    and share it: it holds a connection pool. `close()` releases the pool.
    """

    def __init__(self, engine: AsyncEngine, box: SecretBox,
                 limits: AsyncEngine | None = None) -> None:
        """`limits`: PostgreSQL only, an engine in autocommit for the single statements of the
        rate limiter and the record leases, the hottest paths of a burst (no transaction, no
        ping: a dropped connection fails one call, which its caller retries, and the pool
        replaces it)."""
        self._engine = engine
        self._limits = limits
        self._writer = engine.execution_options(**{WRITE: True})
        self._box = box
        self._pg = engine.dialect.name == "postgresql"
        # SQLite has one writer at a time anyway: queue this process's writers here instead of
        # in SQLite's busy handler, which polls with sleeps of up to 100 ms.
        self._sqlite_writer = None if self._pg else asyncio.Lock()

    @classmethod
    async def open(cls, url: str, secrets_key: str, *, migrate: bool = True,
                   timeout_s: float = 10.0) -> Store:
        """Connect (and by default upgrade the schema to head, safe with concurrent starts).

        `secrets_key`: DATABASE_SECRETS_KEY, keys newest first, comma separated. `timeout_s`
        bounds each wait: connecting, a pooled connection, a statement, SQLite's write lock.
        Raises StorageUnavailable when the database cannot be reached, migrate.SchemaMismatch
        when migrate=False and the schema is behind, ValueError for an unusable URL or key.
        """
        box = SecretBox(secrets_key)
        parsed = database_url(url)
        # SQL statement logs carry result rows (emails, ciphertexts): off unless asked for by name.
        sql_log = logging.getLogger("sqlalchemy.engine")
        if sql_log.level == logging.NOTSET:
            sql_log.setLevel(logging.WARNING)
        if migrate:
            await migrations.upgrade(parsed, timeout_s=timeout_s)
        else:
            await migrations.check(parsed, timeout_s=timeout_s)
        engine = make_engine(parsed, timeout_s=timeout_s)
        limits = None
        if engine.dialect.name == "postgresql":
            limits = make_engine(parsed, timeout_s=timeout_s, pre_ping=False).execution_options(
                isolation_level="AUTOCOMMIT")
        return cls(engine, box, limits)

    async def close(self) -> None:
        await self._engine.dispose()
        if self._limits is not None:
            await self._limits.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Store({safe_url(self._engine.url)})"

    # -- helpers ----------------------------------------------------------------------------

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (SQLite: BEGIN IMMEDIATE, after this process's other writers)."""
        async with self._sqlite_writer or nullcontext():
            async with self._writer.begin() as conn:
                yield conn

    @asynccontextmanager
    async def _single(self) -> AsyncIterator[AsyncConnection]:
        """For statements atomic on their own: PostgreSQL's autocommit engine (one round trip
        instead of ping, BEGIN, statement, COMMIT); SQLite's write transaction."""
        if self._limits is None:
            async with self._write() as conn:
                yield conn
        else:
            async with self._limits.connect() as conn:
                yield conn

    def _insert(self, table: Any) -> Any:
        """INSERT with ON CONFLICT support (both dialects spell the upsert the same way)."""
        return (postgresql.insert if self._pg else sqlite.insert)(table)

    def _seal(self, value: str, column: str, portal_id: int) -> str:
        return self._box.seal(value, f"{column}:{portal_id}")

    def _open(self, value: str, column: str, portal_id: int) -> str:
        return self._box.open(value, f"{column}:{portal_id}")

    async def _require_portal(self, conn: AsyncConnection, portal_id: int) -> None:
        found = await conn.scalar(select(portals.c.portal_id).where(portals.c.portal_id == portal_id))
        if found is None:
            raise PortalNotInstalled(portal_id)

    async def _user_upsert(self, conn: AsyncConnection, portal_id: int, user_id: int,
                           email: str | None) -> None:
        stmt = self._insert(portal_users).values(portal_id=portal_id, user_id=user_id, email=email,
                                                 added_at=_now())
        stmt = stmt.on_conflict_do_update(
            index_elements=[portal_users.c.portal_id, portal_users.c.user_id],
            set_={"email": func.coalesce(stmt.excluded.email, portal_users.c.email)})
        await conn.execute(stmt)

    @staticmethod
    def _record(row: Row) -> PortalRecord:
        return PortalRecord(
            portal_id=row.portal_id, hub_domain=row.hub_domain, status=row.status,
            disconnected_reason=row.disconnected_reason, kleer_company_id=row.kleer_company_id,
            kleer_connected=row.kleer_company_id is not None and row.kleer_api_key is not None,
            access_expires_at=row.access_expires_at, installed_at=row.installed_at,
            updated_at=row.updated_at)

    _RECORD_COLUMNS = (portals.c.portal_id, portals.c.hub_domain, portals.c.status,
                       portals.c.disconnected_reason, portals.c.kleer_company_id,
                       portals.c.kleer_api_key, portals.c.access_expires_at, portals.c.installed_at,
                       portals.c.updated_at)

    # -- installs and portals ---------------------------------------------------------------

    @_guarded
    async def record_install(self, portal_id: int, hub_domain: str | None, user_id: int,
                             user_email: str | None, tokens: OAuthTokens) -> None:
        """An OAuth install (or reinstall): the portal is connected again with the new tokens
        (any disconnect reason cleared, any refresh lease dropped: a refresh started before the
        install must not overwrite its tokens), and the installing user may manage it. Kleer
        credentials and field mappings of an earlier install are kept."""
        now = _now()
        values = {
            "status": "connected", "disconnected_reason": None,
            "access_token": self._seal(tokens.access_token, "access_token", portal_id),
            "refresh_token": self._seal(tokens.refresh_token, "refresh_token", portal_id),
            "access_expires_at": tokens.expires_at, "refresh_owner": None,
            "refresh_lease_until": None, "updated_at": now,
        }
        stmt = self._insert(portals).values(portal_id=portal_id, hub_domain=hub_domain,
                                            installed_at=now, **values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[portals.c.portal_id],
            set_={**values, "hub_domain": func.coalesce(stmt.excluded.hub_domain, portals.c.hub_domain)})
        async with self._write() as conn:
            await conn.execute(stmt)
            await self._user_upsert(conn, portal_id, user_id, user_email)

    @_guarded
    async def portal(self, portal_id: int) -> PortalRecord | None:
        """The portal, or None when it was never installed."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(*self._RECORD_COLUMNS)
                                      .where(portals.c.portal_id == portal_id))).first()
        return None if row is None else self._record(row)

    @_guarded
    async def portals(self) -> list[PortalRecord]:
        """Every installed portal, by portal id."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(*self._RECORD_COLUMNS).order_by(portals.c.portal_id))
            return [self._record(r) for r in rows]

    @_guarded
    async def portals_of_user(self, user_id: int) -> list[PortalRecord]:
        """The portals a HubSpot user installed or was added to: all the settings pages show them."""
        query = (select(*self._RECORD_COLUMNS)
                 .join(portal_users, portal_users.c.portal_id == portals.c.portal_id)
                 .where(portal_users.c.user_id == user_id).order_by(portals.c.portal_id))
        async with self._engine.connect() as conn:
            return [self._record(r) for r in await conn.execute(query)]

    @_guarded
    async def add_user(self, portal_id: int, user_id: int, email: str | None) -> None:
        """Let a HubSpot user manage the portal (e.g. after signing in with access to it). A known
        user keeps their email when `email` is None. PortalNotInstalled for an unknown portal."""
        async with self._write() as conn:
            await self._require_portal(conn, portal_id)
            await self._user_upsert(conn, portal_id, user_id, email)

    @_guarded
    async def mark_disconnected(self, portal_id: int, reason: str) -> None:
        """HubSpot refused the refresh token (uninstalled or revoked): the portal is disconnected
        and its tokens are deleted (they cannot work again; a reinstall brings new ones). Kleer
        credentials and mappings are kept for that reinstall. PortalNotInstalled if unknown."""
        stmt = (update(portals).where(portals.c.portal_id == portal_id)
                .values(status="disconnected", disconnected_reason=reason, access_token=None,
                        refresh_token=None, access_expires_at=None, refresh_owner=None,
                        refresh_lease_until=None, updated_at=_now()))
        async with self._write() as conn:
            if (await conn.execute(stmt)).rowcount == 0:
                raise PortalNotInstalled(portal_id)

    # -- OAuth tokens -----------------------------------------------------------------------

    @_guarded
    async def oauth_tokens(self, portal_id: int) -> OAuthTokens | None:
        """The portal's tokens, decrypted; None when the portal is unknown or disconnected."""
        query = select(portals.c.access_token, portals.c.refresh_token, portals.c.access_expires_at
                       ).where(portals.c.portal_id == portal_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None or row.access_token is None or row.refresh_token is None:
            return None
        return OAuthTokens(access_token=self._open(row.access_token, "access_token", portal_id),
                           refresh_token=self._open(row.refresh_token, "refresh_token", portal_id),
                           expires_at=row.access_expires_at)

    @_guarded
    async def claim_refresh(self, portal_id: int, owner: str, lease_s: float) -> bool:
        """Take the portal's refresh lease for `lease_s` seconds: True for exactly one caller across
        all processes until the lease is released (save_refreshed, release_refresh) or expires.

        One conditional UPDATE (free, or expired by the database's clock), so it is atomic on
        both databases. Not re-entrant: the holder asking again gets False, so `owner` should be
        unique per attempt (e.g. "<host>:<pid>:<uuid>"). PortalNotInstalled for an unknown portal.
        """
        if lease_s <= 0:
            raise ValueError("lease_s must be > 0")
        now = db_now()
        stmt = (update(portals)
                .where(portals.c.portal_id == portal_id,
                       or_(portals.c.refresh_owner.is_(None), portals.c.refresh_lease_until.is_(None),
                           portals.c.refresh_lease_until <= now))
                .values(refresh_owner=owner, refresh_lease_until=now + float(lease_s)))
        async with self._write() as conn:
            if (await conn.execute(stmt)).rowcount == 1:
                return True
            await self._require_portal(conn, portal_id)
            return False

    @_guarded
    async def save_refreshed(self, portal_id: int, owner: str, tokens: OAuthTokens) -> bool:
        """Store refreshed tokens and release the lease, only if `owner` still holds it (even
        past its expiry, as long as nobody took it over) and the portal is still connected.

        Returns whether the tokens were stored. False means another process took over the
        refresh, a reinstall replaced the tokens, or the portal was disconnected: the caller
        discards its tokens and reads the stored ones (oauth_tokens()). Storing anyway could put
        older tokens over newer ones. PortalNotInstalled for an unknown portal.
        """
        stmt = (update(portals)
                .where(portals.c.portal_id == portal_id, portals.c.refresh_owner == owner,
                       portals.c.status == "connected")
                .values(access_token=self._seal(tokens.access_token, "access_token", portal_id),
                        refresh_token=self._seal(tokens.refresh_token, "refresh_token", portal_id),
                        access_expires_at=tokens.expires_at, refresh_owner=None,
                        refresh_lease_until=None, updated_at=_now()))
        async with self._write() as conn:
            if (await conn.execute(stmt)).rowcount == 1:
                return True
            await self._require_portal(conn, portal_id)
            return False

    @_guarded
    async def release_refresh(self, portal_id: int, owner: str) -> None:
        """Give the lease back without new tokens (the refresh failed); a no-op unless `owner`
        holds it, so a late release never frees someone else's lease."""
        stmt = (update(portals).where(portals.c.portal_id == portal_id, portals.c.refresh_owner == owner)
                .values(refresh_owner=None, refresh_lease_until=None))
        async with self._write() as conn:
            await conn.execute(stmt)

    # -- Kleer ------------------------------------------------------------------------------

    @_guarded
    async def set_kleer_credentials(self, portal_id: int, company_id: int, api_key: str) -> None:
        """Store the portal's Kleer company and API key (encrypted). PortalNotInstalled if unknown."""
        stmt = (update(portals).where(portals.c.portal_id == portal_id)
                .values(kleer_company_id=company_id,
                        kleer_api_key=self._seal(api_key, "kleer_api_key", portal_id), updated_at=_now()))
        async with self._write() as conn:
            if (await conn.execute(stmt)).rowcount == 0:
                raise PortalNotInstalled(portal_id)

    @_guarded
    async def kleer_credentials(self, portal_id: int) -> KleerCredentials | None:
        """The portal's Kleer credentials, decrypted; None when unknown or not set yet."""
        query = (select(portals.c.kleer_company_id, portals.c.kleer_api_key)
                 .where(portals.c.portal_id == portal_id))
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None or row.kleer_company_id is None or row.kleer_api_key is None:
            return None
        return KleerCredentials(company_id=row.kleer_company_id,
                                api_key=self._open(row.kleer_api_key, "kleer_api_key", portal_id))

    # -- field mappings ---------------------------------------------------------------------

    @_guarded
    async def mappings(self, portal_id: int) -> dict[str, list[FieldMapping]]:
        """The portal's field mappings per kind, in their order; only the kinds it has set (the
        others keep actions.mappings.DEFAULTS). Empty for an unknown portal."""
        query = (select(field_mappings.c.kind, field_mappings.c.mappings)
                 .where(field_mappings.c.portal_id == portal_id).order_by(field_mappings.c.kind))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {row.kind: _MAPPINGS.validate_json(row.mappings) for row in rows}

    @_guarded
    async def set_mappings(self, portal_id: int, kind: str, mappings: Sequence[FieldMapping]) -> None:
        """Replace the portal's mappings of one kind ("client" or "project"), order kept. Checked
        like a mappings file (ValueError naming every unknown kind or Kleer field), so a worker
        never reads mappings it cannot use. PortalNotInstalled for an unknown portal."""
        problems = mapping_problems(kind, list(mappings))
        if problems:
            raise ValueError("; ".join(problems))
        payload = json.dumps([m.model_dump() for m in mappings])
        stmt = self._insert(field_mappings).values(portal_id=portal_id, kind=kind, mappings=payload,
                                                   updated_at=_now())
        stmt = stmt.on_conflict_do_update(
            index_elements=[field_mappings.c.portal_id, field_mappings.c.kind],
            set_={"mappings": stmt.excluded.mappings, "updated_at": stmt.excluded.updated_at})
        async with self._write() as conn:
            await self._require_portal(conn, portal_id)
            await conn.execute(stmt)

    # -- shared rate limiter ----------------------------------------------------------------

    @_guarded
    async def acquire(self, key: str, rate_per_s: float, burst: int, reserve: int = 0) -> float:
        """One unit of `key`'s budget, shared by every process: 0.0 = granted now (counted);
        otherwise the seconds to wait before asking again (nothing counted).

        GCRA: the row holds the theoretical arrival time (TAT). A request at `now` is granted
        when TAT - now <= (burst - 1) * T (T = 1 / rate), and moves TAT to max(TAT, now) + T. That
        check and update are one INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING, atomic
        on both databases, timed by the database's clock. Over any T seconds at most
        rate * T + burst requests are granted.

        `reserve`: grant only while that many units of the burst stay free for others. Background
        work (the outbound sync) asks with reserve = burst - 1: it gets a turn only when the
        budget is idle, so the actions sharing the key go first.
        """
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        if not key or len(key) > 200:
            raise ValueError("key must be 1 to 200 characters")
        interval = 1.0 / rate_per_s
        tolerance = (burst - 1 - min(max(reserve, 0), burst - 1)) * interval
        if self._limits is not None:
            async with self._limits.connect() as conn:
                row = (await conn.execute(_ACQUIRE_PG, {"key": key, "interval": interval,
                                                        "tolerance": tolerance})).one()
            if row.granted is not None:
                return 0.0
            return max((row.ahead or 0.0) - tolerance, _MIN_WAIT_S)
        now = db_now()
        stmt = self._insert(rate_limits).values(key=key, tat=now + interval)
        stmt = stmt.on_conflict_do_update(
            index_elements=[rate_limits.c.key],
            set_={"tat": case((rate_limits.c.tat > now, rate_limits.c.tat), else_=now) + interval},
            where=(rate_limits.c.tat - now) <= tolerance,
        ).returning(rate_limits.c.tat)
        async with self._write() as conn:
            if (await conn.execute(stmt)).first() is not None:
                return 0.0
            ahead = await conn.scalar(select(rate_limits.c.tat - now).where(rate_limits.c.key == key))
        return max((ahead or 0.0) - tolerance, _MIN_WAIT_S)

    # -- key rotation -----------------------------------------------------------------------

    @_guarded
    async def reencrypt_secrets(self) -> int:
        """Re-encrypt every stored secret not sealed with the newest key; the number of portals
        changed. Each row is updated only if unchanged since it was read, so a concurrent refresh
        is never overwritten. After it, older keys can be dropped from DATABASE_SECRETS_KEY."""
        columns = ("access_token", "refresh_token", "kleer_api_key")
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(portals.c.portal_id, *(portals.c[c] for c in columns)))).all()
        changed = 0
        for row in rows:
            stale = {c: getattr(row, c) for c in columns
                     if getattr(row, c) is not None and not self._box.is_current(getattr(row, c))}
            if not stale:
                continue
            fresh = {c: self._seal(self._open(v, c, row.portal_id), c, row.portal_id)
                     for c, v in stale.items()}
            stmt = (update(portals).where(portals.c.portal_id == row.portal_id,
                                          *(portals.c[c] == v for c, v in stale.items())).values(**fresh))
            async with self._write() as conn:
                changed += (await conn.execute(stmt)).rowcount
        return changed


    # -- record leases: one execution at a time writes a Kleer record ----------------------

    @_guarded
    async def take_record(self, key: str, holder: str) -> RecordLease:
        """Take the lease on `key` for `holder` unless another holder has it; the holder after
        the call. One upsert on both databases, so two takers never both get it. Taking again
        what one holds succeeds (a retried take), with first=False: the caller looks before it
        creates, which is always safe. The lease has no expiry: a holder keeps it until it
        releases it or someone takes it over from a holder known to be gone (take_over_record)."""
        stmt = self._take_leases([key], holder).returning(record_leases.c.takes)
        async with self._single() as conn:
            row = (await conn.execute(stmt)).first()
            if row is not None:
                return RecordLease(holder=holder, first=row.takes == 1)
            current = (await conn.execute(select(record_leases.c.holder).where(
                record_leases.c.key == key))).scalar_one()
        return RecordLease(holder=current)

    def _take_leases(self, keys: Sequence[str], holder: str) -> Any:
        """The upsert that takes each key's lease for `holder` unless another holder has it."""
        now = db_now()
        stmt = self._insert(record_leases).values(
            [{"key": key, "holder": holder, "since": now, "takes": 1} for key in keys])
        return stmt.on_conflict_do_update(
            index_elements=[record_leases.c.key],
            set_={"holder": holder, "since": now, "takes": record_leases.c.takes + 1},
            where=or_(record_leases.c.holder.is_(None), record_leases.c.holder == holder),
        )

    @_guarded
    async def take_over_record(self, key: str, gone: str, holder: str) -> bool:
        """Move the lease from `gone` (a holder that will never release it: its run closed) to
        `holder`; False if `gone` no longer holds it (released, or taken over already)."""
        stmt = (update(record_leases).where(record_leases.c.key == key, record_leases.c.holder == gone)
                .values(holder=holder, since=db_now(), takes=record_leases.c.takes + 1))
        async with self._single() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    @_guarded
    async def release_record(self, key: str, holder: str) -> bool:
        """Give the lease back; a no-op (False) unless `holder` holds it, so a late release never
        frees a lease someone else took over."""
        stmt = (update(record_leases).where(record_leases.c.key == key,
                                            record_leases.c.holder == holder).values(holder=None))
        async with self._single() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    @_guarded
    async def take_records(self, keys: Sequence[str], holder: str) -> dict[str, str]:
        """`take_record` for many keys in one upsert (the outbound sync, a page at a time): the
        holder of each key after the call, `holder` where it took (or already held) it."""
        keys = sorted(set(keys))
        if not keys:
            return {}
        async with self._write() as conn:  # one transaction: the read sees what the upsert did
            await conn.execute(self._take_leases(keys, holder))
            rows = (await conn.execute(select(record_leases.c.key, record_leases.c.holder).where(
                record_leases.c.key.in_(keys)))).all()
        return {row.key: row.holder for row in rows}

    @_guarded
    async def release_records(self, keys: Sequence[str], holder: str) -> int:
        """`release_record` for many keys; how many `holder` still held."""
        if not keys:
            return 0
        stmt = (update(record_leases).where(record_leases.c.key.in_(sorted(set(keys))),
                                            record_leases.c.holder == holder).values(holder=None))
        async with self._single() as conn:
            return (await conn.execute(stmt)).rowcount

    # -- the outbound sync's state ----------------------------------------------------------

    @_guarded
    async def synced(self, portal_id: int, kind: str, kleer_ids: Sequence[int]
                     ) -> dict[int, SyncedRecord]:
        """What was last synced for these Kleer records (absent: never synced)."""
        if not kleer_ids:
            return {}
        query = select(sync_records).where(sync_records.c.portal_id == portal_id,
                                           sync_records.c.kind == kind,
                                           sync_records.c.kleer_id.in_(list(kleer_ids)))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {r.kleer_id: SyncedRecord(kind=r.kind, kleer_id=r.kleer_id, hubspot_id=r.hubspot_id,
                                         digest=r.digest) for r in rows}

    @_guarded
    async def save_synced(self, portal_id: int, records: Sequence[SyncedRecord]) -> None:
        """Remember what was written (after HubSpot accepted it): the next run skips unchanged."""
        if not records:
            return
        now = _now()
        async with self._write() as conn:
            for record in records:
                stmt = self._insert(sync_records).values(
                    portal_id=portal_id, kind=record.kind, kleer_id=record.kleer_id,
                    hubspot_id=record.hubspot_id, digest=record.digest, synced_at=now)
                await conn.execute(stmt.on_conflict_do_update(
                    index_elements=[sync_records.c.portal_id, sync_records.c.kind,
                                    sync_records.c.kleer_id],
                    set_={"hubspot_id": record.hubspot_id, "digest": record.digest,
                          "synced_at": now}))

    @_guarded
    async def set_unmatched(self, portal_id: int, unmatched: Sequence[tuple[int, str | None, str]],
                            linked: Sequence[int] = ()) -> None:
        """Record clients the sync could not link (kleer id, name, reason); forget `linked` ones."""
        now = _now()
        async with self._write() as conn:
            if linked:
                await conn.execute(delete(sync_unmatched).where(
                    sync_unmatched.c.portal_id == portal_id,
                    sync_unmatched.c.kleer_id.in_(list(linked))))
            for kleer_id, name, reason in unmatched:
                stmt = self._insert(sync_unmatched).values(portal_id=portal_id, kleer_id=kleer_id,
                                                           name=name, reason=reason, seen_at=now)
                await conn.execute(stmt.on_conflict_do_update(
                    index_elements=[sync_unmatched.c.portal_id, sync_unmatched.c.kleer_id],
                    set_={"name": name, "reason": reason, "seen_at": now}))

    @_guarded
    async def unmatched(self, portal_id: int) -> list[UnmatchedClient]:
        query = (select(sync_unmatched).where(sync_unmatched.c.portal_id == portal_id)
                 .order_by(sync_unmatched.c.kleer_id))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [UnmatchedClient(kleer_id=r.kleer_id, name=r.name, reason=r.reason, seen_at=r.seen_at)
                for r in rows]
