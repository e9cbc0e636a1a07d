"""Kleer simulator: the `/v1/company/{id}/...` resources our Kleer client uses, in memory.

Auth by `X-Token` per company, a per-token rolling rate limit, integer ids per resource type per
company, and the shared fault injection. By default it behaves as the evidence in
`shared/spec/kleer.md` ("Observed behaviour of the real API") says; what no public source settles
(the list filter, paging, reference ids on every list) is a switch in `KleerBehaviour`, so the
guarantees can be tested under each plausible variant.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulators import kleer_validation as v
from simulators.common import (
    CallLog,
    FaultRule,
    Faults,
    RollingRateLimiter,
    SimMiddleware,
    admin_routes,
    deep,
    read_json,
)
from simulators.kleer_validation import KleerError

KINDS = ("client", "invoice", "agreement", "project", "product")
# Name used in messages, per kind.
KIND_NAMES = {"client": "client", "invoice": "client-invoice", "agreement": "client-agreement",
              "project": "client-project", "product": "product"}
# Lists are keyed by the plural root element of the XSD, holding the array directly
# (kleer.md "Observed behaviour": public clients read `events["event-readables"]`).
LIST_KEYS = {"client": "clients", "invoice": "client-invoices", "agreement": "client-agreements",
             "project": "client-project-readables", "product": "products"}
# Readable types whose id the XSD declares as a reference object (`client-project-readable`'s
# `id` is a `client-project-reference`); kleer.md: "Ids in readable types can be reference objects".
REF_ID_KINDS = ("project",)


@dataclass
class KleerBehaviour:
    """What public evidence leaves open, one switch each (kleer.md, "Observed behaviour").

    - list_filters: "ignored" (no public source documents a `foreign-id` or `client-id` list
      filter, so the default list answer is the whole collection) or "honoured".
    - page_size: None = lists are complete; n = lists come in pages of n, chosen with `page`
      (1-based); a page past the end is empty. No public source documents Kleer's paging.
    - ref_ids: "readables" = ids are reference objects (`{"id": n}`) where the XSD says so
      (projects); "all" = on every record read or listed; "none" = bare integers everywhere.
    - empty_list: "object" = an empty list answers `{}` (kleer.md: "An empty list may come back
      as {}"); "key" = `{"clients": []}`.
    """

    list_filters: Literal["ignored", "honoured"] = "ignored"
    page_size: int | None = None
    ref_ids: Literal["readables", "all", "none"] = "readables"
    empty_list: Literal["object", "key"] = "object"

    def __post_init__(self) -> None:
        for name, allowed in (("list_filters", ("ignored", "honoured")),
                              ("ref_ids", ("readables", "all", "none")),
                              ("empty_list", ("object", "key"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}")
        if self.page_size is not None and (not isinstance(self.page_size, int)
                                           or self.page_size < 1):
            raise ValueError("page_size must be None or a whole number >= 1")

    def render_id(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        as_ref = self.ref_ids == "all" or (self.ref_ids == "readables" and kind in REF_ID_KINDS)
        return {**record, "id": {"id": record["id"]}} if as_ref else record


class _Company:
    def __init__(self, token: str) -> None:
        self.token = token
        self.records: dict[str, dict[int, dict[str, Any]]] = {k: {} for k in KINDS}
        self.counters = dict.fromkeys(KINDS, 0)
        self.invoice_nr = 1000

    def next_id(self, kind: str) -> int:
        self.counters[kind] += 1
        return self.counters[kind]


class KleerState:
    """All companies of the simulator; safe to use from tests while the server runs."""

    def __init__(self, rate_limit: tuple[int, int] = (50, 1000),
                 behaviour: KleerBehaviour | None = None) -> None:
        self.calls = CallLog()
        self.faults = Faults()
        self.limiter = RollingRateLimiter(*rate_limit)
        self.lock = threading.RLock()
        self.behaviour = behaviour or KleerBehaviour()
        self._companies: dict[int, _Company] = {}

    def add_company(self, company_id: int, token: str) -> None:
        with self.lock:
            if company_id in self._companies:
                self._companies[company_id].token = token
            else:
                self._companies[company_id] = _Company(token)

    def company(self, company_id: int) -> _Company:
        try:
            return self._companies[company_id]
        except KeyError:
            raise KleerError(404, f"company {company_id} not found") from None

    def add_product(self, company_id: int, id: int | None = None, name: str = "Product",
                    price: int = 0, foreign_id: str | None = None) -> dict[str, Any]:
        with self.lock:
            company = self.company(company_id)
            if id is None:
                id = company.next_id("product")
            else:
                company.counters["product"] = max(company.counters["product"], id)
            product = {"id": id, "name": name, "price": price}
            if foreign_id is not None:
                product["foreign-id"] = foreign_id
            company.records["product"][id] = product
            return deep(product)

    def records(self, company_id: int, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return deep(list(self.company(company_id).records[kind].values()))

    def get(self, company_id: int, kind: str, id: int) -> dict[str, Any] | None:
        with self.lock:
            return deep(self.company(company_id).records[kind].get(id))

    def set_rate_limit(self, max_requests: int, window_ms: int) -> None:
        self.limiter.configure(max_requests, window_ms)

    def set_invoice_state(self, company_id: int, invoice_id: int, state: str,
                          paid_on: str | None = None) -> dict[str, Any]:
        """Move an invoice on as Kleer users do: "sent" (certified and sent: `remaining` is the
        total), "paid" (`remaining` 0, `last-payment-date`), "credited" (a credit invoice
        refers to it, in `credit-invoices`). Overdue follows from `due-date`."""
        with self.lock:
            invoice = self.find(company_id, "invoice", invoice_id)
            total = sum(round(float(r.get("quantity", 1)) * r.get("price", 0))
                        for r in invoice.get("rows", []))
            if state == "sent":
                invoice.update(certified=True, sent=True, remaining=total)
            elif state == "paid":
                invoice.update(certified=True, sent=True, remaining=0,
                               **{"last-payment-date": paid_on or date.today().isoformat()})
            elif state == "credited":
                credit_id = self.create(company_id, "invoice", {
                    "client-ref": invoice["client-ref"], "invoice-date": date.today().isoformat(),
                    "currency": invoice.get("currency", "SEK"), "rows": [],
                    "debit-invoice-nr": invoice.get("invoice-nr")})
                invoice["credit-invoices"] = [{"id": credit_id}]
            else:
                raise ValueError(f"state must be sent, paid or credited, not {state!r}")
            return deep(invoice)

    def set_behaviour(self, **switches: Any) -> KleerBehaviour:
        """Change switches of `KleerBehaviour` (tests, `/_sim/behaviour`); returns the old ones."""
        with self.lock:
            old = self.behaviour
            self.behaviour = KleerBehaviour(**{**asdict(old), **switches})
            return old

    def reset(self) -> None:
        """Forget records, calls, faults and rate-limit history; keep companies and tokens."""
        with self.lock:
            for company_id, company in list(self._companies.items()):
                self._companies[company_id] = _Company(company.token)
            self.behaviour = KleerBehaviour()
        self.calls.clear()
        self.faults.clear()
        self.limiter.reset()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"companies": {
                str(cid): {kind: list(c.records[kind].values()) for kind in KINDS}
                for cid, c in self._companies.items()},
                "faults": self.faults.list(),
                "behaviour": asdict(self.behaviour),
                "rate_limit": {"max": self.limiter.max_requests,
                               "window_ms": self.limiter.window_ms}}

    # -- operations used by the HTTP layer (caller holds no lock) --

    def create(self, company_id: int, kind: str, record: dict[str, Any]) -> int:
        with self.lock:
            company = self.company(company_id)
            record_id = company.next_id(kind)
            stored: dict[str, Any] = {"id": record_id}
            if kind == "invoice":
                company.invoice_nr += 1
                stored["invoice-nr"] = company.invoice_nr
            if kind == "agreement":
                stored["revision-nr"] = 1
            company.records[kind][record_id] = {**stored, **record}
            return record_id

    def find(self, company_id: int, kind: str, record_id: int) -> dict[str, Any]:
        record = self.company(company_id).records[kind].get(record_id)
        if record is None:
            raise KleerError(404, f"{KIND_NAMES[kind]} {record_id} not found")
        return record

    def exists(self, company_id: int, kind: str) -> Callable[[int], bool]:
        return lambda record_id: record_id in self.company(company_id).records[kind]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status, headers=headers)


def _fault_body(status: int, rule: FaultRule) -> tuple[dict[str, Any], dict[str, str]]:
    if status == 429:
        return {"message": "Too many requests"}, {}
    return {"message": f"Simulated fault: HTTP {status}"}, {}


KleerHandler = Callable[[Request, KleerState, int], Awaitable[Any]]


def _endpoint(state: KleerState, handler: KleerHandler) -> Callable[[Request], Awaitable[Response]]:
    """Auth, company lookup and rate limit, then map the handler's result/KleerError to JSON."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        company_id = request.path_params["company_id"]
        token = request.headers.get("x-token")
        if "sim" in request.scope:
            request.scope["sim"]["key"] = company_id
        if not token:
            return _error(401, "Unauthorized")
        with state.lock:
            company = state._companies.get(company_id)
        if company is None:
            return _error(404, f"company {company_id} not found")
        if company.token != token:
            return _error(401, "Unauthorized")
        decision = state.limiter.hit(token)
        if not decision.allowed:
            return _error(429, "Too many requests", {"Retry-After": str(decision.retry_after_s)})
        try:
            result = await handler(request, state, company_id)
        except KleerError as exc:
            return _error(exc.status, exc.message)
        return JSONResponse(result)

    return endpoint


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await read_json(request)
    except ValueError:
        raise KleerError(400, "malformed JSON body") from None
    if not isinstance(body, dict):
        raise KleerError(400, "body must be a JSON object")
    return body


def _listing(kind: str, filters: dict[str, Callable[[dict, str], bool]]) -> KleerHandler:
    async def handler(request: Request, state: KleerState, cid: int) -> Any:
        with state.lock:
            found = list(state.company(cid).records[kind].values())
            behaviour = state.behaviour
        for param, test in filters.items():
            if behaviour.list_filters == "ignored":
                continue
            if param in request.query_params:
                wanted = request.query_params[param]
                found = [r for r in found if test(r, wanted)]
        if behaviour.page_size is not None:
            try:
                page = int(request.query_params.get("page", "1"))
            except ValueError:
                raise KleerError(400, "page: must be a whole number") from None
            start = (max(page, 1) - 1) * behaviour.page_size
            found = found[start:start + behaviour.page_size]
        if not found and behaviour.empty_list == "object":
            return {}
        return {LIST_KEYS[kind]: [behaviour.render_id(kind, r) for r in deep(found)]}

    return handler


def _by_foreign_id(record: dict, wanted: str) -> bool:
    return record.get("foreign-id") == wanted


def _by_client_id(record: dict, wanted: str) -> bool:
    return str(record.get("client", {}).get("id")) == wanted


def _reader(kind: str) -> KleerHandler:
    async def handler(request: Request, state: KleerState, cid: int) -> Any:
        with state.lock:
            return state.behaviour.render_id(kind, deep(state.find(cid, kind,
                                                                   request.path_params["id"])))

    return handler


async def create_client(request: Request, state: KleerState, cid: int) -> Any:
    record = v.client(await _body(request), create=True)
    return {"id": state.create(cid, "client", record)}


async def update_client(request: Request, state: KleerState, cid: int) -> Any:
    changes = v.client(await _body(request), create=False)
    with state.lock:
        record = state.find(cid, "client", request.path_params["id"])
        if "address" in changes:
            changes["address"] = {**record.get("address", {}), **changes["address"]}
        record.update(changes)
    return {}


async def create_invoice(request: Request, state: KleerState, cid: int) -> Any:
    body = await _body(request)
    with state.lock:
        record = v.invoice(body, state.exists(cid, "client"), state.exists(cid, "product"))
        client = state.find(cid, "client", record["client-ref"]["id"])
        if "invoice-address" not in record:
            record["invoice-address"] = deep(client.get("address", {}))
        # Read-only fields of the XSD's client-invoice: not certified or sent yet, `remaining` 0
        # "for non certified invoices", due date from the client's payment days.
        days = client.get("payment-days", 30)
        record.update({"due-date": (date.fromisoformat(record["invoice-date"])
                                    + timedelta(days=days)).isoformat(),
                       "certified": False, "sent": False, "remaining": 0})
        return {"id": state.create(cid, "invoice", record)}


async def create_agreement(request: Request, state: KleerState, cid: int) -> Any:
    body = await _body(request)
    with state.lock:
        record = v.agreement(body, True, state.exists(cid, "client"), state.exists(cid, "product"))
        v.check_agreement_dates(record)
        record.setdefault("first-invoice-rows", [])
        record.setdefault("recurring-rows", [])
        return {"id": state.create(cid, "agreement", record)}


async def update_agreement(request: Request, state: KleerState, cid: int) -> Any:
    """The XSD's `update-client-agreement` envelope holds a whole `client-agreement`; the update
    makes a new revision of the whole agreement (kleer.md "Agreement update"), so a field the
    body leaves out is cleared, like Kleer does with a partial body."""
    body = await _body(request)
    envelope = body.get("update-client-agreement")
    whole = envelope.get("client-agreement") if isinstance(envelope, dict) else None
    if not isinstance(whole, dict):
        raise KleerError(400, "update-client-agreement: expected {\"update-client-agreement\": "
                              "{\"client-agreement\": {...}}}")
    with state.lock:
        record = state.find(cid, "agreement", request.path_params["id"])
        fresh = v.agreement(whole, True, state.exists(cid, "client"), state.exists(cid, "product"))
        v.check_agreement_dates(fresh)
        fresh.setdefault("first-invoice-rows", [])
        fresh.setdefault("recurring-rows", [])
        revision = record["revision-nr"] + 1
        kept = {"id": record["id"], "revision-nr": revision}
        record.clear()
        record.update({**kept, **fresh})
        return {"revision-nr": revision}


async def create_project(request: Request, state: KleerState, cid: int) -> Any:
    body = await _body(request)
    with state.lock:
        record = v.project(body, True, state.exists(cid, "client"))
        return {"id": state.create(cid, "project", record)}


async def update_project(request: Request, state: KleerState, cid: int) -> Any:
    body = await _body(request)
    with state.lock:
        record = state.find(cid, "project", request.path_params["id"])
        changes = v.project(body, False, state.exists(cid, "client"))
        for fixed in ("name", "client", "fixed-price"):
            if fixed in changes and changes[fixed] != record.get(fixed):
                raise v.bad(fixed, "can only be set when the project is created")
        record.update(changes)
    return {}


def create_kleer_app(state: KleerState) -> Starlette:
    """The Kleer API under `/v1/company/{company_id}/` plus the `/_sim/` admin endpoints."""
    base = "/v1/company/{company_id:int}"
    foreign = {"foreign-id": _by_foreign_id}

    def route(path: str, handler: KleerHandler, method: str) -> Route:
        return Route(base + path, _endpoint(state, handler), methods=[method])

    routes = [
        route("/client", create_client, "PUT"),
        route("/client", _listing("client", foreign), "GET"),
        route("/client/invoice", create_invoice, "PUT"),
        route("/client/invoice", _listing("invoice", foreign), "GET"),
        route("/client/invoice/{id:int}", _reader("invoice"), "GET"),
        route("/client/agreement", create_agreement, "PUT"),
        route("/client/agreement", _listing("agreement", foreign), "GET"),
        route("/client/agreement/{id:int}", _reader("agreement"), "GET"),
        route("/client/agreement/{id:int}", update_agreement, "POST"),
        route("/client/{id:int}", _reader("client"), "GET"),
        route("/client/{id:int}", update_client, "POST"),
        route("/client-project", create_project, "PUT"),
        route("/client-project", _listing("project", {"client-id": _by_client_id}), "GET"),
        route("/client-project/{id:int}", _reader("project"), "GET"),
        route("/client-project/{id:int}", update_project, "POST"),
        route("/product", _listing("product", foreign), "GET"),
        route("/product/{id:int}", _reader("product"), "GET"),
        *admin_routes(state.calls, state.faults, state.reset, state.snapshot),
        *_kleer_admin_routes(state),
    ]
    sim = Middleware(SimMiddleware, calls=state.calls, faults=state.faults, error_body=_fault_body)
    return Starlette(routes=routes, middleware=[sim])


def _kleer_admin_routes(state: KleerState) -> list[Route]:
    async def add_company(request: Request) -> Response:
        data = await read_json(request)
        state.add_company(int(data["company_id"]), str(data["token"]))
        return JSONResponse({})

    async def add_product(request: Request) -> Response:
        data = await read_json(request)
        try:
            product = state.add_product(
                int(data["company_id"]), id=data.get("id"), name=data.get("name", "Product"),
                price=int(data.get("price", 0)), foreign_id=data.get("foreign-id"))
        except KleerError as exc:
            return _error(exc.status, exc.message)
        return JSONResponse(product)

    async def rate_limit(request: Request) -> Response:
        data = await read_json(request)
        state.set_rate_limit(int(data["max"]), int(data["window_ms"]))
        return JSONResponse({})

    async def invoice_state(request: Request) -> Response:
        data = await read_json(request) or {}
        try:
            invoice = state.set_invoice_state(int(data["company_id"]), int(data["invoice_id"]),
                                              str(data["state"]), data.get("paid_on"))
        except (KeyError, TypeError, ValueError) as exc:
            return _error(400, f"bad invoice state change: {exc}")
        except KleerError as exc:
            return _error(exc.status, exc.message)
        return JSONResponse(invoice)

    async def behaviour(request: Request) -> Response:
        try:
            state.set_behaviour(**(await read_json(request) or {}))
        except (TypeError, ValueError) as exc:
            return _error(400, f"bad behaviour switch: {exc}")
        return JSONResponse(asdict(state.behaviour))

    return [
        Route("/_sim/companies", add_company, methods=["POST"]),
        Route("/_sim/products", add_product, methods=["POST"]),
        Route("/_sim/rate-limit", rate_limit, methods=["POST"]),
        Route("/_sim/behaviour", behaviour, methods=["POST"]),
        Route("/_sim/invoice-state", invoice_state, methods=["POST"]),
    ]
