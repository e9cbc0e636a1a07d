"""HubSpot activities: read the enrolled record, its company and line items, write the Kleer id back,
mirror the Kleer record (sync back), complete the callback.

They all run on one task queue, each portal's tasks under its own fairness key (a burst on one
portal never queues ahead of another's). Inside a worker process, the same kind of call from
concurrent activities of a portal is coalesced into HubSpot's batch endpoints
(activities/hubspot_calls.py), and every HTTP call waits for its turn under the portal's rate
limit, shared by all processes (pacing/): the limit counts calls, not activities.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from actions import ACTIONS
from actions.rows import LINE_ITEM_PROPERTIES
from activities.batching import BatchStats
from activities.errors import WRITE_BACK, tagged, to_application_error, translate_errors
from activities.heartbeat import heartbeating
from activities.hubspot_calls import PortalCalls
from activities.models import (
    Completion,
    MirrorSynced,
    ReadLineItems,
    ReadObject,
    ReadRecord,
    RecordRead,
    SyncLineItems,
    SyncMirror,
    SyncMirrorAndComplete,
    SyncMirrorWithLineItems,
    WriteBack,
    WriteBackAndComplete,
)
from hubspot_api.client import HubSpotClient, http_pool
from hubspot_api.models import CrmObject
from oauth.tokens import PortalDisconnected
from pacing import Pacer
from portals.directory import PortalDirectory
from service_errors import ServiceError
from settings import Settings
from telemetry import HttpCallMetrics

COMPANY_PROPERTIES = ("kleer_id", "name")


def _not_found(exc: ServiceError, what: str) -> ServiceError:
    if exc.status == 404:
        return ServiceError("HubSpot", f"{what} was not found (deleted or merged?)", 404, exc.category)
    return exc


class HubSpotActivities:
    """Holds each portal's calls (one connection pool per host); tokens stay in this process."""

    def __init__(self, settings: Settings, directory: PortalDirectory, pacer: Pacer) -> None:
        self._settings = settings
        self._directory = directory
        self._pacer = pacer
        self._http = http_pool(settings.hubspot_base_url, settings.http_timeout_s,
                               max_connections=settings.http_max_connections)
        self._calls: dict[int, PortalCalls] = {}
        self._metrics = HttpCallMetrics("hubspot")
        self.stats: dict[str, BatchStats] = {}  # per kind of call: calls and items (the bench)

    async def calls(self, portal_id: int) -> PortalCalls:
        if portal_id not in self._calls:
            access = await self._directory.hubspot(portal_id)

            key = f"hubspot:{portal_id}"

            async def pace() -> None:
                await self._pacer.wait(key, access.limit)

            async def turn() -> None:
                await self._pacer.take_turn(key, access.limit)

            client = HubSpotClient(self._settings.hubspot_base_url, access.token,
                                   observe=self._metrics, pace=pace, http=self._http)
            self._calls[portal_id] = PortalCalls(client, self.stats, turn,
                                                 self._settings.hubspot_max_batch,
                                                 self._settings.hubspot_batch_window_s)
        return self._calls[portal_id]

    async def aclose(self) -> None:
        for calls in self._calls.values():
            await calls.aclose()
        await self._http.aclose()

    @activity.defn(name="hubspot.read_record")
    @heartbeating
    @translate_errors
    async def read_record(self, req: ReadRecord) -> RecordRead:
        """The enrolled record with the properties the action needs and its associations."""
        spec = ACTIONS[req.action]
        mappings = (await self._directory.mappings(req.portal_id, spec.mapping_kind)
                    if spec.mapping_kind else [])
        associations = [t for t, wanted in (("companies", spec.needs_company),
                                            ("line_items", spec.reads_line_items)) if wanted]
        calls = await self.calls(req.portal_id)
        try:
            record = await calls.read(spec.hubspot_type, str(req.object_id),
                                      spec.properties_to_read(mappings), associations)
        except ServiceError as exc:
            raise _not_found(exc, f"{spec.object_type.lower()} {req.object_id}") from None
        read = RecordRead(record=record, mappings=mappings)
        if not req.related or spec.skips(record):
            return read  # a create that will skip needs nothing else
        company_id = record.primary_company_id() if spec.needs_company else None
        item_ids = record.associated_ids("line_items") if spec.reads_line_items else []
        company, line_items = await asyncio.gather(
            self._company(calls, company_id) if company_id else _ready(None),
            calls.read_many("line_items", item_ids, LINE_ITEM_PROPERTIES) if item_ids else _ready([]))
        return read.model_copy(update={"company": company, "line_items": line_items})

    @staticmethod
    async def _company(calls: PortalCalls, company_id: str) -> CrmObject:
        try:
            return await calls.read("companies", company_id, COMPANY_PROPERTIES)
        except ServiceError as exc:
            raise _not_found(exc, f"company {company_id}") from None

    @activity.defn(name="hubspot.read_company")
    @heartbeating
    @translate_errors
    async def read_company(self, req: ReadObject) -> CrmObject:
        """Runs started before read_record read related records (kept for their replays)."""
        return await self._company(await self.calls(req.portal_id), req.object_id)

    @activity.defn(name="hubspot.read_line_items")
    @heartbeating
    @translate_errors
    async def read_line_items(self, req: ReadLineItems) -> list[CrmObject]:
        """The deal's line items, all of them: rows must be whole (a missing one is an error).
        Runs started before read_record read related records (kept for their replays)."""
        calls = await self.calls(req.portal_id)
        return await calls.read_many("line_items", req.ids, LINE_ITEM_PROPERTIES)

    @activity.defn(name="hubspot.write_back")
    @heartbeating
    @translate_errors
    async def write_back(self, req: WriteBack) -> None:
        await self._write_back(await self.calls(req.portal_id), req)

    @activity.defn(name="hubspot.write_back_and_complete")
    @heartbeating
    @translate_errors
    async def write_back_and_complete(self, req: WriteBackAndComplete) -> str:
        """`write_back`, then the callback completed with the outcome it makes final: one round
        trip through Temporal fewer per execution. Returns what completing answered, "" when
        it could not be told (see `_complete_after`)."""
        calls = await self.calls(req.portal_id)
        await self._write_back(calls, req)
        return await self._complete_after(calls, req.complete)

    @staticmethod
    async def _write_back(calls: PortalCalls, req: WriteBack) -> None:
        try:
            await calls.update(req.hubspot_type, str(req.object_id), req.properties)
        except ServiceError as exc:
            raise _not_found(exc, f"{req.hubspot_type[:-1]} {req.object_id}") from None

    @activity.defn(name="hubspot.sync_mirror")
    @heartbeating
    @translate_errors
    async def sync_mirror(self, req: SyncMirror) -> str:
        """The HubSpot invoice/subscription mirroring a Kleer record, keyed by its unique kleer_id.

        New: one create with its associations inline. Existing (an update, or a retry after a lost
        answer, seen as 409 on the unique kleer_id): upsert, and archive its old line items so
        sync_line_items replaces them.
        """
        return await self._sync_mirror(await self.calls(req.portal_id), req)

    @activity.defn(name="hubspot.sync_mirror_and_line_items")
    @heartbeating
    @translate_errors
    async def sync_mirror_and_line_items(self, req: SyncMirrorWithLineItems) -> str:
        """`sync_mirror`, then the mirror's line items: the same HubSpot calls as the two steps,
        one round trip through Temporal fewer per invoice or agreement (the Temporal server is
        what bounds a bulk enrollment on the benchmark's machine). A retry finds the mirror an
        earlier attempt made (409 on kleer_id, then upsert), whose line items `_sync_mirror`
        archives before they are created again: never doubled."""
        calls = await self.calls(req.portal_id)
        mirror_id = await self._sync_mirror(calls, req)
        await self._create_line_items(calls, req.hubspot_type, mirror_id, req.line_items)
        return mirror_id

    @activity.defn(name="hubspot.sync_mirror_and_complete")
    @heartbeating
    @translate_errors
    async def sync_mirror_and_complete(self, req: SyncMirrorAndComplete) -> MirrorSynced:
        """A create's id written back (when given), `sync_mirror_and_line_items`, then the
        callback completed with the outcome that makes final. A retry (the completion is tried
        only once all before it went through) repeats the idempotent write-back and sync."""
        calls = await self.calls(req.portal_id)
        if req.write_back is not None:
            try:
                await self._write_back(calls, req.write_back)
            except ServiceError as exc:  # tagged: the run's message names the write-back
                raise tagged(to_application_error(exc), WRITE_BACK) from None
        mirror_id = await self._sync_mirror(calls, req)
        await self._create_line_items(calls, req.hubspot_type, mirror_id, req.line_items)
        return MirrorSynced(mirror_id=mirror_id,
                            callback=await self._complete_after(calls, req.complete))

    async def _sync_mirror(self, calls: PortalCalls, req: SyncMirror) -> str:
        props = {**req.properties, "kleer_id": req.kleer_id}
        if req.expect_new:
            try:
                links = await calls.client.inline_associations(req.hubspot_type, req.associations)
                [mirror] = await calls.create(req.hubspot_type, [{
                    "properties": props, "associations": links}], key_property="kleer_id")
                return mirror.id
            except ServiceError as exc:
                if exc.status != 409:
                    raise
        upserted = await calls.upsert(req.hubspot_type, "kleer_id", req.kleer_id, props)
        if upserted.new or activity.info().attempt > 1:
            # On a retry too: an earlier attempt's upsert may have made the mirror and failed
            # before associating it, and the upsert now answers "not new". Idempotent.
            await calls.client.batch_associate_all(req.hubspot_type, upserted.id, req.associations)
        if not upserted.new:
            await self._archive_line_items(calls, req.hubspot_type, upserted.id)
        return upserted.id

    @activity.defn(name="hubspot.sync_line_items")
    @heartbeating
    @translate_errors
    async def sync_line_items(self, req: SyncLineItems) -> None:
        """Create the mirror's line items, associated inline. A retry first removes what an
        earlier attempt may have created (its answer lost), so items are never doubled."""
        calls = await self.calls(req.portal_id)
        if activity.info().attempt > 1:
            await self._archive_line_items(calls, req.hubspot_type, req.mirror_id)
        await self._create_line_items(calls, req.hubspot_type, req.mirror_id, req.line_items)

    @staticmethod
    async def _create_line_items(calls: PortalCalls, hubspot_type: str, mirror_id: str,
                                 line_items: list[dict[str, str]]) -> None:
        if not line_items:
            return
        link = await calls.client.inline_associations("line_items", [(hubspot_type, mirror_id)])
        await calls.create("line_items", [{"properties": p, "associations": link}
                                          for p in line_items])

    @staticmethod
    async def _archive_line_items(calls: PortalCalls, hubspot_type: str, mirror_id: str) -> None:
        await calls.archive("line_items", await calls.associated_ids(hubspot_type, mirror_id,
                                                                     "line_items"))

    @activity.defn(name="hubspot.complete")
    @heartbeating
    @translate_errors
    async def complete(self, req: Completion) -> str:
        """Complete the callback, batched with others of the portal.

        An unknown, expired or already completed callback is final: returns "closed: ...".
        A disconnected portal cannot be told anything (the callback API needs the portal's
        token): the outcome waits, retried every RECONNECT_RETRY_SECONDS, until an admin
        reconnects the app (or HubSpot's wait for the callback runs out).
        """
        return await self._complete(req)

    async def _complete(self, req: Completion, calls: PortalCalls | None = None) -> str:
        try:
            calls = calls or await self.calls(req.portal_id)
            await calls.complete(req.callback_id, req.output_fields)
        except PortalDisconnected as exc:
            raise ApplicationError(f"{exc}; the outcome is delivered once it is reconnected",
                                   type="PortalDisconnected", next_retry_delay=timedelta(
                                       seconds=self._settings.reconnect_retry_s)) from None
        except ServiceError as exc:
            if not exc.retryable and exc.status not in (401, 403):
                activity.logger.warning("callback %s not completable: %s", req.callback_id, exc)
                return f"closed: {exc.message}"
            raise
        return "completed"

    async def _complete_after(self, calls: PortalCalls, req: Completion) -> str:
        """Complete the callback once the write went through. Anything short of an answer
        (a 5xx, a timeout, a disconnected portal) returns "" instead of failing the step: what
        it did is done and must not be repeated for a completion, which the run's own
        `complete` step then delivers with its longer retries."""
        try:
            return await self._complete(req, calls)
        except Exception as exc:  # noqa: BLE001 (every failure has the same remedy: the step)
            activity.logger.info("callback %s not completed with the write (%s); the run's "
                                 "complete step delivers it", req.callback_id, exc)
            return ""


T = TypeVar("T")


async def _ready(value: T) -> T:
    """An awaitable of what is already known (a read that is not needed, in a gather)."""
    return value
