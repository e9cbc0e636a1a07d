"""The five deal actions end to end, with immediate sync back and per-action call counts."""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import EventType

from tests.conftest import OTHER_PORTAL, PORTAL
from workflows.models import record_workflow_id

PRIMARY, DEAL_TO_LINE_ITEM = 5, 19


def seed_deal(stack, kleer_client: bool = True, items: list[dict] | None = None,
              props: dict | None = None, portal: int = PORTAL) -> tuple[str, str]:
    hs = stack.hubspot
    company_props = {"name": "Deal Co AB"}
    if kleer_client:
        client_id = stack.kleer.create(1 if portal == PORTAL else 2, "client",
                                       {"name": "Deal Co AB"})
        company_props["kleer_id"] = str(client_id)
    company_id = hs.create_object(portal, "companies", company_props)
    links = [("companies", company_id, PRIMARY)]
    for item in items if items is not None else [
        {"name": "Licence", "quantity": "2", "price": "1234.50",
         "recurringbillingfrequency": "monthly"},
        {"name": "Setup", "quantity": "1", "price": "0.30000000000000004",
         "hs_discount_percentage": "12.5"},
    ]:
        links.append(("line_items", hs.create_object(portal, "line_items", item),
                      DEAL_TO_LINE_ITEM))
    deal_id = hs.create_object(portal, "deals", {"dealname": "Big deal", **(props or {})}, links)
    return deal_id, company_id


def calls(stack, service: str) -> int:
    return len((stack.hubspot if service == "hubspot" else stack.kleer).calls.list())


async def test_create_invoice_with_rows_and_sync_back(stack, run):
    deal_id, company_id = seed_deal(stack)
    stack.hubspot.calls.clear()
    out = await run("create-invoice", "DEAL", deal_id, {
        "invoice_date": "2026-12-01", "currency": "eur", "delivery_type": "email",
        "your_reference": "Anna", "po_number": "PO-1"})
    assert out["result"] == "created", out
    invoice = stack.kleer.get(1, "invoice", int(out["kleer_id"]))
    assert invoice["invoice-date"] == "2026-12-01" and invoice["currency"] == "EUR"
    assert invoice["po-nr"] == "PO-1" and invoice["your-reference"] == "Anna"
    assert [(r["description"], r["price"]) for r in invoice["rows"]] == [
        ("Licence", 123450), ("Setup", 30)]
    assert invoice["rows"][1]["discount"] == {"percentage": 12.5}
    deal = stack.hubspot.get_object(PORTAL, "deals", deal_id)
    assert deal["properties"]["kleer_invoice_id"] == out["kleer_id"]
    # Immediate sync back: one HubSpot invoice with the Kleer id, its rows, deal and company.
    [mirror] = stack.hubspot.find_objects(PORTAL, "invoices", kleer_id=out["kleer_id"])
    assert mirror["properties"]["hs_currency"] == "EUR"
    assert set(stack.hubspot.associations_of(PORTAL, "invoices", mirror["id"], "deals")) == {deal_id}
    assert set(stack.hubspot.associations_of(PORTAL, "invoices", mirror["id"], "companies")) == {
        company_id}
    items = [stack.hubspot.get_object(PORTAL, "line_items", i)["properties"]
             for i in stack.hubspot.associations_of(PORTAL, "invoices", mirror["id"], "line_items")]
    assert sorted((i["name"], i["price"]) for i in items) == [("Licence", "1234.50"),
                                                             ("Setup", "0.30")]
    # The id written back, the mirror, its line items and the callback's completion in one step
    # (patches `mirror-and-line-items-in-one-step`, `complete-in-last-write`,
    # `write-back-with-mirror`): the run itself only read the deal, and has no complete step.
    write = record_workflow_id(PORTAL, "invoice", "DEAL", deal_id)
    assert await scheduled_steps(stack, write) == ["kleer.create", "hubspot.sync_mirror_and_complete"]
    assert await scheduled_steps(stack, out["workflow_id"]) == ["hubspot.read_record"]


async def scheduled_steps(stack, workflow_id: str) -> list[str]:
    """The activities a workflow scheduled, in order (local activities are markers, not here)."""
    handle = stack.client.get_workflow_handle(workflow_id)
    return [e.activity_task_scheduled_event_attributes.activity_type.name
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]


@pytest.mark.parametrize("action,prop,kind", [
    ("create-invoice", "kleer_invoice_id", "invoice"),
    ("create-agreement", "kleer_agreement_id", "agreement"),
    ("create-project", "kleer_project_id", "project"),
    ("create-project-from-mappings", "kleer_project_id", "project"),
])
async def test_deal_create_actions_skip_when_already_done(stack, run, action, prop, kind):
    deal_id, _ = seed_deal(stack, props={prop: "31"})
    before = len(stack.kleer.records(1, kind))
    stack.hubspot.calls.clear()
    out = await run(action, "DEAL", deal_id, {"name": "P"})
    assert (out["hs_execution_state"], out["result"], out["kleer_id"]) == ("SUCCESS", "skipped", "31")
    assert len(stack.kleer.records(1, kind)) == before
    assert [c["method"] for c in stack.hubspot.calls.list() if c["method"] == "PATCH"] == []


