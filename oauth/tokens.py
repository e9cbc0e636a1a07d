"""Valid HubSpot access tokens for installed portals, with one refresh per portal at a time
across every API and worker process.

Access tokens live about 30 minutes. A process asking for one gets the stored token while it has
more than `margin_s` to live. Otherwise one process wins the portal's refresh lease in the
database (`Store.claim_refresh`, atomic on PostgreSQL and SQLite), refreshes and stores the new
tokens; every other process waits for them instead of refreshing too. No process hands out a
token it knows has expired. A refresh HubSpot refuses (`invalid_grant`: the app was uninstalled
or the grant revoked) marks the portal disconnected, and every later ask fails at once with
`PortalDisconnected`: its executions end FAIL_CONTINUE ("reconnect the Kleer app in HubSpot")
instead of retrying for hours.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

from hubspot_api.client import TokenSource
from oauth.hubspot import HubSpotOAuth, RefreshRefused
from service_errors import ServiceError
from storage.records import OAuthTokens
from storage.store import Store


class PortalDisconnected(Exception):
    """The portal's refresh token no longer works: final until someone reconnects the app."""

    def __init__(self, portal_id: int, reason: str = "") -> None:
        self.portal_id = portal_id
        self.reason = reason
        why = reason or "the app was uninstalled or its access revoked"
        super().__init__(f"HubSpot portal {portal_id} is disconnected ({why}): reconnect the Kleer "
                         "app in HubSpot (open the app's install link or its settings page), then "
                         "re-enroll")


class TokenManager:
    def __init__(self, store: Store, oauth: HubSpotOAuth, margin_s: float = 300.0,
                 lease_s: float = 30.0, poll_s: float = 0.1) -> None:
        self._store = store
        self._oauth = oauth
        self._margin = timedelta(seconds=margin_s)
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._cache: dict[int, OAuthTokens] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._me = f"{socket.gethostname()}:{os.getpid()}"
        self.refreshes = 0  # refreshes this process made (tests, metrics)

    def source(self, portal_id: int) -> TokenSource:
        """For HubSpotClient: called again with stale=True after HubSpot answered 401."""
        async def token(stale: bool = False) -> str:
            return await self.access_token(portal_id, stale=stale)

        return token

    def _fresh(self, tokens: OAuthTokens | None) -> bool:
        return tokens is not None and tokens.expires_at - self._margin > datetime.now(UTC)

    async def access_token(self, portal_id: int, stale: bool = False) -> str:
        """A token with more than margin_s to live. `stale`: the last one we gave was refused
        (401), so the stored one is not good enough unless another process replaced it since."""
        cached = self._cache.get(portal_id)
        if not stale and self._fresh(cached):
            return cached.access_token  # type: ignore[union-attr]
        async with self._locks.setdefault(portal_id, asyncio.Lock()):
            refused = cached.access_token if stale and cached else None
            tokens = await self._valid(portal_id, refused)
            self._cache[portal_id] = tokens
            return tokens.access_token

    async def _valid(self, portal_id: int, refused: str | None) -> OAuthTokens:
        deadline = time.monotonic() + self._lease_s * 2
        while True:
            record = await self._store.portal(portal_id)
            if record is None:
                raise ServiceError("HubSpot", f"portal {portal_id} is not installed", 404)
            if record.status == "disconnected":
                raise PortalDisconnected(portal_id, record.disconnected_reason or "")
            stored = await self._store.oauth_tokens(portal_id)
            if stored is not None and self._fresh(stored) and stored.access_token != refused:
                return stored
            owner = f"{self._me}:{uuid.uuid4().hex[:8]}"
            if await self._store.claim_refresh(portal_id, owner, self._lease_s):
                # Another process may have stored new tokens and released the lease between our
                # read and our claim: look once more before refreshing a second time.
                again = await self._store.oauth_tokens(portal_id)
                if again is not None and self._fresh(again) and again.access_token != refused:
                    await self._store.release_refresh(portal_id, owner)
                    return again
                return await self._refresh(portal_id, owner, again or stored)
            if time.monotonic() > deadline:  # a holder that never finishes: retried by Temporal
                raise ServiceError("HubSpot", f"waited {self._lease_s * 2:.0f} s for another "
                                              f"process to refresh portal {portal_id}'s token")
            await asyncio.sleep(self._poll_s)  # another process is refreshing: wait for its token

    async def _refresh(self, portal_id: int, owner: str, stored: OAuthTokens | None) -> OAuthTokens:
        try:
            if stored is None:
                raise RefreshRefused("no refresh token stored")
            new = await self._oauth.refresh(stored.refresh_token)
            self.refreshes += 1
        except RefreshRefused as exc:
            await self._store.mark_disconnected(portal_id, f"HubSpot refused the refresh: "
                                                           f"{exc.message}")
            await self._store.release_refresh(portal_id, owner)
            raise PortalDisconnected(portal_id, "HubSpot refused to refresh its token") from None
        except BaseException:
            await self._store.release_refresh(portal_id, owner)
            raise
        if await self._store.save_refreshed(portal_id, owner, new):
            return new
        # Someone else's tokens won (a reinstall, a takeover after our lease ran out): use them.
        current = await self._store.oauth_tokens(portal_id)
        if current is None:
            raise PortalDisconnected(portal_id)
        return current
