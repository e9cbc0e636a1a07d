"""The sync's one activity: a page of one kind of Kleer record, written to HubSpot in batches.

Incremental and idempotent: every record's HubSpot form (its mirror's properties and line
items) is digested, and only records whose digest changed since the last run are written; the
digests are saved once HubSpot accepted the writes. A run killed halfway redoes only what it had
not saved, and every write is keyed (companies by id, mirrors by their unique kleer_id), so
nothing is doubled. Records changed while a run reads them are picked up by the next run.

HubSpot calls go out in batches of up to 100 and wait for turns only when the portal's budget is
idle (pacing: background), so actions go first; Kleer calls likewise.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from actions.agreement import SUBSCRIPTION_SYNC
from actions.base import record_workflow_id
from actions.invoice import SPEC as INVOICE
from actions.invoice import hubspot_invoice
from activities.errors import translate_errors
from activities.leases import take_all
from hubspot_api.client import BATCH_LIMIT, HubSpotClient, http_pool
from hubspot_api.models import CrmObject
from kleer_api.client import KleerClient, Record, kleer_pool, record_id
from pacing import RateLimit
from portals.services import PortalServices
from service_errors import ServiceError
from settings import Settings
from storage.records import SyncedRecord
from sync.matching import Candidates, match_clients, orgno_key, orgno_spellings
from sync.models import PageDone, SyncKind, SyncPage, SyncSummary, Unmatched

MIRRORS = {"agreement": ("subscriptions", "subscriptions_upserted"),
           "invoice": ("invoices", "invoices_upserted")}
COMPANY_PROPERTIES = ("name", "kleer_id")
_MARKER = "hubspot:{portal}:{object}:"


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _lease_key(portal_id: int, kind: SyncKind, record: Record) -> str | None:
    """The record lease our action's sync-back of this mirror runs under (None: no action of
    ours made this Kleer record)."""
    deal = marked_object(record, portal_id, "deal")
    return record_workflow_id(portal_id, kind, "DEAL", deal) if deal is not None else None


def marked_object(record: Record, portal_id: int, object_type: str) -> str | None:
    """The HubSpot record our action made this Kleer record for (its foreign-id says so)."""
    marker = str(record.get("foreign-id") or "")
    prefix = _MARKER.format(portal=portal_id, object=object_type)
    if not marker.startswith(prefix):
        return None
    object_id = marker[len(prefix):].split(":", 1)[0]
    return object_id if object_id.isdigit() else None


async def _in_batches(items: Sequence[Any], write: Callable[[list[Any]], Awaitable[Any]],
                      failed: Callable[[Any, ServiceError], None]) -> list[Any]:
    """Write items 100 at a time; a batch HubSpot refuses (4xx) is split until the refusal falls
    on the item(s) at fault, which are reported and skipped. Transient errors propagate (retry)."""
    done: list[Any] = []

    async def attempt(chunk: list[Any]) -> None:
        try:
            done.extend(await write(chunk) or [])
        except ServiceError as exc:
            if exc.retryable:
                raise
            if len(chunk) == 1:
                failed(chunk[0], exc)
                return
            await attempt(chunk[:len(chunk) // 2])
            await attempt(chunk[len(chunk) // 2:])

    for start in range(0, len(items), BATCH_LIMIT):
        await attempt(list(items[start:start + BATCH_LIMIT]))
    return done


async def _heartbeat(every_s: float = 3.0) -> None:
    """The page is alive (waiting for HubSpot turns can take long while actions go first)."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(every_s)


