"""Kleer activities: create (exactly once, found again by its marker), update, resolve products."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import translate_errors
from activities.models import FindProducts, KleerWrite, KleerWritten
from kleer_api.client import KleerClient
from service_errors import ServiceError
from settings import Settings
from telemetry import HttpCallMetrics


class KleerActivities:
    """Holds one Kleer client per portal; API keys stay in this process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[int, KleerClient] = {}
        self._metrics = HttpCallMetrics("kleer")

    def client(self, portal_id: int) -> KleerClient:
        if portal_id not in self._clients:
            creds = self._settings.portal(portal_id)
            self._clients[portal_id] = KleerClient(
                self._settings.kleer_base_url, creds.kleer_company_id, creds.kleer_api_key,
                self._settings.http_timeout_s, observe=self._metrics,
            )
        return self._clients[portal_id]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    @activity.defn(name="kleer.create")
    @translate_errors
    async def create(self, req: KleerWrite) -> KleerWritten:
        """Create the record unless an earlier attempt already did (its response may have been lost)."""
        kleer = self.client(req.portal_id)
        existing = await self._find_earlier(kleer, req)
        if existing is not None:
            activity.logger.info("kleer %s %s found by marker; not creating again",
                                 req.kind, existing.get("id"))
            return KleerWritten(id=int(existing["id"]), record=existing, existed=True)
        try:
            new_id = await kleer.create(req.kind, req.payload)
        except ServiceError as exc:
            if exc.status is None:
                # Timed out or dropped: Kleer may still commit this request. Look again only once
                # it has surely finished, or the lookup misses it and the retry creates a twin.
                raise ApplicationError(f"{exc} (outcome unknown; looking again in "
                                       f"{self._settings.create_settle_s:.0f} s)",
                                       type="KleerOutcomeUnknown",
                                       next_retry_delay=timedelta(
                                           seconds=self._settings.create_settle_s)) from None
            raise
        return KleerWritten(id=new_id, record=await kleer.get(req.kind, new_id))

    async def _find_earlier(self, kleer: KleerClient, req: KleerWrite) -> dict | None:
        if req.foreign_id:
            return await kleer.find_by_foreign_id(req.kind, req.foreign_id)
        if req.kind == "project" and activity.info().attempt > 1:
            # Projects have no foreign-id. Only a retry can follow a lost answer, so only a retry
            # looks for the client's project with the same name and number.
            client_id = req.payload["client"]["id"]
            for project in await kleer.list("project", client_id=client_id):
                if (project.get("name"), project.get("number")) == (
                    req.payload.get("name"), req.payload.get("number")
                ):
                    return {**project, "id": _project_id(project)}
        return None

    @activity.defn(name="kleer.update")
    @translate_errors
    async def update(self, req: KleerWrite) -> KleerWritten:
        """Apply the update; repeating it with the same payload gives the same record."""
        assert req.record_id is not None
        kleer = self.client(req.portal_id)
        await kleer.update(req.kind, req.record_id, req.payload)
        return KleerWritten(id=req.record_id, record=await kleer.get(req.kind, req.record_id))

    @activity.defn(name="kleer.find_products")
    @translate_errors
    async def find_products(self, req: FindProducts) -> dict[str, int]:
        """HubSpot product id -> Kleer product id, for Kleer products whose foreign-id is that id."""
        kleer = self.client(req.portal_id)
        found: dict[str, int] = {}
        for hs_id in req.hubspot_product_ids:
            product = await kleer.find_by_foreign_id("product", hs_id)
            if product is not None:
                found[hs_id] = int(product["id"])
        return found


def _project_id(project: dict) -> int:
    # client-project-readable renders its id as a reference object in the XSD.
    raw = project.get("id")
    return int(raw["id"] if isinstance(raw, dict) else raw)
