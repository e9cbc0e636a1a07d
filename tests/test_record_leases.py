"""One execution at a time writes a Kleer record, through a lease in the database
(activities/leases.py), on SQLite and PostgreSQL: the store's take/take-over/release, and the
actions on a stack whose workers have a database, where the exactly-once tests of
test_exactly_once.py (which run without a database, on the child workflow) must hold too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType

from local.stack import (
    DEMO_CLIENT_SECRET,
    DEMO_HUBSPOT_TOKEN,
    DEMO_KLEER_COMPANY,
    DEMO_KLEER_KEY,
    LocalStack,
)
from settings import PortalCredentials, Settings, StepPolicy
from storage import Store
from tests.conftest import DATABASE_SECRETS_KEY, PORTAL, Runner, fault_free_driver
from tests.test_deal_actions import seed_deal
from tests.test_exactly_once import assert_one_client_per_company, assert_one_invoice_per_deal
from tests.test_faults import kleer_records
from workflows.models import record_workflow_id

# --- the store ------------------------------------------------------------------------------


async def test_a_lease_has_one_holder_until_released(store: Store):
    first = await store.take_record("rec-1", "run-a")
    assert (first.holder, first.first) == ("run-a", True)
    held = await store.take_record("rec-1", "run-b")
    assert (held.holder, held.first) == ("run-a", False)
    again = await store.take_record("rec-1", "run-a")  # a retried take by the holder
    assert (again.holder, again.first) == ("run-a", False)
    assert not await store.release_record("rec-1", "run-b")  # not the holder's: no effect
    assert (await store.take_record("rec-1", "run-b")).holder == "run-a"
    assert await store.release_record("rec-1", "run-a")
    after = await store.take_record("rec-1", "run-b")
    assert (after.holder, after.first) == ("run-b", False)  # written before: look first
    assert (await store.take_record("rec-2", "run-b")).first  # other records are their own


async def test_only_one_of_many_concurrent_takers_gets_the_lease(store: Store):
    takes = await asyncio.gather(*(store.take_record("rec-c", f"run-{n}") for n in range(20)))
    holders = {t.holder for t in takes}
    assert len(holders) == 1
    [winner] = holders
    assert [t.first for t in takes if t.holder == winner].count(True) == 1


async def test_a_lease_is_taken_over_only_from_the_holder_named(store: Store):
    await store.take_record("rec-t", "gone")
    assert not await store.take_over_record("rec-t", "someone-else", "run-b")
    assert await store.take_over_record("rec-t", "gone", "run-b")
    assert not await store.take_over_record("rec-t", "gone", "run-c")  # already taken over
    assert (await store.take_record("rec-t", "run-c")).holder == "run-b"
    assert not await store.release_record("rec-t", "gone")  # the late release frees nothing
    assert (await store.take_record("rec-t", "run-c")).holder == "run-b"


async def test_many_leases_are_taken_at_once_except_those_held(store: Store):
    """The outbound sync's page: one upsert for all its records, the held ones left alone."""
    await store.take_record("rec-m2", "action-run")
    holders = await store.take_records(["rec-m1", "rec-m2", "rec-m3", "rec-m1"], "sync-run")
    assert holders == {"rec-m1": "sync-run", "rec-m2": "action-run", "rec-m3": "sync-run"}
    assert await store.take_records(["rec-m1"], "sync-run") == {"rec-m1": "sync-run"}  # retried
    assert (await store.take_record("rec-m1", "action-run")).holder == "sync-run"
    assert await store.release_records(["rec-m1", "rec-m2", "rec-m3"], "sync-run") == 2
    assert (await store.take_record("rec-m2", "x")).holder == "action-run"  # not the sync's
    after = await store.take_record("rec-m3", "action-run")
    assert (after.holder, after.first) == ("action-run", False)  # written before: look first
    assert await store.take_records([], "sync-run") == {}


# --- the actions on a stack with a database ------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def lease_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                      postgres_url: str | None) -> AsyncIterator[LocalStack]:
    state = tmp_path_factory.mktemp("leases")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{state / 'kleer.db'}"
    elif postgres_url is None:
        pytest.skip("PostgreSQL is not reachable (.ci/run starts it)")
    else:
        url = postgres_url
    settings = Settings(
        task_queue=f"kleer-hubspot-leases-{request.param}", http_timeout_s=3, create_settle_s=2,
        hubspot_client_secret=DEMO_CLIENT_SECRET,
        portals={PORTAL: PortalCredentials(PORTAL, DEMO_HUBSPOT_TOKEN, DEMO_KLEER_COMPANY,
                                           DEMO_KLEER_KEY)},
        database_url=url, database_secrets_key=DATABASE_SECRETS_KEY,
        sync_interval_s=24 * 3600,  # no outbound sync during these tests
        step_policy=StepPolicy(start_to_close_s=10, initial_retry_s=0.2, max_retry_s=2,
                               give_up_after_s=60),
    )
    async with LocalStack(settings=settings, log_dir=state) as stack:
        yield stack


