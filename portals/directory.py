"""The portal directory: one answer to "how do I call HubSpot and Kleer for portal N?".

Sources, in order (README "Configuration", which source wins):
1. the database (storage/): portals installed through OAuth, their Kleer credentials and field
   mappings, set on the settings pages;
2. the environment: `PORTAL_<id>_*` variables or `PORTALS_FILE` (single-tenant deployments with
   a private app's static token), and `MAPPINGS_DIR/<id>.json` for mappings.
A portal in the database is served from the database; the environment fills in portals that are
not there. Secrets stay in this process: workflows carry a portal id only.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from actions.mappings import DEFAULTS, FieldMapping, MappingKind, load_mappings
from hubspot_api.client import TokenSource
from oauth.tokens import PortalDisconnected, TokenManager
from pacing import RateLimit
from settings import Settings, UnknownPortalError
from storage.records import PortalRecord
from storage.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HubSpotAccess:
    token: str | TokenSource = field(repr=False)
    limit: RateLimit  # the portal's HubSpot calls, paced for all processes together


@dataclass(frozen=True)
class KleerAccess:
    company_id: int
    api_key: str = field(repr=False)

    @property
    def pacing_key(self) -> str:
        """Kleer's limit is per API token (an assumption, README); never the token itself."""
        return "kleer:" + hashlib.sha256(self.api_key.encode()).hexdigest()[:16]


class KleerNotConnected(LookupError):
    """An installed portal without Kleer credentials: final until an admin connects Kleer."""

    def __init__(self, portal_id: int) -> None:
        super().__init__(f"HubSpot portal {portal_id} has not connected Kleer yet: enter the Kleer "
                         "company id and API key on the app's settings page, then re-enroll")


class PortalDirectory:
    """`store` (the database) first, then the environment; `tokens` hands out OAuth access
    tokens of installed portals. Database answers are cached for `cache_s`, so an activity does
    not read the database on every call; a new Kleer key or mapping applies within that time."""

    def __init__(self, settings: Settings, store: Store | None = None,
                 tokens: TokenManager | None = None, cache_s: float = 5.0) -> None:
        self._settings = settings
        self._store = store
        self._tokens = tokens
        self._cache_s = cache_s
        self._cache: dict[tuple[str, int], tuple[float, Any]] = {}
        self._refreshing: dict[tuple[str, int], asyncio.Task[None]] = {}

    async def _cached(self, what: str, portal_id: int, read: Callable[[int], Awaitable[Any]],
                      fresh: bool = False, max_age_s: float | None = None,
                      refresh_after_s: float | None = None) -> Any:
        key = (what, portal_id)
        hit = self._cache.get(key)
        if not fresh and hit is not None:
            age = time.monotonic() - hit[0]
            if age < (max_age_s or self._cache_s):
                if refresh_after_s is not None and age >= refresh_after_s:
                    self._refresh_ahead(key, read)
                return hit[1]
        return await self._read(key, read)

    async def _read(self, key: tuple[str, int], read: Callable[[int], Awaitable[Any]]) -> Any:
        """Read and cache, stamped with when the read began: an older read that answers later
        (a background refresh) never replaces a newer one (a fresh read before a refusal)."""
        began = time.monotonic()
        value = await read(key[1])
        hit = self._cache.get(key)
        if hit is None or hit[0] <= began:
            self._cache[key] = (began, value)
        return value

    def _refresh_ahead(self, key: tuple[str, int], read: Callable[[int], Awaitable[Any]]) -> None:
        """One background read per key at a time; a failure is logged, and once the cached
        answer is too old the next caller reads (and fails) in line."""
        if key in self._refreshing:
            return

        async def refresh() -> None:
            try:
                await self._read(key, read)
            except Exception as exc:
                log.warning("refreshing the cached %s of portal %s failed: %s", key[0], key[1], exc)
            finally:
                self._refreshing.pop(key, None)

        self._refreshing[key] = asyncio.get_running_loop().create_task(refresh())

    async def installed(self, portal_id: int, fresh: bool = False,
                        max_age_s: float | None = None,
                        refresh_after_s: float | None = None) -> PortalRecord | None:
        """The portal's database record (None without a database, or not installed); `fresh`
        reads past the cache, `max_age_s` accepts only a younger cached answer, and a cached
        answer older than `refresh_after_s` is still used while a background read refreshes it
        (under steady traffic the cache stays fresh and no caller waits for the database)."""
        if self._store is None:
            return None
        return await self._cached("portal", portal_id, self._store.portal, fresh, max_age_s,
                                  refresh_after_s)

    async def known(self, portal_id: int) -> bool:
        return await self.installed(portal_id) is not None or portal_id in self._settings.portals

    async def hubspot(self, portal_id: int) -> HubSpotAccess:
        record = await self.installed(portal_id)
        if record is not None:
            if record.status == "disconnected":
                raise PortalDisconnected(portal_id, record.disconnected_reason or "")
            if self._tokens is None:
                raise UnknownPortalError(portal_id)  # installed, but this process has no OAuth set up
            return HubSpotAccess(self._tokens.source(portal_id), RateLimit.from_window(
                self._settings.hubspot_app_rate_limit, 10.0, self._settings.hubspot_rate_share))
        creds = self._settings.portal(portal_id)
        return HubSpotAccess(creds.hubspot_token, RateLimit.from_window(
            creds.hubspot_rate_limit, creds.hubspot_rate_window_s, self._settings.hubspot_rate_share))

    async def kleer(self, portal_id: int) -> KleerAccess:
        if await self.installed(portal_id) is not None:
            assert self._store is not None
            creds = await self._cached("kleer", portal_id, self._store.kleer_credentials)
            if creds is None:
                raise KleerNotConnected(portal_id)
            return KleerAccess(creds.company_id, creds.api_key)
        creds = self._settings.portal(portal_id)
        return KleerAccess(creds.kleer_company_id, creds.kleer_api_key)

    async def mappings(self, portal_id: int, kind: MappingKind) -> list[FieldMapping]:
        """The portal's own mappings (settings page), else its MAPPINGS_DIR file, else defaults."""
        if await self.installed(portal_id) is not None:
            assert self._store is not None
            stored = await self._cached("mappings", portal_id, self._store.mappings)
            if kind in stored:
                return list(stored[kind])
        return load_mappings(self._settings.mappings_dir, portal_id, kind)


__all__ = ["DEFAULTS", "HubSpotAccess", "KleerAccess", "KleerNotConnected", "PortalDirectory",
           "PortalDisconnected", "UnknownPortalError"]
