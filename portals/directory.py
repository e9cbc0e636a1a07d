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

import hashlib
from dataclasses import dataclass, field

from actions.mappings import DEFAULTS, FieldMapping, MappingKind, load_mappings
from hubspot_api.client import TokenSource
from pacing import RateLimit
from settings import Settings, UnknownPortalError


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


class PortalDirectory:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def _env(self, portal_id: int):  # -> PortalCredentials
        return self._settings.portal(portal_id)

    async def known(self, portal_id: int) -> bool:
        return portal_id in self._settings.portals

    async def hubspot(self, portal_id: int) -> HubSpotAccess:
        creds = self._env(portal_id)
        return HubSpotAccess(creds.hubspot_token, RateLimit.from_window(
            creds.hubspot_rate_limit, creds.hubspot_rate_window_s, self._settings.hubspot_rate_share))

    async def kleer(self, portal_id: int) -> KleerAccess:
        creds = self._env(portal_id)
        return KleerAccess(creds.kleer_company_id, creds.kleer_api_key)

    async def mappings(self, portal_id: int, kind: MappingKind) -> list[FieldMapping]:
        return load_mappings(self._settings.mappings_dir, portal_id, kind)


__all__ = ["DEFAULTS", "HubSpotAccess", "KleerAccess", "PortalDirectory", "UnknownPortalError"]
