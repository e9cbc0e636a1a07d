"""The HTTP front door: signatures, request validation, one workflow per callbackId."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from hubspot_api.signature import signed_headers
from simulators.driver import build_execution_body
from tests.conftest import PORTAL
from workflows.runs import find_by_callback_id

SECRET = "demo-client-secret"


async def post(stack, body: bytes, headers: dict[str, str], action: str = "create-client"):
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(stack.action_url(action), content=body,
                               headers={"Content-Type": "application/json", **headers})


def execution(stack, callback_id: str, name: str = "Signed AB") -> bytes:
    cid = stack.hubspot.create_object(PORTAL, "companies", {"name": name})
    stack.hubspot.expect_callback(PORTAL, callback_id)
    return json.dumps(build_execution_body(PORTAL, "COMPANY", int(cid), {"name": name},
                                           callback_id=callback_id)).encode()


async def workflow_exists(stack, callback_id: str) -> bool:
    """Any run of this execution, found by its search attribute (visibility lags a little)."""
    for _ in range(10):
        if await find_by_callback_id(stack.client, callback_id):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_v3_and_v2_signatures_are_accepted(stack):
    for version in ("v3", "v2"):
        body = execution(stack, f"cb-ok-{version}")
        url = stack.action_url("create-client")
        response = await post(stack, body, signed_headers(SECRET, "POST", url, body, version))
        assert response.status_code == 200, response.text
        assert response.json() == {"outputFields": {"hs_execution_state": "BLOCK",
                                                     "hs_expiration_duration": "P1D"}}
        assert await workflow_exists(stack, f"cb-ok-{version}")


async def test_bad_signatures_are_rejected_and_start_nothing(stack):
    url = stack.action_url("create-client")
    cases = {}
    body = execution(stack, "cb-tampered")
    headers = signed_headers(SECRET, "POST", url, body)
    cases["cb-tampered"] = (body.replace(b"Signed AB", b"Evil AB"), headers)
    body = execution(stack, "cb-wrong-secret")
    cases["cb-wrong-secret"] = (body, signed_headers("not-the-secret", "POST", url, body))
    body = execution(stack, "cb-stale")
    stale = int(time.time() * 1000) - 6 * 60 * 1000
    cases["cb-stale"] = (body, signed_headers(SECRET, "POST", url, body, timestamp_ms=stale))
    body = execution(stack, "cb-unsigned")
    cases["cb-unsigned"] = (body, {})
    body = execution(stack, "cb-v2-tampered")
    cases["cb-v2-tampered"] = (body + b" ", signed_headers(SECRET, "POST", url, body, "v2"))
    for callback_id, (body, headers) in cases.items():
        response = await post(stack, body, headers)
        assert response.status_code == 401, (callback_id, response.text)
        assert "signature" in response.json()["message"]
        assert not await workflow_exists(stack, callback_id), callback_id


async def signed_post(stack, body: bytes, action: str = "create-client"):
    url = stack.action_url(action)
    return await post(stack, body, signed_headers(SECRET, "POST", url, body), action)


async def test_invalid_requests_get_clear_4xx(stack):
    response = await signed_post(stack, b"{not json")
    assert response.status_code == 400 and "body is not JSON" in response.text
    response = await signed_post(stack, json.dumps({"callbackId": "x"}).encode())
    assert response.status_code == 422
    assert {"origin", "object"} <= {e["loc"][0] for e in response.json()["detail"]}
    body = json.dumps(build_execution_body(PORTAL, "DEAL", 1, {}, callback_id="cb-type")).encode()
    response = await signed_post(stack, body)
    assert response.status_code == 422 and "runs on COMPANY records" in response.text
    body = json.dumps(build_execution_body(PORTAL, "DEAL", 1, {}, callback_id="cb-u")).encode()
    response = await signed_post(stack, body, action="create-nothing")
    assert response.status_code == 404
    huge = json.dumps(build_execution_body(PORTAL, "COMPANY", 1, {"name": "x" * 2_000_000},
                                           callback_id="cb-huge")).encode()
    response = await signed_post(stack, huge)
    assert response.status_code == 413
    for callback_id in ("cb-type", "cb-u", "cb-huge"):
        assert not await workflow_exists(stack, callback_id)


async def test_malformed_bodies_get_4xx_never_5xx(stack):
    """Bodies that used to reach a 500 or 503 (which HubSpot retries for days)."""
    deep = b"[" * 100_000 + b"]" * 100_000
    response = await signed_post(stack, deep)
    assert response.status_code == 400 and "nested too deeply" in response.json()["message"]
    response = await signed_post(stack, b'{"callbackId": "\xff"}')
    assert response.status_code == 400 and "not UTF-8" in response.json()["message"]
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": "Surrogate AB"})
    lone = json.dumps(build_execution_body(PORTAL, "COMPANY", int(company), {"name": "\udfff"},
                                           callback_id="cb-lone-surrogate")).encode()
    assert b"\\udfff" in lone
    response = await signed_post(stack, lone)
    assert response.status_code == 400 and "lone surrogate" in response.json()["message"]
    huge_id = json.dumps(build_execution_body(PORTAL, "COMPANY", 2**64, {"name": "X"},
                                              callback_id="cb-huge-id")).encode()
    response = await signed_post(stack, huge_id)
    assert response.status_code == 422
    for callback_id in ("cb-lone-surrogate", "cb-huge-id"):
        assert not await workflow_exists(stack, callback_id)


async def test_a_body_that_never_arrives_is_answered_within_seconds(stack):
    host, port = stack.api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /hubspot/actions/create-client HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"callb")
    await writer.drain()
    started = time.monotonic()
    head = await asyncio.wait_for(reader.readline(), 15)
    writer.close()
    assert head.startswith(b"HTTP/1.1 408"), head
    assert time.monotonic() - started < 8


def test_no_client_secret_no_api_and_a_blank_secret_verifies_nothing():
    from api import create_app
    from hubspot_api.signature import SignatureError, verify
    from settings import PortalCredentials, Settings

    portals = {PORTAL: PortalCredentials(PORTAL, "t", 1, "k")}
    with pytest.raises(ValueError, match="HUBSPOT_CLIENT_SECRET"):
        create_app(Settings(hubspot_client_secret="", portals=portals))
    body, url = b"{}", "http://x/hubspot/actions/create-client"
    for version in ("v2", "v3"):
        with pytest.raises(SignatureError, match="no client secret"):
            verify("", "POST", url, body,
                   {k.lower(): v for k, v in signed_headers("", "POST", url, body, version).items()})


async def test_unknown_portal_fails_at_once(stack):
    body = json.dumps(build_execution_body(99999, "COMPANY", 1, {"name": "X"},
                                           callback_id="cb-unknown-portal")).encode()
    response = await signed_post(stack, body)
    assert response.status_code == 200
    out = response.json()["outputFields"]
    assert out["hs_execution_state"] == "FAIL_CONTINUE"
    assert "portal 99999 is not connected" in out["error_message"]
    assert not await workflow_exists(stack, "cb-unknown-portal")


async def test_duplicate_delivery_starts_one_workflow(stack, run):
    callback_id = "cb-duplicate-1"
    body = execution(stack, callback_id, name="Duplicate AB")
    answers = await asyncio.gather(*(signed_post(stack, body) for _ in range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    outputs = await run.driver.wait_for_completion(callback_id, timeout_s=60)
    assert outputs["result"] == "created"
    # Delivered again after it finished: still one run, one client.
    assert (await signed_post(stack, body)).status_code == 200
    names = [c["name"] for c in stack.kleer.records(1, "client")]
    assert names.count("Duplicate AB") == 1
    assert len(await find_by_callback_id(stack.client, callback_id)) == 1
    assert stack.hubspot.callbacks()[callback_id]["completions"] == 1


async def test_health(stack):
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{stack.api.url}/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


async def test_overload_is_answered_429_at_once_and_nothing_is_lost(stack):
    """More starts in flight than MAX_STARTS_IN_FLIGHT: 429 with Retry-After within
    milliseconds; HubSpot's retry then gets its workflow started (none lost)."""
    from dataclasses import replace

    from api import create_app

    started: list[str] = []

    class SlowTemporal:  # a saturated Temporal: every start takes a second
        async def start_workflow(self, *args, id: str, **kwargs):
            await asyncio.sleep(1.0)
            started.append(id)

    app = create_app(replace(stack.settings, max_starts_in_flight=2), SlowTemporal(),
                     stack.services)
    bodies = [execution(stack, f"cb-overload-{n}", name=f"Overload {n} AB") for n in range(6)]
    url = "http://api.test/hubspot/actions/create-client"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        async def deliver(body: bytes) -> tuple[list[int], float]:
            statuses, first = [], None
            while True:
                sent = time.monotonic()
                answer = await http.post(url, content=body, headers={
                    "Content-Type": "application/json", **signed_headers(SECRET, "POST", url, body)})
                statuses.append(answer.status_code)
                if answer.status_code != 429:
                    return statuses, first or 0.0
                first = first or time.monotonic() - sent
                assert answer.headers["Retry-After"] == "2"
                await asyncio.sleep(0.2)  # HubSpot would wait Retry-After; shortened here

        results = await asyncio.gather(*(deliver(b) for b in bodies))
    refused = [first for statuses, first in results if statuses[0] == 429]
    assert len(refused) == 4 and max(refused) < 0.5, results  # refused at once, not after 1 s
    assert all(statuses[-1] == 200 for statuses, _ in results)
    assert len(started) == 6 and len(set(started)) == 6  # every execution started, once


