"""Exactly once under faults (docs/guarantees.md): each test fails if its guarantee breaks.

All on the session stack: real Temporal dev server, simulators over HTTP, fast retry policy.
Worker kills and server restarts are in test_crash_recovery.py.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from hubspot_api.signature import signed_headers
from simulators.driver import build_execution_body
from tests.conftest import PORTAL
from tests.test_deal_actions import scheduled_steps, seed_deal
from workflows.models import record_workflow_id, workflow_id
from workflows.runs import find_by_callback_id, outcome

SECRET = "demo-client-secret"

CREATES = {
    # action: (Kleer PUT path, kind, id property, object type)
    "create-client": ("/client", "client", "kleer_id", "COMPANY"),
    "create-invoice": ("/client/invoice", "invoice", "kleer_invoice_id", "DEAL"),
    "create-agreement": ("/client/agreement", "agreement", "kleer_agreement_id", "DEAL"),
    "create-project": ("/client-project", "project", "kleer_project_id", "DEAL"),
}


def enrolled(stack, action: str, name: str) -> str:
    if CREATES[action][3] == "COMPANY":
        return stack.hubspot.create_object(PORTAL, "companies", {"name": name})
    deal_id, _ = seed_deal(stack, props={"dealname": name})
    return deal_id


def kleer_records(stack, kind: str, object_id: str, action: str) -> list[dict]:
    if kind == "project":
        return [p for p in stack.kleer.records(1, "project") if p.get("name") == f"P{object_id}"]
    marker = f"hubspot:{PORTAL}:{CREATES[action][3].lower()}:{object_id}:{kind}"
    return [r for r in stack.kleer.records(1, kind) if r.get("foreign-id") == marker]


def hubspot_type(action: str) -> str:
    return "companies" if CREATES[action][3] == "COMPANY" else "deals"


async def assert_exactly_once(stack, run, action: str, tag: str, late_s: float = 0) -> None:
    """One run of `action` under the faults set up: created, one Kleer record, its id written
    back, one completion. `late_s`: wait so long for writes still in flight (a late commit)."""
    path, kind, id_property, object_type = CREATES[action]
    object_id = enrolled(stack, action, f"{tag} {action}")
    inputs = {"name": f"P{object_id}"} if action in ("create-project", "create-client") else {}
    out = await run(action, object_type, object_id, inputs)
    assert out["result"] == "created", out
    await asyncio.sleep(late_s)
    records = kleer_records(stack, kind, object_id, action)
    assert [str(r["id"]) for r in records] == [out["kleer_id"]], records
    record = stack.hubspot.get_object(PORTAL, hubspot_type(action), object_id)
    assert record["properties"][id_property] == out["kleer_id"]
    assert stack.hubspot.callbacks()[out["callback_id"]]["state"] == "completed"
    assert stack.hubspot.callbacks()[out["callback_id"]]["completions"] == 1


@pytest.mark.parametrize("action", list(CREATES))
async def test_lost_kleer_create_response_makes_no_duplicate(stack, run, action):
    rule = stack.kleer.faults.add(method="PUT", path_contains=CREATES[action][0],
                                  mode="commit_then_drop", count=1)
    await assert_exactly_once(stack, run, action, "drop")
    assert rule.applied == 1


@pytest.mark.parametrize("action", list(CREATES))
async def test_kleer_timeout_after_commit_makes_no_duplicate(stack, run, action):
    """The create is slower than our HTTP timeout: Kleer commits, we never hear back."""
    rule = stack.kleer.faults.add(method="PUT", path_contains=CREATES[action][0], mode="latency",
                                  latency_ms=2600, count=1)
    await assert_exactly_once(stack, run, action, "slow")
    assert rule.applied == 1


async def test_lost_hubspot_answers_do_not_duplicate_the_sync_or_callback(stack, run):
    for fault in ("/crm/v3/objects/deals/", "/crm/v3/objects/invoices/batch/create",
                  "/crm/v3/objects/line_items/batch/create", "/complete"):
        stack.hubspot.faults.add(path_contains=fault, mode="commit_then_drop", count=1,
                                 method="PATCH" if "deals" in fault else "POST")
    deal_id, _ = seed_deal(stack)
    out = await run("create-invoice", "DEAL", deal_id)
    assert out["result"] == "created", out
    assert all(r["count"] == 0 for r in stack.hubspot.faults.list())
    [mirror] = stack.hubspot.find_objects(PORTAL, "invoices", kleer_id=out["kleer_id"])
    items = stack.hubspot.associations_of(PORTAL, "invoices", mirror["id"], "line_items")
    assert len(items) == 2  # the dropped batch was archived and created again, not doubled
    result = await outcome(stack.client.get_workflow_handle(out["workflow_id"]))
    assert result.callback.startswith("closed")  # the committed completion answered "already"


async def test_a_mirror_made_by_an_attempt_that_failed_before_associating_it_is_associated(
        stack, run):
    """An update whose mirror is gone upserts a new one, then associates it. When that attempt
    fails between the two, the retry's upsert answers "not new": it associates all the same."""
    deal_id, _ = seed_deal(stack)
    created = await run("create-agreement", "DEAL", deal_id, {})
    [old] = stack.hubspot.find_objects(PORTAL, "subscriptions", kleer_id=created["kleer_id"])
    stack.hubspot.archive_object(PORTAL, "subscriptions", old["id"])  # deleted in HubSpot
    rule = stack.hubspot.faults.add(method="PUT", path_contains="/associations/default/deals",
                                    status=503, count=1)
    out = await run("update-agreement", "DEAL", deal_id, {"po_number": "again"})
    assert out["result"] == "updated", out
    assert rule.applied == 1
    [mirror] = stack.hubspot.find_objects(PORTAL, "subscriptions", kleer_id=created["kleer_id"])
    assert mirror["id"] != old["id"]
    assert stack.hubspot.associations_of(PORTAL, "subscriptions", mirror["id"], "deals") == [
        deal_id]
    items = stack.hubspot.associations_of(PORTAL, "subscriptions", mirror["id"], "line_items")
    assert len(items) == 2


