"""Prometheus metrics: SDK runtime metrics and ours, on the process's METRICS_BIND endpoint."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import httpx

from telemetry import JsonFormatter
from tests.conftest import PORTAL


def _value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _scrape(stack) -> str:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://{stack.settings.metrics_bind}/metrics")
    assert response.status_code == 200
    return response.text


async def test_metrics_count_requests_results_and_calls(stack, run):
    before = await _scrape(stack)
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": "Metered AB"})
    stack.hubspot.faults.add(path_contains=f"/companies/{company}", status=429, retry_after=0,
                             count=1, method="GET")
    out = await run("create-client", "COMPANY", company, {"name": "Metered AB"})
    assert out["result"] == "created"
    failed = await run("create-client", "COMPANY", company, {"name": ""})
    assert failed["result"] == "skipped"  # kleer_id is set now
    after = await _scrape(stack)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("kleer_api_requests_total", action="create-client", outcome="started") == 2
    assert grew("kleer_executions_finished_total", action="create-client", result="created") == 1
    assert grew("kleer_executions_finished_total", action="create-client", result="skipped") == 1
    assert grew("kleer_http_calls_total", service="hubspot", status="429") == 1
    assert grew("kleer_http_calls_total", service="hubspot", status="2xx") >= 4
    assert grew("kleer_http_calls_total", service="kleer", status="2xx") >= 1  # the create
    # The SDK's own metrics are on the same endpoint.
    assert re.search(r"^temporal_\w+", after, re.M)


async def test_search_attributes_find_failed_runs_of_a_portal_and_action(stack, run):
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": "Findable AB"})
    out = await run("create-client", "COMPANY", company, {"name": "Findable AB",
                                                          "payment_days": "soon"})
    assert out["result"] == "failed"
    wanted = out["workflow_id"]
    query = (f"KleerPortalId = {PORTAL} AND KleerAction = 'create-client' "
             f"AND KleerResult = 'failed' AND HubSpotObjectId = '{company}'")
    for _ in range(50):  # visibility is eventually consistent
        found = [w async for w in stack.client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.1)
    assert [w.id for w in found] == [wanted]
    handle = stack.client.get_workflow_handle(wanted)
    description = await handle.describe()
    assert await description.static_summary() == f"create-client · portal {PORTAL} · COMPANY {company}"
    # The API's start carries no custom search attribute (the acknowledgement does not wait for
    # the server's indexing); the run sets them in its first workflow task's completion.
    events = [e async for e in handle.fetch_history_events()]
    started = events[0].workflow_execution_started_event_attributes
    assert not started.search_attributes.indexed_fields
    first_task = next(e.event_id for e in events
                      if e.HasField("workflow_task_completed_event_attributes"))
    upserts = [e.upsert_workflow_search_attributes_event_attributes for e in events
               if e.HasField("upsert_workflow_search_attributes_event_attributes")]
    ours = {"KleerPortalId", "KleerAction", "HubSpotObjectId", "HubSpotCallbackId"}
    assert [u.workflow_task_completed_event_id for u in upserts
            if set(u.search_attributes.indexed_fields) == ours] == [first_task]
    assert set(upserts[-1].search_attributes.indexed_fields) == {"KleerResult"}


def test_json_logs_carry_the_temporal_context():
    record = logging.LogRecord("temporalio.activity", logging.INFO, __file__, 1, "done %s",
                               ("x",), None)
    record.temporal_activity = {"workflow_id": "create-client-company-1-cb-1",
                                "activity_type": "kleer.create",
                                "attempt": 2, "heartbeat_details": "ignored"}
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "done x" and line["workflow_id"] == "create-client-company-1-cb-1"
    assert line["activity_type"] == "kleer.create" and line["attempt"] == 2
    assert "heartbeat_details" not in line