async def test_a_burst_for_a_configured_portal_reads_the_database_at_most_once_a_second():
    """An execution's portal check answers from a cache during a burst: a portal from the
    environment (not installed) no longer cost a database read per execution (a fifth of the
    API's CPU at 100 executions/s, py-spy)."""
    from api import create_app
    from pacing import LocalLimiter, Pacer
    from portals.directory import PortalDirectory
    from portals.services import PortalServices
    from settings import PortalCredentials, Settings

    class Store:
        reads = 0

        async def portal(self, portal_id: int):
            Store.reads += 1
            return None  # not installed: configured in the environment

    class Temporal:
        started: list[str] = []

        async def start_workflow(self, *args, id: str, **kwargs):
            Temporal.started.append(id)

    settings = Settings(hubspot_client_secret=SECRET, portals={
        PORTAL: PortalCredentials(PORTAL, "hs-token", 1, "kleer-key")})
    directory = PortalDirectory(settings, store=Store())  # type: ignore[arg-type]
    app = create_app(settings, client=Temporal(),  # type: ignore[arg-type]
                     services=PortalServices(directory, Pacer(LocalLimiter()), store=Store()))  # type: ignore[arg-type]
    url = "http://api.test/hubspot/actions/create-client"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        for n in range(40):
            body = json.dumps(build_execution_body(PORTAL, "COMPANY", n + 1, {"name": "X"},
                                                   callback_id=f"cb-cache-{n}")).encode()
            answer = await http.post(url, content=body, headers={
                "Content-Type": "application/json", **signed_headers(SECRET, "POST", url, body)})
            assert answer.json()["outputFields"]["hs_execution_state"] == "BLOCK"
    assert len(Temporal.started) == 40
    assert Store.reads <= 2, Store.reads  # 40 before: one per execution