@pytest.fixture
async def lease_run(lease_stack: LocalStack) -> AsyncIterator[Runner]:
    async with fault_free_driver(lease_stack) as driver:
        yield Runner(lease_stack, driver)


async def _events(stack: LocalStack, wf_id: str) -> list:
    return [e async for e in stack.client.get_workflow_handle(wf_id).fetch_history_events()]


async def _assert_written_under_a_lease(stack: LocalStack, wf_id: str) -> None:
    """The run wrote in its own history, under the lease: no child workflow, the two local
    activities recorded as markers, the Kleer create among its own activities."""
    events = await _events(stack, wf_id)
    types = [e.event_type for e in events]
    assert EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED not in types
    markers = [e for e in events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
               and e.marker_recorded_event_attributes.marker_name == "core_local_activity"]
    assert len(markers) >= 2, types
    activities = [e.activity_task_scheduled_event_attributes.activity_type.name for e in events
                  if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    assert "kleer.create" in activities, activities
    # The write's last step completed the callback (`complete-in-last-write`): no step after it.
    assert activities[-1] == "hubspot.write_back_and_complete", activities


async def test_two_client_actions_on_one_company_at_once_make_one_client_under_leases(
        lease_stack, lease_run):
    stack = lease_stack
    stack.kleer.faults.add(method="PUT", path_contains="/client", mode="latency", latency_ms=600)
    companies = [stack.hubspot.create_object(PORTAL, "companies", {"name": f"Lease Twin {n} AB"})
                 for n in range(3)]
    outs = await asyncio.gather(*(
        lease_run(action, "COMPANY", cid, {"name": f"Lease Twin {n} AB"}
                  if action == "create-client" else {})
        for n, cid in enumerate(companies)
        for action in ("create-client", "create-client-from-mappings")))
    assert_one_client_per_company(stack, companies, outs)
    for out in outs:
        if out["result"] == "created":
            await _assert_written_under_a_lease(stack, out["workflow_id"])
        else:  # found the client by its marker under the lease, or read the id written back
            types = [e.event_type for e in await _events(stack, out["workflow_id"])]
            assert EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED not in types
    # Every lease was given back.
    store = stack.services.store
    for cid in companies:
        key = record_workflow_id(PORTAL, "client", "COMPANY", cid)
        assert (await store.take_record(key, "probe")).holder == "probe"
        await store.release_record(key, "probe")


async def test_two_invoice_executions_on_one_deal_at_once_make_one_invoice_under_leases(
        lease_stack, lease_run):
    stack = lease_stack
    stack.kleer.faults.add(method="PUT", path_contains="/client/invoice", mode="latency",
                           latency_ms=600)
    deals = [seed_deal(stack, props={"dealname": f"Lease invoice {n}"})[0] for n in range(2)]
    outs = await asyncio.gather(*(lease_run("create-invoice", "DEAL", deal, {})
                                  for deal in deals for _ in range(2)))
    assert_one_invoice_per_deal(stack, deals, outs)


async def test_a_lease_left_by_a_closed_run_is_taken_over(lease_stack, lease_run):
    """A run that holds a record's lease and is terminated never releases it: the next execution
    waits while that run is open, takes the lease over once it has closed, and looks before it
    creates (so what the closed run made is found, not doubled)."""
    stack = lease_stack
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": "Orphaned Lease AB"})
    key = record_workflow_id(PORTAL, "client", "COMPANY", company)
    # A run that is open and holds the lease: any workflow id Temporal knows as running.
    holder = f"lease-holder-{uuid.uuid4().hex[:8]}"
    handle = await stack.client.start_workflow(
        "NoSuchWorkflow", id=holder, task_queue=f"nobody-polls-{holder}",
        execution_timeout=timedelta(minutes=5))
    assert (await stack.services.store.take_record(key, holder)).first
    execution = asyncio.create_task(lease_run("create-client", "COMPANY", company,
                                              {"name": "Orphaned Lease AB"}))
    await asyncio.sleep(3)
    assert not execution.done()  # waits while the holder's run is open
    assert not kleer_records(stack, "client", company, "create-client")
    await handle.terminate(reason="test: the holder's run ends without releasing")
    out = await asyncio.wait_for(execution, 60)
    assert out["result"] == "created", out
    assert len(kleer_records(stack, "client", company, "create-client")) == 1
    events = await _events(stack, out["workflow_id"])
    assert any(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in events)  # it waited
    await _assert_written_under_a_lease(stack, out["workflow_id"])
    assert (await stack.services.store.take_record(key, "probe")).holder == "probe"
    await stack.services.store.release_record(key, "probe")
