"""Async client for the Kleer REST API (formerly PE Accounting).

Everything this project knows or assumes about Kleer's wire format lives in this module, each
fact with its source (README "Kleer API assumptions"; shared/spec/kleer.md):
- Paths, verbs, `X-Token` auth, create = PUT answering `{"id": n}`, errors `{"message": ...}`:
  kleer.md "Conventions (confirmed from public clients)".
- Lists are keyed by the plural root element of the XSD (`{"clients": [...]}`), and an empty
  list may be `{}`; ids of readable records may be reference objects (`{"id": n}`): kleer.md
  "Observed behaviour of the real API".
- No public source documents a `foreign-id`/`client-id` list filter or Kleer's paging. We send
  the filter (cheaper when honoured) and check every record ourselves; a list is read page by
  page with `page` (1-based, the common convention) until a page is empty or repeats records
  already seen (a server that ignores `page` answers the whole list every time). A page of at
  most one record is taken as the whole list (no API pages by one).
- Agreement update: the XSD's `update-client-agreement` envelope holding a whole
  `client-agreement`, answered by `update-client-agreement-result` (`revision-nr`).
- Rate limits answer 429 with `Retry-After` (an assumption: Kleer documents no limit).

Every answer is parsed strictly: a shape we do not recognise raises a retryable ServiceError
(`unexpected`), never an empty result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import httpx

from service_errors import ServiceError, error_from_response, error_from_transport, unexpected

Kind = Literal["client", "invoice", "agreement", "project", "product"]

_PATHS: dict[str, str] = {
    "client": "client",
    "invoice": "client/invoice",
    "agreement": "client/agreement",
    "project": "client-project",
    "product": "product",
}
# Plural root elements of the XSD (`clients`, `client-invoices`, ...): the list wrappers.
_LIST_KEYS: dict[str, str] = {
    "client": "clients",
    "invoice": "client-invoices",
    "agreement": "client-agreements",
    "project": "client-project-readables",
    "product": "products",
}
MAX_PAGES = 1000  # 25 000+ records at any plausible page size; beyond that, refuse to guess

Record = dict[str, Any]


def record_id(raw: Any) -> int:
    """An id as Kleer renders it: an integer, or a reference object `{"id": n}`."""
    if isinstance(raw, dict) and set(raw) == {"id"}:
        raw = raw["id"]
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
        return raw
    raise ValueError(f"not a Kleer id: {raw!r}")


# Row lists; the XSD wraps them (`<recurring-rows><row>...`), so JSON may hold `{"row": [...]}`.
ROW_LISTS = ("rows", "first-invoice-rows", "recurring-rows")


def _rows(raw: Any) -> list[Record]:
    if isinstance(raw, dict) and set(raw) <= {"row"}:
        raw = raw.get("row", [])
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise ValueError
    return raw


def _record(kind: str, raw: Any, what: str) -> Record:
    """A record with its id normalised to an int and its row lists to plain lists; anything
    else is an unexpected answer."""
    try:
        if not isinstance(raw, dict):
            raise ValueError
        rows = {key: _rows(raw[key]) for key in ROW_LISTS if key in raw}
        return {**raw, **rows, "id": record_id(raw.get("id"))}
    except ValueError:
        raise unexpected("Kleer", what, raw) from None


def kleer_pool(base_url: str, timeout_s: float = 15.0,
               transport: httpx.AsyncBaseTransport | None = None,
               max_connections: int = 8) -> httpx.AsyncClient:
    """One small connection pool for the Kleer host, shared by every portal's client."""
    return httpx.AsyncClient(base_url=base_url.rstrip("/") + "/", timeout=timeout_s,
                             transport=transport,
                             limits=httpx.Limits(max_connections=max_connections,
                                                 max_keepalive_connections=max_connections))


