"""Async client for the Kleer REST API (formerly PE Accounting).

Decisions the public docs leave open, kept in this one module (README "Kleer API assumptions"):
- list responses wrap the array in an object keyed by the XSD element name (`{"client": [...]}`);
- client, invoice, agreement and product lists accept a `foreign-id` filter; project lists accept
  `client-id` (projects have no foreign-id);
- rate limits answer 429 with `Retry-After`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import httpx

from service_errors import ServiceError, error_from_response, error_from_transport

Kind = Literal["client", "invoice", "agreement", "project", "product"]

_PATHS: dict[str, str] = {
    "client": "client",
    "invoice": "client/invoice",
    "agreement": "client/agreement",
    "project": "client-project",
    "product": "product",
}
_LIST_KEYS: dict[str, str] = {
    "client": "client",
    "invoice": "client-invoice",
    "agreement": "client-agreement",
    "project": "client-project-readable",
    "product": "product",
}


class KleerClient:
    def __init__(
        self,
        base_url: str,
        company_id: int,
        api_key: str,
        timeout_s: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
        observe: Callable[[int | None], None] | None = None,
    ) -> None:
        base = base_url.rstrip("/") + f"/company/{company_id}/"
        self._http = httpx.AsyncClient(
            base_url=base, headers={"X-Token": api_key}, timeout=timeout_s, transport=transport
        )
        self.calls = 0
        self._observe = observe or (lambda status: None)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        self.calls += 1
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self._observe(None)
            raise error_from_transport("Kleer", exc) from None
        self._observe(response.status_code)
        if response.status_code >= 400:
            raise error_from_response("Kleer", response)
        return response.json() if response.content else {}

    async def create(self, kind: Kind, payload: dict[str, Any]) -> int:
        """PUT on the collection; Kleer answers `{"id": n}`."""
        body = await self._request("PUT", _PATHS[kind], json=payload)
        return int(body["id"])

    async def get(self, kind: Kind, record_id: int) -> dict[str, Any]:
        return await self._request("GET", f"{_PATHS[kind]}/{record_id}")

    async def update(self, kind: Kind, record_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._request("POST", f"{_PATHS[kind]}/{record_id}", json=payload)

    async def list(self, kind: Kind, **filters: str | int) -> list[dict[str, Any]]:
        params = {key.replace("_", "-"): str(value) for key, value in filters.items()}
        body = await self._request("GET", _PATHS[kind], params=params)
        return list(body.get(_LIST_KEYS[kind]) or [])

    async def find_by_foreign_id(self, kind: Kind, foreign_id: str) -> dict[str, Any] | None:
        # Filter again here: a server that ignored the filter must not make us adopt a stranger.
        matches = [r for r in await self.list(kind, foreign_id=foreign_id)
                   if r.get("foreign-id") == foreign_id]
        if len(matches) > 1:
            raise ServiceError("Kleer", f"{len(matches)} {kind}s carry foreign-id {foreign_id}", 409)
        return matches[0] if matches else None
