"""The HubSpot and Kleer clients read answers strictly: what the evidence says the real APIs send
is understood, and a shape we do not recognise is a retryable error, never "empty"."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from hubspot_api.client import HubSpotClient
from kleer_api.client import KleerClient
from service_errors import ServiceError

Answer = Callable[[httpx.Request], httpx.Response]


def kleer(answer: Answer) -> KleerClient:
    return KleerClient("http://kleer.test/v1/", 1, "key", transport=httpx.MockTransport(answer))


def hubspot(answer: Answer) -> HubSpotClient:
    return HubSpotClient("http://hubspot.test", "token", transport=httpx.MockTransport(answer))


def json_answer(body: object, status: int = 200) -> Answer:
    return lambda request: httpx.Response(status, json=body)


async def test_kleer_lists_are_keyed_by_the_plural_root_element_with_reference_ids():
    client = kleer(json_answer({"clients": [{"id": {"id": 7}, "foreign-id": "m"},
                                            {"id": 8, "foreign-id": "x"}]}))
    found = await client.find_by_foreign_id("client", "m")
    assert found is not None and found["id"] == 7
    assert await kleer(json_answer({})).find_by_foreign_id("client", "m") is None  # empty: {}


@pytest.mark.parametrize("body", [
    {"client": [{"id": 7, "foreign-id": "m"}]},  # the singular key we used to read
    {"clients": {"id": 7}},
    {"clients": [{"id": "seven"}]},
    {"clients": [], "paging": {"next": 2}},
    [{"id": 7}],
])
async def test_a_kleer_list_we_do_not_recognise_is_an_error_not_empty(body):
    with pytest.raises(ServiceError) as caught:
        await kleer(json_answer(body)).find_by_foreign_id("client", "m")
    assert caught.value.retryable and caught.value.category == "UNEXPECTED_RESPONSE"


async def test_kleer_lookup_walks_pages_when_the_filter_is_ignored():
    everyone = [{"id": n, "foreign-id": f"other-{n}"} for n in range(1, 31)] + [
        {"id": 31, "foreign-id": "ours"}]
    seen_pages = []

    def paged(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        seen_pages.append(page)
        chunk = everyone[(page - 1) * 25:page * 25]
        return httpx.Response(200, json={"clients": chunk} if chunk else {})

    assert (await kleer(paged).find_by_foreign_id("client", "ours"))["id"] == 31
    assert seen_pages == [1, 2, 3]

    # A server that ignores `page` answers the whole list each time: one repeat, then stop.
    whole = kleer(json_answer({"clients": everyone}))
    assert (await whole.find_by_foreign_id("client", "ours"))["id"] == 31
    assert whole.calls == 2


async def test_kleer_create_answer_and_errors_say_whether_anything_was_written():
    assert await kleer(json_answer({"id": {"id": 5}})).create("client", {"name": "A"}) == 5
    with pytest.raises(ServiceError) as unreadable:
        await kleer(json_answer({"created": True})).create("client", {"name": "A"})
    assert not unreadable.value.nothing_written  # it may exist: look before retrying
    with pytest.raises(ServiceError) as refused:
        await kleer(json_answer({"message": "name: is required"}, 400)).create("client", {})
    assert refused.value.nothing_written and not refused.value.retryable
    gateway = lambda request: httpx.Response(504, text="<html>504 Gateway Time-out</html>")  # noqa: E731
    with pytest.raises(ServiceError) as timed_out:
        await kleer(gateway).create("client", {"name": "A"})
    assert timed_out.value.retryable and not timed_out.value.nothing_written


async def test_kleer_agreement_update_sends_the_whole_agreement_in_the_xsd_envelope():
    sent = {}

    def answer(request: httpx.Request) -> httpx.Response:
        sent.update(json.loads(request.content))
        return httpx.Response(200, json={"revision-nr": 4})

    whole = {"client-ref": {"id": 1}, "description": "D", "recurring-rows": []}
    assert await kleer(answer).update_agreement(9, whole) == 4
    assert sent == {"update-client-agreement": {"client-agreement": whole}}


async def test_hubspot_line_items_come_under_the_display_key():
    deal = {"id": "1", "properties": {}, "associations": {
        "companies": {"results": [{"id": "5", "type": "deal_to_company"},
                                  {"id": "5", "type": "deal_to_company_unlabeled"}]},
        "line items": {"results": [{"id": "70", "type": "deal_to_line_item"}]}}}
    record = await hubspot(json_answer(deal)).get_object("deals", 1, ["dealname"],
                                                         ["companies", "line_items"])
    assert record.associated_ids("line_items") == ["70"]
    assert record.associated_ids("companies") == ["5"] and record.primary_company_id() == "5"


@pytest.mark.parametrize("associations", [
    {"lineItems": {"results": [{"id": "70"}]}},
    {"line items": [{"id": "70"}]},
    {"line items": {"results": [{"id": "70"}], "paging": {"next": {"after": "100"}}}},
])
async def test_hubspot_associations_we_do_not_recognise_are_an_error(associations):
    deal = {"id": "1", "properties": {}, "associations": associations}
    with pytest.raises(ServiceError) as caught:
        await hubspot(json_answer(deal)).get_object("deals", 1, [], ["line_items"])
    assert caught.value.retryable and caught.value.category == "UNEXPECTED_RESPONSE"


async def test_concurrent_askers_of_an_association_type_share_one_read_and_a_failure_is_not_kept():
    reads: list[str] = []
    fail = [True]

    async def answer(request: httpx.Request) -> httpx.Response:
        reads.append(request.url.path)
        await asyncio.sleep(0.05)  # the burst's other mirrors ask meanwhile
        if fail[0]:
            return httpx.Response(500, json={"message": "try again"})
        return httpx.Response(200, json={"results": [
            {"category": "HUBSPOT_DEFINED", "typeId": 409, "label": None},
            {"category": "HUBSPOT_DEFINED", "typeId": 410, "label": "Primary"}]})

    client = HubSpotClient("http://hubspot.test", "token", transport=httpx.MockTransport(answer))
    failed = await asyncio.gather(*(client.default_type_id("line_items", "invoices")
                                    for _ in range(20)), return_exceptions=True)
    assert len(reads) == 1 and all(isinstance(f, ServiceError) for f in failed)
    fail[0] = False
    ids = await asyncio.gather(*(client.default_type_id("line_items", "invoices") for _ in range(20)))
    assert ids == [409] * 20 and len(reads) == 2  # read again after the failure, once
    assert await client.default_type_id("line_items", "invoices") == 409 and len(reads) == 2