@pytest.mark.parametrize("action", ["create-invoice", "create-agreement", "create-project"])
async def test_deal_without_company_or_client_fails(stack, run, action):
    hs = stack.hubspot
    orphan = hs.create_object(PORTAL, "deals", {"dealname": "Orphan"})
    out = await run(action, "DEAL", orphan, {"name": "P"})
    assert out["hs_execution_state"] == "FAIL_CONTINUE"
    assert f"Deal {orphan} has no associated company" in out["error_message"]
    deal_id, company_id = seed_deal(stack, kleer_client=False)
    out = await run(action, "DEAL", deal_id, {"name": "P"})
    assert out["hs_execution_state"] == "FAIL_CONTINUE"
    assert f"Company {company_id} (Deal Co AB) of deal {deal_id} is not a Kleer client yet" \
        in out["error_message"]


async def test_invoice_bad_input_writes_nothing(stack, run):
    deal_id, _ = seed_deal(stack)
    before = len(stack.kleer.records(1, "invoice"))
    out = await run("create-invoice", "DEAL", deal_id, {"invoice_date": "2026-13-01"})
    assert out["error_message"] == 'Invoice Date "2026-13-01" is not a date (YYYY-MM-DD)'
    assert len(stack.kleer.records(1, "invoice")) == before
    assert not stack.hubspot.get_object(PORTAL, "deals", deal_id)["properties"].get(
        "kleer_invoice_id")


async def test_agreement_create_then_update_replaces_rows(stack, run):
    deal_id, company_id = seed_deal(stack)
    out = await run("create-agreement", "DEAL", deal_id, {
        "name": "Support", "start_date": "2027-01-01", "end_date": "2027-12-31",
        "invoice_interval": "3", "invoice_day": "invoice_at_start", "payment_days": "20"})
    assert out["result"] == "created", out
    agreement_id = int(out["kleer_id"])
    agreement = stack.kleer.get(1, "agreement", agreement_id)
    assert [r["description"] for r in agreement["recurring-rows"]] == ["Licence"]
    assert [r["description"] for r in agreement["first-invoice-rows"]] == ["Setup"]
    assert agreement["invoice-day"] == "INVOICE_AT_START" and agreement["revision-nr"] == 1
    [sub] = stack.hubspot.find_objects(PORTAL, "subscriptions", kleer_id=str(agreement_id))
    items = {item["properties"]["name"]: item["properties"] for item in (
        stack.hubspot.get_object(PORTAL, "line_items", i)
        for i in stack.hubspot.associations_of(PORTAL, "subscriptions", sub["id"], "line_items"))}
    # HubSpot's own billing values (hubspot.md section 7): every 3 months, a 12-month term.
    assert (items["Licence"]["recurringbillingfrequency"],
            items["Licence"]["hs_recurring_billing_period"]) == ("quarterly", "P12M")
    assert not items["Setup"].get("recurringbillingfrequency")  # a one-time row

    # Upsell: the deal now has one different line item; the update replaces the rows.
    hs = stack.hubspot
    for item in hs.associations_of(PORTAL, "deals", deal_id, "line_items"):
        hs.archive_object(PORTAL, "line_items", item)
    new_item = hs.create_object(PORTAL, "line_items", {
        "name": "Enterprise licence", "quantity": "1", "price": "9999.99",
        "recurringbillingfrequency": "annually"}, [("deals", deal_id, 20)])
    assert new_item
    out = await run("update-agreement", "DEAL", deal_id, {"end_date": "2028-12-31"})
    assert (out["result"], out["kleer_id"]) == ("updated", str(agreement_id)), out
    agreement = stack.kleer.get(1, "agreement", agreement_id)
    assert agreement["revision-nr"] == 2 and agreement["end-date"] == "2028-12-31"
    # Not given: unchanged (the whole agreement is sent back, kleer.md "Agreement update").
    assert (agreement["payment-days"], agreement["description"], agreement["invoice-interval-months"],
            agreement["invoice-day"]) == (20, "Support", 3, "INVOICE_AT_START")
    assert [r["description"] for r in agreement["recurring-rows"]] == ["Enterprise licence"]
    assert agreement["first-invoice-rows"] == []
    [sub] = stack.hubspot.find_objects(PORTAL, "subscriptions", kleer_id=str(agreement_id))
    names = [hs.get_object(PORTAL, "line_items", i)["properties"]["name"]
             for i in hs.associations_of(PORTAL, "subscriptions", sub["id"], "line_items")]
    assert names == ["Enterprise licence"]
    assert sub["properties"]["hs_recurring_billing_end_date"] == "2028-12-31"


