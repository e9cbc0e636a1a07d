"""One portal's HubSpot calls in this worker process, coalesced by kind into batch calls.

Each method is what one activity needs (read a record, write an id back, create a mirror...);
concurrent activities of the same kind share calls through a `Coalescer`:

| kind | alone | together (up to 100 per call) |
|---|---|---|
| read a record (+ associations) | GET, associations inline | batch/read + v4 association batch reads |
| update properties | PATCH | batch/update (one input per record, properties merged) |
| create records | batch/create | batch/create (a 4xx is split until it falls on the bad item) |
| upsert by unique property | batch/upsert | batch/upsert |
| archive | batch/archive | batch/archive |
| list associations | v4 batch read | v4 batch read |
| complete a callback | callbacks/{id}/complete | callbacks/complete |

Every item gets its own outcome: a record missing from a batch read fails only its activity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from activities.batching import BatchStats, Coalescer, Outcome
from hubspot_api.client import BATCH_LIMIT, HubSpotClient
from hubspot_api.models import AssociationList, CrmObject, UpsertResult
from service_errors import ServiceError

Read = tuple[str, tuple[str, ...]]  # (record id, properties)


class PortalCalls:
    def __init__(self, client: HubSpotClient, stats: dict[str, BatchStats] | None = None,
                 turn: Callable[[], Awaitable[None]] | None = None,
                 max_batch: int = BATCH_LIMIT, window_s: float = 0.0) -> None:
        """`turn`: waits for the portal's turn under its rate limit (Pacer.take_turn); a batch
        takes its items only once it has its turn."""
        self.client = client
        self._stats = stats if stats is not None else {}
        self._turn = turn
        self._max_batch = max_batch
        self._window_s = window_s
        self._coalescers: dict[tuple, Coalescer] = {}

    def _coalescer(self, key: tuple, send: Any, weight: Any = None) -> Coalescer:
        if key not in self._coalescers:
            name = ":".join(map(str, key))
            stats = self._stats.setdefault(name, BatchStats())
            self._coalescers[key] = Coalescer(send, self._max_batch, stats=stats, weight=weight,
                                              gate=self._turn, window_s=self._window_s)
        return self._coalescers[key]

    async def aclose(self) -> None:
        for coalescer in self._coalescers.values():
            await coalescer.aclose()

    # -- reads ------------------------------------------------------------------------------
    async def read(self, object_type: str, object_id: str, properties: Sequence[str],
                   associations: Sequence[str] = ()) -> CrmObject:
        async def send(items: list[Read]) -> list[Outcome[CrmObject]]:
            return await self._read(object_type, tuple(associations), items)

        key = ("read", object_type, *sorted(associations))
        return await self._coalescer(key, send).submit((str(object_id), tuple(properties)))

    async def _read(self, object_type: str, associations: tuple[str, ...], items: list[Read]
                    ) -> list[Outcome[CrmObject]]:
        if len(items) == 1:  # alone: one GET holds the record and its associations
            object_id, properties = items[0]
            try:
                return [await self.client.get_object(object_type, object_id, properties,
                                                     associations)]
            except ServiceError as exc:
                return [exc]
        ids = list(dict.fromkeys(i for i, _ in items))
        properties = sorted({p for _, props in items for p in props})
        records = await self.client.read_each(object_type, ids, properties)
        found = [i for i in ids if isinstance(records[i], CrmObject)]
        linked = dict(zip(associations, await asyncio.gather(*(
            self.client.associations_each(object_type, to_type, found)
            for to_type in associations)) if found else [{}] * len(associations), strict=True))
        out: dict[str, Outcome[CrmObject]] = {}
        for i in ids:
            record = records[i]
            if isinstance(record, ServiceError):
                out[i] = record
                continue
            by_type: dict[str, AssociationList] = {}
            for to_type, refs in linked.items():
                refs_of = refs[i]
                if isinstance(refs_of, ServiceError):
                    out[i] = refs_of
                    break
                if refs_of:
                    by_type[to_type] = AssociationList(results=refs_of)
            else:
                out[i] = record.model_copy(update={"associations": by_type})
        return [out[i] for i, _ in items]

    async def read_many(self, object_type: str, ids: Sequence[str], properties: Sequence[str]
                        ) -> list[CrmObject]:
        """Several records (a deal's line items): each joins the kind's batch; all or an error."""
        return list(await asyncio.gather(*(self.read(object_type, i, properties) for i in ids)))

    # -- writes -----------------------------------------------------------------------------
    async def update(self, object_type: str, object_id: str, properties: dict[str, str]) -> None:
        async def send(items: list[tuple[str, dict[str, str]]]) -> list[Outcome[None]]:
            if len(items) == 1:
                try:
                    await self.client.update_object(object_type, *items[0])
                    return [None]
                except ServiceError as exc:
                    return [exc]
            merged: dict[str, dict[str, str]] = {}  # HubSpot refuses an id twice in one batch
            for object_id, props in items:
                merged.setdefault(object_id, {}).update(props)
            results = await self.client.update_each(object_type, list(merged.items()))
            return [r if isinstance(r, ServiceError) else None
                    for r in (results[object_id] for object_id, _ in items)]

        await self._coalescer(("update", object_type), send).submit((str(object_id), properties))

    async def create(self, object_type: str, inputs: list[dict[str, Any]],
                     key_property: str | None = None) -> list[CrmObject]:
        """Create records (each input: properties and inline associations) as one group: the
        group succeeds or fails whole, and shares its calls with other activities' groups.

        HubSpot does not promise results in input order, so the created records are returned
        only by a unique `key_property` the inputs carry (the mirrors' kleer_id); without one
        the list is empty (line items: the caller needs none of them back)."""
        async def send(groups: list[list[dict[str, Any]]]) -> list[Outcome[list[CrmObject]]]:
            return await self._create_groups(object_type, groups, key_property)

        return await self._coalescer(("create", object_type), send, weight=len).submit(inputs)

    async def _create_groups(self, object_type: str, groups: list[list[dict[str, Any]]],
                             key_property: str | None) -> list[Outcome[list[CrmObject]]]:
        try:
            created = await self.client.batch_create(object_type, [i for g in groups for i in g])
        except ServiceError as exc:
            if exc.retryable or len(groups) == 1:
                return [exc] * len(groups)
            # A 4xx refuses the whole batch: split until it falls on the group(s) at fault, so
            # one bad record never fails its neighbours (costs calls only when something is bad).
            half = len(groups) // 2
            return (await self._create_groups(object_type, groups[:half], key_property)
                    + await self._create_groups(object_type, groups[half:], key_property))
        if len(created) != sum(map(len, groups)):
            error = ServiceError("HubSpot", f"batch create {object_type}: {len(created)} results "
                                            f"for {sum(map(len, groups))} inputs", None,
                                 "UNEXPECTED_RESPONSE")
            return [error] * len(groups)
        if key_property is None:
            return [[] for _ in groups]
        by_key = {r.properties.get(key_property): r for r in created}
        out: list[Outcome[list[CrmObject]]] = []
        for group in groups:
            keys = [i["properties"].get(key_property) for i in group]
            out.append([by_key[k] for k in keys] if all(k in by_key for k in keys) else ServiceError(
                "HubSpot", f"batch create {object_type}: no result carries {key_property} {keys}",
                None, "UNEXPECTED_RESPONSE"))
        return out

    async def upsert(self, object_type: str, id_property: str, key: str, properties: dict[str, str]
                     ) -> UpsertResult:
        async def send(items: list[tuple[str, dict[str, str]]]) -> list[Outcome[UpsertResult]]:
            results = await self.client.batch_upsert(object_type, id_property, items)
            by_key = {r.properties.get(id_property): r for r in results}
            return [by_key.get(k) or ServiceError("HubSpot", f"upsert of {k} not answered", None,
                                                  "UNEXPECTED_RESPONSE") for k, _ in items]

        return await self._coalescer(("upsert", object_type, id_property), send).submit(
            (key, properties))

    async def archive(self, object_type: str, ids: list[str]) -> None:
        async def send(groups: list[list[str]]) -> list[Outcome[None]]:
            await self.client.batch_archive(object_type, list(dict.fromkeys(
                i for g in groups for i in g)))
            return [None] * len(groups)

        if ids:
            await self._coalescer(("archive", object_type), send, weight=len).submit(ids)

    async def associated_ids(self, from_type: str, object_id: str, to_type: str) -> list[str]:
        async def send(ids: list[str]) -> list[Outcome[list[str]]]:
            found = await self.client.associations_each(from_type, to_type, list(dict.fromkeys(ids)))
            return [found[i] if isinstance(found[i], ServiceError) else [r.id for r in found[i]]
                    for i in ids]

        return await self._coalescer(("associations", from_type, to_type), send).submit(
            str(object_id))

    # -- callbacks --------------------------------------------------------------------------
    async def complete(self, callback_id: str, output_fields: dict[str, str]) -> None:
        async def send(items: list[tuple[str, dict[str, str]]]) -> list[Outcome[None]]:
            if len(items) == 1:  # alone: the single endpoint answers precisely
                try:
                    await self.client.complete_callback(*items[0])
                    return [None]
                except ServiceError as exc:
                    return [exc]
            refused = await self.client.complete_callbacks(items)
            return [refused.get(callback_id) for callback_id, _ in items]

        await self._coalescer(("complete",), send).submit((callback_id, output_fields))
