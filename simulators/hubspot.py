"""HubSpot simulator: state per portal plus the Starlette app serving hubspot.md sections 3-5.

`HubSpotState` is the in-process handle for tests (seed records, read callbacks, add faults);
`create_hubspot_app` serves it over HTTP with bearer auth, per-portal rolling rate limits and
HubSpot's error bodies. Endpoint handlers live in `hubspot_routes`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware

from simulators.common import CallLog, Faults, RollingRateLimiter, SimMiddleware, deep, now_iso
from simulators.hubspot_model import (
    ASSOCIATION_TYPES,
    DEFAULT_TYPE,
    INVERSE,
    OBJECT_TYPES,
    Crm,
    HubSpotError,
    object_type_name,
)
from simulators.hubspot_oauth import OAuthState
from simulators.hubspot_routes import fault_body, routes

__all__ = ["ASSOCIATION_TYPES", "DEFAULT_TYPE", "INVERSE", "OBJECT_TYPES", "HubSpotError",
           "HubSpotState", "create_hubspot_app"]

DEFAULT_RATE_LIMIT = (190, 10_000)


@dataclass
class Portal:
    portal_id: int
    token: str | None  # the static private-app token; None for a portal reached by OAuth only
    crm: Crm
    seed_kleer_properties: bool
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    daily_calls: int = 0


class HubSpotState:
    """All portals, their CRM data, pending callbacks and the app's action definitions."""

    def __init__(self, developer_api_key: str = "dev-api-key",
                 daily_limit: int = 1_000_000) -> None:
        self.developer_api_key = developer_api_key
        self.daily_limit = daily_limit
        self.calls = CallLog()
        self.faults = Faults()
        self.limiter = RollingRateLimiter(*DEFAULT_RATE_LIMIT)
        self.search_limiter = RollingRateLimiter(5, 1000)  # hubspot.md section 6: 5 searches/s
        self.lock = threading.RLock()
        self.portals: dict[int, Portal] = {}
        self.actions: dict[str, dict[str, dict[str, Any]]] = {}
        self._last_object_id = 1000
        self._last_action_id = 0
        # The app's OAuth side: registration, users, codes and tokens (simulators/hubspot_oauth).
        self.oauth = OAuthState(self.lock)

    def _next_object_id(self) -> str:
        self._last_object_id += 1
        return str(self._last_object_id)

    def next_action_id(self) -> str:
        self._last_action_id += 1
        return str(self._last_action_id)

    # -- portals --

    def add_portal(self, portal_id: int, token: str,
                   rate_limit: tuple[int, int] = DEFAULT_RATE_LIMIT,
                   seed_kleer_properties: bool = True) -> None:
        with self.lock:
            existing = self.portals.get(portal_id)
            if existing:
                existing.token = token
            else:
                self.portals[portal_id] = Portal(
                    portal_id, token, Crm(self._next_object_id, seed_kleer_properties),
                    seed_kleer_properties)
        self.limiter.configure(*rate_limit, key=portal_id)

    def portal(self, portal_id: int) -> Portal:
        try:
            return self.portals[int(portal_id)]
        except KeyError:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"portal {portal_id} unknown") from None

    def portal_for_token(self, token: str) -> Portal | None:
        """The portal of a static private-app token or of a live OAuth access token."""
        with self.lock:
            static = next((p for p in self.portals.values() if p.token == token), None)
            if static is not None:
                return static
            portal_id = self.oauth.portal_for_access_token(token)
            return None if portal_id is None else self.portals.get(portal_id)

    # -- OAuth (simulators/hubspot_oauth.py) --

    def configure_app(self, client_id: str, client_secret: str, redirect_uris: list[str],
                      scopes: list[str], optional_scopes: list[str] | None = None,
                      app_id: int = 1, access_token_ttl_s: float | None = None) -> None:
        """Register the OAuth app: its credentials, redirect URLs and (required) scopes."""
        self.oauth.configure_app(client_id, client_secret, redirect_uris, scopes,
                                 optional_scopes, app_id, access_token_ttl_s=access_token_ttl_s)

    def add_user(self, user_id: int, email: str, portal_ids: list[int],
                 default: bool = False) -> None:
        """A HubSpot user who may install the app into these portals (created if new, with no
        static token: reached by OAuth only). The first user added is the signed-in default."""
        with self.lock:
            for portal_id in portal_ids:
                if int(portal_id) not in self.portals:
                    self.portals[int(portal_id)] = Portal(
                        int(portal_id), None, Crm(self._next_object_id, True), True)
                    self.limiter.configure(*DEFAULT_RATE_LIMIT, key=int(portal_id))
            self.oauth.add_user(user_id, email, portal_ids, default)

    def uninstall_app(self, portal_id: int) -> int:
        """The portal uninstalls the app: every code and token for it is revoked at once."""
        return self.oauth.uninstall(int(portal_id))

    def expire_access_tokens(self, portal_id: int | None = None) -> int:
        """Let live OAuth access tokens (of one portal, or all) expire now."""
        return self.oauth.expire_access_tokens(portal_id)

    # -- records (seeding and inspection) --

    def create_object(self, portal_id: int, object_type: str, properties: dict[str, Any],
                      associations: list[tuple[str, str, int]] | None = None) -> str:
        """Seed a record; `associations` are (to_type, to_id, typeId) like an inline create."""
        object_type = object_type_name(object_type)
        links = [(object_type_name(t), str(i), int(tid)) for t, i, tid in associations or []]
        with self.lock:
            return self.portal(portal_id).crm.create(object_type, properties, links)["id"]

    def get_object(self, portal_id: int, object_type: str, object_id: str) -> dict | None:
        """The record (all properties, archived ones too) with `associations`, or None."""
        object_type = object_type_name(object_type)
        with self.lock:
            crm = self.portal(portal_id).crm
            record = crm.objects.get(object_type, {}).get(str(object_id))
            if record is None:
                return None
            out = deep(record)
            out["associations"] = {
                to_type: [{"id": to_id, "typeIds": sorted(tids)}
                          for to_id, tids in crm.associated(object_type, str(object_id),
                                                            to_type).items()]
                for to_type in OBJECT_TYPES if crm.associated(object_type, str(object_id), to_type)}
            return out

    def find_objects(self, portal_id: int, object_type: str, **properties: str) -> list[dict]:
        """Live records whose properties equal all given values (test helper)."""
        object_type = object_type_name(object_type)
        with self.lock:
            records = self.portal(portal_id).crm.objects[object_type].values()
            return deep([r for r in records if not r["archived"]
                         and all(r["properties"].get(k) == v for k, v in properties.items())])

    def associations_of(self, portal_id: int, object_type: str, object_id: str,
                        to_type: str) -> list[str]:
        with self.lock:
            links = self.portal(portal_id).crm.associated(
                object_type_name(object_type), str(object_id), object_type_name(to_type))
        return sorted(links, key=int)

    def archive_object(self, portal_id: int, object_type: str, object_id: str) -> None:
        with self.lock:
            self.portal(portal_id).crm.archive(object_type_name(object_type), str(object_id))

    # -- callbacks --

    def expect_callback(self, portal_id: int, callback_id: str) -> None:
        """Register a pending callback (HubSpot knows every execution it sent)."""
        with self.lock:
            self.portal(portal_id).callbacks.setdefault(callback_id, {
                "portal_id": int(portal_id), "state": "pending", "outputFields": None,
                "createdAt": now_iso(), "completedAt": None, "completions": 0})

    def find_callback(self, callback_id: str) -> dict[str, Any] | None:
        for portal in self.portals.values():
            if callback_id in portal.callbacks:
                return portal.callbacks[callback_id]
        return None

    def completion(self, callback_id: str) -> dict[str, Any] | None:
        """The callback's record: state, outputFields, completedAt, completions (attempts)."""
        with self.lock:
            return deep(self.find_callback(callback_id))

    def callbacks(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return deep({cid: cb for p in self.portals.values() for cid, cb in p.callbacks.items()})

    # -- admin --

    def reset(self) -> None:
        """Forget data, calls, faults, callbacks and actions; keep portals, tokens and limits."""
        with self.lock:
            for portal in self.portals.values():
                portal.crm = Crm(self._next_object_id, portal.seed_kleer_properties)
                portal.callbacks = {}
                portal.daily_calls = 0
            self.actions = {}
        self.calls.clear()
        self.faults.clear()
        self.limiter.reset()
        self.search_limiter.reset()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return deep({
                "portals": {str(pid): {
                    "objects": {t: list(recs.values()) for t, recs in p.crm.objects.items()},
                    "callbacks": p.callbacks,
                    "rate_limit": dict(zip(("max", "window_ms"), self.limiter.limits(pid),
                                           strict=True))}
                    for pid, p in self.portals.items()},
                "actions": self.actions,
                "faults": self.faults.list(),
                "oauth": self.oauth.snapshot()})


def create_hubspot_app(state: HubSpotState) -> Starlette:
    """HubSpot's CRM, callback and action-definition APIs plus the `/_sim/` admin endpoints."""
    sim = Middleware(SimMiddleware, calls=state.calls, faults=state.faults, error_body=fault_body)
    return Starlette(routes=routes(state), middleware=[sim])
