"""HubSpot activities: read the enrolled record, its company and line items, write the Kleer id back,
mirror the Kleer record (sync back), complete the callback.

Each activity makes one HubSpot call in the normal case. They run on the portal's own task queue,
whose Temporal rate limit is derived from the portal's HubSpot limit (worker.py), so activities
per second is HubSpot calls per second, for all workers together.
"""

from __future__ import annotations

from temporalio import activity

from actions import ACTIONS
from actions.mappings import load_mappings
from actions.rows import LINE_ITEM_PROPERTIES
from activities.callbacks import CallbackBatcher
from activities.errors import translate_errors
from activities.models import (
    Completion,
    ReadLineItems,
    ReadObject,
    ReadRecord,
    RecordRead,
    SyncLineItems,
    SyncMirror,
    WriteBack,
)
from hubspot_api.client import HubSpotClient
from hubspot_api.models import CrmObject
from service_errors import ServiceError
from settings import Settings
from telemetry import HttpCallMetrics

COMPANY_PROPERTIES = ("kleer_id", "name")


def _not_found(exc: ServiceError, what: str) -> ServiceError:
    if exc.status == 404:
        return ServiceError("HubSpot", f"{what} was not found (deleted or merged?)", 404, exc.category)
    return exc


class HubSpotActivities:
    """Holds one HubSpot client per portal; tokens stay in this process, never in histories."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[int, HubSpotClient] = {}
        self._batchers: dict[int, CallbackBatcher] = {}
        self._metrics = HttpCallMetrics("hubspot")

    def client(self, portal_id: int) -> HubSpotClient:
        if portal_id not in self._clients:
            creds = self._settings.portal(portal_id)
            self._clients[portal_id] = HubSpotClient(
                self._settings.hubspot_base_url, creds.hubspot_token, self._settings.http_timeout_s,
                observe=self._metrics,
            )
        return self._clients[portal_id]

    async def aclose(self) -> None:
        for batcher in self._batchers.values():
            await batcher.aclose()
        for client in self._clients.values():
            await client.aclose()

    @activity.defn(name="hubspot.read_record")
    @translate_errors
    async def read_record(self, req: ReadRecord) -> RecordRead:
        """The enrolled record with the properties the action needs and its associations."""
        spec = ACTIONS[req.action]
        mappings = (load_mappings(self._settings.mappings_dir, req.portal_id, spec.mapping_kind)
                    if spec.mapping_kind else [])
        associations = [t for t, wanted in (("companies", spec.needs_company),
                                            ("line_items", spec.reads_line_items)) if wanted]
        try:
            record = await self.client(req.portal_id).get_object(
                spec.hubspot_type, req.object_id, spec.properties_to_read(mappings), associations)
        except ServiceError as exc:
            raise _not_found(exc, f"{spec.object_type.lower()} {req.object_id}") from None
        return RecordRead(record=record, mappings=mappings)

    @activity.defn(name="hubspot.read_company")
    @translate_errors
    async def read_company(self, req: ReadObject) -> CrmObject:
        try:
            return await self.client(req.portal_id).get_object("companies", req.object_id,
                                                               COMPANY_PROPERTIES)
        except ServiceError as exc:
            raise _not_found(exc, f"company {req.object_id}") from None

    @activity.defn(name="hubspot.read_line_items")
    @translate_errors
    async def read_line_items(self, req: ReadLineItems) -> list[CrmObject]:
        """One batch read (per 100 items)."""
        return await self.client(req.portal_id).batch_read("line_items", req.ids,
                                                           LINE_ITEM_PROPERTIES)

    @activity.defn(name="hubspot.write_back")
    @translate_errors
    async def write_back(self, req: WriteBack) -> None:
        await self.client(req.portal_id).update_object(req.hubspot_type, req.object_id,
                                                       req.properties)

    @activity.defn(name="hubspot.sync_mirror")
    @translate_errors
    async def sync_mirror(self, req: SyncMirror) -> str:
        """The HubSpot invoice/subscription mirroring a Kleer record, keyed by its unique kleer_id.

        New: one create with its associations inline. Existing (an update, or a retry after a lost
        answer, seen as 409 on the unique kleer_id): upsert, and archive its old line items so
        sync_line_items replaces them.
        """
        hubspot = self.client(req.portal_id)
        props = {**req.properties, "kleer_id": req.kleer_id}
        if req.expect_new:
            try:
                [mirror] = await hubspot.batch_create(req.hubspot_type, [{
                    "properties": props,
                    "associations": await hubspot.inline_associations(req.hubspot_type,
                                                                      req.associations)}])
                return mirror.id
            except ServiceError as exc:
                if exc.status != 409:
                    raise
        [upserted] = await hubspot.batch_upsert(req.hubspot_type, "kleer_id", [(req.kleer_id, props)])
        if upserted.new:
            await hubspot.batch_associate_all(req.hubspot_type, upserted.id, req.associations)
        else:
            await self._archive_line_items(hubspot, req.hubspot_type, upserted.id)
        return upserted.id

    @activity.defn(name="hubspot.sync_line_items")
    @translate_errors
    async def sync_line_items(self, req: SyncLineItems) -> None:
        """Create the mirror's line items, associated inline. A retry first removes what an
        earlier attempt may have created (its answer lost), so items are never doubled."""
        hubspot = self.client(req.portal_id)
        if activity.info().attempt > 1:
            await self._archive_line_items(hubspot, req.hubspot_type, req.mirror_id)
        link = await hubspot.inline_associations("line_items", [(req.hubspot_type, req.mirror_id)])
        await hubspot.batch_create("line_items", [{"properties": p, "associations": link}
                                                  for p in req.line_items])

    @staticmethod
    async def _archive_line_items(hubspot: HubSpotClient, hubspot_type: str, mirror_id: str) -> None:
        old = await hubspot.associated_ids(hubspot_type, mirror_id, "line_items")
        if old:
            await hubspot.batch_archive("line_items", old)

    @activity.defn(name="hubspot.complete")
    @translate_errors
    async def complete(self, req: Completion) -> str:
        """Complete the callback, batched with others of the portal (one call per batch).

        An unknown, expired or already completed callback is final: returns "closed: ...".
        """
        if req.portal_id not in self._batchers:
            _, flush_s = self._settings.hubspot_pacing(req.portal_id)
            self._batchers[req.portal_id] = CallbackBatcher(self.client(req.portal_id), flush_s)
        try:
            await self._batchers[req.portal_id].complete(req.callback_id, req.output_fields)
        except ServiceError as exc:
            if not exc.retryable and exc.status not in (401, 403):
                activity.logger.warning("callback %s not completable: %s", req.callback_id, exc)
                return f"closed: {exc.message}"
            raise
        return "completed"