class SyncActivities:
    def __init__(self, settings: Settings, services: PortalServices) -> None:
        self._settings = settings
        self._services = services
        self._hubspot_http = http_pool(settings.hubspot_base_url, settings.http_timeout_s,
                                       max_connections=settings.http_max_connections)
        self._kleer_http = kleer_pool(settings.kleer_base_url, settings.http_timeout_s,
                                      max_connections=settings.http_max_connections)
        # The Kleer list of a run and kind, read once and sliced page by page (runs may page
        # through thousands of records; a worker restart just reads it again).
        self._lists: dict[tuple[str, int, str], tuple[float, list[Record]]] = {}
        self._hubspot_by_portal: dict[int, tuple[float, HubSpotClient]] = {}

    async def aclose(self) -> None:
        await self._hubspot_http.aclose()
        await self._kleer_http.aclose()

    async def _hubspot(self, portal_id: int) -> HubSpotClient:
        """One client per portal for a minute (it caches association type ids); the directory is
        asked again after that, so an uninstall or a changed rate limit is seen within a minute."""
        made, client = self._hubspot_by_portal.get(portal_id, (0.0, None))
        if client is None or time.monotonic() - made > 60:
            client = await self._new_hubspot(portal_id)
            self._hubspot_by_portal[portal_id] = (time.monotonic(), client)
        return client

    async def _new_hubspot(self, portal_id: int) -> HubSpotClient:
        access = await self._services.directory.hubspot(portal_id)
        pacer, key = self._services.pacer, f"hubspot:{portal_id}"
        search_limit = RateLimit(4.0, 1)  # HubSpot's search limit (hubspot.md section 6: 5/s)

        async def pace() -> None:
            await pacer.wait(key, access.limit, background=True)

        client = HubSpotClient(self._settings.hubspot_base_url, access.token, pace=pace,
                               http=self._hubspot_http)
        original = client.search_in

        async def paced_search(*args: Any, **kwargs: Any) -> list[CrmObject]:
            await pacer.wait(f"hubspot-search:{portal_id}", search_limit, background=True)
            return await original(*args, **kwargs)

        client.search_in = paced_search  # type: ignore[method-assign]
        return client

    async def _kleer(self, portal_id: int) -> KleerClient:
        access = await self._services.directory.kleer(portal_id)
        limit = RateLimit(self._settings.kleer_rate_limit, self._settings.kleer_rate_burst)

        async def pace() -> None:
            await self._services.pacer.wait(access.pacing_key, limit, background=True)

        return KleerClient(self._settings.kleer_base_url, access.company_id, access.api_key,
                           pace=pace, http=self._kleer_http)

    async def _records(self, req: SyncPage) -> list[Record]:
        key = (req.run_id, req.portal_id, req.kind)
        now = time.monotonic()
        self._lists = {k: v for k, v in self._lists.items() if v[0] > now}
        if key not in self._lists:
            records = await (await self._kleer(req.portal_id)).list_all(req.kind)
            self._lists[key] = (now + 3600, sorted(records, key=lambda r: r["id"]))
        return self._lists[key][1]

    @activity.defn(name="sync.page")
    @translate_errors
    async def sync_page(self, req: SyncPage) -> PageDone:
        beating = asyncio.create_task(_heartbeat())
        try:
            return await self._page(req)
        finally:
            beating.cancel()

    async def _page(self, req: SyncPage) -> PageDone:
        if self._services.store is None:
            raise ApplicationError("the outbound sync keeps its state in the database: set "
                                   "DATABASE_URL", type="NoDatabase", non_retryable=True)
        records = await self._records(req)
        page = records[req.offset:req.offset + req.size]
        hubspot = await self._hubspot(req.portal_id)
        if req.kind == "client":
            summary = await self._clients(req.portal_id, page, hubspot)
        else:
            summary = await self._mirrors(req.portal_id, req.kind, page, hubspot)
        end = req.offset + len(page)
        return PageDone(summary=summary, next_offset=end, done=end >= len(records))

    # -- clients -> companies ---------------------------------------------------------------
    async def _clients(self, portal_id: int, clients: list[Record], hubspot: HubSpotClient
                       ) -> SyncSummary:
        store = self._services.store
        assert store is not None
        summary = SyncSummary(clients_seen=len(clients))
        linked = await store.synced(portal_id, "client", [c["id"] for c in clients])
        todo = [c for c in clients if c["id"] not in linked]
        summary.unchanged += len(clients) - len(todo)
        if not todo:
            return summary
        orgno_property = next((m.hubspot for m in await self._services.directory.mappings(
            portal_id, "client") if m.kleer == "orgno"), "orgno")
        properties = [*COMPANY_PROPERTIES, orgno_property]
        found = await self._candidates(portal_id, todo, hubspot, properties, orgno_property)
        matches, problems = match_clients(todo, found)
        links = [(m.company.id, {"kleer_id": str(m.client_id)}) for m in matches
                 if m.company.prop("kleer_id") != str(m.client_id)]
        failed: set[str] = set()

        def refused(company_id: str, exc: ServiceError) -> None:
            failed.add(company_id)
            summary.errors.append(f"company {company_id}: writing kleer_id failed: {exc.message}")

        for start in range(0, len(links), BATCH_LIMIT):
            outcomes = await hubspot.update_each("companies", links[start:start + BATCH_LIMIT])
            for company_id, outcome in outcomes.items():
                if isinstance(outcome, ServiceError):
                    if outcome.retryable:
                        raise outcome
                    refused(company_id, outcome)  # e.g. deleted since it was found
        saved = [SyncedRecord(kind="client", kleer_id=m.client_id, hubspot_id=m.company.id,
                              digest="linked") for m in matches if m.company.id not in failed]
        summary.clients_linked += len(saved)
        if problems and self._settings.sync_create_companies:
            created, problems = await self._create_companies(todo, problems, hubspot, orgno_property,
                                                             summary)
            saved += created
        await store.save_synced(portal_id, saved)
        await store.set_unmatched(portal_id, problems, linked=[s.kleer_id for s in saved])
        summary.unmatched += [Unmatched(kleer_id=k, name=n, reason=r) for k, n, r in problems]
        return summary

    async def _candidates(self, portal_id: int, clients: list[Record], hubspot: HubSpotClient,
                          properties: list[str], orgno_property: str) -> Candidates:
        marked = {c["id"]: marked_object(c, portal_id, "company") for c in clients}
        by_marker: dict[int, CrmObject] = {}
        if wanted := [m for m in marked.values() if m]:
            companies = {}
            for start in range(0, len(wanted), BATCH_LIMIT):
                companies.update(await hubspot.read_each("companies", wanted[start:start + 100],
                                                         properties))
            by_marker = {cid: companies[m] for cid, m in marked.items()
                         if m and isinstance(companies.get(m), CrmObject)}
        rest = [c for c in clients if c["id"] not in by_marker]

        async def grouped(prop: str, values: list[str], key: Callable[[str | None], str]
                          ) -> dict[str, list[CrmObject]]:
            out: dict[str, list[CrmObject]] = defaultdict(list)
            if values:
                for company in await hubspot.search_in("companies", prop, values, properties):
                    out[key(company.prop(prop))].append(company)
            return out

        def exact(value: str | None) -> str:
            return (value or "").strip()

        by_kleer_id = await grouped("kleer_id", [str(c["id"]) for c in rest], exact)
        by_orgno = await grouped(orgno_property, [v for c in rest for v in orgno_spellings(
            c.get("orgno"))], orgno_key)
        by_name = await grouped("name", [c["name"].strip() for c in rest if (c.get("name") or "")
                                          .strip()], exact)
        return Candidates(by_marker, by_kleer_id, by_orgno, by_name)

    async def _create_companies(self, clients: list[Record], problems: list, hubspot: HubSpotClient,
                                orgno_property: str, summary: SyncSummary
                                ) -> tuple[list[SyncedRecord], list]:
        """SYNC_CREATE_COMPANIES: a company for each client nothing matched (conflicts stay)."""
        nothing = {cid for cid, _, reason in problems if reason.startswith("no HubSpot company")}
        inputs = [{"properties": {"name": c.get("name") or f"Kleer client {c['id']}",
                                  "kleer_id": str(c["id"]),
                                  **({orgno_property: c["orgno"]} if c.get("orgno") else {})}}
                  for c in clients if c["id"] in nothing]

        def refused(item: dict, exc: ServiceError) -> None:
            summary.errors.append(f"creating a company for client {item['properties']['kleer_id']} "
                                  f"failed: {exc.message}")

        created = await _in_batches(inputs, lambda chunk: hubspot.batch_create("companies", chunk),
                                    refused)
        saved = [SyncedRecord(kind="client", kleer_id=int(c.properties["kleer_id"]),
                              hubspot_id=c.id, digest="created") for c in created]
        summary.companies_created += len(saved)
        made = {s.kleer_id for s in saved}
        return saved, [p for p in problems if p[0] not in made]

    # -- agreements -> subscriptions, invoices -> invoices ---------------------------------
    def _form(self, kind: SyncKind, record: Record, today: date) -> tuple[dict, list[dict]]:
        """The HubSpot form of a Kleer record: the same mapping as the immediate sync back."""
        if kind == "invoice":
            assert INVOICE.sync is not None
            return hubspot_invoice(record, today), INVOICE.sync.line_items(record)
        return SUBSCRIPTION_SYNC.properties(record), SUBSCRIPTION_SYNC.line_items(record)

    async def _mirrors(self, portal_id: int, kind: SyncKind, records: list[Record],
                       hubspot: HubSpotClient) -> SyncSummary:
        store = self._services.store
        assert store is not None
        object_type, counter = MIRRORS[kind]
        summary = SyncSummary()
        today = date.today()
        previous = await store.synced(portal_id, kind, [r["id"] for r in records])
        client_ids = {record_id(r.get("client-ref")) for r in records if r.get("client-ref")}
        companies = await store.synced(portal_id, "client", list(client_ids))
        work = []
        for record in records:
            try:
                props, items = self._form(kind, record, today)
            except ValueError as exc:  # e.g. an interval HubSpot has no billing frequency for
                summary.errors.append(f"{kind} {record['id']}: {exc}")
                continue
            form_digest = digest({"p": props, "l": items})
            seen = previous.get(record["id"])
            if seen is not None and seen.digest == form_digest:
                summary.unchanged += 1
                continue
            company = companies.get(record_id(record["client-ref"])) if record.get("client-ref") \
                else None
            if company is None or not company.hubspot_id:
                summary.waiting_for_client += 1
                continue
            work.append((record, props, items, form_digest, company.hubspot_id))
        if not work:
            return summary
        # A mirror our action made (the Kleer record carries its deal) is also written by that
        # action's sync-back, under the deal's record lease: the sync writes it under the same
        # lease, so the two never replace its line items at once. Held by a running action: left
        # to it, and to the next run, which finds the digest unsaved.
        leases = {str(rec["id"]): key for rec, *_ in work
                  if (key := _lease_key(portal_id, kind, rec)) is not None}
        holder = activity.info().workflow_id
        holders = await take_all(store, list(leases.values()), holder)
        busy = {kleer_id for kleer_id, key in leases.items() if holders.get(key) != holder}
        summary.left_to_actions += len(busy)
        try:
            await self._write_mirrors(portal_id, kind, object_type, counter, hubspot, summary,
                                      [w for w in work if str(w[0]["id"]) not in busy])
        finally:
            await store.release_records([key for key in leases.values()
                                         if holders.get(key) == holder], holder)
        return summary

    async def _write_mirrors(self, portal_id: int, kind: SyncKind, object_type: str, counter: str,
                             hubspot: HubSpotClient, summary: SyncSummary, work: list[tuple]
                             ) -> None:
        store = self._services.store
        assert store is not None
        if not work:
            return

        def refused(item: Any, exc: ServiceError) -> None:
            summary.errors.append(f"{kind} {item[0]}: {exc.message}")

        upserted = {r.properties.get("kleer_id"): r for r in await _in_batches(
            [(str(rec["id"]), {**props, "kleer_id": str(rec["id"])}) for rec, props, *_ in work],
            lambda chunk: hubspot.batch_upsert(object_type, "kleer_id", chunk), refused)}
        done = [(w, upserted[str(w[0]["id"])]) for w in work if str(w[0]["id"]) in upserted]
        new = [(w, mirror) for w, mirror in done if mirror.new]
        old = [mirror.id for (_, mirror) in done if not mirror.new]
        await self._associate(portal_id, kind, object_type, new, hubspot, summary)
        ids: list[str] = []
        for start in range(0, len(old), BATCH_LIMIT):  # their rows are replaced, never appended
            stale = await hubspot.associations_each(object_type, "line_items",
                                                    old[start:start + BATCH_LIMIT])
            for refs in stale.values():
                if isinstance(refs, ServiceError):
                    raise refs  # rows we cannot see would be doubled: retry the page
                ids += [li.id for li in refs]
        for start in range(0, len(ids), BATCH_LIMIT):
            await hubspot.batch_archive("line_items", ids[start:start + BATCH_LIMIT])
        types = [{"associationCategory": "HUBSPOT_DEFINED",
                  "associationTypeId": await hubspot.default_type_id("line_items", object_type)}]
        line_items = [{"properties": p, "associations": [{"to": {"id": mirror.id}, "types": types}]}
                      for (_, _, items, _, _), mirror in done for p in items]
        await _in_batches(line_items, lambda chunk: hubspot.batch_create("line_items", chunk),
                          lambda item, exc: summary.errors.append(
                              f"line item of {object_type[:-1]} "
                              f"{item['associations'][0]['to']['id']}: {exc.message}"))
        await store.save_synced(portal_id, [
            SyncedRecord(kind=kind, kleer_id=rec["id"], hubspot_id=mirror.id, digest=d)
            for (rec, _, _, d, _), mirror in done])
        setattr(summary, counter, len(done))

    async def _associate(self, portal_id: int, kind: SyncKind, object_type: str,
                         new: list[tuple[tuple, Any]], hubspot: HubSpotClient,
                         summary: SyncSummary) -> None:
        """New mirrors: with their client's company, and with the deal our action made the Kleer
        record for (its foreign-id names it) when that deal still exists."""
        if not new:
            return
        company_pairs = [(mirror.id, company_id) for (_, _, _, _, company_id), mirror in new]
        deals = {mirror.id: deal for (rec, *_), mirror in new
                 if (deal := marked_object(rec, portal_id, "deal"))}
        existing: set[str] = set()
        wanted = sorted(set(deals.values()))
        for start in range(0, len(wanted), BATCH_LIMIT):
            found = await hubspot.read_each("deals", wanted[start:start + BATCH_LIMIT], ["dealname"])
            existing |= {i for i, r in found.items() if isinstance(r, CrmObject)}
        deal_pairs = [(m, d) for m, d in deals.items() if d in existing]
        for to_type, pairs in (("companies", company_pairs), ("deals", deal_pairs)):
            await _in_batches(pairs, lambda chunk, t=to_type: hubspot.batch_associate_default(
                object_type, t, chunk), lambda pair, exc, t=to_type: summary.errors.append(
                f"associating {object_type[:-1]} {pair[0]} with {t[:-1]} {pair[1]}: {exc.message}"))
