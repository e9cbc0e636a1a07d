"""What a process needs to reach portals, opened once and shared: the database (if configured),
the OAuth client and token manager, the portal directory, and the pacer of HubSpot and Kleer calls.

With a database the pacer's limiter is the database's (one budget per portal for all processes);
without one, an in-process limiter (right for one worker process; README "Scaling out").
"""

from __future__ import annotations

from dataclasses import dataclass

from oauth.hubspot import HubSpotOAuth
from oauth.tokens import TokenManager
from pacing import LocalLimiter, Pacer
from portals.directory import PortalDirectory
from settings import Settings
from storage.store import Store


@dataclass
class PortalServices:
    directory: PortalDirectory
    pacer: Pacer
    store: Store | None = None
    oauth: HubSpotOAuth | None = None
    tokens: TokenManager | None = None

    async def aclose(self) -> None:
        if self.oauth is not None:
            await self.oauth.aclose()
        if self.store is not None:
            await self.store.close()


def oauth_client(settings: Settings) -> HubSpotOAuth | None:
    if not settings.hubspot_client_id:
        return None
    return HubSpotOAuth(settings.hubspot_base_url, settings.hubspot_authorize_url,
                        settings.hubspot_client_id, settings.hubspot_client_secret,
                        settings.redirect_url, timeout_s=settings.http_timeout_s)


async def open_services(settings: Settings, token_margin_s: float | None = None) -> PortalServices:
    """`token_margin_s` overrides settings.token_refresh_margin_s (tests with short tokens)."""
    store = None
    if settings.database_url:
        store = await Store.open(settings.database_url, settings.database_secrets_key or "")
    oauth = oauth_client(settings)
    margin = settings.token_refresh_margin_s if token_margin_s is None else token_margin_s
    tokens = TokenManager(store, oauth, margin_s=margin) if store and oauth else None
    return PortalServices(directory=PortalDirectory(settings, store, tokens),
                          pacer=Pacer(store if store is not None else LocalLimiter()),
                          store=store, oauth=oauth, tokens=tokens)