async def test_a_portal_check_refreshes_its_cached_answer_ahead_of_its_expiry():
    """Past `refresh_after_s` the cached standing still answers at once while one background read
    refreshes it (under steady traffic no request waits on the database); past `max_age_s` the
    read is in line again, so a disconnect or a database that stopped answering is noticed."""
    from portals.directory import PortalDirectory
    from settings import Settings
    from storage.db import StorageUnavailable

    class Store:
        reads = 0
        answer: object = "first"
        gate = asyncio.Event()

        async def portal(self, portal_id: int):
            Store.reads += 1
            if Store.reads > 1:
                await Store.gate.wait()
            if isinstance(Store.answer, Exception):
                raise Store.answer
            return Store.answer

    directory = PortalDirectory(Settings(), store=Store())  # type: ignore[arg-type]
    ask = lambda: directory.installed(PORTAL, max_age_s=0.5, refresh_after_s=0.05)  # noqa: E731
    assert await ask() == "first" and Store.reads == 1
    assert await ask() == "first" and Store.reads == 1  # young: no read at all
    await asyncio.sleep(0.1)
    Store.answer = "second"
    # The background read is blocked on the gate: answering anyway proves it is not in line.
    assert await asyncio.wait_for(ask(), 0.05) == "first"
    assert await asyncio.wait_for(ask(), 0.05) == "first" and Store.reads == 2  # one refresh
    Store.gate.set()
    await asyncio.sleep(0.01)
    assert await ask() == "second" and Store.reads == 2
    Store.answer = StorageUnavailable("database down")
    await asyncio.sleep(0.1)
    assert await ask() == "second"  # still young enough: the refresh fails in the background
    await asyncio.sleep(0.01)
    assert Store.reads == 3
    await asyncio.sleep(0.5)
    with pytest.raises(StorageUnavailable):
        await ask()  # past max_age_s: read in line
