"""HubSpot activities: read the enrolled record, write the Kleer id back, sync back, complete."""

from __future__ import annotations

from temporalio import activity

from actions import ACTIONS
from actions.base import ActionContext
from actions.mappings import load_mappings
from actions.rows import LINE_ITEM_PROPERTIES
from activities.errors import translate_errors
from activities.models import Completion, ReadContext, SyncBack, WriteBack
from hubspot_api.client import HubSpotClient
from service_errors import ServiceError
from settings import Settings

COMPANY_PROPERTIES = ("kleer_id", "name")


class HubSpotActivities:
    """Holds one HubSpot client per portal; tokens stay in this process, never in histories."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[int, HubSpotClient] = {}

    def client(self, portal_id: int) -> HubSpotClient:
        if portal_id not in self._clients:
            creds = self._settings.portal(portal_id)
            self._clients[portal_id] = HubSpotClient(
                self._settings.hubspot_base_url, creds.hubspot_token, self._settings.http_timeout_s
            )
        return self._clients[portal_id]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    @activity.defn(name="hubspot.read_context")
    @translate_errors
    async def read_context(self, req: ReadContext) -> ActionContext:
        """One read of the record with its associations, then its company and line items.

        When a create action will skip (Kleer id already set), nothing more is read.
        """
        spec = ACTIONS[req.action]
        hubspot = self.client(req.portal_id)
        mappings = (load_mappings(self._settings.mappings_dir, req.portal_id, spec.mapping_kind)
                    if spec.mapping_kind else [])
        associations = [t for t, wanted in (("companies", spec.needs_company),
                                            ("line_items", spec.reads_line_items)) if wanted]
        try:
            record = await hubspot.get_object(
                spec.hubspot_type, req.object_id, spec.properties_to_read(mappings), associations
            )
        except ServiceError as exc:
            if exc.status == 404:
                raise ServiceError("HubSpot", f"{spec.object_type.lower()} {req.object_id} was not "
                                   "found (deleted or merged?)", 404, exc.category) from None
            raise
        ctx = ActionContext(portal_id=req.portal_id, object_type=spec.object_type, record=record,
                            mappings=mappings)
        if spec.operation == "create" and record.prop(spec.id_property):
            return ctx
        company_id = record.primary_company_id() if spec.needs_company else None
        if company_id:
            ctx.company = await hubspot.get_object("companies", company_id, COMPANY_PROPERTIES)
        item_ids = record.associated_ids("line_items")
        if spec.reads_line_items and item_ids:
            ctx.line_items = await hubspot.batch_read("line_items", item_ids, LINE_ITEM_PROPERTIES)
        return ctx

    @activity.defn(name="hubspot.write_back")
    @translate_errors
    async def write_back(self, req: WriteBack) -> None:
        await self.client(req.portal_id).update_object(req.hubspot_type, req.object_id,
                                                       req.properties)

    @activity.defn(name="hubspot.sync_back")
    @translate_errors
    async def sync_back(self, req: SyncBack) -> str:
        """Mirror the Kleer record in HubSpot, keyed by its Kleer id: never two mirrors, never
        duplicated line items.

        A new record is created with its associations inline (one call); when it exists already
        (an update, or a retry after a lost answer: 409 on the unique kleer_id) it is upserted
        and its line items are replaced.
        """
        hubspot = self.client(req.portal_id)
        props = {**req.properties, "kleer_id": req.kleer_id}
        mirror_id = None
        if req.expect_new:
            try:
                [mirror] = await hubspot.batch_create(req.hubspot_type, [{
                    "properties": props,
                    "associations": await hubspot.inline_associations(req.hubspot_type,
                                                                      req.associations)}])
                mirror_id = mirror.id
            except ServiceError as exc:
                if exc.status != 409:
                    raise
        if mirror_id is None:
            [upserted] = await hubspot.batch_upsert(req.hubspot_type, "kleer_id",
                                                    [(req.kleer_id, props)])
            mirror_id = upserted.id
            if upserted.new:
                await hubspot.batch_associate_all(req.hubspot_type, mirror_id, req.associations)
            else:
                old = await hubspot.associated_ids(req.hubspot_type, mirror_id, "line_items")
                if old:
                    await hubspot.batch_archive("line_items", old)
        if req.line_items:
            link = await hubspot.inline_associations("line_items", [(req.hubspot_type, mirror_id)])
            await hubspot.batch_create("line_items", [{"properties": p, "associations": link}
                                                      for p in req.line_items])
        return mirror_id

    @activity.defn(name="hubspot.complete")
    @translate_errors
    async def complete(self, req: Completion) -> str:
        """Complete the callback. An unknown/expired/completed callback is final: nothing to retry."""
        try:
            await self.client(req.portal_id).complete_callback(req.callback_id, req.output_fields)
        except ServiceError as exc:
            if not exc.retryable and exc.status not in (401, 403):
                activity.logger.warning("callback %s not completable: %s", req.callback_id, exc)
                return f"closed: {exc.message}"
            raise
        return "completed"
