"""The outbound sync under stress: a worker killed in the middle of a run (nothing lost, nothing
twice), and a sync running during a bulk enrollment (the actions go first)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from local.stack import DEMO_CLIENT_SECRET, DEMO_HUBSPOT_TOKEN, DEMO_KLEER_COMPANY, DEMO_KLEER_KEY, LocalStack
from local.stack import DEMO_PORTAL as PORTAL
from settings import PortalCredentials, Settings, StepPolicy
from simulators.driver import HubSpotDriver
from storage.records import SyncedRecord
from sync.models import SyncRequest, SyncSummary
from sync.workflow import OutboundSync
from tests.conftest import DATABASE_SECRETS_KEY

COMPANY = DEMO_KLEER_COMPANY
LIMIT = 60  # HubSpot requests per 10 s for this portal


@pytest.fixture(scope="module")
async def load_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalStack]:
    state = tmp_path_factory.mktemp("sync-load")
    settings = Settings(
        task_queue="kleer-hubspot-sync-load", http_timeout_s=5, kleer_rate_limit=50,
        database_url=f"sqlite+aiosqlite:///{state / 'kleer.db'}",
        database_secrets_key=DATABASE_SECRETS_KEY, sync_interval_s=24 * 3600,
        step_policy=StepPolicy(start_to_close_s=30, initial_retry_s=0.2, max_retry_s=2),
        portals={PORTAL: PortalCredentials(PORTAL, DEMO_HUBSPOT_TOKEN, COMPANY, DEMO_KLEER_KEY,
                                           hubspot_rate_limit=LIMIT)},
    )
    async with LocalStack(settings=settings, run_worker=False, log_dir=state,
                          hubspot_rate_limit=(LIMIT, 10_000)) as stack:
        yield stack


async def _linked_client(stack: LocalStack, name: str) -> int:
    """A Kleer client already linked to its company (as a first sync would have left it)."""
    company = stack.hubspot.create_object(PORTAL, "companies", {"name": name})
    client_id = stack.kleer.create(COMPANY, "client", {"name": name})
    stack.hubspot.portals[PORTAL].crm.update("companies", company, {"kleer_id": str(client_id)})
    await stack.services.store.save_synced(PORTAL, [SyncedRecord(
        kind="client", kleer_id=client_id, hubspot_id=company, digest="linked")])
    return client_id


def _invoices(stack: LocalStack, client_id: int, n: int) -> list[int]:
    return [stack.kleer.create(COMPANY, "invoice", {
        "client-ref": {"id": client_id}, "invoice-date": "2026-10-01", "due-date": "2027-10-01",
        "currency": "SEK", "certified": True, "sent": True, "remaining": 1000,
        "rows": [{"description": "A", "quantity": 1, "price": 500},
                 {"description": "B", "quantity": 1, "price": 500}]}) for _ in range(n)]


def _start(stack: LocalStack):
    return stack.client.start_workflow(
        OutboundSync.run, SyncRequest(portal_id=PORTAL), id=f"sync-load-{uuid.uuid4().hex[:8]}",
        task_queue=stack.settings.task_queue, result_type=SyncSummary)


async def test_a_worker_killed_mid_run_loses_and_doubles_nothing(load_stack, tmp_path):
    stack = load_stack
    client_id = await _linked_client(stack, "Many Invoices AB")
    invoices = _invoices(stack, client_id, 700)  # two pages of 500
    stack.hubspot.faults.add(path_contains="/invoices/batch/upsert", mode="latency", latency_ms=700)
    worker = stack.spawn_worker(tmp_path / "worker-1.log")
    try:
        handle = await _start(stack)
        for _ in range(300):  # until the run is writing mirrors
            if stack.hubspot.find_objects(PORTAL, "invoices"):
                break
            await asyncio.sleep(0.05)
        worker.kill()  # SIGKILL mid-page
        worker.wait()
        worker = stack.spawn_worker(tmp_path / "worker-2.log")
        summary = await asyncio.wait_for(handle.result(), 240)
    finally:
        stack.hubspot.faults.clear()
        worker.terminate()
        worker.wait()
    assert summary.errors == [], summary.errors
    for kleer_id in invoices:
        mirrors = stack.hubspot.find_objects(PORTAL, "invoices", kleer_id=str(kleer_id))
        assert len(mirrors) == 1, (kleer_id, mirrors)
        items = stack.hubspot.associations_of(PORTAL, "invoices", mirrors[0]["id"], "line_items")
        assert len(items) == 2, (kleer_id, items)  # rows not doubled by the retried page


async def test_a_sync_during_a_bulk_enrollment_lets_the_actions_go_first(load_stack, tmp_path):
    stack = load_stack
    client_id = await _linked_client(stack, "Sync Meanwhile AB")
    _invoices(stack, client_id, 400)
    companies = [stack.hubspot.create_object(PORTAL, "companies", {"name": f"Burst {n} AB"})
                 for n in range(40)]
    # No batch window: the burst's calls then keep the portal's budget busy, which is what the
    # sync must yield to. (With the window the burst makes so few calls that the budget sits idle
    # between its batches, and the sync rightly uses those idle turns.)
    worker = stack.spawn_worker(tmp_path / "worker.log", {"HUBSPOT_BATCH_WINDOW_MS": "0"})
    stack.hubspot.calls.clear()
    try:
        async with HubSpotDriver(stack.action_url("create-client"), DEMO_CLIENT_SECRET,
                                 stack.hubspot_url) as driver:
            async def enroll(company: str) -> dict:
                delivery = await driver.execute(PORTAL, "COMPANY", int(company),
                                                {"name": f"Burst {company}"},
                                                action_url=stack.action_url("create-client"))
                return await driver.wait_for_completion(delivery.callback_id, timeout_s=180)

            burst = [asyncio.create_task(enroll(c)) for c in companies]
            await asyncio.sleep(0.5)  # the enrollment is under way when the sync starts
            sync = await _start(stack)
            outs = await asyncio.gather(*burst)
            actions_done = time.time()
            summary = await asyncio.wait_for(sync.result(), 240)
    finally:
        worker.terminate()
        worker.wait()
    assert [o["result"] for o in outs] == ["created"] * len(companies)
    assert summary.invoices_upserted >= 400 and summary.errors == []
    calls = [c for c in stack.hubspot.calls.list() if c["key"] == PORTAL]
    during = [c for c in calls if c["ts"] <= actions_done]
    sync_paths = ("/invoices/", "/line_items/batch/create", "/companies/search",
                  "/associations/invoices/")
    sync_during = [c for c in during if any(p in c["path"] for p in sync_paths)]
    # The sync waits while the enrollment keeps the portal's budget busy: a small share of the
    # calls made before the last action finished are the sync's.
    assert len(sync_during) <= 0.15 * len(during), (len(sync_during), len(during))
    assert [c for c in calls if c["status"] == 429] == []
