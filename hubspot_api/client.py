"""Async client for the HubSpot CRM, callback and action-definition APIs we use."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from hubspot_api.models import AssociationRef, CrmObject, UpsertResult
from service_errors import ServiceError, error_from_response, error_from_transport, unexpected

# Dated variants exist (/automation/actions/callbacks/2026-03/...): change it here only.
CALLBACKS_PATH = "/automation/v4/actions/callbacks"
ACTIONS_PATH = "/automation/v4/actions"
BATCH_LIMIT = 100

M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], raw: Any, what: str) -> M:
    """An answer as `model`; a shape we do not recognise is a retryable error, never "empty"."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(map(str, first["loc"]))
        raise ServiceError("HubSpot", f"unexpected answer to {what}: {where}: {first['msg']}",
                           None, "UNEXPECTED_RESPONSE") from None


def _results(body: Any, what: str) -> list[Any]:
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise unexpected("HubSpot", what, body)
    return results


# A portal's bearer token: a private app's static token, or a source of OAuth access tokens
# (oauth/tokens.py) called again with stale=True after HubSpot answered 401 to the last one.
TokenSource = Callable[[bool], Awaitable[str]]


def http_pool(base_url: str, timeout_s: float = 15.0,
              transport: httpx.AsyncBaseTransport | None = None,
              max_connections: int = 8) -> httpx.AsyncClient:
    """One connection pool per host, shared by every portal's client in a process: connections
    are reused across portals, and the pool stays small (httpcore's bookkeeping grows with the
    number of open connections, so a big pool costs CPU on every request)."""
    return httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport,
                             limits=httpx.Limits(max_connections=max_connections,
                                                 max_keepalive_connections=max_connections))


