"""The tables (SQLAlchemy Core), as the code reads and writes them. Migrations in
`storage/migrations/versions/` create them; a test checks the two agree, so a change here without a
migration fails the suite instead of a deployment.

Portable between PostgreSQL and SQLite on purpose: no arrays, enums or JSONB; secrets are TEXT
ciphertext (storage/crypto.py); instants that only the database compares (refresh leases, the rate
limiter) are epoch seconds from the database's own clock, so processes with skewed clocks agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from storage.records import as_utc

# Named constraints, so later migrations can alter them (SQLite's batch mode needs names).
metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on both databases: PostgreSQL keeps `timestamptz`; SQLite keeps no
    offset, so values are stored as naive UTC and come back marked UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class db_now(FunctionElement):
    """The database's clock in epoch seconds (float), one value per statement."""

    type = Double()
    inherit_cache = True
    name = "db_now"


@compiles(db_now, "postgresql")
def _db_now_pg(element: db_now, compiler: Any, **kw: Any) -> str:
    return "CAST(extract(epoch FROM statement_timestamp()) AS DOUBLE PRECISION)"


@compiles(db_now, "sqlite")
def _db_now_sqlite(element: db_now, compiler: Any, **kw: Any) -> str:
    # 'now' is the same for every use within one statement (SQLite's date functions guarantee it).
    return "((julianday('now') - 2440587.5) * 86400.0)"


portals = Table(
    "portals", metadata,
    Column("portal_id", BigInteger, primary_key=True, autoincrement=False),
    Column("hub_domain", String(255)),
    Column("status", String(16), nullable=False),
    Column("disconnected_reason", Text),
    # Ciphertext (storage/crypto.py); NULL when not stored.
    Column("access_token", Text),
    Column("refresh_token", Text),
    Column("access_expires_at", UTCDateTime),
    # The refresh lease: who refreshes the tokens now, until when (epoch s, database clock).
    Column("refresh_owner", String(200)),
    Column("refresh_lease_until", Double),
    Column("kleer_company_id", BigInteger),
    Column("kleer_api_key", Text),
    Column("installed_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("status IN ('connected', 'disconnected')", name="status"),
)

# The HubSpot users who installed or signed in to a portal: who may see its settings pages.
portal_users = Table(
    "portal_users", metadata,
    Column("portal_id", BigInteger, ForeignKey("portals.portal_id", ondelete="CASCADE"),
           primary_key=True),
    Column("user_id", BigInteger, primary_key=True),
    Column("email", String(320)),
    Column("added_at", UTCDateTime, nullable=False),
    Index("ix_portal_users_user_id", "user_id"),
)

# One row per portal and kind ("client", "project"): the mappings as a JSON list, in order.
field_mappings = Table(
    "field_mappings", metadata,
    Column("portal_id", BigInteger, ForeignKey("portals.portal_id", ondelete="CASCADE"),
           primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("mappings", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# GCRA state per key: the theoretical arrival time (epoch s, database clock).
rate_limits = Table(
    "rate_limits", metadata,
    Column("key", String(200), primary_key=True),
    Column("tat", Double, nullable=False),
)

# The scheduled outbound sync (sync/): per portal, kind ("client", "agreement", "invoice") and
# Kleer record, what was last written to HubSpot (a digest of the Kleer record as synced) and the
# HubSpot record it went to (company for clients, invoice/subscription mirror otherwise). No
# foreign key to portals: portals configured in the environment are synced too.
sync_records = Table(
    "sync_records", metadata,
    Column("portal_id", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), primary_key=True),
    Column("kleer_id", BigInteger, primary_key=True, autoincrement=False),
    Column("hubspot_id", String(64)),
    Column("digest", String(64), nullable=False),
    Column("synced_at", UTCDateTime, nullable=False),
)

# Who writes a Kleer record now (workflows/common.py, one execution at a time per record): key as
# record_workflow_id, holder the HubSpot execution's workflow id (NULL: nobody), since (epoch s,
# database clock), takes how often it was taken (1: no execution wrote this record before).
# Rows stay after release: "written before" is what makes the next create look first.
record_leases = Table(
    "record_leases", metadata,
    Column("key", String(200), primary_key=True),
    Column("holder", String(300)),
    Column("since", Double, nullable=False),
    Column("takes", BigInteger, nullable=False),
)

# Kleer clients the last sync could not link to a company, with a reason a person can act on.
sync_unmatched = Table(
    "sync_unmatched", metadata,
    Column("portal_id", BigInteger, primary_key=True, autoincrement=False),
    Column("kleer_id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", Text),
    Column("reason", Text, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
)
