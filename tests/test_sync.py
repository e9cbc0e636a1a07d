"""The scheduled outbound sync, Kleer -> HubSpot, on a real dev server: the first full sync of a
portal with existing data, an incremental run after changes, clients matching two companies (or
two clients one company), schedules, and the rules of matching."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest

from actions.base import foreign_id, record_workflow_id
from actions.invoice import SPEC as INVOICE
from hubspot_api.models import CrmObject
from local.stack import DEMO_KLEER_COMPANY, DEMO_PORTAL, LocalStack
from settings import Settings, StepPolicy
from sync import schedules
from sync.matching import Candidates, match_clients
from sync.models import SyncRequest, SyncSummary
from sync.workflow import OutboundSync
from tests.conftest import DATABASE_SECRETS_KEY

PORTAL, COMPANY = DEMO_PORTAL, DEMO_KLEER_COMPANY
PRIMARY, DEAL_TO_LINE_ITEM = 5, 19


@pytest.fixture(scope="module")
async def sync_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalStack]:
    state = tmp_path_factory.mktemp("sync")
    settings = Settings(
        task_queue="kleer-hubspot-sync", http_timeout_s=3, kleer_rate_limit=50,
        database_url=f"sqlite+aiosqlite:///{state / 'kleer.db'}",
        database_secrets_key=DATABASE_SECRETS_KEY,
        sync_interval_s=24 * 3600,  # runs are started by the tests, not by the clock
        step_policy=StepPolicy(start_to_close_s=10, initial_retry_s=0.2, max_retry_s=2),
    )
    async with LocalStack(settings=settings, log_dir=state) as stack:
        yield stack


async def run_sync(stack: LocalStack) -> SyncSummary:
    return await stack.client.execute_workflow(
        OutboundSync.run, SyncRequest(portal_id=PORTAL), id=f"sync-test-{uuid.uuid4().hex[:8]}",
        task_queue=stack.settings.task_queue, result_type=SyncSummary)


def client(stack: LocalStack, name: str, **fields: str) -> int:
    return stack.kleer.create(COMPANY, "client", {"name": name, "active": True, **fields})


def invoice(stack: LocalStack, client_id: int, rows: list[tuple[str, int]], state: str | None = None,
            **fields: str) -> int:
    invoice_id = stack.kleer.create(COMPANY, "invoice", {
        "client-ref": {"id": client_id}, "invoice-date": "2026-10-01", "currency": "SEK",
        "due-date": (date.today() + timedelta(days=20)).isoformat(), "certified": False,
        "sent": False, "remaining": 0,
        "rows": [{"description": d, "quantity": 1, "price": p} for d, p in rows], **fields})
    if state:
        stack.kleer.set_invoice_state(COMPANY, invoice_id, state)
    return invoice_id


def agreement(stack: LocalStack, client_id: int, rows: list[tuple[str, int]]) -> int:
    return stack.kleer.create(COMPANY, "agreement", {
        "client-ref": {"id": client_id}, "description": "Support", "start-invoice-date": "2027-01-01",
        "end-date": "2027-12-31", "invoice-interval-months": 3, "currency": "SEK",
        "first-invoice-rows": [], "recurring-rows": [{"description": d, "quantity": 1, "price": p}
                                                     for d, p in rows]})


def mirror(stack: LocalStack, object_type: str, kleer_id: int) -> dict:
    [found] = stack.hubspot.find_objects(PORTAL, object_type, kleer_id=str(kleer_id))
    return found


def line_item_names(stack: LocalStack, object_type: str, mirror_id: str) -> list[str]:
    return sorted(stack.hubspot.get_object(PORTAL, "line_items", i)["properties"]["name"]
                  for i in stack.hubspot.associations_of(PORTAL, object_type, mirror_id, "line_items"))


async def test_first_full_then_incremental_sync(sync_stack):
    stack, hs = sync_stack, sync_stack.hubspot
    # HubSpot companies, and Kleer clients each found by a different rule.
    ours = hs.create_object(PORTAL, "companies", {"name": "Ours AB"})
    by_orgno = hs.create_object(PORTAL, "companies", {"name": "Beta Holding", "orgno": "5566778899"})
    by_name = hs.create_object(PORTAL, "companies", {"name": "Gamma AB"})
    by_hand = hs.create_object(PORTAL, "companies", {"name": "Delta AB"})
    shared = hs.create_object(PORTAL, "companies", {"name": "Epsilon", "orgno": "1111111111"})
    twin_a = hs.create_object(PORTAL, "companies", {"name": "Zeta AB"})
    twin_b = hs.create_object(PORTAL, "companies", {"name": "Zeta AB"})
    a = client(stack, "Ours AB", **{"foreign-id": f"hubspot:{PORTAL}:company:{ours}:client"})
    b = client(stack, "Beta AB", orgno="556677-8899")
    c = client(stack, "Gamma AB")
    g = client(stack, "Delta Handmade")
    hs.portals[PORTAL].crm.update("companies", by_hand, {"kleer_id": str(g)})
    nobody = client(stack, "Nobody AB", orgno="999999-9999")
    e1 = client(stack, "Epsilon One", orgno="111111-1111")
    e2 = client(stack, "Epsilon Two", orgno="111111-1111")
    zeta = client(stack, "Zeta AB")
    # A deal our action made an invoice for; agreements and invoices of linked and unlinked clients.
    deal = hs.create_object(PORTAL, "deals", {"dealname": "Deal of Beta"})
    sub = agreement(stack, a, [("Licence", 10000), ("Support", 5000)])
    sent = invoice(stack, b, [("Work", 150000), ("Travel", 20000)], "sent",
                   **{"foreign-id": f"hubspot:{PORTAL}:deal:{deal}:invoice"})
    paid = invoice(stack, c, [("Work", 99900)], "paid")
    invoice(stack, nobody, [("Work", 100)], "sent")  # its client is not linked: waits

    first = await run_sync(stack)
    assert first.clients_linked == 4, first
    assert {u.kleer_id for u in first.unmatched} == {nobody, e1, e2, zeta}
    reasons = {u.kleer_id: u.reason for u in first.unmatched}
    assert "no HubSpot company has kleer_id" in reasons[nobody] and "999999-9999" in reasons[nobody]
    assert f"Kleer clients {e1}, {e2} all match company {shared}" in reasons[e1]
    assert f"companies {twin_a} (Zeta AB), {twin_b} (Zeta AB) all match by name" in reasons[zeta]
    for company, kleer_id in ((ours, a), (by_orgno, b), (by_name, c), (by_hand, g)):
        assert hs.get_object(PORTAL, "companies", company)["properties"]["kleer_id"] == str(kleer_id)
    for company in (shared, twin_a, twin_b):  # conflicts: nothing guessed, nothing written
        assert not hs.get_object(PORTAL, "companies", company)["properties"].get("kleer_id")
    assert (first.subscriptions_upserted, first.invoices_upserted, first.waiting_for_client) == (1, 2, 1)
    # Mirrors: HubSpot's own statuses, rows as line items, associated with company and deal.
    sent_mirror, paid_mirror = mirror(stack, "invoices", sent), mirror(stack, "invoices", paid)
    assert sent_mirror["properties"]["hs_invoice_status"] == "open"
    assert paid_mirror["properties"]["hs_invoice_status"] == "paid"
    assert line_item_names(stack, "invoices", sent_mirror["id"]) == ["Travel", "Work"]
    assert hs.associations_of(PORTAL, "invoices", sent_mirror["id"], "companies") == [by_orgno]
    assert hs.associations_of(PORTAL, "invoices", sent_mirror["id"], "deals") == [deal]
    sub_mirror = mirror(stack, "subscriptions", sub)
    assert hs.associations_of(PORTAL, "subscriptions", sub_mirror["id"], "companies") == [ours]
    items = [hs.get_object(PORTAL, "line_items", i)["properties"] for i in hs.associations_of(
        PORTAL, "subscriptions", sub_mirror["id"], "line_items")]
    assert {(i["name"], i["recurringbillingfrequency"]) for i in items} == {
        ("Licence", "quarterly"), ("Support", "quarterly")}
    unmatched = await stack.services.store.unmatched(PORTAL)
    assert {u.kleer_id for u in unmatched} == {nobody, e1, e2, zeta}

    # Changes in Kleer: paid, credited, new rows, a new client; the rest is left alone.
    stack.kleer.set_invoice_state(COMPANY, sent, "paid")
    stack.kleer.get(COMPANY, "agreement", sub)  # (a copy)
    with stack.kleer.lock:
        stack.kleer.find(COMPANY, "agreement", sub)["recurring-rows"] = [
            {"description": "Enterprise", "quantity": 1, "price": 30000}]
    newcomer = client(stack, "Newcomer AB")
    newco = hs.create_object(PORTAL, "companies", {"name": "Newcomer AB"})
    hs.calls.clear()
    second = await run_sync(stack)
    assert (second.clients_linked, second.invoices_upserted, second.subscriptions_upserted) == (1, 1, 1)
    assert second.unchanged >= 5 and second.waiting_for_client == 1
    assert hs.get_object(PORTAL, "companies", newco)["properties"]["kleer_id"] == str(newcomer)
    assert mirror(stack, "invoices", sent)["properties"]["hs_invoice_status"] == "paid"
    assert mirror(stack, "invoices", sent)["id"] == sent_mirror["id"]  # updated, not doubled
    assert line_item_names(stack, "subscriptions", sub_mirror["id"]) == ["Enterprise"]
    assert len(hs.find_objects(PORTAL, "invoices", kleer_id=str(paid))) == 1
    # Incremental: only what changed cost HubSpot calls, in batches: 3 searches for the clients
    # still unmatched, 1 kleer_id write, per changed mirror kind an upsert and its line items
    # (read, archive, create), the association type ids once per process: about 14, not one
    # or more per record.
    writes = [c for c in hs.calls.list() if c["key"] == PORTAL]
    assert len(writes) <= 16, [(c["method"], c["path"]) for c in writes]

    third = await run_sync(stack)
    assert (third.clients_linked, third.invoices_upserted, third.subscriptions_upserted) == (0, 0, 0)


async def test_schedule_per_portal_pause_resume_run_now(sync_stack):
    stack = sync_stack
    outcome = await schedules.reconcile(stack.client, stack.settings, stack.services)
    assert outcome[PORTAL] in ("created", "unchanged")
    status = await schedules.status(stack.client, PORTAL)
    assert status.exists and not status.paused and status.interval_s == 24 * 3600
    await schedules.pause(stack.client, PORTAL)
    assert (await schedules.status(stack.client, PORTAL)).paused
    await schedules.resume(stack.client, PORTAL)
    assert not (await schedules.status(stack.client, PORTAL)).paused
    before = len([w async for w in stack.client.list_workflows(
        "WorkflowType = 'KleerOutboundSync'")])
    await schedules.run_now(stack.client, PORTAL)
    for _ in range(100):
        runs = [w async for w in stack.client.list_workflows("WorkflowType = 'KleerOutboundSync'")]
        if len(runs) > before and all(r.status.name != "RUNNING" for r in runs):
            break
        import asyncio

        await asyncio.sleep(0.2)
    assert len(runs) == before + 1 and runs[0].status.name == "COMPLETED", runs


def _company(company_id: str, name: str, kleer_id: str | None = None) -> CrmObject:
    return CrmObject(id=company_id, properties={"name": name, "kleer_id": kleer_id})


def test_matching_rules_report_instead_of_guessing():
    clients = [{"id": 1, "name": "A"}, {"id": 2, "name": "B", "orgno": "55-66"},
               {"id": 3, "name": "C"}]
    taken = _company("30", "C", kleer_id="99")
    found = Candidates(by_marker={}, by_kleer_id={"1": [_company("10", "Other name")]},
                       by_orgno={"5566": [_company("20", "B Holding")]}, by_name={"C": [taken]})
    links, problems = match_clients(clients, found)
    assert [(m.client_id, m.company.id, m.rule) for m in links] == [(1, "10", "kleer_id"),
                                                                     (2, "20", "org number")]
    assert problems == [(3, "C", "company 30 (C) matches by name but is linked to Kleer client 99 "
                                 "already")]


def test_the_cli_shows_pauses_and_resumes_a_portals_sync(sync_stack):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, **sync_stack.worker_env()}

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "cli", "sync", *args], env=env, text=True,
                              capture_output=True, timeout=60, cwd=Path(__file__).parents[1])
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "portal 12345: " in cli("schedule")
    assert "paused" in cli("pause", "--portal-id", str(PORTAL), "--note", "holiday")
    assert "(holiday)" in cli("status", "--portal-id", str(PORTAL))
    assert "active" in cli("resume", "--portal-id", str(PORTAL))


async def test_a_mirror_an_action_is_writing_is_left_to_it_and_written_once_it_is_done(sync_stack):
    """The sync writes an action's mirror under the deal's record lease, the one the action's
    sync-back runs under (workflows/common.py): never both at once, so rows are never doubled."""
    stack, hs = sync_stack, sync_stack.hubspot
    company = hs.create_object(PORTAL, "companies", {"name": "Leased AB"})
    kleer_client = client(stack, "Leased AB", **{
        "foreign-id": foreign_id(PORTAL, "COMPANY", company, "client")})
    deal = hs.create_object(PORTAL, "deals", {"dealname": "Deal under a lease"})
    made = invoice(stack, kleer_client, [("Work", 1000), ("Travel", 200)], "sent",
                   **{"foreign-id": foreign_id(PORTAL, "DEAL", deal, INVOICE.kleer_kind)})
    # An execution of create-invoice on that deal is writing: its run holds the lease.
    key = record_workflow_id(PORTAL, INVOICE.kleer_kind, "DEAL", deal)
    writer = await stack.client.start_workflow(
        "AnActionRunStillWriting", id=f"writer-{uuid.uuid4().hex[:8]}", task_queue="nobody-polls")
    assert (await stack.services.store.take_record(key, writer.id)).holder == writer.id

    busy = await run_sync(stack)
    assert busy.left_to_actions == 1 and busy.invoices_upserted == 0, busy
    assert not hs.find_objects(PORTAL, "invoices", kleer_id=str(made))
    assert (await stack.services.store.take_record(key, "someone else")).holder == writer.id

    # The run ends without releasing (terminated): the next sync takes the lease over, writes
    # the mirror with its rows once, and gives the lease back.
    await writer.terminate(reason="test: the action's run ended")
    done = await run_sync(stack)
    assert done.left_to_actions == 0 and done.invoices_upserted == 1, done
    assert line_item_names(stack, "invoices", mirror(stack, "invoices", made)["id"]) == [
        "Travel", "Work"]
    assert (await stack.services.store.take_record(key, "next")).holder == "next"  # released