class KleerClient:
    def __init__(
        self,
        base_url: str,
        company_id: int,
        api_key: str,
        timeout_s: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
        observe: Callable[[int | None], None] | None = None,
        pace: Callable[[], Awaitable[None]] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        """`pace` is awaited before every call (the API token's shared limit); `http` is a
        shared pool (kleer_pool), closed by its owner."""
        self._owns_http = http is None
        self._http = http or kleer_pool(base_url, timeout_s, transport)
        self._prefix = f"company/{company_id}/"
        self._headers = {"X-Token": api_key}
        self._pace = pace
        self.calls = 0
        self._observe = observe or (lambda status: None)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._pace is not None:
            await self._pace()
        self.calls += 1
        try:
            response = await self._http.request(method, self._prefix + path, headers=self._headers,
                                                **kwargs)
        except httpx.HTTPError as exc:
            self._observe(None)
            raise error_from_transport("Kleer", exc) from None
        self._observe(response.status_code)
        if response.status_code >= 400:
            raise error_from_response("Kleer", response)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise unexpected("Kleer", f"{method} {path}",
                             response.headers.get("content-type", "a non-JSON body")) from None

    # --- records ------------------------------------------------------------------------------
    async def create(self, kind: Kind, payload: Record) -> int:
        """PUT on the collection; Kleer answers `{"id": n}` (n may be a reference object).

        A ServiceError whose `nothing_written` is False leaves the outcome unknown: the record
        may exist (or appear later) although this call failed.
        """
        body = await self._request("PUT", _PATHS[kind], json=payload)
        try:
            return record_id(body.get("id") if isinstance(body, dict) else None)
        except ValueError:
            raise unexpected("Kleer", f"create {kind}", body) from None

    async def get(self, kind: Kind, id_: int) -> Record:
        return _record(kind, await self._request("GET", f"{_PATHS[kind]}/{id_}"), f"read {kind}")

    async def update_agreement(self, id_: int, agreement: Record) -> int:
        """Replace the whole agreement (a new revision); returns the revision number."""
        body = await self._request("POST", f"{_PATHS['agreement']}/{id_}",
                                   json={"update-client-agreement": {"client-agreement": agreement}})
        revision = body.get("revision-nr") if isinstance(body, dict) else None
        if not isinstance(revision, int) or isinstance(revision, bool):
            raise unexpected("Kleer", "update agreement", body)
        return revision

    # --- lists --------------------------------------------------------------------------------
    async def _page(self, kind: Kind, params: dict[str, str]) -> list[Record]:
        body = await self._request("GET", _PATHS[kind], params=params)
        key = _LIST_KEYS[kind]
        if body == {}:
            return []
        items = body.get(key) if isinstance(body, dict) and set(body) == {key} else None
        if not isinstance(items, list):
            raise unexpected("Kleer", f"list {kind}", body)
        return [_record(kind, item, f"list {kind}") for item in items]

    async def list_all(self, kind: Kind, **filters: str | int) -> list[Record]:
        """Every record of the list (filters passed on; callers check them again themselves)."""
        params = {key.replace("_", "-"): str(value) for key, value in filters.items()}
        records = await self._page(kind, params)
        seen = {r["id"] for r in records}
        page = 1
        while len(records) > 1 and page < MAX_PAGES:
            page += 1
            more = await self._page(kind, {**params, "page": str(page)})
            fresh = [r for r in more if r["id"] not in seen]
            if not fresh:  # empty: past the end; all seen: `page` ignored, or the last page again
                return records
            records += fresh
            seen.update(r["id"] for r in fresh)
        if page >= MAX_PAGES:
            raise ServiceError("Kleer", f"the {kind} list did not end after {MAX_PAGES} pages")
        return records

    async def find_by_foreign_id(self, kind: Kind, foreign_id: str) -> Record | None:
        """The record carrying this `foreign-id` (our marker), whether or not Kleer honours the
        filter and whether or not it pages the list."""
        matches = [r for r in await self.list_all(kind, foreign_id=foreign_id)
                   if r.get("foreign-id") == foreign_id]
        if len(matches) > 1:
            ids = ", ".join(str(r["id"]) for r in matches)
            raise ServiceError("Kleer", f"{kind}s {ids} all carry foreign-id {foreign_id}: remove "
                                        "the extra ones in Kleer", 409)
        return matches[0] if matches else None

    async def projects_of(self, client_id: int) -> list[Record]:
        """The client's projects (projects have no foreign-id; the client is `client`)."""
        return [p for p in await self.list_all("project", client_id=client_id)
                if _ref(p.get("client")) == client_id]


def _ref(value: Any) -> int | None:
    try:
        return record_id(value)
    except ValueError:
        return None