class HubSpotClient:
    def __init__(
        self,
        base_url: str,
        token: str | TokenSource,
        timeout_s: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
        observe: Callable[[int | None], None] | None = None,
        pace: Callable[[], Awaitable[None]] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        """`pace` is awaited before every HTTP call (the portal's shared rate limit counts calls);
        `http` is a shared pool (http_pool), closed by its owner, not by this client."""
        self._owns_http = http is None
        self._http = http or http_pool(base_url, timeout_s, transport)
        self._token = token
        self._pace = pace
        self.calls = 0
        self._observe = observe or (lambda status: None)
        self._type_ids: dict[tuple[str, str], int] = {}
        self._type_id_reads: dict[tuple[str, str], asyncio.Task[int]] = {}

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _auth(self, stale: bool = False) -> dict[str, str]:
        if isinstance(self._token, str):
            return {"Authorization": f"Bearer {self._token}"} if self._token else {}
        return {"Authorization": f"Bearer {await self._token(stale)}"}

    async def _request(self, method: str, path: str, ok: Iterable[int] = (), **kwargs: Any) -> Any:
        headers = await self._auth()
        for attempt in (1, 2):
            if self._pace is not None:
                await self._pace()
            self.calls += 1
            try:
                response = await self._http.request(method, path, headers=headers, **kwargs)
            except httpx.HTTPError as exc:
                self._observe(None)
                raise error_from_transport("HubSpot", exc) from None
            self._observe(response.status_code)
            if response.status_code == 401 and attempt == 1 and not isinstance(self._token, str):
                headers = await self._auth(stale=True)  # expired or revoked: a fresh token, once
                continue
            break
        if response.status_code >= 400 and response.status_code not in ok:
            raise error_from_response("HubSpot", response)
        return response.json() if response.content else {}

    # --- CRM records -------------------------------------------------------------------------
    async def get_object(
        self, object_type: str, object_id: str | int, properties: Sequence[str],
        associations: Sequence[str] = (),
    ) -> CrmObject:
        params = {"properties": ",".join(properties)}
        if associations:
            params["associations"] = ",".join(associations)
        body = await self._request("GET", f"/crm/v3/objects/{object_type}/{object_id}", params=params)
        return _parse(CrmObject, body, f"read {object_type}")

    async def batch_read(
        self, object_type: str, ids: Sequence[str], properties: Sequence[str]
    ) -> list[CrmObject]:
        """Read many records; a missing one (207 partial answer) is an error: rows must be whole."""
        results: list[CrmObject] = []
        for start in range(0, len(ids), BATCH_LIMIT):
            chunk = ids[start:start + BATCH_LIMIT]
            body = await self._request(
                "POST", f"/crm/v3/objects/{object_type}/batch/read",
                json={"properties": list(properties), "inputs": [{"id": i} for i in chunk]},
            )
            if body.get("errors"):
                raise ServiceError("HubSpot", f"{object_type} not found: {body['errors'][0].get('message')}",
                                   404, "OBJECT_NOT_FOUND")
            results += [_parse(CrmObject, r, f"batch read {object_type}")
                        for r in _results(body, f"batch read {object_type}")]
        order = {i: n for n, i in enumerate(ids)}
        return sorted(results, key=lambda r: order.get(r.id, len(order)))

    async def update_object(
        self, object_type: str, object_id: str | int, properties: dict[str, str]
    ) -> CrmObject:
        body = await self._request(
            "PATCH", f"/crm/v3/objects/{object_type}/{object_id}", json={"properties": properties}
        )
        return _parse(CrmObject, body, f"update {object_type}")

    async def search_in(self, object_type: str, property_name: str, values: Sequence[str],
                        properties: Sequence[str]) -> list[CrmObject]:
        """Records whose property is one of `values` (CRM search, IN; 100 values and 200 results
        a call, following `paging.next.after`). HubSpot compares strings ignoring case: callers
        that need exact matches check again. Search is limited to a few calls per second."""
        found: dict[str, CrmObject] = {}
        for start in range(0, len(values), 100):
            chunk = list(dict.fromkeys(values[start:start + 100]))
            after: str | None = None
            while True:
                body: dict[str, Any] = {
                    "filterGroups": [{"filters": [{"propertyName": property_name, "operator": "IN",
                                                   "values": chunk}]}],
                    "properties": list(properties), "limit": 200}
                if after:
                    body["after"] = after
                answer = await self._request("POST", f"/crm/v3/objects/{object_type}/search",
                                             json=body)
                for record in _results(answer, f"search {object_type}"):
                    parsed = _parse(CrmObject, record, f"search {object_type}")
                    found[parsed.id] = parsed
                after = ((answer.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    break
        return list(found.values())

    async def batch_upsert(
        self, object_type: str, id_property: str, inputs: Sequence[tuple[str, dict[str, str]]]
    ) -> list[UpsertResult]:
        body = await self._request(
            "POST", f"/crm/v3/objects/{object_type}/batch/upsert",
            json={"inputs": [{"idProperty": id_property, "id": key, "properties": props}
                             for key, props in inputs]},
        )
        return [_parse(UpsertResult, r, f"upsert {object_type}")
                for r in _results(body, f"upsert {object_type}")]

    async def batch_create(self, object_type: str, inputs: Sequence[dict[str, Any]]) -> list[CrmObject]:
        results: list[CrmObject] = []
        for start in range(0, len(inputs), BATCH_LIMIT):
            body = await self._request(
                "POST", f"/crm/v3/objects/{object_type}/batch/create",
                json={"inputs": list(inputs[start:start + BATCH_LIMIT])},
            )
            results += [_parse(CrmObject, r, f"create {object_type}")
                        for r in _results(body, f"create {object_type}")]
        return results

    async def batch_archive(self, object_type: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), BATCH_LIMIT):
            await self._request(
                "POST", f"/crm/v3/objects/{object_type}/batch/archive",
                json={"inputs": [{"id": i} for i in ids[start:start + BATCH_LIMIT]]},
            )

    async def associate_default(
        self, from_type: str, from_id: str, to_type: str, to_id: str
    ) -> None:
        await self._request(
            "PUT", f"/crm/v4/objects/{from_type}/{from_id}/associations/default/{to_type}/{to_id}"
        )

    async def batch_associate_default(
        self, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]]
    ) -> None:
        for start in range(0, len(pairs), BATCH_LIMIT):
            await self._request(
                "POST", f"/crm/v4/associations/{from_type}/{to_type}/batch/associate/default",
                json={"inputs": [{"from": {"id": a}, "to": {"id": b}}
                                 for a, b in pairs[start:start + BATCH_LIMIT]]},
            )

    async def batch_associate_all(self, from_type: str, from_id: str,
                                  targets: Sequence[tuple[str, str]]) -> None:
        for to_type, to_id in targets:
            await self.associate_default(from_type, from_id, to_type, to_id)

    async def default_type_id(self, from_type: str, to_type: str) -> int:
        """The HUBSPOT_DEFINED unlabeled association type between two object types (cached).

        Inline associations on create need a typeId; asking the portal once beats hard-coding ids.
        """
        key = (from_type, to_type)
        if key in self._type_ids:
            return self._type_ids[key]
        # One read for every caller that arrives while it runs (a burst's first mirrors all ask
        # at once: 36 reads of one label set were measured before). A failed read is not kept.
        read = self._type_id_reads.get(key)
        if read is None:
            read = asyncio.ensure_future(self._read_type_id(from_type, to_type))
            self._type_id_reads[key] = read
            read.add_done_callback(lambda _: self._type_id_reads.pop(key, None))
        return await asyncio.shield(read)  # a caller cancelled does not cancel the others' read

    async def _read_type_id(self, from_type: str, to_type: str) -> int:
        body = await self._request("GET", f"/crm/v4/associations/{from_type}/{to_type}/labels")
        defined = [r for r in _results(body, "association labels")
                   if r.get("category") == "HUBSPOT_DEFINED"]
        unlabeled = [r for r in defined if not r.get("label")] or defined
        if not unlabeled:
            raise ServiceError("HubSpot", f"no association type from {from_type} to {to_type}", 400)
        self._type_ids[(from_type, to_type)] = int(unlabeled[0]["typeId"])
        return self._type_ids[(from_type, to_type)]

    async def inline_associations(self, from_type: str, targets: Sequence[tuple[str, str]]
                                  ) -> list[dict[str, Any]]:
        return [{"to": {"id": to_id}, "types": [{
            "associationCategory": "HUBSPOT_DEFINED",
            "associationTypeId": await self.default_type_id(from_type, to_type)}]}
            for to_type, to_id in targets]

    async def associated_ids(self, from_type: str, from_id: str, to_type: str) -> list[str]:
        body = await self._request("GET", f"/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}")
        if (body.get("paging") or {}).get("next"):
            raise ServiceError("HubSpot", f"{from_type} {from_id} has more {to_type} associations "
                                          "than one page holds", None, "UNEXPECTED_RESPONSE")
        try:
            return [str(r["toObjectId"]) for r in _results(body, "associations")]
        except (KeyError, TypeError):
            raise unexpected("HubSpot", "associations", body) from None

    # --- Batches with an outcome per item (activities/hubspot_calls.py coalesces into these) ---
    @staticmethod
    def _named_in_errors(body: Any, key: str) -> dict[str, dict[str, Any]]:
        """Items a 207 answer refused: id -> its error entry (HubSpot names them in context)."""
        named: dict[str, dict[str, Any]] = {}
        for error in (body.get("errors") or []) if isinstance(body, dict) else []:
            for item in ((error.get("context") or {}).get(key) or []):
                named[str(item)] = error
        return named

    async def read_each(self, object_type: str, ids: Sequence[str], properties: Sequence[str]
                        ) -> dict[str, CrmObject | ServiceError]:
        """Up to 100 records in one call; a missing one is its own 404 (HubSpot's 207 names it),
        the rest are read. An id the answer neither holds nor names is an unexpected answer."""
        body = await self._request("POST", f"/crm/v3/objects/{object_type}/batch/read", json={
            "properties": list(properties), "inputs": [{"id": i} for i in ids]})
        return self._each_record(body, object_type, "read", ids)

    def _each_record(self, body: Any, object_type: str, verb: str, ids: Sequence[str]
                     ) -> dict[str, CrmObject | ServiceError]:
        """Per id of a batch answer: its record, a 404 if the 207 names it, or an unexpected
        answer (neither held nor named)."""
        what = f"batch {verb} {object_type}"
        found = {r.id: r for r in (_parse(CrmObject, r, what) for r in _results(body, what))}
        missing = self._named_in_errors(body, "ids")
        out: dict[str, CrmObject | ServiceError] = {}
        for i in ids:
            if i in found:
                out[i] = found[i]
            elif i in missing:
                out[i] = ServiceError("HubSpot", f"{object_type} {i} was not found (deleted or merged?)",
                                      404, "OBJECT_NOT_FOUND")
            else:
                out[i] = unexpected("HubSpot", f"{what} (no answer for {i})", body)
        return out

    async def associations_each(self, from_type: str, to_type: str, ids: Sequence[str]
                                ) -> dict[str, list[AssociationRef] | ServiceError]:
        """Associations of up to 100 records, v4 batch read (hubspot.md section 7: documented keys
        and labelled types). An object without associations is named in the 207's errors with
        subCategory crm.associations.NO_ASSOCIATIONS_FOUND (as public integrations read it): empty."""
        body = await self._request("POST", f"/crm/v4/associations/{from_type}/{to_type}/batch/read",
                                   json={"inputs": [{"id": i} for i in ids]})
        out: dict[str, list[AssociationRef] | ServiceError] = {}
        try:
            for result in _results(body, "association batch read"):
                if (result.get("paging") or {}).get("next"):
                    raise ValueError("more associations than one answer holds")
                refs = []
                for target in result["to"]:
                    labels = [t.get("label") for t in target["associationTypes"]]
                    refs.append(AssociationRef(id=str(target["toObjectId"]), primary="Primary" in labels))
                out[str(result["from"]["id"])] = refs
        except (KeyError, TypeError, ValueError):
            raise unexpected("HubSpot", "association batch read", body) from None
        for error in body.get("errors") or []:
            none_found = error.get("subCategory") == "crm.associations.NO_ASSOCIATIONS_FOUND"
            for i in ((error.get("context") or {}).get("fromObjectId") or []):
                out.setdefault(str(i), [] if none_found else ServiceError(
                    "HubSpot", f"association read refused: {error.get('message')}", None,
                    error.get("category")))
        for i in ids:
            out.setdefault(i, unexpected("HubSpot", f"association batch read (no answer for {i})",
                                         body))
        return {i: out[i] for i in ids}

    async def update_each(self, object_type: str, updates: Sequence[tuple[str, dict[str, str]]]
                          ) -> dict[str, CrmObject | ServiceError]:
        """Up to 100 updates in one call (one per id); a missing record is its own 404."""
        body = await self._request("POST", f"/crm/v3/objects/{object_type}/batch/update", json={
            "inputs": [{"id": i, "properties": props} for i, props in updates]})
        return self._each_record(body, object_type, "update", [i for i, _ in updates])

    # --- Workflow action callbacks -----------------------------------------------------------
    async def complete_callback(self, callback_id: str, output_fields: dict[str, str]) -> None:
        await self._request(
            "POST", f"{CALLBACKS_PATH}/{callback_id}/complete", json={"outputFields": output_fields}
        )

    async def complete_callbacks(
        self, completions: Sequence[tuple[str, dict[str, str]]]
    ) -> dict[str, ServiceError]:
        """Batch completion (<= 100 per call); returns the items HubSpot refused, by callbackId."""
        refused: dict[str, ServiceError] = {}
        for start in range(0, len(completions), BATCH_LIMIT):
            body = await self._request(
                "POST", f"{CALLBACKS_PATH}/complete",
                json={"inputs": [{"callbackId": cid, "outputFields": out}
                                 for cid, out in completions[start:start + BATCH_LIMIT]]},
            )
            for error in (body or {}).get("errors", []):
                status = 404 if error.get("category") == "OBJECT_NOT_FOUND" else 400
                for cid in (error.get("context") or {}).get("callbackId", []):
                    refused[cid] = ServiceError("HubSpot", error.get("message", "refused"), status,
                                                error.get("category"))
        return refused

    # --- Properties (portal setup) -----------------------------------------------------------
    async def list_properties(self, object_type: str) -> list[dict[str, Any]]:
        return _results(await self._request("GET", f"/crm/v3/properties/{object_type}"),
                        f"list {object_type} properties")

    async def create_property(self, object_type: str, definition: dict[str, Any]) -> dict[str, Any]:
        return await self._request("POST", f"/crm/v3/properties/{object_type}", json=definition)

    async def list_property_groups(self, object_type: str) -> list[dict[str, Any]]:
        body = await self._request("GET", f"/crm/v3/properties/{object_type}/groups")
        return _results(body, f"list {object_type} property groups")

    async def create_property_group(self, object_type: str, group: dict[str, Any]) -> dict[str, Any]:
        return await self._request("POST", f"/crm/v3/properties/{object_type}/groups", json=group)

    # --- Action definitions (developer API: the app's developer key, not a portal token) -----
    @classmethod
    def for_developer(
        cls, base_url: str, developer_api_key: str, timeout_s: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> HubSpotClient:
        """A client for the developer API: `hapikey` on every call and no portal bearer token
        (HubSpot would try the bearer token first and refuse it for app-level endpoints)."""
        client = cls(base_url, "", timeout_s=timeout_s, transport=transport)
        client._http.params = client._http.params.set("hapikey", developer_api_key)
        return client

    async def list_action_definitions(self, app_id: int | str) -> list[dict[str, Any]]:
        """All of the app's definitions, following `paging.next.after`."""
        results: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": "100"}
        while True:
            body = await self._request("GET", f"{ACTIONS_PATH}/{app_id}", params=params)
            results += _results(body, "list action definitions")
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return results
            params["after"] = str(after)

    async def create_action_definition(self, app_id: int | str, definition: dict[str, Any]
                                       ) -> dict[str, Any]:
        return await self._request("POST", f"{ACTIONS_PATH}/{app_id}", json=definition)

    async def update_action_definition(self, app_id: int | str, definition_id: str,
                                       definition: dict[str, Any]) -> dict[str, Any]:
        return await self._request("PATCH", f"{ACTIONS_PATH}/{app_id}/{definition_id}", json=definition)
