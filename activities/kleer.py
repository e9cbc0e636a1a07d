"""Kleer activities: create (exactly once, found again by its marker), update, resolve products.

These run inside the per-record write (workflows/record.py), so two executions never write the
same Kleer record at the same time; what is left to handle here is a write whose outcome is
unknown (kleer.md "Unknown outcome").
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import translate_errors
from activities.models import FindProducts, KleerWrite, KleerWritten
from kleer_api.client import KleerClient, Record, kleer_pool
from pacing import Pacer, RateLimit
from portals.directory import KleerAccess, PortalDirectory
from service_errors import ServiceError
from settings import Settings
from telemetry import HttpCallMetrics

# Kinds whose create is read back: Kleer assigns what the mirror shows (invoice-nr, defaults).
# Clients and projects are not mirrored; their create answer and our request hold all we need.
READ_BACK = ("invoice", "agreement")
# Read-only parts of an agreement as Kleer renders it; everything else is sent back on update.
_AGREEMENT_READ_ONLY = ("id", "revision-nr", "deleted")


class KleerActivities:
    """Holds one Kleer client per portal and credentials (a changed API key gets a new client);
    API keys stay in this process. Every call waits for its turn under the API token's limit,
    shared by all processes (pacing/; Kleer's limit is an assumption, README)."""

    def __init__(self, settings: Settings, directory: PortalDirectory, pacer: Pacer) -> None:
        self._settings = settings
        self._directory = directory
        self._pacer = pacer
        self._limit = RateLimit(settings.kleer_rate_limit, settings.kleer_rate_burst)
        self._http = kleer_pool(settings.kleer_base_url, settings.http_timeout_s,
                                max_connections=settings.http_max_connections)
        self._clients: dict[tuple[int, KleerAccess], KleerClient] = {}
        self._metrics = HttpCallMetrics("kleer")

    async def client(self, portal_id: int) -> KleerClient:
        access = await self._directory.kleer(portal_id)
        key = (portal_id, access)
        if key not in self._clients:
            async def pace() -> None:
                await self._pacer.wait(access.pacing_key, self._limit)

            self._clients[key] = KleerClient(
                self._settings.kleer_base_url, access.company_id, access.api_key,
                self._settings.http_timeout_s, observe=self._metrics, pace=pace, http=self._http)
        return self._clients[key]

    async def aclose(self) -> None:
        await self._http.aclose()

    @activity.defn(name="kleer.create")
    @translate_errors
    async def create(self, req: KleerWrite) -> KleerWritten:
        """Create the record unless it exists already.

        Looked for first only where it can exist: on a retry (an earlier attempt's outcome may
        be unknown), or when an earlier execution worked on the same HubSpot record
        (`lookup_first`, set by the per-record write).
        """
        kleer = await self.client(req.portal_id)
        attempt = activity.info().attempt
        if req.lookup_first or attempt > 1:
            existing = await self._find_earlier(kleer, req)
            if existing is not None:
                activity.logger.info("kleer %s %s found by its marker; not creating again",
                                     req.kind, existing["id"])
                # On the first attempt it was made by an earlier execution; on a retry, by us.
                return KleerWritten(id=existing["id"], record=existing, existed=attempt == 1)
        try:
            new_id = await kleer.create(req.kind, req.payload)
        except ServiceError as exc:
            if exc.nothing_written:
                raise
            # Timed out, dropped, unreadable or a (gateway) 5xx: Kleer may still commit this
            # request. Look again only once it has surely finished, or the lookup misses it and
            # the retry creates a twin.
            raise ApplicationError(f"{exc} (outcome unknown; looking again in "
                                   f"{self._settings.create_settle_s:.0f} s)",
                                   type="KleerOutcomeUnknown",
                                   next_retry_delay=timedelta(
                                       seconds=self._settings.create_settle_s)) from None
        if req.kind in READ_BACK:
            return KleerWritten(id=new_id, record=await kleer.get(req.kind, new_id))
        return KleerWritten(id=new_id, record={**req.payload, "id": new_id})

    async def _find_earlier(self, kleer: KleerClient, req: KleerWrite) -> Record | None:
        if req.foreign_id:
            return await kleer.find_by_foreign_id(req.kind, req.foreign_id)
        if req.kind == "project":
            # Projects have no foreign-id: the client's project with the same name and number.
            wanted = (req.payload.get("name"), req.payload.get("number"))
            for project in await kleer.projects_of(req.payload["client"]["id"]):
                if (project.get("name"), project.get("number")) == wanted:
                    return project
        return None

    @activity.defn(name="kleer.update")
    @translate_errors
    async def update(self, req: KleerWrite) -> KleerWritten:
        """Update an agreement: the whole current agreement with the given header fields and the
        deal's row sets applied, sent in the XSD's update envelope (kleer.md "Agreement update").

        Never a partial body, which would clear the fields it leaves out. Repeating it (a retry
        after a lost answer) sends the same agreement again: one more identical revision.
        """
        assert req.record_id is not None and req.kind == "agreement"
        kleer = await self.client(req.portal_id)
        current = await kleer.get("agreement", req.record_id)
        whole = {k: v for k, v in current.items() if k not in _AGREEMENT_READ_ONLY}
        whole.update(req.payload)
        revision = await kleer.update_agreement(req.record_id, whole)
        return KleerWritten(id=req.record_id, record={**whole, "id": req.record_id,
                                                      "revision-nr": revision})

    @activity.defn(name="kleer.find_products")
    @translate_errors
    async def find_products(self, req: FindProducts) -> dict[str, int]:
        """HubSpot product id -> Kleer product id, for Kleer products whose foreign-id is that id.

        One walk through the product list (the foreign-id filter may not exist)."""
        wanted = set(req.hubspot_product_ids)
        found: dict[str, int] = {}
        for product in await (await self.client(req.portal_id)).list_all("product"):
            marker = product.get("foreign-id")
            if marker in wanted:
                if marker in found:
                    raise ServiceError("Kleer", f"products {found[marker]} and {product['id']} "
                                                f"both carry foreign-id {marker}", 409)
                found[marker] = product["id"]
        return found