async def test_redelivery_while_running_and_after_starts_one_run(stack, run, driver):
    stack.kleer.faults.add(method="PUT", path_contains="/client", mode="latency", latency_ms=1500,
                           count=1)
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": "Redelivered AB"})
    callback_id = f"cb-redeliver-{company}"
    url = stack.action_url("create-client")
    first = asyncio.create_task(driver.execute(PORTAL, "COMPANY", int(company), {"name": "R AB"},
                                               callback_id=callback_id, action_url=url))
    await asyncio.sleep(0.3)
    repeats = await asyncio.gather(*(driver.execute(
        PORTAL, "COMPANY", int(company), {"name": "R AB"}, callback_id=callback_id,
        action_url=url) for _ in range(3)))
    assert (await first).status_code == 200 and all(r.status_code == 200 for r in repeats)
    # While the run works, a re-delivery is answered as the first delivery was: pending.
    assert all(r.response_json["outputFields"]["hs_execution_state"] == "BLOCK" for r in repeats)
    out = await driver.wait_for_completion(callback_id)
    late = await driver.execute(PORTAL, "COMPANY", int(company), {"name": "R AB"},
                                callback_id=callback_id, action_url=url)
    assert out["result"] == "created"
    # After it closed, with its outcome: HubSpot, which re-sent because it did not get our first
    # answer, may never have taken the callback the run completed, and must not wait for another.
    assert late.status_code == 200
    assert late.response_json["outputFields"] == {"hs_execution_state": "SUCCESS", "result": "created",
                                           "kleer_id": out["kleer_id"], "error_message": ""}
    assert len([c for c in stack.kleer.records(1, "client")
                if c.get("foreign-id", "").endswith(f":company:{company}:client")]) == 1
    assert await find_by_callback_id(stack.client, callback_id) == [
        workflow_id("create-client", "COMPANY", company, callback_id)]


async def test_update_agreement_redelivered_while_running_applies_once(stack, run, driver):
    deal_id, _ = seed_deal(stack)
    created = await run("create-agreement", "DEAL", deal_id)
    stack.kleer.faults.add(method="POST", path_contains="/client/agreement/", mode="latency",
                           latency_ms=1500, count=1)
    callback_id = f"cb-update-twice-{deal_id}"
    url = stack.action_url("update-agreement")
    deliveries = await asyncio.gather(*(driver.execute(
        PORTAL, "DEAL", int(deal_id), {"po_number": "PO-1"}, callback_id=callback_id,
        action_url=url) for _ in range(4)))
    assert all(d.status_code == 200 for d in deliveries)
    out = await driver.wait_for_completion(callback_id)
    assert out["result"] == "updated"
    assert stack.kleer.get(1, "agreement", int(created["kleer_id"]))["revision-nr"] == 2