@pytest.mark.parametrize("action", ["create-invoice", "create-agreement", "update-agreement"])
async def test_deal_without_line_items_fails_and_writes_nothing(stack, run, action):
    props = {}
    if action == "update-agreement":
        deal_with_rows, _ = seed_deal(stack)
        created = await run("create-agreement", "DEAL", deal_with_rows)
        props["kleer_agreement_id"] = created["kleer_id"]
    deal_id, _ = seed_deal(stack, items=[], props=props)
    kind = "invoice" if action == "create-invoice" else "agreement"
    before = stack.kleer.records(1, kind)
    out = await run(action, "DEAL", deal_id)
    assert out["hs_execution_state"] == "FAIL_CONTINUE"
    assert f"Deal {deal_id} has no line items" in out["error_message"]
    assert "add the products or services as line items" in out["error_message"]
    assert stack.kleer.records(1, kind) == before  # nothing created, no agreement emptied


async def test_update_agreement_never_skips_but_needs_an_agreement(stack, run):
    deal_id, _ = seed_deal(stack)
    out = await run("update-agreement", "DEAL", deal_id, {})
    assert out["hs_execution_state"] == "FAIL_CONTINUE"
    assert "has no kleer_agreement_id" in out["error_message"]


async def test_update_agreement_redelivery_applies_once(stack, run, driver):
    deal_id, _ = seed_deal(stack)
    created = await run("create-agreement", "DEAL", deal_id, {})
    callback = f"ap-redeliver-{deal_id}"
    first = await run("update-agreement", "DEAL", deal_id, {"po_number": "X"},
                      callback_id=callback)
    assert first["result"] == "updated"
    # HubSpot re-sends the same execution (same callbackId) after it finished.
    again = await driver.execute(PORTAL, "DEAL", int(deal_id), {"po_number": "X"},
                                 callback_id=callback,
                                 action_url=stack.action_url("update-agreement"))
    assert again.status_code == 200
    agreement = stack.kleer.get(1, "agreement", int(created["kleer_id"]))
    assert agreement["revision-nr"] == 2


async def test_create_project_and_skip(stack, run):
    deal_id, _ = seed_deal(stack)
    out = await run("create-project", "DEAL", deal_id, {
        "name": "Rollout", "number": "P-1", "fixed_price": "no", "budget_hours": "120.5",
        "budget_amount": "150000.25", "opening_date": "2027-01-10"})
    assert out["result"] == "created", out
    project = stack.kleer.get(1, "project", int(out["kleer_id"]))
    assert project["name"] == "Rollout" and project["budget-amount"] == 15000025
    assert project["fixed-price"] is False and float(project["budget-hours"]) == 120.5
    deal = stack.hubspot.get_object(PORTAL, "deals", deal_id)
    assert deal["properties"]["kleer_project_id"] == out["kleer_id"]
    again = await run("create-project-from-mappings", "DEAL", deal_id)
    assert (again["result"], again["kleer_id"]) == ("skipped", out["kleer_id"])


async def test_project_from_default_and_portal_mappings(stack, run):
    deal_id, _ = seed_deal(stack, props={"description": "From the deal", "amount": "5000",
                                         "closedate": "2027-02-03T09:00:00.000Z"})
    out = await run("create-project-from-mappings", "DEAL", deal_id)
    assert out["result"] == "created", out
    project = stack.kleer.get(1, "project", int(out["kleer_id"]))
    assert (project["name"], project["comment"], project["opening-date"],
            project["budget-amount"]) == ("Big deal", "From the deal", "2027-02-03", 500000)

    crm = stack.hubspot.portals[OTHER_PORTAL].crm
    crm.add_property("deals", {"name": "project_code", "label": "Code", "type": "string",
                               "fieldType": "text", "groupName": "dealinformation"})
    other_deal, _ = seed_deal(stack, props={"project_code": "PX-7"}, portal=OTHER_PORTAL)
    out = await run("create-project-from-mappings", "DEAL", other_deal, portal=OTHER_PORTAL)
    assert out["result"] == "created", out
    project = stack.kleer.get(2, "project", int(out["kleer_id"]))
    assert (project["name"], project["number"], float(project["budget-hours"])) == (
        "Big deal", "PX-7", 40.0)


async def test_product_reference_when_known_in_kleer(stack, run):
    product = stack.kleer.add_product(1, name="Licence", foreign_id="8001")
    deal_id, _ = seed_deal(stack, items=[{"name": "Licence", "price": "10", "hs_product_id": "8001"},
                                         {"name": "Other", "price": "5", "hs_product_id": "8002"}])
    out = await run("create-invoice", "DEAL", deal_id)
    invoice = stack.kleer.get(1, "invoice", int(out["kleer_id"]))
    assert invoice["rows"][0]["product"] == {"id": product["id"]}
    assert "product" not in invoice["rows"][1]
