"""The HubSpot and Kleer simulators and the driver, exercised over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hubspot_api.signature import SignatureError, verify
from simulators.__main__ import parse_pairs
from simulators.common import RollingRateLimiter, ServerThread
from simulators.driver import HubSpotDriver, build_execution_body
from simulators.hubspot import HubSpotState, create_hubspot_app
from simulators.hubspot_oauth import expired_message
from simulators.kleer import KleerState, create_kleer_app

PORTAL, HS_TOKEN = 12345, "hs-token"
COMPANY, KLEER_TOKEN = 1, "kleer-key"
SECRET = "client-secret"


# -- fixtures --

@pytest.fixture(scope="module")
def kleer_server() -> Iterator[tuple[KleerState, ServerThread]]:
    state = KleerState()
    with ServerThread(create_kleer_app(state)) as server:
        yield state, server


@pytest.fixture(scope="module")
def hubspot_server() -> Iterator[tuple[HubSpotState, ServerThread]]:
    state = HubSpotState(developer_api_key="devkey")
    with ServerThread(create_hubspot_app(state)) as server:
        yield state, server


@pytest.fixture
def kleer_state(kleer_server: tuple[KleerState, ServerThread]) -> KleerState:
    state = kleer_server[0]
    state.add_company(COMPANY, KLEER_TOKEN)
    state.reset()
    state.set_rate_limit(50, 1000)
    return state


@pytest.fixture
def hs_state(hubspot_server: tuple[HubSpotState, ServerThread]) -> HubSpotState:
    state = hubspot_server[0]
    state.add_portal(PORTAL, HS_TOKEN)
    state.reset()
    return state


@pytest.fixture
async def kleer(kleer_server: tuple[KleerState, ServerThread],
                kleer_state: KleerState) -> AsyncIterator[httpx.AsyncClient]:
    base = f"{kleer_server[1].url}/v1/company/{COMPANY}/"
    async with httpx.AsyncClient(base_url=base, headers={"X-Token": KLEER_TOKEN}) as client:
        yield client


@pytest.fixture
async def hs(hubspot_server: tuple[HubSpotState, ServerThread],
             hs_state: HubSpotState) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {HS_TOKEN}"}
    async with httpx.AsyncClient(base_url=hubspot_server[1].url, headers=headers) as client:
        yield client


def root(client: httpx.AsyncClient) -> str:
    """Server root of the Kleer client (httpx would append "/_sim/..." to the base path)."""
    return str(client.base_url).split("/v1/")[0]


# -- common --

def test_main_parses_credentials() -> None:
    assert parse_pairs("12345:hs-token-12345, 7:x") == [(12345, "hs-token-12345"), (7, "x")]


def test_rolling_rate_limiter_counts_per_key() -> None:
    limiter = RollingRateLimiter(2, 60_000)
    assert [limiter.hit("a").allowed for _ in range(3)] == [True, True, False]
    assert limiter.hit("b").remaining == 1
    denied = limiter.hit("a")
    assert denied.retry_after_s == 60 and denied.remaining == 0


# -- Kleer --

async def test_kleer_auth(kleer: httpx.AsyncClient) -> None:
    assert (await kleer.get("client", headers={"X-Token": "nope"})).status_code == 401
    missing = await kleer.get("client", headers={"X-Token": ""})
    assert missing.status_code == 401 and missing.json() == {"message": "Unauthorized"}
    unknown = await kleer.get(root(kleer) + "/v1/company/999/client")
    assert unknown.status_code == 404


async def test_kleer_client_crud_and_foreign_id_filter(kleer: httpx.AsyncClient,
                                                       kleer_state: KleerState) -> None:
    body = {"name": "Acme AB", "foreign-id": "hs-company-1", "email": "a@acme.se",
            "country-code": "SE", "payment-days": 30, "delivery-type": "Email",
            "address": {"address1": "Gatan 1", "zip-code": "11122"}, "unknown-key": 1}
    created = await kleer.put("client", json=body)
    assert created.status_code == 200 and created.json() == {"id": 1}
    record = (await kleer.get("client/1")).json()
    assert record["name"] == "Acme AB" and record["active"] is True and "unknown-key" not in record
    # Lists are keyed by the plural root element; the foreign-id filter is honoured only when
    # switched on (no public source documents it), and an empty list may be {} (kleer.md).
    listed = (await kleer.get("client", params={"foreign-id": "other"})).json()
    assert [c["id"] for c in listed["clients"]] == [1]
    kleer_state.set_behaviour(list_filters="honoured")
    try:
        assert (await kleer.get("client", params={"foreign-id": "hs-company-1"})).json()["clients"]
        assert (await kleer.get("client", params={"foreign-id": "other"})).json() == {}
        kleer_state.set_behaviour(empty_list="key")
        assert (await kleer.get("client", params={"foreign-id": "other"})).json() == {"clients": []}
    finally:
        kleer_state.set_behaviour(list_filters="ignored", empty_list="object")
    assert (await kleer.post("client/1", json={"phone": "08-1"})).json() == {}
    assert kleer_state.get(COMPANY, "client", 1)["phone"] == "08-1"
    missing = await kleer.get("client/99")
    assert missing.status_code == 404 and missing.json() == {"message": "client 99 not found"}


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"),
    ({"name": " "}, "name"),
    ({"name": "A", "email": "nope"}, "email"),
    ({"name": "A", "country-code": "se"}, "country-code"),
    ({"name": "A", "payment-days": -1}, "payment-days"),
    ({"name": "A", "delivery-type": "email"}, "delivery-type"),
    ({"name": "A", "client-type": "Company"}, "client-type"),
    ({"name": "A", "currency-type": "kr"}, "currency-type"),
])
async def test_kleer_client_validation(kleer: httpx.AsyncClient, body: dict, field: str) -> None:
    response = await kleer.put("client", json=body)
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"{field}: ")


async def test_kleer_malformed_json(kleer: httpx.AsyncClient) -> None:
    response = await kleer.put("client", content=b"{not json")
    assert response.status_code == 400 and "message" in response.json()


async def test_kleer_invoice(kleer: httpx.AsyncClient, kleer_state: KleerState) -> None:
    kleer_state.add_product(COMPANY, name="Consulting", price=100000, foreign_id="sku-1")
    await kleer.put("client", json={"name": "Acme", "address": {"address1": "Gatan 1"}})
    bad_client = await kleer.put("client/invoice", json={"client-ref": {"id": 42}})
    assert bad_client.json() == {"message": "client-ref: client 42 does not exist"}
    bad_price = await kleer.put("client/invoice", json={
        "client-ref": {"id": 1}, "rows": [{"description": "x", "quantity": 1, "price": 12.5}]})
    assert bad_price.status_code == 400 and "rows[0].price" in bad_price.json()["message"]
    bad_product = await kleer.put("client/invoice", json={
        "client-ref": {"id": 1}, "rows": [{"price": 1, "product": {"id": 9}}]})
    assert "product 9 does not exist" in bad_product.json()["message"]
    both = await kleer.put("client/invoice", json={
        "client-ref": {"id": 1}, "rows": [{"price": 1, "discount": {"absolute": 1,
                                                                       "percentage": 5}}]})
    assert both.status_code == 400
    created = await kleer.put("client/invoice", json={
        "client-ref": {"id": 1}, "foreign-id": "deal-7", "rows": [
            {"description": "Work", "quantity": 1.5, "price": 123450, "product": {"id": 1},
             "discount": {"percentage": 10}}]})
    assert created.json() == {"id": 1}
    invoice = (await kleer.get("client/invoice/1")).json()
    assert invoice["invoice-nr"] == 1001 and invoice["currency"] == "SEK"
    assert invoice["invoice-address"] == {"address1": "Gatan 1"}
    listed = (await kleer.get("client/invoice", params={"foreign-id": "deal-7"})).json()
    assert [i["id"] for i in listed["client-invoices"]] == [1]


async def test_kleer_agreement_update_replaces_rows(kleer: httpx.AsyncClient) -> None:
    await kleer.put("client", json={"name": "Acme"})
    bad = await kleer.put("client/agreement", json={
        "client-ref": {"id": 1}, "start-date": "2026-02-01", "end-date": "2026-01-01"})
    assert bad.status_code == 400 and bad.json()["message"].startswith("end-date: ")
    bad_day = await kleer.put("client/agreement", json={"client-ref": {"id": 1},
                                                        "invoice-day": "SOMETIMES"})
    assert bad_day.json()["message"].startswith("invoice-day: ")
    created = await kleer.put("client/agreement", json={
        "client-ref": {"id": 1}, "description": "Support", "invoice-interval-months": 3,
        "invoice-day": "INVOICE_AT_START", "recurring-rows": [{"description": "a", "price": 1},
                                                               {"description": "b", "price": 2}],
        "first-invoice-rows": [{"description": "setup", "price": 5}]})
    assert created.json() == {"id": 1}
    assert (await kleer.get("client/agreement/1")).json()["revision-nr"] == 1
    # The XSD's update envelope holds the whole agreement; a bare partial body is refused.
    partial = await kleer.post("client/agreement/1", json={"description": "Support+"})
    assert partial.status_code == 400 and "update-client-agreement" in partial.json()["message"]
    whole = (await kleer.get("client/agreement/1")).json()
    whole.update({"description": "Support+", "recurring-rows": [{"description": "c", "price": 3}]})
    updated = await kleer.post("client/agreement/1", json={
        "update-client-agreement": {"client-agreement": whole}})
    assert updated.json() == {"revision-nr": 2}
    agreement = (await kleer.get("client/agreement/1")).json()
    assert agreement["description"] == "Support+" and agreement["invoice-interval-months"] == 3
    assert [r["description"] for r in agreement["recurring-rows"]] == ["c"]
    assert [r["description"] for r in agreement["first-invoice-rows"]] == ["setup"]
    # It replaces the whole agreement: what the body leaves out is cleared.
    cleared = await kleer.post("client/agreement/1", json={"update-client-agreement": {
        "client-agreement": {"client-ref": {"id": 1}, "description": "Only this"}}})
    assert cleared.json() == {"revision-nr": 3}
    agreement = (await kleer.get("client/agreement/1")).json()
    assert "invoice-interval-months" not in agreement and agreement["recurring-rows"] == []
    zero = await kleer.post("client/agreement/1", json={"update-client-agreement": {
        "client-agreement": {"client-ref": {"id": 1}, "invoice-interval-months": 0}}})
    assert zero.status_code == 400


async def test_kleer_project(kleer: httpx.AsyncClient, kleer_state: KleerState) -> None:
    await kleer.put("client", json={"name": "Acme"})
    assert (await kleer.put("client-project", json={"client": {"id": 1}})).status_code == 400
    created = await kleer.put("client-project", json={
        "client": {"id": 1}, "name": "Build", "budget-hours": 10.5, "budget-amount": 500000,
        "opening-date": "2026-01-31"})
    assert created.json() == {"id": 1}
    project = (await kleer.get("client-project/1")).json()
    # client-project-readable's id is a reference object in the XSD.
    assert project["id"] == {"id": 1} and project["fixed-price"] is False
    kleer_state.set_behaviour(list_filters="honoured")
    try:
        listed = (await kleer.get("client-project", params={"client-id": "1"})).json()
        assert [p["id"] for p in listed["client-project-readables"]] == [{"id": 1}]
        assert (await kleer.get("client-project", params={"client-id": "2"})).json() == {}
    finally:
        kleer_state.set_behaviour(list_filters="ignored")
    assert (await kleer.post("client-project/1", json={"comment": "x"})).json() == {}
    renamed = await kleer.post("client-project/1", json={"name": "Other"})
    assert renamed.status_code == 400 and renamed.json()["message"].startswith("name: ")
    bad_date = await kleer.put("client-project", json={"client": {"id": 1}, "name": "x",
                                                       "opening-date": "2026-13-01"})
    assert "opening-date" in bad_date.json()["message"]


async def test_kleer_products_via_admin(kleer: httpx.AsyncClient) -> None:
    product = (await kleer.post(root(kleer) + "/_sim/products", json={
        "company_id": COMPANY, "name": "Licence", "foreign-id": "hs-prod-1", "price": 9900})).json()
    assert product["id"] == 1
    assert (await kleer.get("product/1")).json()["name"] == "Licence"
    listed = (await kleer.get("product", params={"foreign-id": "hs-prod-1"})).json()
    assert [p["id"] for p in listed["products"]] == [1]


async def test_kleer_rate_limit(kleer: httpx.AsyncClient) -> None:
    await kleer.post(root(kleer) + "/_sim/rate-limit", json={"max": 2, "window_ms": 5000})
    statuses = [(await kleer.get("client")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = await kleer.get("client")
    assert limited.json() == {"message": "Too many requests"}
    assert 1 <= int(limited.headers["Retry-After"]) <= 5
    # admin endpoints are never rate limited
    assert (await kleer.get(root(kleer) + "/_sim/state")).status_code == 200


async def test_kleer_faults_and_call_log(kleer: httpx.AsyncClient,
                                         kleer_state: KleerState) -> None:
    await kleer.post(root(kleer) + "/_sim/faults", json={"rules": [
        {"method": "PUT", "path_contains": "/client", "status": 503, "count": 1},
        {"method": "GET", "status": 429, "retry_after": 7, "count": 1}]})
    failed = await kleer.put("client", json={"name": "A"})
    assert failed.status_code == 503 and "message" in failed.json()
    assert (await kleer.put("client", json={"name": "A"})).status_code == 200
    limited = await kleer.get("client")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    assert (await kleer.get("client")).status_code == 200
    calls = (await kleer.get(root(kleer) + "/_sim/calls")).json()["calls"]
    assert [c["status"] for c in calls] == [503, 200, 429, 200]
    assert calls[1]["body"] == {"name": "A"} and calls[1]["key"] == COMPANY
    await kleer.delete(root(kleer) + "/_sim/calls")
    assert kleer_state.calls.list() == []


async def test_kleer_commit_then_drop_stores_record(kleer: httpx.AsyncClient,
                                                    kleer_state: KleerState) -> None:
    kleer_state.faults.add(mode="commit_then_drop", method="PUT", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        await kleer.put("client", json={"name": "Lost", "foreign-id": "f-1"})
    assert [c["name"] for c in kleer_state.records(COMPANY, "client")] == ["Lost"]
    found = (await kleer.get("client", params={"foreign-id": "f-1"})).json()["clients"]
    assert found[0]["id"] == 1
    assert (await kleer.put("client", json={"name": "Next"})).json() == {"id": 2}


async def test_kleer_paged_lists_and_reference_ids(kleer: httpx.AsyncClient,
                                                  kleer_state: KleerState) -> None:
    kleer_state.reset()
    for n in range(30):
        await kleer.put("client", json={"name": f"C{n}"})
    kleer_state.set_behaviour(page_size=25, ref_ids="all")
    try:
        first = (await kleer.get("client")).json()["clients"]
        second = (await kleer.get("client", params={"page": "2"})).json()["clients"]
        assert len(first) == 25 and len(second) == 5 and first[0]["id"] == {"id": 1}
        assert (await kleer.get("client", params={"page": "3"})).json() == {}
        assert (await kleer.get("client/30")).json()["id"] == {"id": 30}
    finally:
        kleer_state.set_behaviour(page_size=None, ref_ids="readables")
    with pytest.raises(ValueError):
        kleer_state.set_behaviour(list_filters="sometimes")


async def test_kleer_gateway_answers_then_commits_late(kleer: httpx.AsyncClient,
                                                      kleer_state: KleerState) -> None:
    kleer_state.reset()
    kleer_state.faults.add(mode="late_commit", method="PUT", status=504, commit_delay_ms=300,
                           count=1)
    answer = await kleer.put("client", json={"name": "Late"})
    assert answer.status_code == 504 and answer.headers["content-type"] == "text/html"
    assert kleer_state.records(COMPANY, "client") == []
    await asyncio.sleep(0.6)
    assert [c["name"] for c in kleer_state.records(COMPANY, "client")] == ["Late"]


async def test_kleer_latency_fault(kleer: httpx.AsyncClient, kleer_state: KleerState) -> None:
    kleer_state.faults.add(mode="latency", latency_ms=300, count=1)
    with pytest.raises(httpx.ReadTimeout):
        await kleer.get("client", timeout=0.1)
    assert (await kleer.get("client")).status_code == 200


# -- HubSpot --

def _seed_deal(state: HubSpotState) -> tuple[str, str, str, str]:
    primary = state.create_object(PORTAL, "companies", {"name": "Acme", "kleer_id": "1"})
    other = state.create_object(PORTAL, "companies", {"name": "Other"})
    item = state.create_object(PORTAL, "line_items", {"name": "Work", "price": "1234.5"})
    deal = state.create_object(PORTAL, "deals", {"dealname": "Big deal"},
                               [("companies", primary, 5), ("companies", other, 341),
                                ("line_items", item, 19)])
    return deal, primary, other, item


async def test_hubspot_auth(hs: httpx.AsyncClient) -> None:
    response = await hs.get("/crm/v3/objects/deals/1", headers={"Authorization": "Bearer x"})
    assert response.status_code == 401
    body = response.json()
    assert body["category"] == "UNAUTHORIZED" and body["status"] == "error"
    assert body["correlationId"]


async def test_hubspot_read_with_associations(hs: httpx.AsyncClient,
                                              hs_state: HubSpotState) -> None:
    deal, primary, other, item = _seed_deal(hs_state)
    response = await hs.get(f"/crm/v3/objects/deals/{deal}", params={
        "properties": "dealname,kleer_invoice_id,nonexistent",
        "associations": "companies,line_items"})
    assert response.status_code == 200
    assert "X-HubSpot-RateLimit-Remaining" in response.headers
    record = response.json()
    assert record["id"] == deal and record["properties"]["dealname"] == "Big deal"
    assert record["properties"]["kleer_invoice_id"] is None
    assert "nonexistent" not in record["properties"]
    assert record["properties"]["hs_object_id"] == deal
    assert record["associations"]["companies"]["results"] == [
        {"id": primary, "type": "deal_to_company"},
        {"id": primary, "type": "deal_to_company_unlabeled"},
        {"id": other, "type": "deal_to_company_unlabeled"}]
    # Display keys, as the real API answers (hubspot.md section 7).
    assert record["associations"]["line items"]["results"] == [
        {"id": item, "type": "deal_to_line_item"}]
    v4 = (await hs.get(f"/crm/v4/objects/deals/{deal}/associations/companies")).json()
    assert v4["results"][0] == {"toObjectId": int(primary), "associationTypes": [
        {"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"},
        {"category": "HUBSPOT_DEFINED", "typeId": 341, "label": None}]}
    assert hs_state.associations_of(PORTAL, "companies", primary, "deals") == [deal]
    missing = await hs.get("/crm/v3/objects/deals/999999")
    assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"


async def test_hubspot_update_and_unknown_property(hs: httpx.AsyncClient,
                                                   hs_state: HubSpotState) -> None:
    company = hs_state.create_object(PORTAL, "companies", {"name": "Acme"})
    bad = await hs.patch(f"/crm/v3/objects/companies/{company}",
                         json={"properties": {"kleer_idd": "1"}})
    assert bad.status_code == 400 and bad.json()["category"] == "VALIDATION_ERROR"
    assert 'Property \\"kleer_idd\\" does not exist' in bad.json()["message"]
    assert "PROPERTY_DOESNT_EXIST" in bad.json()["message"]
    read_only = await hs.patch(f"/crm/v3/objects/companies/{company}",
                               json={"properties": {"hs_object_id": "1"}})
    assert read_only.status_code == 400 and "READ_ONLY_VALUE" in read_only.json()["message"]
    ok = await hs.patch(f"/crm/v3/objects/companies/{company}",
                        json={"properties": {"kleer_id": 17, "phone": ""}})
    assert ok.status_code == 200 and ok.json()["properties"]["kleer_id"] == "17"
    assert hs_state.get_object(PORTAL, "companies", company)["properties"]["phone"] == ""


async def test_hubspot_create_and_batches(hs: httpx.AsyncClient, hs_state: HubSpotState) -> None:
    deal = hs_state.create_object(PORTAL, "deals", {"dealname": "D"})
    created = await hs.post("/crm/v3/objects/line_items", json={
        "properties": {"name": "A", "quantity": 2},
        "associations": [{"to": {"id": deal}, "types": [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}]}]})
    assert created.status_code == 201
    item = created.json()["id"]
    assert hs_state.associations_of(PORTAL, "deals", deal, "line_items") == [item]
    batch = await hs.post("/crm/v3/objects/line_items/batch/create", json={"inputs": [
        {"properties": {"name": "B"}}, {"properties": {"name": "C"}}]})
    assert batch.status_code == 201 and len(batch.json()["results"]) == 2
    other = batch.json()["results"][0]["id"]
    read = await hs.post("/crm/v3/objects/line_items/batch/read", json={
        "properties": ["name", "quantity"], "inputs": [{"id": item}, {"id": "424242"}]})
    assert read.status_code == 207
    assert read.json()["numErrors"] == 1 and read.json()["errors"][0]["context"]["ids"] == [
        "424242"]
    assert read.json()["results"][0]["properties"]["quantity"] == "2"
    updated = await hs.post("/crm/v3/objects/line_items/batch/update", json={
        "inputs": [{"id": item, "properties": {"price": "10"}}]})
    assert updated.status_code == 200
    too_many = await hs.post("/crm/v3/objects/line_items/batch/read",
                             json={"inputs": [{"id": "1"}] * 101})
    assert too_many.status_code == 400
    archived = await hs.post("/crm/v3/objects/line_items/batch/archive",
                             json={"inputs": [{"id": item}, {"id": other}]})
    assert archived.status_code == 204
    assert (await hs.get(f"/crm/v3/objects/line_items/{item}")).status_code == 404
    assert hs_state.associations_of(PORTAL, "deals", deal, "line_items") == []


async def test_hubspot_line_item_values_follow_hubspot(hs: httpx.AsyncClient) -> None:
    async def create(**props: str) -> httpx.Response:
        return await hs.post("/crm/v3/objects/line_items/batch/create",
                             json={"inputs": [{"properties": {"name": "x", **props}}]})

    assert (await create(recurringbillingfrequency="monthly", hs_recurring_billing_period="P12M",
                         price="1234.50", quantity="2")).status_code == 201
    for props, error in (({"recurringbillingfrequency": "recurring"}, "INVALID_OPTION"),
                         ({"recurringbillingfrequency": "monthly",
                           "hs_recurring_billing_period": "24"},
                          "INVALID_RECURRING_BILLING_DURATION"),
                         ({"price": "12,50"}, "INVALID_DECIMAL")):
        refused = await create(**props)
        assert refused.status_code == 400 and refused.json()["category"] == "VALIDATION_ERROR"
        assert error in refused.json()["message"]


async def test_hubspot_upsert(hs: httpx.AsyncClient, hs_state: HubSpotState) -> None:
    url = "/crm/v3/objects/invoices/batch/upsert"
    first = await hs.post(url, json={"inputs": [
        {"idProperty": "kleer_id", "id": "55", "properties": {"hs_currency": "SEK"}}]})
    assert first.status_code == 200
    result = first.json()["results"][0]
    assert result["new"] is True and result["properties"]["kleer_id"] == "55"
    again = await hs.post(url, json={"inputs": [
        {"idProperty": "kleer_id", "id": "55", "properties": {"hs_currency": "EUR"}}]})
    assert again.json()["results"][0]["new"] is False
    assert again.json()["results"][0]["id"] == result["id"]
    assert len(hs_state.find_objects(PORTAL, "invoices", kleer_id="55")) == 1
    bad = await hs.post(url, json={"inputs": [
        {"idProperty": "hs_title", "id": "x", "properties": {}}]})
    assert bad.status_code == 400 and bad.json()["category"] == "VALIDATION_ERROR"
    duplicate = await hs.post("/crm/v3/objects/invoices", json={"properties": {"kleer_id": "55"}})
    assert duplicate.status_code == 409


async def test_hubspot_v4_associations(hs: httpx.AsyncClient, hs_state: HubSpotState) -> None:
    invoice = hs_state.create_object(PORTAL, "invoices", {})
    deal = hs_state.create_object(PORTAL, "deals", {})
    items = [hs_state.create_object(PORTAL, "line_items", {}) for _ in range(2)]
    single = await hs.put(f"/crm/v4/objects/invoices/{invoice}/associations/default/deals/{deal}")
    assert single.status_code == 200
    assert single.json()["results"][0]["associationSpec"]["associationTypeId"] == 175
    missing = await hs.put(f"/crm/v4/objects/invoices/{invoice}/associations/default/deals/9")
    assert missing.status_code == 404
    batch = await hs.post("/crm/v4/associations/invoices/line_items/batch/associate/default",
                          json={"inputs": [{"from": {"id": invoice}, "to": {"id": i}}
                                           for i in items]})
    assert batch.status_code == 200
    assert hs_state.associations_of(PORTAL, "invoices", invoice, "line_items") == items
    read = (await hs.get(f"/crm/v3/objects/invoices/{invoice}",
                         params={"associations": "deals"})).json()
    assert read["associations"]["deals"]["results"] == [{"id": deal, "type": "invoice_to_deal"}]


async def test_hubspot_properties(hs: httpx.AsyncClient, hs_state: HubSpotState) -> None:
    names = {p["name"] for p in (await hs.get("/crm/v3/properties/deals")).json()["results"]}
    assert {"kleer_invoice_id", "dealname", "hs_object_id"} <= names
    group = await hs.post("/crm/v3/properties/deals/groups", json={"name": "kleer",
                                                                   "label": "Kleer"})
    assert group.status_code == 201
    assert (await hs.post("/crm/v3/properties/deals/groups",
                          json={"name": "kleer", "label": "Kleer"})).status_code == 409
    definition = {"name": "kleer_x", "label": "X", "type": "string", "fieldType": "text",
                  "groupName": "kleer"}
    assert (await hs.post("/crm/v3/properties/deals", json=definition)).status_code == 201
    conflict = await hs.post("/crm/v3/properties/deals", json=definition)
    assert conflict.status_code == 409 and conflict.json()["category"] == "CONFLICT"
    no_group = await hs.post("/crm/v3/properties/deals", json={**definition, "name": "y",
                                                               "groupName": "nope"})
    assert no_group.status_code == 400
    hs_state.add_portal(777, "bare", seed_kleer_properties=False)
    bare = await hs.get("/crm/v3/properties/companies", headers={"Authorization": "Bearer bare"})
    assert "kleer_id" not in {p["name"] for p in bare.json()["results"]}


async def test_hubspot_rate_limit(hs: httpx.AsyncClient, hs_state: HubSpotState) -> None:
    hs_state.add_portal(PORTAL, HS_TOKEN, rate_limit=(3, 2000))
    try:
        statuses = [(await hs.get("/crm/v3/properties/deals")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = await hs.get("/crm/v3/properties/deals")
        assert limited.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert limited.json()["errorType"] == "RATE_LIMIT"
        headers = limited.headers
        assert headers["X-HubSpot-RateLimit-Max"] == "3"
        assert headers["X-HubSpot-RateLimit-Remaining"] == "0"
        assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "2000"
        assert int(headers["X-HubSpot-RateLimit-Daily-Remaining"]) > 0
        assert 1 <= int(headers["Retry-After"]) <= 2
        assert "X-HubSpot-RateLimit-Daily" in headers
    finally:
        hs_state.add_portal(PORTAL, HS_TOKEN)


async def test_hubspot_callbacks(hs: httpx.AsyncClient, hs_state: HubSpotState) -> None:
    unknown = await hs.post("/automation/v4/actions/callbacks/nope/complete",
                            json={"outputFields": {"hs_execution_state": "SUCCESS"}})
    assert unknown.status_code == 404
    hs_state.expect_callback(PORTAL, "cb-1")
    url = "/automation/v4/actions/callbacks/cb-1/complete"
    assert (await hs.post(url, json={"outputFields": {"hs_execution_state": "BLOCK"}})
            ).status_code == 400
    done = await hs.post(url, json={"outputFields": {"hs_execution_state": "SUCCESS",
                                                     "kleer_id": "5"}})
    assert done.status_code == 204
    again = await hs.post(url, json={"outputFields": {"hs_execution_state": "SUCCESS"}})
    assert again.status_code == 400 and "already completed" in again.json()["message"]
    completion = hs_state.completion("cb-1")
    assert completion["state"] == "completed" and completion["outputFields"]["kleer_id"] == "5"
    hs_state.expect_callback(PORTAL, "cb-2")
    hs_state.expect_callback(PORTAL, "cb-3")
    batch = await hs.post("/automation/v4/actions/callbacks/complete", json={"inputs": [
        {"callbackId": "cb-2", "outputFields": {"hs_execution_state": "FAIL_CONTINUE"}},
        {"callbackId": "cb-3", "outputFields": {"hs_execution_state": "SUCCESS"}}]})
    assert batch.status_code == 204
    listed = (await hs.get("/_sim/callbacks")).json()["callbacks"]
    assert {cid: cb["state"] for cid, cb in listed.items()} == {
        "cb-1": "completed", "cb-2": "completed", "cb-3": "completed"}


ACTION = {
    "actionUrl": "https://example.com/actions/kleer-client",
    "objectTypes": ["COMPANY"],
    "inputFields": [
        {"typeDefinition": {"name": "name", "type": "string", "fieldType": "text"},
         "supportedValueTypes": ["STATIC_VALUE", "OBJECT_PROPERTY"], "isRequired": True},
        {"typeDefinition": {"name": "delivery", "type": "enumeration", "fieldType": "select",
                            "options": [{"label": "Mail", "value": "Mail"}]}}],
    "outputFields": [{"typeDefinition": {"name": "kleer_id", "type": "string"}}],
    "labels": {"en": {"actionName": "Create Kleer Client",
                      "inputFieldLabels": {"name": "Name", "delivery": "Delivery"},
                      "outputFieldLabels": {"kleer_id": "Kleer ID"}}},
}


async def test_hubspot_action_definitions(hs: httpx.AsyncClient) -> None:
    base = "/automation/v4/actions/42"
    assert (await hs.post(base, json=ACTION)).status_code == 401
    created = await hs.post(base, params={"hapikey": "devkey"}, json=ACTION)
    assert created.status_code == 200
    definition_id = created.json()["id"]
    listed = (await hs.get(base, params={"hapikey": "devkey"})).json()["results"]
    assert [d["id"] for d in listed] == [definition_id]
    patched = await hs.patch(f"{base}/{definition_id}", params={"hapikey": "devkey"},
                             json={"published": True})
    assert patched.json()["revisionId"] == "2" and patched.json()["published"] is True
    broken = [
        {**ACTION, "actionUrl": "http://example.com/x"},
        {**ACTION, "objectTypes": ["LINE_ITEM"]},
        {**ACTION, "inputFields": [{"typeDefinition": {"name": "d", "type": "enumeration",
                                                       "fieldType": "select"}}]},
        {**ACTION, "labels": {"en": {**ACTION["labels"]["en"], "outputFieldLabels": {}}}},
        {**ACTION, "labels": {"sv": ACTION["labels"]["en"]}},
    ]
    for definition in broken:
        response = await hs.post(base, params={"hapikey": "devkey"}, json=definition)
        assert response.status_code == 400, definition
        assert response.json()["category"] == "VALIDATION_ERROR"


async def test_hubspot_faults_and_admin(hs: httpx.AsyncClient, hs_state: HubSpotState) -> None:
    await hs.post("/_sim/faults", json={"path_contains": "/crm/v3/objects", "status": 502,
                                        "count": 1})
    failed = await hs.get("/crm/v3/objects/deals/1")
    assert failed.status_code == 502 and failed.json()["status"] == "error"
    created = (await hs.post("/_sim/objects/companies", json={
        "portal_id": PORTAL, "properties": {"name": "Seeded"}})).json()
    deal = (await hs.post("/_sim/objects/deals", json={
        "portal_id": PORTAL, "properties": {},
        "associations": [{"to_type": "companies", "to_id": created["id"], "type_id": 5}]})).json()
    record = (await hs.get(f"/_sim/objects/deals/{deal['id']}",
                           params={"portal_id": PORTAL})).json()
    assert record["associations"]["companies"] == [{"id": created["id"], "typeIds": [5, 341]}]
    hs_state.faults.add(mode="commit_then_drop", method="PATCH", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        await hs.patch(f"/crm/v3/objects/deals/{deal['id']}",
                       json={"properties": {"kleer_invoice_id": "9"}})
    assert hs_state.get_object(PORTAL, "deals", deal["id"])["properties"][
        "kleer_invoice_id"] == "9"
    assert [c["status"] for c in hs_state.calls.list()] == [502, 200]
    assert (await hs.delete(f"/_sim/objects/deals/{deal['id']}",
                            params={"portal_id": PORTAL})).status_code == 204
    assert (await hs.get(f"/crm/v3/objects/deals/{deal['id']}")).status_code == 404
    await hs.post("/_sim/reset")
    assert hs_state.get_object(PORTAL, "companies", created["id"]) is None
    assert (await hs.get("/crm/v3/properties/deals")).status_code == 200  # token kept


# -- driver --

class FakeAction:
    """A stand-in for our actionUrl: verifies signatures, fails the first N deliveries."""

    def __init__(self, hubspot_url: str) -> None:
        self.hubspot_url = hubspot_url
        self.fail_first = 0
        self.fail_status = 503
        self.retry_after: str | None = None
        self.received: list[dict] = []
        self.signature_versions: list[str] = []

    async def handle(self, request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            version = verify(SECRET, "POST", str(request.url), raw,
                             {k.lower(): v for k, v in request.headers.items()})
        except SignatureError as exc:
            return JSONResponse({"message": str(exc)}, 401)
        self.signature_versions.append(version)
        body = json.loads(raw)
        self.received.append(body)
        if len(self.received) <= self.fail_first:
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            return JSONResponse({"message": "busy"}, self.fail_status, headers=headers)
        asyncio.create_task(self._complete(body["callbackId"]))
        return JSONResponse({"outputFields": {"hs_execution_state": "BLOCK"}})

    async def _complete(self, callback_id: str) -> None:
        async with httpx.AsyncClient(base_url=self.hubspot_url) as client:
            await client.post(f"/automation/v4/actions/callbacks/{callback_id}/complete",
                              headers={"Authorization": f"Bearer {HS_TOKEN}"},
                              json={"outputFields": {"hs_execution_state": "SUCCESS",
                                                     "result": "created"}})


@pytest.fixture
def action(hubspot_server: tuple[HubSpotState, ServerThread],
           hs_state: HubSpotState) -> Iterator[tuple[FakeAction, str]]:
    fake = FakeAction(hubspot_server[1].url)
    app = Starlette(routes=[Route("/hubspot/action", fake.handle, methods=["POST"])])
    with ServerThread(app) as server:
        yield fake, f"{server.url}/hubspot/action"


async def test_driver_retries_then_completes(action: tuple[FakeAction, str],
                                             hubspot_server: tuple[HubSpotState, ServerThread]
                                             ) -> None:
    fake, url = action
    fake.fail_first = 2
    async with HubSpotDriver(url, SECRET, hubspot_server[1].url) as driver:
        result = await driver.execute(PORTAL, "DEAL", 4321, {"currency": "SEK"},
                                      action_definition_id=7)
        assert result.attempts == 3 and result.status_code == 200
        assert result.response_json == {"outputFields": {"hs_execution_state": "BLOCK"}}
        assert result.ack_latency_s is not None
        outputs = await driver.wait_for_completion(result.callback_id, timeout_s=5)
    assert outputs == {"hs_execution_state": "SUCCESS", "result": "created"}
    assert result.callback_id.startswith(f"ap-7-{PORTAL}-")
    assert {b["callbackId"] for b in fake.received} == {result.callback_id}
    first = fake.received[0]
    assert first["origin"]["portalId"] == PORTAL and first["object"] == {
        "objectId": 4321, "objectType": "DEAL"}
    assert first["inputFields"] == {"currency": "SEK"} and first["context"]["workflowId"]


async def test_driver_honours_retry_after_and_v2(action: tuple[FakeAction, str],
                                                 hubspot_server: tuple[HubSpotState, ServerThread]
                                                 ) -> None:
    fake, url = action
    fake.fail_first, fake.fail_status, fake.retry_after = 1, 429, "0"
    async with HubSpotDriver("http://127.0.0.1:9/unused", SECRET, hubspot_server[1].url) as driver:
        result = await driver.execute(PORTAL, "COMPANY", 1, {}, signature_version="v2",
                                      action_url=url)
    assert result.attempts == 2 and result.status_code == 200
    assert fake.signature_versions == ["v2", "v2"]


async def test_driver_4xx_is_final_and_tampering_is_rejected(
        action: tuple[FakeAction, str], hubspot_server: tuple[HubSpotState, ServerThread]) -> None:
    fake, url = action
    async with HubSpotDriver(url, "wrong-secret", hubspot_server[1].url) as driver:
        result = await driver.execute(PORTAL, "DEAL", 1, {})
    assert result.attempts == 1 and result.status_code == 401
    async with HubSpotDriver(url, SECRET, hubspot_server[1].url) as driver:
        body = json.dumps(build_execution_body(PORTAL, "DEAL", 1, {})).encode()
        assert (await driver.send(body)).status_code == 200
        signed = await driver.send(body)
        headers = {k: v for k, v in signed.request.headers.items()
                   if k.lower().startswith("x-hubspot")}
        tampered = await driver._http.post(url, content=body.replace(b"DEAL", b"COMPANY"),
                                           headers=headers)
        assert tampered.status_code == 401


async def test_driver_gives_up_on_connection_errors(
        hubspot_server: tuple[HubSpotState, ServerThread], hs_state: HubSpotState) -> None:
    async with HubSpotDriver("http://127.0.0.1:9/none", SECRET, hubspot_server[1].url,
                             timeout_s=1) as driver:
        result = await driver.execute(PORTAL, "DEAL", 1, {}, max_attempts=2)
    assert result.attempts == 2 and result.status_code is None
    assert hs_state.completion(result.callback_id)["state"] == "pending"


async def test_driver_run_many(action: tuple[FakeAction, str],
                               hubspot_server: tuple[HubSpotState, ServerThread],
                               hs_state: HubSpotState) -> None:
    fake, url = action
    async with HubSpotDriver(url, SECRET, hubspot_server[1].url) as driver:
        results = await driver.run_many(
            [{"portal_id": PORTAL, "object_type": "DEAL", "object_id": i, "input_fields": {}}
             for i in range(20)], concurrency=5)
        assert all(r.status_code == 200 for r in results)
        for r in results:
            await driver.wait_for_completion(r.callback_id, timeout_s=5)
    assert len({r.callback_id for r in results}) == 20


# -- HubSpot OAuth (simulators/hubspot_oauth.py; the whole dance is in test_oauth.py) --

async def test_hubspot_oauth_admin_and_token_endpoints(
        hubspot_server: tuple[HubSpotState, ServerThread], hs_state: HubSpotState) -> None:
    app = {"client_id": "cid", "client_secret": "csecret", "redirect_uris": ["http://cb.test/"],
           "scopes": ["oauth", "automation"], "optional_scopes": ["tickets"],
           "access_token_ttl_s": 60}
    async with httpx.AsyncClient(base_url=hubspot_server[1].url) as http:
        assert (await http.post("/_sim/oauth/app", json=app)).status_code == 200
        assert (await http.post("/_sim/oauth/users", json={
            "user_id": 77, "email": "u@x.se", "portal_ids": [PORTAL, 9001]})).status_code == 200
        assert (await http.post("/_sim/oauth/app", json={"client_id": "x"})).status_code == 400
        # /oauth/{accountId}/authorize shows that account only
        page = await http.get(f"/oauth/{PORTAL}/authorize", params={
            "client_id": "cid", "redirect_uri": "http://cb.test/", "scope": "oauth automation",
            "optional_scope": "tickets", "user": "77"})
        assert f"Grant access to {PORTAL}" in page.text and "Grant access to 9001" not in page.text
        granted = await http.post("/oauth/authorize", data={
            "client_id": "cid", "redirect_uri": "http://cb.test/", "scope": "oauth automation",
            "optional_scope": "tickets", "user": "u@x.se", "portal_id": "9001",
            "decision": "grant"})
        code = parse_qs(urlsplit(granted.headers["location"]).query)["code"][0]
        # v1 took its values as query parameters as well; v3 only in the body
        token = await http.post("/oauth/v1/token", params={
            "grant_type": "authorization_code", "client_id": "cid", "client_secret": "csecret",
            "redirect_uri": "http://cb.test/"}, data={"code": code})
        answer = token.json()
        assert token.status_code == 200 and answer["expires_in"] == 60
        assert answer["token_type"] == "bearer" and answer["hub_id"] == 9001
        assert answer["scopes"] == ["oauth", "automation", "tickets"]
        refreshed = await http.post("/oauth/v3/token", data={
            "grant_type": "refresh_token", "client_id": "cid", "client_secret": "csecret",
            "refresh_token": answer["refresh_token"]})
        assert refreshed.status_code == 200
        info = (await http.get(f"/oauth/v1/refresh-tokens/{answer['refresh_token']}")).json()
        assert (info["hub_id"], info["user"], info["token_type"]) == (9001, "u@x.se", "refresh")

        for form, error, status in [
            ({"grant_type": "password"}, "unsupported_grant_type", "BAD_GRANT_TYPE"),
            ({"grant_type": "refresh_token", "client_id": "cid"}, "invalid_request", "BAD_REQUEST"),
            ({"grant_type": "refresh_token", "client_id": "zz", "client_secret": "csecret",
              "refresh_token": "r"}, "invalid_client", "BAD_CLIENT_ID"),
            ({"grant_type": "refresh_token", "client_id": "cid", "client_secret": "csecret",
              "refresh_token": "r"}, "invalid_grant", "BAD_REFRESH_TOKEN")]:
            refused = await http.post("/oauth/v3/token", data=form)
            body = refused.json()
            assert refused.status_code == 400 and (body["error"], body["status"]) == (error, status)
            assert body["message"] == body["error_description"]

        state = (await http.get("/_sim/oauth")).json()
        assert state["installs"] == {"9001": [77]} and state["live_access_tokens"] == 2
        assert "csecret" not in json.dumps(state) and answer["refresh_token"] not in json.dumps(state)
        assert (await http.post("/_sim/oauth/expire", json={"portal_id": 9001})).json() == {
            "expired": 2}
        expired = await http.get(f"/oauth/v1/access-tokens/{answer['access_token']}")
        assert expired.status_code == 400 and expired.json()["status"] == "BAD_ACCESS_TOKEN"
        crm = await http.get("/crm/v3/objects/companies/1",
                             headers={"Authorization": f"Bearer {answer['access_token']}"})
        assert crm.json()["context"]["expire time"][0].endswith("Z")
        assert (await http.delete(f"/oauth/v1/refresh-tokens/{answer['refresh_token']}")
                ).status_code == 204
        assert (await http.delete(f"/oauth/v1/refresh-tokens/{answer['refresh_token']}")
                ).status_code == 400
    assert hs_state.snapshot()["oauth"]["installs"] == {}
    calls = hs_state.calls.list(path_contains="/oauth/")
    assert all(c["key"] in (9001, None) for c in calls)


def test_hubspot_oauth_expired_message_units() -> None:
    assert expired_message(5.9) == "The OAuth token used to make this call expired 5 second(s) ago."
    assert expired_message(125).endswith("expired 2 minute(s) ago.")
    assert expired_message(7300).endswith("expired 2 hour(s) ago.")
    assert expired_message(3 * 86400).endswith("expired 3 day(s) ago.")