async def test_hubspot_429_storm_honours_retry_after(stack, run):
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": "Storm AB"})
    stack.hubspot.calls.clear()
    rule = stack.hubspot.faults.add(path_contains="/crm/v3/objects/companies", status=429,
                                    retry_after=1, count=3)
    started = time.monotonic()
    out = await run("create-client", "COMPANY", company, {"name": "Storm AB"})
    assert out["result"] == "created" and rule.applied == 3
    # Three 429s each asking for 1 s: the run cannot have finished sooner.
    assert time.monotonic() - started >= 3.0
    reads = [c for c in stack.hubspot.calls.list(path_contains=f"/companies/{company}")
             if c["method"] == "GET"]
    gaps = [b["ts"] - a["ts"] for a, b in zip(reads, reads[1:], strict=False)]
    assert len(reads) == 4 and all(gap >= 0.95 for gap in gaps), gaps


async def test_real_rate_limit_429s_are_retried(stack, run):
    """The simulator's own rolling-window limit (not an injected fault)."""
    stack.hubspot.limiter.configure(4, 2000, key=PORTAL)
    try:
        companies = [stack.hubspot.create_object(PORTAL, "companies", {"name": f"Limited {i}"})
                     for i in range(4)]
        stack.hubspot.calls.clear()
        outs = await asyncio.gather(*(run("create-client", "COMPANY", c, {"name": f"L{c}"})
                                      for c in companies))
        assert [o["result"] for o in outs] == ["created"] * 4
        assert any(c["status"] == 429 for c in stack.hubspot.calls.list())
    finally:
        stack.hubspot.limiter.configure(190, 10_000, key=PORTAL)


async def test_5xx_and_429_from_kleer_and_callbacks_are_retried(stack, run):
    stack.kleer.faults.add(path_contains="/client", status=503, count=2)
    stack.kleer.faults.add(path_contains="/client", status=429, retry_after=1, count=1)
    stack.hubspot.faults.add(path_contains="/complete", status=502, count=2)
    stack.hubspot.faults.add(path_contains="/crm/v3/objects/companies", method="PATCH",
                             status=500, count=2)
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": "Flaky AB"})
    out = await run("create-client", "COMPANY", company, {"name": "Flaky AB"})
    assert out["result"] == "created", out
    assert all(r["count"] == 0 for r in stack.kleer.faults.list() + stack.hubspot.faults.list())
    assert len([c for c in stack.kleer.records(1, "client") if c["name"] == "Flaky AB"]) == 1


async def test_unknown_or_expired_callback_is_final(stack):
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": "Expired AB"})
    callback_id = f"cb-never-registered-{company}"  # HubSpot does not know it: 404 on complete
    body = json.dumps(build_execution_body(PORTAL, "COMPANY", int(company), {"name": "E AB"},
                                           callback_id=callback_id)).encode()
    url = stack.action_url("create-client")
    async with httpx.AsyncClient() as http:
        response = await http.post(url, content=body,
                                   headers=signed_headers(SECRET, "POST", url, body))
    assert response.status_code == 200
    handle = stack.client.get_workflow_handle(
        workflow_id("create-client", "COMPANY", company, callback_id))
    result = await asyncio.wait_for(outcome(handle), 30)
    assert result.result == "created" and result.callback.startswith("closed")


async def test_deleted_record_fails_without_retrying_forever(stack, run):
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": "Gone AB"})
    stack.hubspot.archive_object(PORTAL, "companies", company)
    out = await run("create-client", "COMPANY", company, {"name": "Gone AB"})
    assert out["hs_execution_state"] == "FAIL_CONTINUE"
    assert f"company {company} was not found" in out["error_message"]
    deal_id, company_id = seed_deal(stack)
    stack.hubspot.archive_object(PORTAL, "deals", deal_id)
    out = await run("create-invoice", "DEAL", deal_id)
    assert out["hs_execution_state"] == "FAIL_CONTINUE" and "not found" in out["error_message"]


