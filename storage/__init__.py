"""Portals, tokens, Kleer credentials and field mappings in a database API and workers share.

PostgreSQL in production (asyncpg), a SQLite file as the embedded default (aiosqlite), through the
same code (SQLAlchemy Core, async), migrated with Alembic when a process opens the store:

    store = await Store.open(settings.database_url, settings.database_secrets_key)

- storage/store.py: `Store`, the only way in; `StorageUnavailable` (retryable outage).
- storage/records.py: the values that cross the boundary (secrets hidden from repr).
- storage/crypto.py: secrets at rest (AES-256-GCM, rotatable keys).
- storage/migrate.py, storage/migrations/: the schema and its locked, concurrent-safe upgrade.
- `python -m storage upgrade|current|reencrypt`: the same, for operators.
"""

from storage.db import StorageUnavailable
from storage.records import FieldMapping, KleerCredentials, OAuthTokens, PortalRecord
from storage.store import PortalNotInstalled, Store

__all__ = ["FieldMapping", "KleerCredentials", "OAuthTokens", "PortalNotInstalled", "PortalRecord",
           "StorageUnavailable", "Store"]