@pytest.mark.parametrize("action", ["create-client", "create-invoice"])
async def test_write_back_rejected_reports_the_created_id(stack, run, action):
    """create-invoice writes its id back in the mirror's step (`write-back-with-mirror`): the
    message still names the write-back, not the mirror."""
    _, kind, id_property, _ = CREATES[action]
    object_id = enrolled(stack, action, "Half")
    stack.hubspot.faults.add(path_contains=f"/crm/v3/objects/{hubspot_type(action)}",
                             method="PATCH", status=400, count=1)
    out = await run(action, CREATES[action][3], object_id,
                    {"name": "Half AB"} if action == "create-client" else {})
    assert out["hs_execution_state"] == "FAIL_CONTINUE" and out["kleer_id"], out
    assert out["error_message"].startswith(
        f"Kleer {kind} {out['kleer_id']} was created, but writing {id_property} back failed"), out
    # The write's step failed before completing: the failure is the one completion HubSpot got.
    assert stack.hubspot.callbacks()[out["callback_id"]]["completions"] == 1


async def test_mirror_rejected_after_the_write_back_reports_the_sync(stack, run):
    deal_id, _ = seed_deal(stack)
    rule = stack.hubspot.faults.add(path_contains="/crm/v3/objects/invoices", method="POST",
                                    status=400, count=1)
    out = await run("create-invoice", "DEAL", deal_id)
    assert out["hs_execution_state"] == "FAIL_CONTINUE" and rule.applied == 1, out
    assert out["error_message"].startswith(
        f"Kleer invoice {out['kleer_id']} was saved, but syncing it to HubSpot failed"), out
    deal = stack.hubspot.get_object(PORTAL, "deals", deal_id)
    assert deal["properties"]["kleer_invoice_id"] == out["kleer_id"]  # written before the mirror
    assert stack.hubspot.callbacks()[out["callback_id"]]["completions"] == 1


async def test_a_completion_refused_in_the_write_step_is_delivered_by_the_run(stack, run):
    """The write's last HubSpot step also completes the callback (`complete-in-last-write`).
    When HubSpot refuses that completion, the step still succeeds, so the write-back is not
    repeated, and the run's own complete step delivers the outcome, once."""
    rule = stack.hubspot.faults.add(path_contains="/complete", method="POST", status=503, count=1)
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": "Told Later AB"})
    stack.hubspot.calls.clear()
    out = await run("create-client", "COMPANY", company, {"name": "Told Later AB"})
    assert out["result"] == "created" and rule.applied == 1, out
    callback = stack.hubspot.callbacks()[out["callback_id"]]
    assert (callback["state"], callback["completions"]) == ("completed", 1)
    write_backs = [c for c in stack.hubspot.calls.list()
                   if "/objects/companies" in c["path"] and c["method"] in ("PATCH", "POST")
                   and "search" not in c["path"] and "batch/read" not in c["path"]]
    assert len(write_backs) == 1, write_backs
    write = record_workflow_id(PORTAL, "client", "COMPANY", company)
    assert await scheduled_steps(stack, write) == ["kleer.create", "hubspot.write_back_and_complete"]
    assert await scheduled_steps(stack, out["workflow_id"]) == ["hubspot.read_record",
                                                                "hubspot.complete"]


async def test_wrong_types_and_unknown_object_type_are_4xx(stack):
    url = stack.action_url("create-client")
    bodies = []
    body = build_execution_body(PORTAL, "COMPANY", 1, {}, callback_id="cb-types")
    body["inputFields"] = {"name": 5, "payment_days": ["x"]}
    bodies.append(body)
    body = build_execution_body(PORTAL, "TICKET", 1, {}, callback_id="cb-ticket")
    bodies.append(body)
    body = build_execution_body(PORTAL, "COMPANY", "not-a-number", {}, callback_id="cb-id")
    bodies.append(body)
    async with httpx.AsyncClient() as http:
        for item in bodies:
            raw = json.dumps(item).encode()
            response = await http.post(url, content=raw,
                                       headers=signed_headers(SECRET, "POST", url, raw))
            assert response.status_code == 422, response.text
